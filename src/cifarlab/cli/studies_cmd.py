"""`cifarlab studies`: summarize or merge study directories, list ladders.

Also the options shared by `cifarlab ablate` and `cifarlab seeds` (how a study runs).
"""

from __future__ import annotations

import argparse

from cifarlab.cli import options
from cifarlab.cli.common import check_data_dir, check_study_out


def add_run_options(p: argparse.ArgumentParser) -> None:
    """Seeds, output, execution and override options of `ablate` and `seeds`."""
    p.add_argument(
        "--seed-list",
        default=None,
        metavar="S,S,...",
        help="explicit seeds, e.g. 0,1,2 or 0-9 (instead of seeds 0..N-1)",
    )
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="study directory (default: studies-out/<name>); rerunning into it resumes the study",
    )
    options.add_jobs_option(
        p,
        "runs at a time on the CPU, each in its own process with cpu_count // J torch "
        "threads (default 1); on a GPU runs go one at a time",
    )
    p.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="run only slice I of N (0-based, I = 0..N-1) of the study's runs, e.g. "
        "--shard $SLURM_ARRAY_TASK_ID/4; combine slices with `cifarlab studies merge`",
    )
    options.add_device_option(
        p, help="device for every run (same as --set system.device=..., not part of the study)"
    )
    options.add_set_option(
        p,
        "override a recipe field in every run, after the step's own changes "
        "(e.g. --set train.epochs=1 for a quick look); part of the study's definition",
    )
    options.add_no_figures_option(p, "write the tables only")
    options.add_data_dir(p)


def parse_seeds(n: int | None, seed_list: str | None) -> list[int]:
    """Seeds 0..n-1, or an explicit list like "0,1,2" or "0-9" or "3,5-7"."""
    from cifarlab.studies import StudyError

    if seed_list is None:
        if n is None or n < 1:
            raise StudyError(f"--seeds/-n {n}: need at least one seed")
        return list(range(n))
    seeds: list[int] = []
    for part in seed_list.split(","):
        part = part.strip()
        lo, dash, hi = part.partition("-")
        try:
            if dash:
                seeds.extend(range(int(lo), int(hi) + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise StudyError(
                f"--seed-list {seed_list!r}: expected seeds like 0,1,2 or 0-9"
            ) from None
    return seeds


def execute(build, args: argparse.Namespace) -> int:
    """Run the study ``build()`` makes for `ablate` or `seeds` with the shared options; print
    its table. A given --out is checked before the study (its recipe, its ladder) is read."""
    from pathlib import Path

    from cifarlab.studies.runner import run_study
    from cifarlab.studies.spec import parse_shard

    shard = parse_shard(args.shard) if args.shard is not None else None
    out = check_study_out(args.out) if args.out is not None else None
    study = build()
    if out is None:
        out = check_study_out(Path("studies-out") / study.name)
    check_data_dir(args.data_dir)
    print(f"study directory: {out}")
    run_study(
        study,
        out,
        jobs=args.jobs,
        device=args.device,
        data_dir=args.data_dir,
        shard=shard,
        figures=args.figures,
    )
    print((out / "summary.md").read_text(encoding="utf-8"), end="")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = options.add_command(
        sub,
        "studies",
        lambda args: (p.print_help(), 2)[1],
        help="summarize or merge study directories, list ladders",
        description=(
            "Work with study directories made by `cifarlab ablate` and `cifarlab seeds`: "
            "recompute a summary, merge shards, list the built-in ladders."
        ),
    )
    ssub = p.add_subparsers(dest="studies_command", metavar="ACTION")
    s = options.add_command(
        ssub,
        "summarize",
        run_summarize,
        help="recompute summary.json/csv/md and the figures of a study",
        description="Recompute a study's summary (tables and figures) from its finished runs.",
    )
    s.add_argument("dir", metavar="DIR", help="study directory")
    options.add_no_figures_option(s, "tables only")
    m = options.add_command(
        ssub,
        "merge",
        run_merge,
        help="combine study directories (e.g. shards) into one and summarize it",
        description=(
            "Copy the runs of several directories of the same study (same study.json), e.g. the "
            "shards of a job array, into OUT and write its summary. OUT may be one of the inputs."
        ),
    )
    m.add_argument("dirs", nargs="+", metavar="DIR", help="study directories to combine")
    m.add_argument("-o", "--out", required=True, metavar="OUT", help="merged study directory")
    options.add_no_figures_option(m, "tables only")
    ld = options.add_command(
        ssub,
        "ladders",
        run_ladders,
        help="list the built-in ladders, or show one's steps",
        description="List the built-in ablation ladders, or show the steps of one (name or file).",
    )
    options.add_name_argument(ld, "show this ladder's steps")


def run_summarize(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cifarlab import paths
    from cifarlab.studies.summary import summarize_study

    paths.input_dir(args.dir, "study folder")
    paths.output_dir(args.dir, "study folder")  # the summary is written into it
    summarize_study(args.dir, figures=args.figures)
    print((Path(args.dir) / "summary.md").read_text(encoding="utf-8"), end="")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cifarlab import paths
    from cifarlab.studies.runner import merge_studies

    for d in args.dirs:
        paths.input_dir(d, "study folder")
    check_study_out(args.out)
    merge_studies(args.dirs, args.out, figures=args.figures)
    print((Path(args.out) / "summary.md").read_text(encoding="utf-8"), end="")
    return 0


def run_ladders(args: argparse.Namespace) -> int:
    from cifarlab.studies.ladder import builtin_ladders, load_ladder

    if args.name is None:
        for name in builtin_ladders():
            ladder = load_ladder(name)
            print(f"{name:<16} {ladder.description}")
        return 0
    ladder = load_ladder(args.name)
    print(f"{ladder.name}: base recipe {ladder.base!r}")
    width = max(14, *(len(step.name) for step in ladder.steps))  # names line up
    for k, step in enumerate(ladder.steps, 1):
        changes = ", ".join(f"{key}={value!r}" for key, value in step.changes.items()) or "-"
        ref = f" [report: {step.reference:.2f}%]" if step.reference is not None else ""
        print(f"{k}. {step.name:<{width}} {changes}{ref}")
        if step.description:
            print(f"   {'':<{width}} {step.description}")
    return 0
