"""`cifarlab evaluate`: test accuracy, per-class table, confusion matrix and calibration of a
checkpoint; ``--calibrate`` fits a temperature on the run's validation split."""

from __future__ import annotations

import argparse
import sys

from cifarlab.cli import options
from cifarlab.cli.common import check_data_dir, check_output_dir
from cifarlab.errors import warn
from cifarlab.recipe import TTA_MODES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = options.add_command(
        sub,
        "evaluate",
        run,
        help="evaluate a checkpoint on the test set",
        description=(
            "Test accuracy (top-1 and top-5), per-class accuracy, the confusion matrix (PNG) "
            "with its most confused pairs, and calibration of a checkpoint: expected calibration error (ECE, 15 equal-width confidence bins), "
            "negative log-likelihood, Brier score and a reliability diagram (PNG)."
        ),
    )
    options.add_checkpoint_argument(p)
    p.add_argument(
        "--tta",
        choices=TTA_MODES,
        default="none",
        help="test-time augmentation (reported separately from plain accuracy)",
    )
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="fit a temperature on the run's validation split (never the test set), report the "
        "test set's ECE/NLL/Brier before and after it, and store it as temperature.json beside "
        "the checkpoint, where predict and export use it",
    )
    options.add_device_option(p, default="auto")
    p.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="where to write confusion.png, reliability.png and evaluation.json (default: "
        "RUN/evaluation/<tta>/ for the run's latest checkpoint, RUN/evaluation/step-<N>/<tta>/ "
        "for an older one such as checkpoint.prev.pt; beside the training's own files, which "
        "are never replaced; a given --out may not be inside a run, study or search directory)",
    )
    options.add_json_option(p, "print the result as JSON")
    options.add_data_dir(p)
    p.add_argument(
        "--corruptions",
        metavar="all|NAME,...",
        default=None,
        help="also measure accuracy on CIFAR-10-C (CIFAR-100-C for a CIFAR-100 run) made from "
        "the run's test set (seeded, cached, never "
        "downloaded): 'all' or a comma-separated list of gaussian_noise, shot_noise, "
        "impulse_noise, defocus_blur, glass_blur, motion_blur, zoom_blur, snow, frost, fog, "
        "brightness, contrast, elastic_transform, pixelate, jpeg_compression; writes "
        "corruptions.json and corruptions.png beside evaluation.json",
    )
    p.add_argument(
        "--severities",
        metavar="1-5|1,3",
        default=None,
        help="severities for --corruptions: a range (default 1-5) or a comma-separated list",
    )
    p.add_argument(
        "--corruption-seed",
        type=int,
        default=None,
        metavar="N",
        help="seed of the corrupted images (default 0; each seed is cached separately)",
    )


def _corruptions(args: argparse.Namespace, ckpt, out) -> dict | None:
    """``--corruptions``: check the selection (one line and exit 2 before anything is read or
    written), evaluate it, print the table as it fills (unless --json) and write
    corruptions.json and corruptions.png to ``out``."""

    from cifarlab import robustness
    from cifarlab.rundir import EvaluationDir

    if args.corruptions is None:
        if args.severities is not None or args.corruption_seed is not None:
            flag = "--severities" if args.severities is not None else "--corruption-seed"
            raise robustness.RobustnessError(f"{flag} needs --corruptions (all or NAME,...)")
        return None
    names = robustness.parse_corruptions(args.corruptions)
    severities = robustness.parse_severities(args.severities or "1-5")
    seed = robustness.DEFAULT_SEED if args.corruption_seed is None else args.corruption_seed
    if seed < 0:  # numpy and torch generators take seeds >= 0
        raise robustness.RobustnessError(f"--corruption-seed: must be 0 or more, got {seed}")

    def start(source: str) -> None:  # the data line first, as in every command
        if not args.json:
            label = "" if args.tta == "none" else f", {args.tta} TTA"
            print(f"data: {source}")
            print(f"corruption robustness (test accuracy{label}, corruption seed {seed}):")
            print(robustness.table_header(severities), flush=True)

    said: list[bool] = []

    def generating(line: str) -> None:  # said once, not for each of up to 75 cells
        if line.startswith("cifarlab: warning:"):  # a damaged cache cell, or one not saved
            print(line, file=sys.stderr, flush=True)
        elif not said:
            print(_GENERATING, file=sys.stderr, flush=True)
            said.append(True)

    def row(name: str, accuracy: dict) -> None:
        if not args.json:
            print(robustness.table_row(name, accuracy), flush=True)

    folder = EvaluationDir(out)

    def summary(result: dict) -> None:
        if not args.json:
            print("\n".join(robustness.table_footer(result)))
            print(
                f"corruption table: {folder.corruptions_path}, "
                f"chart: {folder.corruptions_figure_path}\n"
            )

    return robustness.evaluate_corruptions(
        ckpt,
        corruptions=names,
        severities=severities,
        seed=seed,
        data_dir=args.data_dir,
        tta=args.tta,
        device=args.device,
        out_dir=out,
        log=summary,
        on_row=row,
        progress=generating,
        on_data=start,
    )


