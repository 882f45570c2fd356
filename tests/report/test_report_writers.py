"""The writers are all-or-nothing: a failed write (a full disk) leaves no partial report.

ENOSPC is simulated by making the k-th fsync of a regular file fail, for every k the write
reaches: each figure of the Markdown's ``<stem>_files/`` folder and the page itself. After
the failure the output folder holds exactly what it held before: nothing when there was no
report yet; the earlier report, figures folder included, byte for byte when there was.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from cifarlab.report import ReportError
from cifarlab.report.document import Document, Figure, Paragraph, Row, Section, Table
from cifarlab.report.html import write_html
from cifarlab.report.markdown import write_markdown


def _doc(version: str, figures: int = 3) -> Document:
    figs = [
        Figure(f"png {version} {i}".encode(), f"fig-{i}", f"figure {i}") for i in range(figures)
    ]
    blocks = [
        Paragraph(f"report {version}"),
        Table(["a", "b"], [["1", "2"]], caption="t"),
        Row(list(figs[1:])),
        figs[0],
    ]
    return Document(f"report {version}", [("by", "test")], [Section("s", "S", blocks)])


def _tree(root: Path) -> dict[str, bytes | None]:
    """Every entry under ``root`` (hidden ones too): file bytes, None for a folder."""
    out: dict[str, bytes | None] = {}
    for path in sorted(root.rglob("*")):
        out[str(path.relative_to(root))] = None if path.is_dir() else path.read_bytes()
    return out


def _full_disk_at(monkeypatch, k: int) -> None:
    """The k-th fsync of a regular file (1-based) fails with ENOSPC."""
    real = os.fsync
    count = 0

    def fsync(fd):
        nonlocal count
        if stat.S_ISREG(os.fstat(fd).st_mode):
            count += 1
            if count == k:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


# Markdown: 3 figures, then the page: fsyncs 1-3 are figures, 4 is report.md.
@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("earlier", [False, True], ids=["new", "over-an-earlier-report"])
def test_markdown_write_that_fails_leaves_nothing_half_written(tmp_path, monkeypatch, k, earlier):
    out = tmp_path / "report.md"
    if earlier:
        write_markdown(_doc("old", figures=4), out)  # one figure more than the new one
        (out.parent / "report_files" / "fig-3.png").write_bytes(b"stale")
    before = _tree(tmp_path)
    _full_disk_at(monkeypatch, k)
    with pytest.raises(ReportError, match=r"could not write \(No space left") as err:
        write_markdown(_doc("new"), out)
    assert str(out) in str(err.value)  # names the report, also when a figure failed
    assert _tree(tmp_path) == before


def test_markdown_page_that_cannot_replace_the_old_one_keeps_the_old_figures(tmp_path, monkeypatch):
    """The figures folder is swapped in just before the page: if the page's rename then
    fails, the earlier folder is put back."""
    out = tmp_path / "report.md"
    write_markdown(_doc("old"), out)
    before = _tree(tmp_path)
    real = os.replace

    def replace(src, dst, **kwargs):
        if Path(dst) == out:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(src, dst, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(ReportError, match="Input/output error"):
        write_markdown(_doc("new"), out)
    assert _tree(tmp_path) == before


def test_markdown_write_replaces_the_figures_folder_whole(tmp_path):
    out = tmp_path / "r.md"
    write_markdown(_doc("old", figures=4), out)
    write_markdown(_doc("new"), out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.md", "r_files"]
    figures = {p.name: p.read_bytes() for p in (tmp_path / "r_files").iterdir()}
    assert figures.pop(".cifarlab-report").startswith(b"Made by cifarlab report for r.md")
    assert figures == {f"fig-{i}.png": f"png new {i}".encode() for i in range(3)}
    assert "report new" in out.read_text(encoding="utf-8")


@pytest.mark.parametrize("kind", ["a user's folder", "a copied run directory"])
def test_markdown_write_refuses_a_figures_folder_it_did_not_make(tmp_path, kind):
    out = tmp_path / "rep.md"
    theirs = tmp_path / "rep_files"
    theirs.mkdir()
    name = "notes.txt" if kind == "a user's folder" else "checkpoint.pt"
    (theirs / name).write_text("keep me")
    with pytest.raises(ReportError, match=r"rep_files: .*cifarlab did not make it"):
        write_markdown(_doc("new"), out)
    assert (theirs / name).read_text() == "keep me" and not out.exists()


@pytest.mark.parametrize("earlier", [False, True], ids=["new", "over-an-earlier-report"])
def test_html_write_that_fails_leaves_nothing_half_written(tmp_path, monkeypatch, earlier):
    out = tmp_path / "report.html"
    if earlier:
        write_html(_doc("old"), out)
    before = _tree(tmp_path)
    _full_disk_at(monkeypatch, 1)
    with pytest.raises(ReportError, match=r"report\.html: could not write \(No space left"):
        write_html(_doc("new"), out)
    assert _tree(tmp_path) == before


def test_markdown_links_survive_an_output_name_with_spaces(tmp_path):
    out = write_markdown(_doc("x"), tmp_path / "my report (v2).md")
    text = out.read_text(encoding="utf-8")
    assert "](my%20report%20%28v2%29_files/fig-0.png)" in text
    assert (tmp_path / "my report (v2)_files" / "fig-0.png").is_file()
