"""Write a report :class:`~cifarlab.report.document.Document` as one self-contained HTML file.

Every figure is inlined as a base64 PNG data URI and the style sheet is in the
page, so the file opens from disk with no network, can be mailed as one
attachment, and prints cleanly (figures and tables are kept whole on a page).
No script runs in it, and every string of the document (much of it read from run
directories) is HTML-escaped, so it is shown as text whatever it holds.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from cifarlab.atomic import write_text
from cifarlab.report import WRITE_HINT, ReportError
from cifarlab.report.document import Document, Figure, Heading, Paragraph, Row, Table

CSS = """
:root { --ink: #1d2330; --muted: #5b6474; --line: #d9dde4; --accent: #2a5db0; --bg: #f6f7f9; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--ink); margin: 0; background: #fff; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 32px 64px; }
header h1 { font-size: 28px; margin: 8px 0 4px; }
header dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 8px 0 0;
            color: var(--muted); font-size: 13px; }
header dt { font-weight: 600; }
header dd { margin: 0; overflow-wrap: anywhere; }
nav { margin: 18px 0 8px; padding: 10px 14px; background: var(--bg); border-radius: 6px; }
nav a { color: var(--accent); text-decoration: none; margin-right: 18px; font-weight: 600; }
section { border-top: 2px solid var(--line); margin-top: 28px; padding-top: 8px; }
h2 { font-size: 22px; margin: 10px 0 8px; }
h3 { font-size: 17px; margin: 22px 0 6px; }
p { margin: 6px 0 10px; }
p.note { color: var(--muted); font-style: italic; font-size: 13px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
caption { caption-side: top; text-align: left; font-weight: 600; color: var(--muted);
          padding-bottom: 4px; }
th, td { border-bottom: 1px solid var(--line); padding: 3px 10px; text-align: left;
         vertical-align: top; }
th { background: var(--bg); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.kv td:first-child { font-weight: 600; white-space: nowrap; }
table.kv thead { display: none; }
figure { margin: 8px 0 18px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 13px; margin-top: 2px; }
.row { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 14px;
       align-items: start; }
@media print {
  body { font-size: 11pt; }
  main { max-width: none; padding: 0; }
  nav { display: none; }
  section { break-before: auto; }
  figure, table, h3 { break-inside: avoid; }
  h2, h3 { break-after: avoid; }
  a { color: inherit; text-decoration: none; }
}
@page { margin: 14mm; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _figure(fig: Figure) -> str:
    data = base64.b64encode(fig.png).decode("ascii")
    return (
        f'<figure id="fig-{_e(fig.name)}"><img src="data:image/png;base64,{data}" '
        f'alt="{_e(fig.caption or fig.name)}">'
        + (f"<figcaption>{_e(fig.caption)}</figcaption>" if fig.caption else "")
        + "</figure>"
    )


def _table(table: Table) -> str:
    kv = table.columns == ["", ""]
    numeric = list(table.numeric) + [False] * (len(table.columns) - len(table.numeric))
    out = [f'<table class="{"kv" if kv else "grid"}">']
    if table.caption:
        out.append(f"<caption>{_e(table.caption)}</caption>")
    out.append(
        "<thead><tr>"
        + "".join(
            f'<th{" class=num" if numeric[i] else ""} scope="col">{_e(c)}</th>'
            for i, c in enumerate(table.columns)
        )
        + "</tr></thead><tbody>"
    )
    for row in table.rows:
        out.append(
            "<tr>"
            + "".join(
                f"<td{' class=num' if i < len(numeric) and numeric[i] else ''}>{_e(c)}</td>"
                for i, c in enumerate(row)
            )
            + "</tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


def render_html(doc: Document) -> str:
    """The whole report as one HTML string (figures inlined, no external resources)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # No network: nothing may load from outside the file, not even by accident.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">",
        f"<title>{_e(doc.title)}</title>",
        f"<style>{CSS}</style></head><body><main>",
        f"<header><h1>{_e(doc.title)}</h1><dl>",
    ]
    for key, value in doc.meta:
        parts.append(f"<dt>{_e(key)}</dt><dd>{_e(value)}</dd>")
    parts.append("</dl></header>")
    if doc.sections:
        parts.append(
            "<nav>"
            + "".join(f'<a href="#{_e(s.id)}">{_e(s.title)}</a>' for s in doc.sections)
            + "</nav>"
        )
    for section in doc.sections:
        parts.append(f'<section id="{_e(section.id)}"><h2>{_e(section.title)}</h2>')
        for block in section.blocks:
            if isinstance(block, Heading):
                ident = f' id="{_e(block.id)}"' if block.id else ""
                parts.append(f"<h{block.level}{ident}>{_e(block.text)}</h{block.level}>")
            elif isinstance(block, Paragraph):
                parts.append(f"<p{' class=note' if block.note else ''}>{_e(block.text)}</p>")
            elif isinstance(block, Table):
                parts.append(_table(block))
            elif isinstance(block, Figure):
                parts.append(_figure(block))
            elif isinstance(block, Row):
                parts.append(
                    '<div class="row">'
                    + "".join(
                        _figure(i) if isinstance(i, Figure) else f"<div>{_table(i)}</div>"
                        for i in block.items
                    )
                    + "</div>"
                )
        parts.append("</section>")
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def write_html(doc: Document, path: str | Path) -> Path:
    """Write the report to ``path`` atomically: a failed write leaves no partial file, and
    an earlier report at ``path`` as it was."""
    path = Path(path)
    page = render_html(doc)
    return write_text(path, page, error=ReportError, hint=WRITE_HINT)