_GENERATING = (
    "generating the corrupted test images not cached yet (once per test set, corruption, "
    "severity and seed; cached in the data cache after)"
)


def run(args: argparse.Namespace) -> int:
    from cifarlab import paths
    from cifarlab.calibration import CalibrationError
    from cifarlab.evaluate import evaluate
    from cifarlab.rundir import EvaluationDir, RunDir, older_checkpoint_step
    from cifarlab.stored import json_text

    ckpt = paths.input_path(args.checkpoint, "checkpoint")
    run = RunDir.of_checkpoint(ckpt)
    step = older_checkpoint_step(ckpt)
    if step is not None and args.calibrate:
        raise CalibrationError(
            f"{ckpt}: --calibrate stores the temperature beside the run's latest checkpoint "
            f"({run.checkpoint_path}), whose temperature this older one must not replace; "
            f"calibrate {run.path}, or copy this checkpoint into a run of its own"
        )
    if args.out:
        out = check_output_dir(args.out, "--out", reads=[ckpt])
    else:  # beside the training's files, and nowhere else; an older checkpoint in its own
        out = paths.output_dir(
            run.evaluation_dir(args.tta, step=step),
            "the default --out",
            within=run.path,
        )
    check_data_dir(args.data_dir)
    corruptions = _corruptions(args, ckpt, out)  # first: it prints its own table

    def show(result: dict) -> None:  # printed before anything is written
        if "temperature_note" in result:  # a stale temperature.json, not applied
            warn(result["temperature_note"])
        if args.json:
            if corruptions is not None:  # one JSON document: the evaluation and its corruptions
                result = {**result, "corruptions": corruptions}
            print(json_text(result), flush=True)
            return
        if corruptions is None:  # else printed before the corruption table
            print(f"data: {result['data']}")
        label = "" if args.tta == "none" else f" ({args.tta} TTA)"
        print(
            f"test accuracy{label}: {result['accuracy'] * 100:.2f}% on {result['count']:,} "
            f"images (loss {result['loss']:.4f})"
        )
        if "top5_accuracy" in result:
            print(f"top-{result['top_k']} accuracy{label}: {result['top5_accuracy'] * 100:.2f}%")
        print("\n".join(per_class_lines(result["per_class_accuracy"])))
        print("\n".join(confused_lines(result.get("confused_pairs") or [])))
        print(f"calibration{label}: {_calibration(result)}")
        if "temperature" in result:
            t = result["temperature"]
            count = t.get("validation_count")
            on = f"{count:,} validation images" if isinstance(count, int) else "validation images"
            if t.get("stored"):
                print(f"temperature: {t['value']:.4g} from {t['file']} (fitted on {on})")
            else:
                print(f"temperature: {t['value']:.4g}, fitted on {on} -> {t['file']}")
            print(f"after temperature scaling: {_calibration(result['calibrated'])}")
        print(f"confusion matrix: {EvaluationDir(out).confusion_figure_path}")
        print(f"reliability diagram: {EvaluationDir(out).reliability_figure_path}", flush=True)

    evaluate(
        ckpt,
        data_dir=args.data_dir,
        tta=args.tta,
        device=args.device,
        out_dir=out,
        log=show,
        calibrate=args.calibrate,
    )
    return 0


def per_class_lines(per_class: dict[str, float]) -> list[str]:
    """The per-class accuracy table, one class a line, the name column as wide as the
    longest name (CIFAR-100's ``large_man-made_outdoor_things`` and the like)."""
    width = max([len("class"), *map(len, per_class)])
    lines = [f"{'class':<{width}} {'accuracy':>9}"]
    lines += [f"{name:<{width}} {acc * 100:>8.2f}%" for name, acc in per_class.items()]
    return lines


def confused_lines(pairs: list[dict]) -> list[str]:
    """The most confused pairs (cifarlab.inference.confused_pairs) as a table: true class ->
    predicted class, images, and their share of the true class; nothing when none."""
    if not pairs:
        return []
    true_w = max(len("true"), *(len(p["true"]) for p in pairs))
    pred_w = max(len("predicted"), *(len(p["predicted"]) for p in pairs))
    lines = [
        f"most confused pairs (top {len(pairs)}):",
        f"  {'true':<{true_w}} -> {'predicted':<{pred_w}} {'images':>6} {'of true':>8}",
    ]
    for p in pairs:
        lines.append(
            f"  {p['true']:<{true_w}} -> {p['predicted']:<{pred_w}} {p['count']:>6,} "
            f"{p['share'] * 100:>7.1f}%"
        )
    return lines


def _calibration(m: dict) -> str:
    if m.get("ece") is None:
        return "no images"
    return f"ECE {m['ece'] * 100:.2f}% (15 bins), NLL {m['nll']:.4f}, Brier {m['brier']:.4f}"
