"""Read the code out of the user documents (README.md, docs/guide/*.md) for the docs tests."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
GUIDES = sorted((ROOT / "docs" / "guide").glob("*.md"))

SHELL = {"bash", "sh", "shell", "console", ""}
FENCE = re.compile(r"^```\s*([\w+-]*)\s*$")


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """Every fenced code block as (language, body), in order."""
    blocks, lang, body = [], None, []
    for line in text.splitlines():
        m = FENCE.match(line)
        if lang is None and m:
            lang, body = m.group(1).lower(), []
        elif lang is not None and line.strip() == "```":
            blocks.append((lang, "\n".join(body)))
            lang = None
        elif lang is not None:
            body.append(line)
    assert lang is None, "an unclosed code fence"
    return blocks


def outside_fences(text: str) -> str:
    """The text with the fenced code blocks left out."""
    kept, inside = [], False
    for line in text.splitlines():
        if FENCE.match(line) or (inside and line.strip() == "```"):
            inside = not inside
            continue
        if not inside:
            kept.append(line)
    return "\n".join(kept)


def shell_lines(body: str) -> list[list[str]]:
    """A shell block's commands as argument lists: continuations joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", body)
    return [words for line in joined.splitlines() if (words := shlex.split(line, comments=True))]


def command_spans(text: str) -> list[str]:
    """Every `cifarlab SUBCOMMAND …` written in the text: in inline code, indented code and
    shell blocks, each up to the end of its line (continuations joined), code span or quotes."""
    prose = outside_fences(text)
    spans = [s.replace("\n", " ").replace("\\|", "|") for s in re.findall(r"`([^`]+)`", prose)]
    code = [line for line in prose.splitlines() if line.startswith("    ")]
    code += [body for lang, body in fenced_blocks(text) if lang in SHELL]
    spans += re.sub(r"\\\n\s*", " ", "\n".join(code)).splitlines()
    found = []
    for span in spans:
        for m in re.finditer(r"(?<![\w\[/.-])(?<!from )cifarlab ([a-z][\w|-]*)([^'\"`;&]*)", span):
            found.append(f"cifarlab {m.group(1)}{m.group(2)}".strip())
    return found
