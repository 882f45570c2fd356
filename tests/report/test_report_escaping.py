"""Every string a run or study directory puts in the report is shown as text, never markup.

Run and study directories are inputs we do not control (shared folders, downloaded runs):
a recipe name, a model name, a class name, a data source or a step name may hold HTML or
Markdown. The HTML report and the Markdown report must both show such a string literally:
no tag, event handler or ``javascript:`` link of theirs may reach a viewer, and a ``|`` or a
newline must not break a table.
"""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from cifarlab.recipe import dumps_toml
from cifarlab.report.sections import write_report
from cifarlab.rundir import RunDir
from cifarlab.studies.ladder import StudyStep
from cifarlab.studies.spec import StudySpec

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"


def hostile(tag: str) -> str:
    """Markup, a Markdown link, table and emphasis characters, and a newline, labelled."""
    return f"{SCRIPT}{IMG}| pipe |*_`{tag}`_*[x](javascript:alert(1))](javascript:x)\n{tag}"


def hostile_name(tag: str) -> str:
    """The same for names that become directory names (no '/')."""
    return f"{IMG}| pipe |*_`{tag}`[x](javascript:x)\n{tag}"


def _hostile_run(src: Path, dst: Path, seed: int, accuracy: float) -> Path:
    """A copy of a real run whose every displayed string is hostile."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("checkpoint*.pt", ".lock", "*.png"))
    metrics = json.loads((dst / "metrics.json").read_text())
    classes = [hostile(f"class{i}") for i in range(len(metrics["classes"]))]
    metrics.update(
        recipe=hostile("recipe"),
        model=hostile("model"),
        seed=seed,
        test_accuracy=accuracy / 100,
        classes=classes,
        per_class_accuracy=dict(zip(classes, metrics["per_class_accuracy"].values(), strict=True)),
        tta=hostile("tta"),
        test_accuracy_tta=accuracy / 100,
    )
    metrics["data"]["source"] = hostile("source")
    metrics["provenance"].update(
        device=hostile("device"), device_name=hostile("gpu"), git_commit=hostile("git")
    )
    (dst / "metrics.json").write_text(json.dumps(metrics))
    raw = RunDir(dst).recipe()
    raw["name"] = hostile("recipe")
    raw["description"] = hostile("description")
    raw["model"]["name"] = hostile("model")
    raw["data"]["source"] = hostile("datasrc")
    (dst / "recipe.toml").write_text(dumps_toml(raw))
    return dst


def _study(root: Path, run: Path, kind: str, steps: list[StudyStep], seeds: list[int]) -> Path:
    spec = StudySpec(
        kind=kind,
        name=hostile_name(f"{kind}-study"),
        recipe=hostile("base-recipe"),
        seeds=seeds,
        steps=steps,
        ladder=hostile("ladder") if kind == "ablation" else None,
        mode="cumulative" if kind == "ablation" else "seeds",
    )
    study = root / kind
    study.mkdir(parents=True)
    (study / "study.json").write_text(json.dumps(spec.to_json()))
    for i, step in enumerate(steps):
        for seed in seeds:
            _hostile_run(run, study / "runs" / step.name / f"seed{seed}", seed, 70.0 + i + seed)
    return study


@pytest.fixture(scope="module")
def hostile_inputs(tmp_path_factory, tiny_runs) -> list[Path]:
    root = tmp_path_factory.mktemp("hostile")
    src = tiny_runs["seed-baseline"]
    run = _hostile_run(src, root / hostile_name("run"), 0, 71.0)
    ablation = _study(
        root,
        src,
        "ablation",
        [
            StudyStep(
                name=hostile_name("step1"),
                overrides={},
                changes={},
                description=hostile("step1-description"),
                reference=71.0,
            ),
            StudyStep(
                name=hostile_name("step2"),
                overrides={"optim.weight_decay": 1e-5},
                changes={hostile("change-key"): hostile("change-value")},
                description=hostile("step2-description"),
                reference=72.0,
            ),
        ],
        [0, 1],
    )
    seeds = _study(
        root,
        src,
        "seeds",
        [StudyStep(name=hostile_name("seed-step"), overrides={}, changes={})],
        [0, 1],
    )
    return [run, ablation, seeds]


class _Page(HTMLParser):
    """Tags, attributes, text and the cells per table row of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.rows: list[list[int]] = []  # per table: cells per row
        self._cells = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self.rows.append([])
        elif tag == "tr":
            self._cells = 0
        elif tag in ("td", "th"):
            self._cells += 1

    def handle_endtag(self, tag):
        if tag == "tr":
            self.rows[-1].append(self._cells)

    def handle_data(self, data):
        self.text.append(data)


def _check_page(html: str, image_prefix: str) -> _Page:
    """No script, no event handler, no javascript: link, images only our own; tables whole."""
    page = _Page()
    page.feed(html)
    names = {tag for tag, _ in page.tags}
    assert "script" not in names
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name, value)
            assert "javascript:" not in (value or "").lower(), (tag, name, value)
        if tag == "img":
            assert (attrs.get("src") or "").startswith(image_prefix), attrs
        if tag == "a" and "href" in attrs:
            assert attrs["href"].startswith("#"), attrs
    for rows in page.rows:
        assert rows and len(set(rows)) == 1, rows  # every row as wide as the header
    text = "".join(page.text)
    # Shown, not dropped: the hostile strings reach the reader as text.
    for tag in ("recipe", "model", "class0", "source", "step2", "seed-step"):
        assert f"`{tag}`" in text, tag
    assert SCRIPT in text and IMG in text
    return page


def test_html_report_shows_hostile_strings_as_text(tmp_path, hostile_inputs):
    out = write_report(hostile_inputs, tmp_path / "r.html")
    html = out.read_text(encoding="utf-8")
    assert "<script" not in html
    assert not re.search(r"<[^>]*\bon\w+\s*=", html)  # no event handler inside any tag
    page = _check_page(html, "data:image/png;base64,")
    assert [a["id"] for t, a in page.tags if t == "section"][-2:] == ["seeds", "comparison"]


def _unescaped_pipes(line: str) -> int:
    count, i = 0, 0
    while i < len(line):
        if line[i] == "\\":
            i += 2
            continue
        count += line[i] == "|"
        i += 1
    return count


def test_markdown_report_shows_hostile_strings_as_text(tmp_path, hostile_inputs):
    out = write_report(hostile_inputs, tmp_path / "r.md")
    md = out.read_text(encoding="utf-8")
    # The Markdown itself: no raw tag but the writer's own section anchors, no live link.
    assert "<script" not in md and "<img" not in md
    tags = re.findall(r"<[^>]*>", md)
    assert tags and all(re.fullmatch(r'<a id="[a-z]+">|</a>', t) for t in tags), tags
    assert not re.search(r"(?<!\\)\]\(\s*javascript:", md)
    # Tables intact: every line of a table has as many cell separators as its header.
    tables = re.findall(r"(?:^\|.*\n)+", md, flags=re.M)
    assert len(tables) >= 8
    for table in tables:
        widths = {_unescaped_pipes(line) for line in table.splitlines()}
        assert len(widths) == 1, table
    # Rendered as a viewer would (raw HTML allowed, GitHub tables): still only text.
    # markdown-it-py comes with the dev extra: a missing one fails here, it never skips.
    import markdown_it

    html = markdown_it.MarkdownIt("commonmark", {"html": True}).enable("table").render(md)
    _check_page(html, "r_files/")
