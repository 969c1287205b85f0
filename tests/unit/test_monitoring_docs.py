"""The README's metric and alert tables are the catalogue's (generated; this
keeps them from drifting into a second, hand-written list)."""

from __future__ import annotations

from pathlib import Path

from crosswind.observability.export import alert_table, metric_table

README = Path(__file__).resolve().parents[2] / "README.md"


def between(text: str, name: str) -> str:
    start, end = f"<!-- {name}:start -->\n", f"<!-- {name}:end -->"
    assert start in text and end in text, f"README lacks the {name} markers"
    return text.split(start, 1)[1].split(end, 1)[0]


def test_the_readme_metric_table_is_the_catalogue() -> None:
    assert between(README.read_text("utf-8"), "metrics") == metric_table(), (
        "regenerate: python -c 'from crosswind.observability.export import metric_table; "
        "print(metric_table())'")


def test_the_readme_alert_table_is_the_catalogue() -> None:
    assert between(README.read_text("utf-8"), "alerts") == alert_table()
