"""A self-contained HTML page of one validation report: no scripts, no
external files (styles inline), every value escaped, secrets redacted.
Collapsible example tables use ``<details>``, which needs no JavaScript."""

from __future__ import annotations

from html import escape
from typing import Any

from crosswind.secrets import redact
from crosswind.validate.findings import Kind

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#1d2330;padding:0 1rem}
h1{font-size:1.5rem;margin:0 0 .2rem}h2{font-size:1.15rem;margin:2rem 0 .6rem;
border-bottom:1px solid #dde1e8;padding-bottom:.3rem}
.sub{color:#5b6475}.badge{display:inline-block;padding:.15rem .6rem;border-radius:1rem;
font-weight:600;font-size:.85rem;vertical-align:middle}
.pass{background:#dcf5e3;color:#17603a}.fail{background:#fde2e1;color:#9b1c1c}
.error{background:#fff1d6;color:#8a5300}
.cards{display:flex;gap:1rem;flex-wrap:wrap;margin:1rem 0}
.card{border:1px solid #dde1e8;border-radius:.5rem;padding:.8rem 1rem;min-width:12rem}
.card .v{font-size:1.6rem;font-weight:650}.card .t{color:#5b6475;font-size:.85rem}
table{border-collapse:collapse;width:100%;margin:.4rem 0 1rem}
th,td{border-bottom:1px solid #e6e9ef;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f5f7fa;font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
code,.key{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.85rem;
word-break:break-all}
details{margin:.3rem 0}summary{cursor:pointer;font-weight:600}
.errbox{background:#fff1d6;border:1px solid #f0c36d;padding:.6rem 1rem;border-radius:.4rem}
"""

KIND_TITLES = {
    Kind.MISSING.value: "missing on destination",
    Kind.EXTRA.value: "extra on destination",
    Kind.SIZE.value: "size mismatch",
    Kind.HASH.value: "hash mismatch",
    Kind.METADATA.value: "metadata mismatch",
    Kind.ORPHAN_ROW.value: "orphan row (row without object)",
    Kind.ORPHAN_OBJECT.value: "orphan object (object without row)",
    Kind.UNPARSEABLE.value: "unparseable name",
}


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _badge(ok: bool | None, yes: str = "pass", no: str = "fail") -> str:
    if ok is None:
        return '<span class="badge error">error</span>'
    return f'<span class="badge {"pass" if ok else "fail"}">{yes if ok else no}</span>'


def _num(n: Any) -> str:
    return f"{n:,}" if isinstance(n, int) else _e(n)


def _card(title: str, value: str, sub: str) -> str:
    return (f'<div class="card"><div class="t">{_e(title)}</div><div class="v">{value}</div>'
            f'<div class="t">{sub}</div></div>')


def _checks_table(r: dict[str, Any]) -> str:
    rows = []
    for name, c in r["checks"].items():
        ok = c["meets_completeness"] and c["meets_pass_rate"]
        rows.append(
            f"<tr><td>{_e(name)}</td><td class=n>{_num(c['items'])}</td>"
            f"<td class=n>{_num(c['source_items'])}</td>"
            f"<td class=n>{_num(c['present_on_destination'])}</td>"
            f"<td class=n>{_num(c['passed'])}</td><td class=n>{_num(c['failed'])}</td>"
            f"<td class=n>{c['completeness_pct']:.4f} % {_badge(c['meets_completeness'])}</td>"
            f"<td class=n>{c['pass_rate_pct']:.4f} % {_badge(c['meets_pass_rate'])}</td>"
            f"<td>{_badge(ok)}</td></tr>")
    return ("<table><tr><th>check</th><th class=n>items</th><th class=n>at source</th>"
            "<th class=n>also at destination</th><th class=n>passed</th><th class=n>failed</th>"
            "<th class=n>completeness</th><th class=n>pass rate</th><th>verdict</th></tr>"
            + "".join(rows) + "</table>")


def _counts_table(r: dict[str, Any]) -> str:
    checks = list(r["checks"])
    head = "".join(f"<th class=n>{_e(c)}</th>" for c in checks)
    rows = []
    for k in Kind:
        cells = [r["checks"][c]["discrepancies"].get(k.value, {}).get("count", 0) for c in checks]
        if not any(cells):
            continue
        rows.append(f"<tr><td>{_e(KIND_TITLES[k.value])}</td>"
                    + "".join(f"<td class=n>{_num(n)}</td>" for n in cells) + "</tr>")
    if not rows:
        return "<p>No discrepancies.</p>"
    return f"<table><tr><th>class</th>{head}</tr>{''.join(rows)}</table>"


def _coverage(r: dict[str, Any]) -> str:
    parts = []
    for name, c in r["checks"].items():
        listed = ", ".join(f"{_e(k)} {_num(v)}" for k, v in c["listed"].items())
        cov = "".join(f"<tr><td>{_e(k.replace('_', ' '))}</td><td class=n>{_num(v)}</td></tr>"
                      for k, v in c["coverage"].items())
        parts.append(f"<h3>{_e(name)}</h3><p class=sub>listed: {listed or 'n/a'}; "
                     f"{c['items_per_s']:,} items/s</p>"
                     f"<table><tr><th>compared</th><th class=n>items</th></tr>{cov}</table>")
    return "".join(parts)


def _examples(r: dict[str, Any]) -> str:
    out: list[str] = []
    for name, c in r["checks"].items():
        for kind, d in c["discrepancies"].items():
            rows = "".join(f"<tr><td class=key>{_e(x['key'])}</td><td>{_e(x['detail'])}</td></tr>"
                           for x in d["examples"])
            shown = len(d["examples"])
            more = (f" (first {shown} of {d['count']:,}; all are in the state store)"
                    if d["count"] > shown else "")
            out.append(f"<details{' open' if len(out) < 3 else ''}><summary>{_e(name)}: "
                       f"{_e(KIND_TITLES.get(kind, kind))} — {d['count']:,}{_e(more)}</summary>"
                       f"<table><tr><th>key</th><th>detail</th></tr>{rows}</table></details>")
    return "".join(out) or "<p>None.</p>"


def _repair(r: dict[str, Any]) -> str:
    rep = r.get("repair")
    if not rep:
        return ""
    rows: list[tuple[str, object]] = [("validation run repaired", rep.get("validation_run_id"))]
    if "objects" in rep:
        o = rep["objects"]
        rows += [("objects re-copied", o["copied"]), ("objects failed", o["failed"]),
                 ("object sync run", o["sync_run_id"])]
    if "metadata" in rep:
        m = rep["metadata"]
        if "skipped" in m:
            rows.append(("rows", f"not repaired: {m['skipped']}"))
        else:
            rows += [("rows written", m["written"]), ("rows failed", m["failed"]),
                     ("metadata sync run", m["sync_run_id"])]
    left = rep.get("not_repairable") or {}
    rows.append(("not repairable", ", ".join(f"{k}: {v}" for k, v in left.items()) or "none"))
    bt = (r.get("before_repair") or {}).get("totals", {})
    if bt:
        rows.append(("before repair: completeness / pass rate",
                     f"{bt.get('completeness_pct')} % / {bt.get('pass_rate_pct')} %"))
    body = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in rows)
    return f"<h2>Repair</h2><table>{body}</table>"


def stewardship_line(r: dict[str, Any]) -> str:
    """Domain, steward, owner and flow of the report (those set), for its header."""
    s = r.get("stewardship") or {}
    parts = [f"{label} {_e(s[k])}" for k, label in (("domain", "domain"), ("flow_id", "flow"),
                                                    ("steward", "steward"), ("owner", "owner"))
             if s.get(k)]
    return f'<div class="sub">{" · ".join(parts)}</div>' if parts else ""


def render_html(r: dict[str, Any]) -> str:
    t = r["totals"]
    verdict = r["verdict"]
    ok = None if verdict == "error" else verdict == "pass"
    tg = r["targets"]
    src = ", ".join(f"{k}: {v}" for k, v in r["source"].items())
    dst = ", ".join(f"{k}: {v}" for k, v in r["destination"].items())
    mode = r["mode"]
    # Reports made before reports carried a version say nothing rather than a wrong one.
    version = _e(r.get("crosswind_version", ""))
    err = (f'<p class="errbox"><b>error:</b> {_e(r["error"])}</p>' if r.get("error") else "")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>crosswind validation #{_e(r['run_id'])} — {_e(verdict)}</title><style>{_CSS}</style></head>
<body>
<h1>Validation #{_e(r['run_id'])} {_badge(ok, "PASS", "FAIL")}</h1>
<div class="sub">{_e(r['direction'])} · {_e(src)} → {_e(dst)}<br>
started {_e(r['started_at'])}, {r['duration_s']:,} s · checks {_e(', '.join(mode['checks']))} ·
closer look: {_e(mode['sample'])}{' (deep: bytes read)' if mode['deep'] else ''} ·
seed {_e(mode['seed'])}</div>
{stewardship_line(r)}
{err}
<div class="cards">
{_card("completeness", f"{t['completeness_pct']:.4f} %",
       f"target ≥ {_e(tg['completeness_pct'])} % {_badge(t['meets_completeness'])}")}
{_card("consistency pass rate", f"{t['pass_rate_pct']:.4f} %",
       f"target ≥ {_e(tg['pass_rate_pct'])} % {_badge(t['meets_pass_rate'])}")}
{_card("items checked", _num(t['items']), f"{_num(t['failed'])} with discrepancies")}
{_card("throughput", f"{r['throughput']['items_per_s']:,}", "items/s")}
</div>
<h2>Checks</h2>{_checks_table(r)}
<p class="sub">The run passes only when every check meets both targets. Completeness:
items at the source also at the destination (join: objects that have their row).
Pass rate: items with no discrepancy among all items seen on either side.</p>
<h2>Discrepancies by class</h2>{_counts_table(r)}
{_repair(r)}
<h2>Examples</h2>{_examples(r)}
<h2>What was compared</h2>{_coverage(r)}
<p class="sub">crosswind {version} validate · run {_e(r['run_id'])} ·
finished {_e(r['finished_at'])}</p>
</body></html>
"""
    return redact(page)
