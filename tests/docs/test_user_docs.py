"""The user documents (README.md and docs/guide/) against the code, without running anything:
every `cifarlab …` they write names a real command and real options, every relative link
leads to a file, and they speak to users, not of the project's issue numbers."""

from __future__ import annotations

import argparse
import re

import pytest
from readme_blocks import GUIDES, README, ROOT, command_spans, outside_fences

from cifarlab.cli.main import build_parser

DOCS = [README, *GUIDES]
IDS = [str(p.relative_to(ROOT)) for p in DOCS]
OPTION = re.compile(r"(?<![\w/.$-])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w-])")
GUIDE_NAMES = {
    "training.md",
    "studies.md",
    "evaluation.md",
    "report-predict-export.md",
    "distributed.md",
    "data.md",
    "development.md",
}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    found = {s for a in parser._actions for s in a.option_strings}
    for sub in _subparsers(parser).values():
        found |= _options(sub)
    return found


COMMANDS = _subparsers(build_parser())


def test_every_guide_is_there():
    assert {p.name for p in GUIDES} >= GUIDE_NAMES


@pytest.mark.parametrize("doc", DOCS, ids=IDS)
def test_every_cifarlab_command_written_names_real_options(doc):
    spans = command_spans(doc.read_text())
    wrong = []
    for span in spans:
        words = span.split()
        names = words[1].split("|")
        if any(name not in COMMANDS for name in names):
            wrong.append(f"{span!r}: no command {words[1]!r}")
            continue
        parser = COMMANDS[names[0]]
        subs = _subparsers(parser)
        if subs and len(words) > 2 and not words[2].startswith("-"):
            if not all(s in subs for s in words[2].split("|")):
                wrong.append(f"{span!r}: no `cifarlab {names[0]} {words[2]}`")
        known = set().union(*(_options(COMMANDS[n]) for n in names))
        wrong += [f"{span!r}: no option {o}" for o in OPTION.findall(span) if o not in known]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("doc", DOCS, ids=IDS)
def test_relative_links_lead_to_files(doc):
    links = re.findall(r"\]\(([^)\s]+)\)", doc.read_text())
    local = [link.split("#")[0] for link in links if not re.match(r"[a-z]+:|#", link)]
    missing = [link for link in local if not (doc.parent / link).exists()]
    assert not missing, missing


@pytest.mark.parametrize("doc", DOCS, ids=IDS)
def test_no_issue_numbers(doc):
    found = re.findall(r"(?i)\bissues? #?\d+|#\d+\b|\bissue-\d+", doc.read_text())
    assert not found, found


def test_readme_has_no_commands_outside_its_code_blocks_that_the_run_test_would_miss():
    """README's indented code is not run by test_readme_runs.py: commands go in fences."""
    indented = [
        line
        for line in outside_fences(README.read_text()).splitlines()
        if re.match(r"( {4}|\t)\s*\S", line) and not line.lstrip().startswith(("-", "|"))
    ]
    assert not indented, indented
