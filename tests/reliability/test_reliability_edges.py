"""The edges a user touches around a run, counted like every other fault (issue 14):
pictures handed to `predict`, hostile strings in a run a report shows, a resume asked to
change its recipe, and `evaluate` next to a training's own outputs.

Each case drives the real CLI (`cifarlab.cli.main.main`). Handled: the documented outcome —
a correct result, or one `cifarlab: error:` line with exit status 2 — and no traceback. Data
lost: a file outside the target written, or a training output replaced.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifarlab.cli.main import main
from cifarlab.predict import collect_images, read_image
from cifarlab.rundir import RunDir

# --------------------------------------------------------------------------- helpers


def copy_run(reference_run: Path, dest: Path) -> Path:
    shutil.copytree(reference_run, dest, ignore=shutil.ignore_patterns(".lock"))
    return dest


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("cifarlab: error: "), err
    return err


# --------------------------------------------------------------------------- pictures


def _grey16(path: Path) -> np.ndarray:
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(path)
    return (ramp.astype(np.float64) * 255 / 65535).round().astype(np.uint8)


PICTURES = ["16-bit grey PNG", "palette GIF in a folder", "BMP in a folder", "TIFF in a folder"]


@pytest.mark.parametrize("kind", PICTURES)
def test_pictures_of_every_kind_are_read_as_what_they_show(kind, tmp_path, ledger):
    with ledger.case("odd_images", kind) as case:
        folder = tmp_path / "pics"
        folder.mkdir()
        if kind == "16-bit grey PNG":
            Image.fromarray(_grey16(folder / "g16.png")).save(folder / "g8.png")
            case.guard(folder)  # reading changes no picture
            got, want = read_image(folder / "g16.png"), read_image(folder / "g8.png")
            assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
            case.note = "16-bit grey scaled by 65535 -> 255, as its 8-bit twin"
            return
        ext = {"palette GIF in a folder": "gif", "BMP in a folder": "bmp"}.get(kind, "tiff")
        rgb = np.zeros((40, 40, 3), np.uint8)
        rgb[:, :20] = (200, 30, 30)
        img = Image.fromarray(rgb)
        (img.convert("P") if ext == "gif" else img).save(folder / f"x.{ext}")
        case.guard(folder)
        found, refused = collect_images([folder])
        assert found == [folder / f"x.{ext}"] and not refused, (found, refused)
        got = read_image(found[0])
        assert got.shape[-1] == 3 and abs(int(got[5, 5, 0]) - 200) <= 8  # GIF: a palette
        case.note = f".{ext} read in a folder as when named"


def test_a_picture_over_the_pixel_budget_is_refused_from_its_header(
    tmp_path, reference_run, ledger, capsys
):
    with ledger.case("odd_images", "80-megapixel PNG header (decompression bomb)") as case:
        path = tmp_path / "bomb.png"
        Image.new("1", (10000, 8000)).save(path)  # 80 MP, a few kB on disk
        case.guard(tmp_path, reference_run)
        capsys.readouterr()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # PIL's DecompressionBombWarning would fail here
            code = main(["predict", str(reference_run), str(path)])
        assert code == 2
        err = one_error_line(capsys)
        assert "megapixel limit" in err and "bomb.png" in err, err
        case.note = "refused before decoding, one line"


def test_a_fifo_named_like_a_picture_never_blocks(tmp_path, reference_run, ledger, capsys):
    with ledger.case("odd_images", "FIFO named x.png") as case:
        fifo = tmp_path / "x.png"
        os.mkfifo(fifo)
        case.guard(tmp_path, reference_run)
        capsys.readouterr()
        assert main(["predict", str(reference_run), str(fifo)]) == 2
        assert "not a regular file (FIFO)" in one_error_line(capsys)
        case.note = "'not a regular file (FIFO)', nothing read"


# --------------------------------------------------------------------------- hostile report

HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(1)>|](javascript:x)\nx"


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_hostile_strings_in_a_run_reach_no_report_as_markup(
    fmt, tmp_path, reference_run, ledger, capsys
):
    with ledger.case("hostile_report", f"hostile names in every field, --format {fmt}") as case:
        run = copy_run(reference_run, tmp_path / "run")
        metrics = json.loads((run / "metrics.json").read_text())
        classes = [f"{HOSTILE}{i}" for i in range(len(metrics["classes"]))]
        metrics.update(recipe=HOSTILE, model=HOSTILE, classes=classes)
        metrics["per_class_accuracy"] = dict(
            zip(classes, metrics["per_class_accuracy"].values(), strict=True)
        )
        metrics["data"]["source"] = HOSTILE
        (run / "metrics.json").write_text(json.dumps(metrics))
        case.guard(run)  # the report reads the run and changes nothing in it
        out = tmp_path / f"report.{fmt}"
        assert main(["report", str(run), "-o", str(out), "--format", fmt]) == 0
        text = out.read_text()
        # Raw tags of the run's, or an unescaped Markdown link: markup reached the document.
        found = [t for t in ("<script>alert(1)", "<img src=x onerror") if t in text]
        if fmt == "md":
            found += re.findall(r"(?<!\\)\]\(javascript:", text)
        assert not case.check(bool(found), "run strings reaching the report as markup"), found
        case.note = "every string shown as text"


# --------------------------------------------------------------------------- resume


RESUME_CASES = [
    ("--set without --allow-change", ["--set", "optim.lr=0.5"], "would change optim.lr"),
    ("--recipe with --resume", ["--recipe", "seed-baseline"], "--recipe: --resume"),
    ("hand-edited recipe.toml", [], "edited since the run started"),
]


@pytest.mark.parametrize("name,extra,expected", RESUME_CASES, ids=[c[0] for c in RESUME_CASES])
def test_a_resume_never_silently_changes_or_ignores_the_recipe(
    name, extra, expected, tmp_path, reference_run, ledger, capsys
):
    with ledger.case("resume_recipe", name) as case:
        run = copy_run(reference_run, tmp_path / "run")
        (run / "metrics.json").unlink()  # an unfinished run, from its last checkpoint
        if name == "hand-edited recipe.toml":
            recipe = run / "recipe.toml"
            recipe.write_text(recipe.read_text().replace("lr = 0.0007", "lr = 0.07"))
        case.guard(run)  # every file of the run, byte for byte, and its mtime
        capsys.readouterr()
        code = main(["train", "--resume", str(run), "--data-dir", "sample", *extra])
        assert code == 2 and expected in one_error_line(capsys)
        case.note = "refused, the run untouched"


# --------------------------------------------------------------------------- evaluate


def test_evaluate_writes_beside_the_training_and_never_over_it(
    tmp_path, reference_run, ledger, capsys
):
    with ledger.case(
        "evaluate_outputs", "evaluate --tta flip next to the training's files"
    ) as case:
        run = copy_run(reference_run, tmp_path / "run")
        case.guard(run)  # the training's files, confusion.png among them
        case.allow(run / "evaluation")
        case.allow_tree(RunDir(run).evaluation_dir("flip"))  # where evaluate writes
        argv = ["evaluate", str(run), "--tta", "flip", "--data-dir", "sample"]
        assert main(argv) == 0
        assert json.loads((RunDir(run).evaluation_dir("flip") / "evaluation.json").read_text())
        case.note = "written to evaluation/flip/, the training's confusion.png kept"


def test_evaluate_prints_its_result_even_when_it_cannot_write(
    tmp_path, reference_run, ledger, capsys
):
    with ledger.case("evaluate_outputs", "evaluation.json cannot be written") as case:
        run = copy_run(reference_run, tmp_path / "run")
        blocked = RunDir(run).evaluation_dir("none") / "evaluation.json"
        blocked.mkdir(parents=True)  # a folder where the file must go
        case.guard(run)
        case.allow_tree(RunDir(run).evaluation_dir("none"))  # its figures may be written
        capsys.readouterr()
        code = main(["evaluate", str(run), "--data-dir", "sample"])
        out, err = capsys.readouterr()
        assert code == 2 and "test accuracy" in out, out
        assert len(err.strip().splitlines()) == 1 and "evaluation.json" in err, err
        case.note = "result printed first, then one error line"
