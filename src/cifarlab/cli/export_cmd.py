"""`cifarlab export`: a checkpoint as ONNX, TorchScript or safetensors."""

from __future__ import annotations

import argparse

from cifarlab.cli import options
from cifarlab.cli.common import check_output_dir
from cifarlab.errors import warn
from cifarlab.export import FORMATS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = options.add_command(
        sub,
        "export",
        run,
        help="export a checkpoint to ONNX, TorchScript or safetensors",
        description=(
            "Export a trained checkpoint for other runtimes. The model takes float32 "
            "(N, 3, 32, 32) RGB pixels scaled to [0, 1] and normalised (x - mean) / std, and "
            "returns logits; class names, mean and std are stored in the file's own metadata "
            "and in model.json beside it. With a temperature that `cifarlab evaluate "
            "--calibrate` stored for this checkpoint's step (temperature.json), the ONNX and "
            "TorchScript models return the logits divided by it and the metadata records it; "
            "one fitted for another step is ignored with a warning."
        ),
    )
    options.add_checkpoint_argument(p)
    p.add_argument(
        "--format",
        dest="formats",
        action="append",
        choices=FORMATS,
        default=None,
        help="output format (repeatable; default: onnx)",
    )
    p.add_argument(
        "--out",
        "-o",
        metavar="DIR",
        default=None,
        help="folder for model.<ext> and model.json (default: RUN/export/, or RUN/export/step-N/ for a checkpoint other than the run's latest)",
    )


def run(args: argparse.Namespace) -> int:
    from cifarlab import paths
    from cifarlab.export import export_model
    from cifarlab.rundir import RunDir, older_checkpoint_step

    ckpt = paths.input_path(args.checkpoint, "checkpoint")
    if args.out:
        out = check_output_dir(args.out, "--out", reads=[ckpt])
    else:  # beside the checkpoint, and nowhere else; an older checkpoint's in its own folder
        run = RunDir.of_checkpoint(ckpt)
        out = paths.output_dir(
            run.export_dir(older_checkpoint_step(ckpt)),
            "the default --out",
            within=run.path,
        )
    written = export_model(ckpt, out, formats=args.formats or ["onnx"], note=_note)
    for fmt, path in written.items():
        print(f"{fmt}: {path}")
    print(f"metadata: {out / 'model.json'}")
    return 0


def _note(line: str, used: bool) -> None:
    """The temperature used (stdout), or why a stored one is not (a warning on stderr)."""
    if used:
        print(line)
    else:
        warn(line)
