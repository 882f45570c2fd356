"""Write a report :class:`~cifarlab.report.document.Document` as Markdown with PNGs beside it.

``report.md`` gets its figures in ``report_files/`` next to it, linked by relative paths, so
the folder renders on GitHub, in editors and through pandoc.

Every string of the document is text, much of it read from run directories (recipe, model,
class and step names, the data source...), and many Markdown viewers render HTML inside
Markdown. So each one is written as literal text (:func:`md_text`): ``& < > "`` as HTML
entities, the Markdown punctuation that could start emphasis, code, a link or a table cell
backslash-escaped, and line breaks folded into spaces (a table row is one line).

The two parts are written so that a failure (full disk, I/O error) leaves neither half
written: the figures go into a temporary folder, the Markdown into a temporary file; only
when both are complete does the folder replace ``<stem>_files/`` and the file ``<stem>.md``.
Only a folder this writer made is ever replaced: each holds the marker file ``MARKER``, and
any other folder (a user's, a run copied there) is refused with one line, untouched.
"""

from __future__ import annotations

import html
import os
import re
import shutil
from pathlib import Path
from urllib.parse import quote

from cifarlab.atomic import temp_path, write_atomic, write_text
from cifarlab.report import WRITE_HINT, ReportError
from cifarlab.report.document import Document, Figure, Heading, Paragraph, Row, Table

# In every <stem>_files/ the writer makes: what lets a later report replace the folder.
MARKER = ".cifarlab-report"

# Markdown punctuation shown literally when backslash-escaped (CommonMark: any ASCII
# punctuation may be): code spans, emphasis, links and images, table cells, strikethrough,
# headings' closing '#', math on GitHub, and the backslash itself.
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_\[\]|~#$])")
# Line breaks, in Markdown's sense and Unicode's: folded into one space.
_LINE_BREAKS = re.compile(r"[\r\n\x0b\x0c\x85\u2028\u2029]+")
# What opens a list item, a thematic break or a setext underline at the start of a paragraph:
# "-", "+", "=", or "1." / "1)" before a space ('*' and '#' are escaped everywhere, '>' and
# '<' are entities, leading spaces are stripped).
_BLOCK_START = re.compile(r"^(?:[-+=]|\d+(?=[.)](?:\s|$)))")


def md_text(text: object) -> str:
    """``text`` as literal Markdown text on one line: no markup of its own survives."""
    flat = _LINE_BREAKS.sub(" ", str(text))
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", html.escape(flat, quote=False).replace('"', "&quot;"))


def _paragraph(text: str) -> str:
    """A paragraph's text, which must not open a list, a break or a code block either."""
    out = md_text(text).strip()
    m = _BLOCK_START.match(out)
    if m is None:
        return out
    if out[0].isdigit():  # "1. x" -> "1\. x"
        return f"{out[: m.end()]}\\{out[m.end() :]}"
    return f"\\{out}"  # "- x" -> "\- x"


def _link(target: str) -> str:
    """A relative link target, percent-encoded (spaces, parentheses, ...)."""
    return quote(target, safe="/#")


def _table(table: Table) -> list[str]:
    numeric = list(table.numeric) + [False] * (len(table.columns) - len(table.numeric))
    kv = table.columns == ["", ""]
    head = ["", ""] if kv else table.columns
    lines = []
    if table.caption:
        lines += [f"*{_paragraph(table.caption)}*", ""]
    lines.append("| " + " | ".join(md_text(c) for c in head) + " |")
    lines.append("|" + "|".join("---:" if numeric[i] else "---" for i in range(len(head))) + "|")
    for row in table.rows:
        cells = list(row) + [""] * (len(head) - len(row))
        lines.append("| " + " | ".join(md_text(c) for c in cells) + " |")
    return lines + [""]


