"""A cutover's or rollback's report as a self-contained HTML timeline a person
can read: each step a bar on a time axis, its outcome, its evidence."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from crosswind.secrets import redact

_COLOURS = {"ok": "#2e7d32", "skipped": "#9e9e9e", "failed": "#c62828", None: "#f9a825"}


def _t(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def timeline_html(report: Mapping[str, Any]) -> str:
    start = _t(report.get("started_at")) or 0.0
    end = _t(report.get("finished_at")) or start
    span = max(end - start, 0.001)
    rows = []
    for s in report.get("steps", []):
        a = (_t(s.get("started_at")) or start) - start
        b = (_t(s.get("finished_at")) or end) - start
        left, width = 100 * a / span, max(0.4, 100 * (b - a) / span)
        colour = _COLOURS.get(s.get("outcome"), "#f9a825")
        evidence = html.escape(redact(json.dumps(s.get("evidence") or {}, default=str)))[:1500]
        rows.append(
            f"<tr><td>{'↩ ' if s.get('undo') else ''}{html.escape(str(s.get('name')))}</td>"
            f"<td>{html.escape(str(s.get('outcome')))}</td>"
            f"<td class=n>{(s.get('duration_s') or 0):.1f}s</td>"
            f"<td class=bar><div style='margin-left:{left:.2f}%;width:{width:.2f}%;"
            f"background:{colour}'></div></td>"
            f"<td><small>{html.escape(str(s.get('does') or ''))}"
            f"{'<br><b>' + html.escape(str(s.get('reason'))) + '</b>' if s.get('reason') else ''}"
            f"<br><code>{evidence}</code></small></td></tr>")
    head = (f"{report.get('kind')} — {report.get('status')}"
            + (f" — RTO {report['rto_s']:.1f}s" if report.get("rto_s") is not None else ""))
    meta = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(report.get(k)))}</td></tr>"
        for k in ("plan_hash", "started_at", "finished_at", "duration_s", "phase_before",
                  "phase_after", "authorization", "error", "crosswind_version"))
    meta += "".join(  # domain, steward, owner, flow_id ([governance])
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in (report.get("stewardship") or {}).items() if v)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>crosswind {html.escape(head)}</title>
<style>
body{{font:14px system-ui,sans-serif;margin:2em;color:#222}}
table{{border-collapse:collapse;width:100%}} td,th{{border-bottom:1px solid #ddd;padding:4px 6px;
text-align:left;vertical-align:top}} td.n{{text-align:right;white-space:nowrap}}
td.bar{{width:40%;min-width:200px}} td.bar div{{height:14px;border-radius:3px}}
code{{word-break:break-all;color:#555}}
</style></head><body>
<h1>{html.escape(head)}</h1>
<table class=meta>{meta}</table>
<h2>Steps</h2>
<table><tr><th>step</th><th>outcome</th><th>time</th><th>timeline</th><th>what and evidence</th>
</tr>{''.join(rows)}</table>
</body></html>
"""
