"""The report as a document: sections of headings, paragraphs, tables and PNG figures.

Plain data, no I/O: :mod:`cifarlab.report.sections` builds a :class:`Document`,
:mod:`cifarlab.report.html` and :mod:`cifarlab.report.markdown` write it. Every string in a
block is plain text (some of it read from run directories): a writer escapes it for its
format, so no block carries markup.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Heading:
    text: str
    level: int = 3
    id: str = ""


@dataclass
class Paragraph:
    text: str
    note: bool = False  # a muted remark (why something is left out, where numbers come from)


@dataclass
class Table:
    columns: list[str]  # ["", ""]: a key-value table, shown without a header
    rows: list[list[str]]
    caption: str = ""
    numeric: list[bool] = field(default_factory=list)  # right-align these columns


@dataclass
class Figure:
    png: bytes
    name: str  # a file stem, unique in the document (the Markdown writer's file name)
    caption: str = ""


@dataclass
class Row:
    """Tables and figures side by side (stacked where the page is narrow, and in Markdown)."""

    items: list[Table | Figure]


Block = Heading | Paragraph | Table | Figure | Row


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Block]


@dataclass
class Document:
    title: str
    meta: list[tuple[str, str]]  # (key, value) lines under the title
    sections: list[Section]

    def figures(self) -> list[Figure]:
        out: list[Figure] = []
        for s in self.sections:
            for b in s.blocks:
                if isinstance(b, Figure):
                    out.append(b)
                elif isinstance(b, Row):
                    out.extend(i for i in b.items if isinstance(i, Figure))
        return out