def render_markdown(doc: Document, figures_dir: str) -> str:
    """The report as Markdown; figures are referenced as ``figures_dir/<name>.png``."""
    lines = [f"# {md_text(doc.title)}", ""]
    lines += [f"- **{md_text(k)}**: {md_text(v)}" for k, v in doc.meta] + [""]
    if doc.sections:
        contents = " · ".join(f"[{md_text(s.title)}]({_link('#' + s.id)})" for s in doc.sections)
        lines += ["Contents: " + contents, ""]

    def fig(f: Figure) -> list[str]:
        target = _link(f"{figures_dir}/{f.name}.png")
        return [f"![{md_text(f.caption or f.name)}]({target})", ""] + (
            [f"*{_paragraph(f.caption)}*", ""] if f.caption else []
        )

    for section in doc.sections:
        anchor = html.escape(section.id, quote=True)
        lines += [f'<a id="{anchor}"></a>', "", f"## {md_text(section.title)}", ""]
        for block in section.blocks:
            if isinstance(block, Heading):
                lines += [f"{'#' * block.level} {md_text(block.text)}", ""]
            elif isinstance(block, Paragraph):
                text = _paragraph(block.text)
                lines += [f"*{text}*" if block.note else text, ""]
            elif isinstance(block, Table):
                lines += _table(block)
            elif isinstance(block, Figure):
                lines += fig(block)
            elif isinstance(block, Row):
                for item in block.items:
                    lines += fig(item) if isinstance(item, Figure) else _table(item)
    return "\n".join(lines).rstrip() + "\n"


def write_markdown(doc: Document, path: str | Path) -> Path:
    """Write ``path`` (.md) and its figures into ``<stem>_files/`` beside it.

    All or nothing: the figures go into a temporary folder and the Markdown into a temporary
    file; once both are complete the folder replaces ``<stem>_files/`` (an earlier one of
    ours is removed, with any stale figures; any other is refused, ReportError) and the file
    replaces ``path``. On any failure both
    temporaries are removed and an earlier report, folder included, is left as it was.
    """
    path = Path(path)
    folder = path.with_name(f"{path.stem}_files")
    staging = temp_path(folder)  # .<stem>_files.tmp-PID
    aside = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    text = render_markdown(doc, folder.name)
    swapped = False

    def swap_folders() -> None:  # the .md's temp file is complete: put the figures in place
        nonlocal swapped
        had_folder = os.path.lexists(folder)
        if had_folder:
            os.rename(folder, aside)  # rename(2) cannot replace a non-empty folder
        try:
            os.rename(staging, folder)
        except OSError:
            if had_folder:
                os.rename(aside, folder)
            raise
        swapped = True

    if os.path.lexists(folder) and not made_by_a_report(folder, path):
        raise ReportError(
            f"{folder}: the report's figure folder exists and cifarlab did not make it (no "
            f"{MARKER} in it); move it away or choose another output name"
        )
    try:
        for leftover in (staging, aside):  # of a dead process that had our pid
            _remove(leftover)
        staging.mkdir()
        hint = f"{path} not written; {WRITE_HINT}"
        write_text(
            staging / MARKER,
            f"Made by cifarlab report for {path.name}; the next report written there "
            f"replaces this folder as a whole.\n",
            error=ReportError,
            hint=hint,
        )
        for f in doc.figures():
            write_atomic(staging / f"{f.name}.png", f.png, error=ReportError, hint=hint)
        write_text(path, text, error=ReportError, hint=WRITE_HINT, before_replace=swap_folders)
    except BaseException as exc:
        if swapped:  # the .md could not replace the old one: put the old folder back too
            os.rename(folder, staging)
            if os.path.lexists(aside):
                os.rename(aside, folder)
        if isinstance(exc, OSError):
            raise ReportError(
                f"{path}: could not write the report ({exc.strerror or exc}); {WRITE_HINT}"
            ) from None
        raise
    finally:
        _remove(staging)
        _remove(aside)
    return path


def made_by_a_report(folder: Path, report: Path) -> bool:
    """``folder`` is the figure folder of the Markdown ``report`` beside it, ours to replace:
    it holds MARKER, or (made before the marker existed) nothing but PNGs that ``report``
    links. A user's folder, or a run copied there, is neither."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    if (folder / MARKER).is_file():
        return True
    try:
        text = report.read_text(encoding="utf-8")
        entries = list(folder.iterdir())
    except (OSError, ValueError):
        return False
    return bool(entries) and all(
        e.suffix == ".png"
        and e.is_file()
        and not e.is_symlink()
        and f"]({_link(f'{folder.name}/{e.name}')})" in text
        for e in entries
    )


def _remove(path: Path) -> None:
    """Delete a temporary file, link or folder tree of ours (a link itself, never what it
    points to); best effort: a leftover is hidden, and removed by the next write."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif os.path.lexists(path):
            path.unlink()
    except OSError:
        pass
