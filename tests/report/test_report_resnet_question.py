"""The report's ResNet question (issue 32): from a depth ladder's runs, each net's final
training accuracy/loss and test accuracy, and a plain verdict per comparison: plain nets as
depth grows (the degradation problem), residual nets as depth grows, shortcuts at one depth."""

from __future__ import annotations

import json
from pathlib import Path

from cifarlab.recipe import load_recipe
from cifarlab.report.sections import write_report
from cifarlab.studies.ladder import load_ladder
from cifarlab.studies.spec import read_study


def _depth_study(ablation_of, finals: dict[str, list[tuple[float, float, float]]]) -> Path:
    """A depth-ladder study whose runs carry their step's own resolved recipe (so each trains
    the ladder's net as far as the report can tell) and the given per-seed (final training
    accuracy, final training loss, test accuracy)."""
    study = ablation_of(load_ladder("depth"))
    spec = read_study(study)
    for step in spec.steps:
        for seed, (acc, loss, test) in enumerate(finals[step.name]):
            run = study / "runs" / step.name / f"seed{seed}"
            recipe = load_recipe(spec.recipe, spec.run_overrides(step, seed))
            (run / "recipe.toml").write_text(recipe.to_toml(), encoding="utf-8")
            hist = json.loads((run / "history.json").read_text())
            hist["train_acc"][-1], hist["train_loss"][-1] = acc, loss
            (run / "history.json").write_text(json.dumps(hist))
            metrics = json.loads((run / "metrics.json").read_text())
            metrics["test_accuracy"], metrics["train_time_s"] = test, 100.0 * (1 + seed)
            (run / "metrics.json").write_text(json.dumps(metrics))
    return study


def _section(study: Path, out: Path) -> str:
    text = write_report([study], out).read_text(encoding="utf-8")
    start = text.index("## The ResNet question: depth and shortcuts")
    return text[start : text.index("\n## ", start + 1)]


def test_the_resnet_question_says_the_degradation_problem_appears_when_plain_56_trains_worse(
    tmp_path, ablation_of
):
    section = _section(
        _depth_study(
            ablation_of,
            {  # seed 0, seed 1: plain-56 trains worse than plain-20, ResNet-56 better than both
                "plain-20": [(0.80, 0.60, 0.78), (0.82, 0.58, 0.79)],
                "plain-56": [(0.70, 0.90, 0.70), (0.71, 0.88, 0.71)],
                "resnet-56": [(0.88, 0.40, 0.83), (0.89, 0.39, 0.84)],
                "resnet-20": [(0.83, 0.50, 0.80), (0.84, 0.49, 0.81)],
            },
        ),
        tmp_path / "r.md",
    )
    rows = {
        line.split(" | ")[0].strip("| "): line
        for line in section.splitlines()
        if line.startswith("| ") and "---" not in line
    }
    assert rows["plain-56"].startswith("| plain-56 | plain-56 | 2 | 70.50 ± 0.71 | 0.890 ± 0.014 |")
    assert rows["resnet-20"].startswith("| resnet-20 | ResNet-20 | 2 | 83.50 ± 0.71 |")
    plain, residual, at20, at56 = (
        next(p for p in section.split("\n\n") if p.startswith(head))
        for head in (
            "As depth grows, plain nets (plain-20 → plain-56)",
            "As depth grows, residual nets (ResNet-20 → ResNet-56)",
            "Shortcuts at 20 layers",
            "Shortcuts at 56 layers",
        )
    )
    assert "final training accuracy 81.00 → 70.50 (Δ -10.50, 95% CI" in plain
    assert "the degradation problem appears at this schedule" in plain
    assert "depth helps a residual net here" in residual
    assert "With shortcuts the net trains better, beyond seed noise" in at56
    assert "within seed noise" in at20  # 81.0 against 83.5 with spreads of 1.41 and 0.71
    assert "1.00× the training time" in plain


def test_the_resnet_question_gives_no_verdict_beyond_what_the_seeds_show(tmp_path, ablation_of):
    """Equal training accuracies within noise: the section says it cannot tell, and never
    claims a degradation it did not measure."""
    section = _section(
        _depth_study(
            ablation_of,
            {
                "plain-20": [(0.80, 0.60, 0.78), (0.84, 0.58, 0.79)],
                "plain-56": [(0.81, 0.59, 0.78), (0.83, 0.57, 0.79)],
                "resnet-56": [(0.86, 0.45, 0.83), (0.87, 0.44, 0.84)],
                "resnet-20": [(0.83, 0.50, 0.80), (0.84, 0.49, 0.81)],
            },
        ),
        tmp_path / "r.md",
    )
    assert "degradation problem appears" not in section
    assert "cannot say whether a deeper plain net trains worse or better" in section


def test_a_ladder_of_other_models_has_no_resnet_question(tmp_path, studies):
    text = write_report([studies["ablation"]], tmp_path / "r.md").read_text(encoding="utf-8")
    assert "## Improvements" in text
    assert "The ResNet question" not in text


def test_the_resnet_question_says_when_its_nets_did_not_train_for_the_same_epochs(
    tmp_path, ablation_of
):
    """Its comparisons are in equal epochs only when the runs say so: a ladder that changes
    the schedule between nets is named as such."""
    finals = {
        "plain-20": [(0.80, 0.60, 0.78), (0.82, 0.58, 0.79)],
        "plain-56": [(0.70, 0.90, 0.70), (0.71, 0.88, 0.71)],
        "resnet-56": [(0.88, 0.40, 0.83), (0.89, 0.39, 0.84)],
        "resnet-20": [(0.83, 0.50, 0.80), (0.84, 0.49, 0.81)],
    }
    same = _section(_depth_study(ablation_of, finals), tmp_path / "same.md")
    assert "all trained for 8 epochs, so each comparison below is in equal epochs" in same
    study = _depth_study(ablation_of, finals)
    for seed in (0, 1):
        path = study / "runs" / "resnet-20" / f"seed{seed}" / "recipe.toml"
        text = path.read_text(encoding="utf-8")
        assert "epochs = 8" in text
        path.write_text(text.replace("epochs = 8", "epochs = 30", 1), encoding="utf-8")
    other = _section(study, tmp_path / "other.md")
    assert "NOT all trained for the same number of epochs" in other
    assert "ResNet-20 30" in other and "plain-20 8" in other
    assert "so each comparison below is in equal epochs" not in other
