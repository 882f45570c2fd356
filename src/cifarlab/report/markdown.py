"""Render a report :class:`~cifarlab.report.document.Document` as Markdown with PNGs beside it.

``report.md`` gets its figures in ``report_files/`` next to it, linked by
relative paths, so the folder renders on GitHub, in editors and through pandoc.
"""

from __future__ import annotations

import os
from pathlib import Path

from cifarlab.report import ReportError
from cifarlab.report.document import Document, Figure, Heading, Paragraph, Row, Table


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(table: Table) -> list[str]:
    numeric = list(table.numeric) + [False] * (len(table.columns) - len(table.numeric))
    kv = table.columns == ["", ""]
    head = ["", ""] if kv else table.columns
    lines = []
    if table.caption:
        lines += [f"*{table.caption}*", ""]
    lines.append("| " + " | ".join(_cell(c) for c in head) + " |")
    lines.append("|" + "|".join("---:" if numeric[i] else "---" for i in range(len(head))) + "|")
    for row in table.rows:
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    return lines + [""]


def render_markdown(doc: Document, figures_dir: str) -> str:
    """The report as Markdown; figures are referenced as ``figures_dir/<name>.png``."""
    lines = [f"# {doc.title}", ""]
    lines += [f"- **{k}**: {v}" for k, v in doc.meta] + [""]
    if doc.sections:
        lines += ["Contents: " + " · ".join(f"[{s.title}](#{s.id})" for s in doc.sections), ""]

    def fig(f: Figure) -> list[str]:
        return [f"![{f.caption or f.name}]({figures_dir}/{f.name}.png)", ""] + (
            [f"*{f.caption}*", ""] if f.caption else []
        )

    for section in doc.sections:
        lines += [f'<a id="{section.id}"></a>', "", f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, Heading):
                lines += [f"{'#' * block.level} {block.text}", ""]
            elif isinstance(block, Paragraph):
                lines += [f"*{block.text}*" if block.note else block.text, ""]
            elif isinstance(block, Table):
                lines += _table(block)
            elif isinstance(block, Figure):
                lines += fig(block)
            elif isinstance(block, Row):
                for item in block.items:
                    lines += fig(item) if isinstance(item, Figure) else _table(item)
    return "\n".join(lines).rstrip() + "\n"


def write_markdown(doc: Document, path: str | Path) -> Path:
    """Write ``path`` (.md) and its figures into ``<stem>_files/`` beside it."""
    path = Path(path)
    folder = path.with_name(f"{path.stem}_files")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for f in doc.figures():
            target = folder / f"{f.name}.png"
            part = target.with_name(f".{target.name}.tmp-{os.getpid()}")
            part.write_bytes(f.png)
            os.replace(part, target)
        tmp.write_text(render_markdown(doc, folder.name), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ReportError(f"{path}: could not write the report ({exc.strerror or exc})") from None
    return path
