"""`cifarlab report`: one self-contained HTML (or Markdown) document from runs and studies."""

from __future__ import annotations

import argparse
from pathlib import Path

from cifarlab.cli import options
from cifarlab.cli.common import check_data_dir, check_output_file


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = options.add_command(
        sub,
        "report",
        run,
        help="write a report (HTML or Markdown) from runs and studies",
        description=(
            "Write one report from run directories (cifarlab train) and study directories "
            "(cifarlab ablate / seeds): data, model, training, improvements, seed variance and a "
            "comparison of models; parts without inputs are left out. HTML is one "
            "self-contained file (figures inlined, no network); Markdown gets its PNGs in "
            "<name>_files/ beside it. The report is never written over its inputs nor into a "
            "run, study or search directory, and <name>_files/ is replaced only when an "
            "earlier report made it."
        ),
    )
    p.add_argument("dirs", nargs="+", metavar="DIR", help="run or study directories")
    p.add_argument(
        "-o",
        "--out",
        metavar="FILE",
        default=None,
        help="output file (default: report.html, or report.md with --format md)",
    )
    p.add_argument(
        "--format",
        choices=("html", "md"),
        default=None,
        help="html (default) or md; default follows the --out suffix",
    )
    p.add_argument("--title", default=None, help="the report's title")
    options.add_data_dir(
        p,
        "where the runs' CIFAR-10 is, for the example images and histograms "
        "(default: found from the runs; never downloaded)",
    )


def run(args: argparse.Namespace) -> int:
    from cifarlab import paths
    from cifarlab.report.markdown import made_by_a_report
    from cifarlab.report.sections import write_report

    fmt = args.format
    if args.out:
        out = Path(args.out)
    else:
        out = Path("report.md" if fmt == "md" else "report.html")
    # Every path first: a report takes a while to build, and a bad -o should not waste it.
    for d in args.dirs:
        paths.input_dir(d, "run or study folder")
    check_data_dir(args.data_dir)
    # Never over what the report reads, nor into a run, study or search directory.
    reads = [*args.dirs, *([args.data_dir] if args.data_dir not in (None, "sample") else [])]
    check_output_file(out, "--out", reads=reads)
    if fmt == "md" or (fmt is None and out.suffix.lower() in (".md", ".markdown")):
        # Markdown puts its figures in <stem>_files/ beside the file (report.markdown); only
        # a folder an earlier report made is replaced.
        figures = out.with_name(f"{out.stem}_files")
        paths.replaceable_folder(
            figures, "--out's figure folder", lambda f: made_by_a_report(f, out), reads=reads
        )
    path = write_report(args.dirs, out, fmt, data_dir=args.data_dir, title=args.title)
    print(f"report: {path}")
    return 0
