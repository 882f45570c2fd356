"""`cifarlab report`: sections present or left out, numbers in place, self-contained files."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from importlib.resources import files

from cifarlab.report.data_section import data_section
from cifarlab.report.formatting import Names
from cifarlab.report.inputs import read_run_input
from cifarlab.report.model_section import layer_table
from cifarlab.report.sections import write_report
from cifarlab.studies.ladder import load_ladder

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cifarlab", *args], capture_output=True, text=True, **kwargs
    )


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.srcs: list[str] = []
        self.hrefs: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        if tag == "section":
            self.sections.append(a.get("id"))
        if "src" in a:
            self.srcs.append(a["src"])
        if "href" in a:
            self.hrefs.append(a["href"])


def _parse(html: str) -> _Collect:
    p = _Collect()
    p.feed(html)
    return p


def test_study_report_has_every_section_in_order_and_is_self_contained(study_report):
    html = study_report.read_text(encoding="utf-8")
    page = _parse(html)
    assert page.sections == [
        "data",
        "model",
        "training",
        "calibration",
        "improvements",
        "seeds",
        "comparison",
    ]
    # Self-contained: every image is an inline PNG that decodes, nothing loads from elsewhere.
    assert len(page.srcs) >= 10
    for src in page.srcs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_MAGIC)
    assert all(h.startswith("#") for h in page.hrefs), page.hrefs
    assert "script" not in page.tags and "link" not in page.tags
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:|//)", html)


def test_study_report_numbers(study_report):
    html = study_report.read_text(encoding="utf-8")
    improvements = html[html.index('id="improvements"') : html.index('id="seeds"')]
    # The report's own numbers (the ladder file's references) beside ours, in ladder order.
    references = [s.reference for s in load_ladder("seed-report").steps]
    positions = [improvements.index(f"{v:.2f}%") for v in references]
    assert positions == sorted(positions)
    assert "seed report" in improvements and "optim.weight_decay = 1e-05" in improvements
    # Seed variance: the seed study's summary and one row per seed.
    seeds = html[html.index('id="seeds"') : html.index('id="comparison"')]
    assert "3 seeds: test accuracy 77.27% ± 0.57 (std)" in seeds
    for acc in ("77.10%", "77.90%", "76.80%"):
        assert acc in seeds
    # Model: both the ladder's first model and the final one, with shapes and parameters.
    model = html[html.index('id="model"') : html.index('id="training"')]
    assert "<h3>seednet</h3>" in model and "seednet-improved" in model
    assert "16×32×32" in model and "64×4×4" in model and "541,094" in model
    training = html[html.index('id="training"') : html.index('id="improvements"')]
    for needed in ("training time", "device", "Per-class test accuracy", "Confusion matrix"):
        assert needed in training


def test_the_seed_report_numbers_come_from_the_ladder_file(tmp_path, ablation_of):
    """The "seed report" column is the ladder's `reference` per step: edit the ladder file
    and the report follows (nothing in report/ knows the numbers)."""
    builtin = (files("cifarlab") / "studies" / "ladders" / "seed-report.toml").read_text()
    assert "reference = 71.77" in builtin
    ladder_file = tmp_path / "seed-report.toml"
    ladder_file.write_text(builtin.replace("reference = 71.77", "reference = 12.34"))
    study = ablation_of(load_ladder(ladder_file))
    text = write_report([study], tmp_path / "r.md").read_text(encoding="utf-8")
    improvements = text[text.index("## Improvements") : text.index("## Comparison")]
    baseline = next(line for line in improvements.splitlines() if line.startswith("| baseline |"))
    assert baseline.endswith("| 12.34% |")
    assert "71.77" not in text and "| 72.89% |" in improvements


def test_single_run_report_leaves_missing_parts_out(tmp_path, tiny_runs):
    from cifarlab.report.sections import write_report

    out = write_report([tiny_runs["seed-baseline"]], tmp_path / "one.html")
    page = _parse(out.read_text(encoding="utf-8"))
    # No ablation, no seed study, a single model: those sections are absent, not empty.
    assert page.sections == ["data", "model", "training", "calibration"]
    assert 'id="improvements"' not in out.read_text()


def test_markdown_report_with_pngs_beside_it(tmp_path, tiny_runs, studies):
    from cifarlab.report.sections import write_report

    out = write_report([tiny_runs["seed-baseline"], studies["ablation"]], tmp_path / "r.md")
    text = out.read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert headings == [
        "Data",
        "Model",
        "Training",
        "Calibration",
        "Improvements",
        "Comparison of models",
    ]
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links and all(link.startswith("r_files/") for link in links)
    for link in links:
        assert (tmp_path / link).read_bytes().startswith(PNG_MAGIC), link
    assert "| baseline |" in text and "71.77%" in text


def test_layer_table_shapes_and_parameters_add_up():
    from cifarlab.models import count_parameters, create_model

    table = layer_table("seednet-improved", {"dropout": 0.5})
    rows = {r[0]: r for r in table.rows if r[0]}
    assert rows["features.0"][1:] == [
        "Conv2d",
        "3, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False",
        "16×32×32",
        "432",
    ]
    assert rows["fc1"][3:] == ["500", "512,000"]
    # From the architecture (models/seednet.py): three bias-free 3x3 convs 3->16->32->64, a
    # batch norm (weight and bias) after each, then bias-free fc 64*4*4 -> 500 -> 10.
    convs = 3 * 16 * 9 + 16 * 32 * 9 + 32 * 64 * 9  # 432 + 4,608 + 18,432
    norms = 2 * (16 + 32 + 64)  # 224
    fcs = 64 * 4 * 4 * 500 + 500 * 10  # 512,000 + 5,000
    assert convs + norms + fcs == 540_696
    listed = sum(int(r[4].replace(",", "")) for r in table.rows if r[1] not in ("total",))
    assert listed == count_parameters(create_model("seednet-improved")) == convs + norms + fcs
    assert table.rows[-1][1] == "total" and table.rows[-1][4] == f"{convs + norms + fcs:,}"


def test_model_section_runs_the_model_at_the_runs_own_image_size(tmp_path):
    from cifarlab.models import count_flops, create_model
    from cifarlab.report.inputs import RunInput
    from cifarlab.report.model_section import model_section

    recipe = {"model": {"name": "resnet20", "options": {}}, "data": {"image_size": 64}}
    metrics = {"classes": [f"c{i}" for i in range(7)]}
    run = RunInput(tmp_path, "r", metrics, None, recipe)
    section = model_section([run], [])
    table = next(b for b in section.blocks if hasattr(b, "rows"))
    assert table.rows[0][3] == "3×64×64"
    assert table.rows[-2][3] == "7"  # the last layer: the run's 7 classes
    flops = count_flops(create_model("resnet20", num_classes=7), 64)
    cost = [b.text for b in section.blocks if getattr(b, "text", "").startswith("Forward cost")]
    assert cost == [f"Forward cost: {flops / 1e6:,.1f} MFLOPs per 64×64 image."]
    assert flops > 3.9 * count_flops(create_model("resnet20", num_classes=7), 32)


def test_report_refuses_a_folder_that_is_neither_run_nor_study(tmp_path):
    (tmp_path / "empty").mkdir()
    res = cli("report", str(tmp_path / "empty"), "-o", str(tmp_path / "x.html"))
    assert res.returncode == 2
    assert res.stderr.startswith("cifarlab: error: ") and len(res.stderr.strip().splitlines()) == 1
    assert "not a run directory" in res.stderr
    assert not (tmp_path / "x.html").exists()


def _run_with_source(run_dir, tiny_runs, source: str):
    """A copy of the tiny seed-baseline run (without checkpoints) whose metrics.json says its
    data came from ``source``."""
    import json
    import shutil

    shutil.copytree(tiny_runs["seed-baseline"], run_dir, ignore=shutil.ignore_patterns("*.pt"))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["data"]["source"] = source
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    return read_run_input(run_dir)


def test_data_figures_left_out_with_a_reason_when_the_data_is_elsewhere(tmp_path, tiny_runs):
    run = _run_with_source(tmp_path / "moved", tiny_runs, f"python layout in {tmp_path / 'gone'}")
    data = data_section([run], str(tmp_path / "gone"), Names())
    assert data.id == "data"
    assert not [b for b in data.blocks if type(b).__name__ in ("Figure", "Row")]
    assert any("left out" in getattr(b, "text", "") for b in data.blocks)


def test_data_section_lists_only_sources_that_differ_in_their_files(tmp_path, tiny_runs):
    """The same folder spelled with `..`, or loaded from another cache entry (whose key changes
    with the files' mtimes), is not another source; another folder is."""
    folder = "CIFAR-10 python batches in "
    sources = [
        f"{folder}/data/cifar (decoded arrays cached in /cache/arrays/aaa)",
        f"{folder}/work/../data/cifar (decoded arrays cached in /cache/arrays/bbb)",
        f"{folder}/data/cifar",
        f"{folder}/elsewhere/cifar (decoded arrays cached in /cache/arrays/ccc)",
    ]
    runs = [_run_with_source(tmp_path / f"run{i}", tiny_runs, s) for i, s in enumerate(sources)]

    def others(section) -> list[str]:
        return [b.text for b in section.blocks if getattr(b, "text", "").startswith("Other runs")]

    same = data_section(runs[:3], str(tmp_path / "gone"), Names())
    assert same.blocks[0].text == f"Source: {sources[0]}."
    assert others(same) == []
    mixed = data_section(runs, str(tmp_path / "gone"), Names())
    assert others(mixed) == [f"Other runs in this report used: {folder}/elsewhere/cifar"]


def test_unfinished_seed_study_says_so_and_speeds_are_rounded(tmp_path, studies, tiny_runs):
    """Studies stopped part-way (2 of 3 seeds a step, 3 of 10 seeds) render as such;
    the comparison's mean images/s is a rounded number, not a float's full repr."""
    import json
    import shutil

    from cifarlab.report.sections import write_report

    study = tmp_path / "seeds"
    shutil.copytree(studies["seeds"], study)
    spec = json.loads((study / "study.json").read_text())
    spec["seeds"] = list(range(10))
    (study / "study.json").write_text(json.dumps(spec))
    for seed, speed in enumerate((100.1, 200.2, 300.3)):  # mean: 200.20000000000002
        path = study / "runs" / "seed-improved" / f"seed{seed}" / "metrics.json"
        metrics = json.loads(path.read_text())
        metrics["images_per_s"] = speed
        path.write_text(json.dumps(metrics))

    ladder = tmp_path / "ladder"  # an ablation study with a third seed still to train
    shutil.copytree(studies["ablation"], ladder)
    spec = json.loads((ladder / "study.json").read_text())
    spec["seeds"] = [0, 1, 2]
    (ladder / "study.json").write_text(json.dumps(spec))

    out = write_report([ladder, study, tiny_runs["seed-baseline"]], tmp_path / "r.html")
    html = out.read_text(encoding="utf-8")
    improvements = html[html.index('id="improvements"') : html.index('id="seeds"')]
    assert improvements.count(">2 of 3</td>") == 6
    seeds = html[html.index('id="seeds"') : html.index('id="comparison"')]
    assert "3 of 10 planned seeds (the study is not finished" in seeds
    comparison = html[html.index('id="comparison"') :]
    assert ">200.2<" in comparison and "200.2000" not in comparison


def test_comparison_shows_each_runs_whole_run_time_beside_its_training_time(tmp_path, tiny_runs):
    """The comparison's run time is metrics.json's wall_time_s (the whole run), beside the
    training time; a run without it shows a dash."""
    import json
    import shutil

    from cifarlab.report.comparison_section import comparison_points
    from cifarlab.report.inputs import read_inputs
    from cifarlab.report.sections import build_document

    runs = {}
    for name, wall in (("seed-baseline", 110.0), ("seed-improved", None)):
        runs[name] = tmp_path / name
        shutil.copytree(tiny_runs[name], runs[name], ignore=shutil.ignore_patterns("*.pt"))
        path = runs[name] / "metrics.json"
        metrics = json.loads(path.read_text())
        metrics["train_time_s"] = 100.0
        if wall is None:
            del metrics["wall_time_s"]
        else:
            metrics["wall_time_s"] = wall
        path.write_text(json.dumps(metrics))
    points = {p["label"]: p for p in comparison_points(*read_inputs(list(runs.values())))}
    assert points["seed-baseline"]["wall_time_s"] == 110.0
    assert points["seed-improved"]["wall_time_s"] is None
    doc = build_document(list(runs.values()))
    table = next(s for s in doc.sections if s.id == "comparison").blocks[1]
    col = table.columns.index("run time")
    assert table.columns[col - 1] == "training time"
    rows = {r[0]: r for r in table.rows}
    assert rows["seed-baseline"][col - 1 : col + 1] == ["100.0 s", "110.0 s"]
    assert rows["seed-improved"][col] == "—"


def test_ablation_report_gives_each_steps_final_training_accuracy_and_loss(tmp_path, ablation_of):
    """He et al.'s depth question is about training error: the report's improvements section
    shows each step's final training accuracy and loss (the last point of each run's history),
    the difference from the step before with Welch's interval, and whether it is beyond noise."""
    study = ablation_of(load_ladder("depth"))
    finals = {  # step -> per seed (train accuracy, train loss): plain-56 trains worse
        "plain-20": [(0.80, 0.60), (0.82, 0.58)],
        "plain-56": [(0.70, 0.90), (0.71, 0.88)],
        "resnet-56": [(0.85, 0.45), (0.86, 0.44)],
        "resnet-20": [(0.83, 0.50), (0.84, 0.49)],
    }
    for step, per_seed in finals.items():
        for seed, (acc, loss) in enumerate(per_seed):
            path = study / "runs" / step / f"seed{seed}" / "history.json"
            hist = json.loads(path.read_text())
            hist["train_acc"][-1], hist["train_loss"][-1] = acc, loss
            path.write_text(json.dumps(hist))
    text = write_report([study], tmp_path / "r.md").read_text(encoding="utf-8")
    improvements = text[text.index("## Improvements") : text.index("## Comparison")]
    rows = {
        line.split(" | ")[0].strip("| "): line
        for line in improvements[improvements.index("Training accuracy and loss") :].splitlines()
        if line.startswith("| ") and "---" not in line
    }
    assert rows["plain-20"].startswith("| plain-20 | 81.00 ± 1.41 | — | — | 0.590 ± 0.014 |")
    assert "| 70.50 ± 0.71 | -10.50 (" in rows["plain-56"]
    assert rows["plain-56"].count("yes (lower)") == 1 and "yes (higher)" in rows["plain-56"]
    assert "| 85.50 ± 0.71 | +15.00 (" in rows["resnet-56"]
