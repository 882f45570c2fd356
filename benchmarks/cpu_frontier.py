"""The CPU frontier (issue 15): test accuracy against whole-command wall time, per recipe.

Each run is the whole ``cifarlab train`` command as a user types it (interpreter start-up, data
loading, data-dependent initialisation, training, evaluations, test-time augmentation,
checkpoints and figures all counted), timed from outside. The budget unit is measured in the
same benchmark run: one epoch of ``seed-improved`` (its training time per epoch, from the same
kind of command), so budgets are stated as multiples of seed-improved's 25-epoch training time
and carry over to another machine:

    cpu85: 0.25 x 25 epochs of seed-improved   cpu90: 1 x   cpu93: 3 x

    python benchmarks/cpu_frontier.py --data-dir ../shared/cifar10 \\
        --runs seed-improved:0 cpu85:0-4 cpu90:0-4 --out frontier-out

``--runs`` takes RECIPE:SEEDS (seeds as 0-4 or 0,2). Results go to OUT/frontier.json (one
record per run, appended as each finishes, so an interrupted benchmark keeps what it measured),
OUT/frontier.md (the table) and OUT/frontier.png (accuracy against wall time in budget units,
each run over its own unit, budget lines); ``--render`` redraws those two from
OUT/frontier.json alone, or with ``--include JSON`` with other sittings' runs beside them. ``--append`` keeps the runs already
in OUT/frontier.json and adds these, for a study longer than one sitting: every invocation times
its own budget unit first, and each run is held to the unit timed in its own invocation.
``--unit-each`` times the unit before every run and once more after the last, and holds each run
to the mean of the two units timed around it (``epoch_s_unit`` before, ``epoch_s_unit_after``
after; the one after a run is also the one before the next): for long runs on a machine whose
speed drifts (this one's seed-improved epoch has measured 19.2 to 28.8 s within a few hours, and
changed by 28 % across one 28-minute run).
Time only on an idle machine: the script refuses to start above a 1-minute load of --max-load
(default 0.3) unless --allow-load is given, and records before every run the 1-minute load (which
still remembers the benchmark's own previous run) and the share of the CPU busy over 2 s (which
does not: near 0 when nothing else runs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

BUDGET_MULTIPLE = {
    "cpu85": 0.25,
    "cpu90": 1.0,
    "cpu93": 3.0,
    "cifar100-cpu": 1.0,
    "resnet20-u1": 1.0,
    "resnet20-u3": 3.0,
}  # of seed-improved's 25 epochs
TARGET = {"cpu85": 0.85, "cpu90": 0.90, "cpu93": 0.93, "cifar100-cpu": 0.70}
REFERENCE_EPOCHS = 25


def load1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def cpu_busy(seconds: float = 2.0) -> float:
    """Fraction of all cores busy over the next ``seconds`` (/proc/stat): unlike the 1-minute
    load, which still remembers the benchmark's own previous run, this sees only what runs now."""

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait

    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return 1.0 - (idle1 - idle0) / max(total1 - total0, 1)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def parse_runs(items: list[str]) -> list[tuple[str, int]]:
    runs = []
    for item in items:
        recipe, _, seeds = item.rpartition(":")
        if not recipe:
            raise SystemExit(f"--runs {item!r}: expected RECIPE:SEEDS, e.g. cpu90:0-4")
        for part in seeds.split(","):
            a, _, b = part.partition("-")
            runs += [(recipe, s) for s in range(int(a), int(b or a) + 1)]
    return runs


def dataset_of(recipe: str, extra: list[str]) -> str:
    """The dataset a recipe (with the benchmark's --set overrides) trains on."""
    from cifarlab.recipe import load_recipe

    overrides = [kv for kv in extra if kv != "--set"]
    return load_recipe(recipe, overrides).data.dataset


def data_dir_for(dataset: str, default: str, named: dict[str, str]) -> str:
    """--data-dir-for's folder for ``dataset`` (CIFAR-100's serves its coarse labels too)."""
    if dataset in named:
        return named[dataset]
    if dataset == "cifar100-coarse" and "cifar100" in named:
        return named["cifar100"]
    if dataset != "cifar10":
        raise SystemExit(f"a {dataset} recipe: say where with --data-dir-for {dataset}=DIR")
    return default


def timed_train(recipe: str, seed: int, data_dir: str, out: Path, extra: list[str]) -> dict:
    """Run the whole command; its wall time from outside, and what its metrics.json says."""
    cmd = [sys.executable, "-m", "cifarlab", "train", "--recipe", recipe, "--seed", str(seed)]
    cmd += ["--data-dir", data_dir, "--out", str(out), "--no-progress", *extra]
    load, busy = load1(), cpu_busy()
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    m = json.loads((out / "metrics.json").read_text())
    return {
        "recipe": recipe,
        "seed": seed,
        "load_before": load,
        "busy_before": busy,
        "wall_s": wall,
        "train_time_s": m["train_time_s"],
        "test_accuracy": m["test_accuracy"],
        "test_accuracy_tta": m.get("test_accuracy_tta"),
        "test_top5": m.get("test_top5_accuracy"),
        "test_top5_tta": m.get("test_top5_accuracy_tta"),
        "dataset": m.get("data", {}).get("dataset", "cifar10"),
        "tta": m.get("tta", "none"),
        "run": str(out),
    }


def reported_accuracy(r: dict) -> float:
    """The accuracy a recipe promises: with its test-time augmentation when it has one."""
    return r["test_accuracy_tta"] if r["test_accuracy_tta"] is not None else r["test_accuracy"]


def reported_top5(r: dict) -> float | None:
    """Top-5 accuracy as the recipe reports it (with its TTA), None for runs without it."""
    return r.get("test_top5_tta") if r.get("test_top5_tta") is not None else r.get("test_top5")


def unit_s(r: dict, epoch_s: float) -> float:
    """The budget unit a run is held to: seed-improved's 25 epochs, timed in its own invocation;
    the mean of the epochs timed just before and just after it where both were (--unit-each)."""
    before = r.get("epoch_s_unit", epoch_s)
    after = r.get("epoch_s_unit_after", before)
    return REFERENCE_EPOCHS * (before + after) / 2


def table(records: list[dict], epoch_s: float) -> str:
    units = sorted({round(unit_s(r, epoch_s)) for r in records}) or [
        round(REFERENCE_EPOCHS * epoch_s)
    ]
    if len(units) == 1:
        head = (
            f"Budget unit: seed-improved's {REFERENCE_EPOCHS} epochs = {REFERENCE_EPOCHS} x "
            f"{units[0] / REFERENCE_EPOCHS:.1f} s = {units[0]} s (one epoch timed in this run)."
        )
    else:
        head = (
            f"Budget unit: seed-improved's {REFERENCE_EPOCHS} epochs, timed more than once "
            f"(--append, --unit-each): {', '.join(f'{u} s' for u in units)}; each run is held to "
            "the one timed before it in its own invocation, or with --unit-each to the mean of the "
            "ones timed just before and just after it."
        )
    lines = [
        head,
        "",
        "| recipe | seed | test accuracy | top-5 | wall time | unit epoch (before → after) | × unit "
        "| budget | within | load before | CPU busy before |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in records:
        unit = unit_s(r, epoch_s)
        multiple = BUDGET_MULTIPLE.get(r["recipe"])
        budget = f"{multiple:g} × ({multiple * unit:.0f} s)" if multiple else "—"
        within = "—" if not multiple else ("yes" if r["wall_s"] <= multiple * unit else "NO")
        acc = reported_accuracy(r) * 100
        tta = f" ({r['tta']} TTA)" if r["test_accuracy_tta"] is not None else ""
        before = r.get("epoch_s_unit", epoch_s)
        after = f" → {r['epoch_s_unit_after']:.1f}" if "epoch_s_unit_after" in r else ""
        top5 = reported_top5(r)
        top5_text = f"{top5 * 100:.2f}%" if top5 is not None else "—"
        lines.append(
            f"| {r['recipe']} | {r['seed']} | {acc:.2f}%{tta} | {top5_text} | {r['wall_s']:.0f} s | "
            f"{before:.1f} s{after} | {r['wall_s'] / unit:.2f} | {budget} | {within} "
            f"| {r['load_before']:.2f} "
            f"| {r.get('busy_before', float('nan')) * 100:.0f}% |"
        )
    by_recipe: dict[str, list[dict]] = {}
    for r in records:
        by_recipe.setdefault(r["recipe"], []).append(r)
    lines += [
        "",
        "| recipe | n | mean accuracy | target | max wall time |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, rs in by_recipe.items():
        mean = sum(reported_accuracy(r) for r in rs) / len(rs) * 100
        target = f"{TARGET[name] * 100:.0f}%" if name in TARGET else "—"
        lines.append(
            f"| {name} | {len(rs)} | {mean:.2f}% | {target} | {max(r['wall_s'] for r in rs):.0f} s |"
        )
    return "\n".join(lines) + "\n"


def figure(records: list[dict], epoch_s: float, path: Path) -> None:
    """Accuracy against whole-command time in budget units, each run over its own unit, so
    runs of several sittings (or machines) stand on one axis; budget lines at the multiples."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    names = list(dict.fromkeys(r["recipe"] for r in records))
    for name in names:
        rs = [r for r in records if r["recipe"] == name]
        ax.scatter(
            [r["wall_s"] / unit_s(r, epoch_s) for r in rs],
            [reported_accuracy(r) * 100 for r in rs],
            label=name,
        )
    shown = set(names)
    multiples: dict[float, list[str]] = {}
    for name, multiple in BUDGET_MULTIPLE.items():
        if name in shown or not shown:
            multiples.setdefault(multiple, []).append(name)
    for multiple, budget_of in sorted(multiples.items()):
        ax.axvline(multiple, color="grey", linestyle=":", linewidth=1)
        ax.text(
            multiple,
            ax.get_ylim()[0],
            f" {', '.join(budget_of)} budget",
            rotation=90,
            fontsize=7,
            va="bottom",
        )
    ax.set_xscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    # minor ticks labelled at 2, 3 and 5 of each decade only: 0.7, 0.8, 0.9 would run together
    sparse = matplotlib.ticker.FuncFormatter(
        lambda v, _: f"{v:g}" if f"{v:g}".strip("0.")[:1] in "235" else ""
    )
    ax.xaxis.set_minor_formatter(sparse)
    ax.set_xlabel(
        "whole-command wall time in budget units (seed-improved's 25 epochs, each run's own; log)"
    )
    ax.set_ylabel("test accuracy (%)")
    seconds = sorted({round(unit_s(r, epoch_s)) for r in records})
    span = (
        f"{seconds[0]}–{seconds[-1]} s"
        if len(seconds) > 1
        else f"{seconds[0]} s"
        if seconds
        else ""
    )
    ax.set_title(f"CPU frontier ({os.cpu_count()} cores; a unit here: {span})", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def read_records(path: Path) -> tuple[list[dict], float]:
    """The runs of a frontier.json and its last unit epoch; each run keeps the unit it was held
    to (``epoch_s_unit``, the file's own where a record from before --unit-each lacks it)."""
    saved = json.loads(path.read_text())
    for r in saved["runs"]:
        r.setdefault("epoch_s_unit", saved["epoch_s"])
    return saved["runs"], saved["epoch_s"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/cifar10", help="CIFAR-10 (the unit, too)")
    p.add_argument(
        "--data-dir-for",
        action="append",
        default=[],
        metavar="DATASET=DIR",
        help="where the recipes of another dataset read it, e.g. cifar100=DIR",
    )
    p.add_argument("--runs", nargs="+", metavar="RECIPE:SEEDS")
    p.add_argument(
        "--render", action="store_true", help="only redraw OUT/frontier.md and .png from its json"
    )
    p.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="JSON",
        help="with --render: draw and tabulate the runs of this frontier.json too (another "
        "sitting's; each run keeps its own unit)",
    )
    p.add_argument("--out", default="frontier-out")
    p.add_argument(
        "--append", action="store_true", help="keep the runs already in OUT/frontier.json"
    )
    p.add_argument(
        "--unit-each",
        action="store_true",
        help="time the budget unit before every run and after the last; each run is held to "
        "the mean of the two around it",
    )
    p.add_argument("--max-load", type=float, default=0.3)
    p.add_argument("--allow-load", action="store_true", help="time even on a busy machine")
    p.add_argument("--set", action="append", default=[], metavar="K=V", help="override, every run")
    args = p.parse_args()
    out = Path(args.out)
    records_path = out / "frontier.json"
    if args.render:  # e.g. after an interrupted benchmark: what it measured, drawn
        records, epoch_s = read_records(records_path)
        for extra_path in args.include:
            records += read_records(Path(extra_path))[0]
        render(records, epoch_s, out)
        return
    if not args.runs:
        p.error("--runs is required (or --render)")
    out.mkdir(parents=True, exist_ok=True)
    if load1() >= args.max_load and not args.allow_load:
        raise SystemExit(
            f"load {load1():.2f} >= {args.max_load}: not an idle machine (--allow-load to time anyway)"
        )
    extra = [a for kv in args.set for a in ("--set", kv)]
    print(
        f"date {time.strftime('%Y-%m-%d %H:%M:%S')} | {cpu_model()} | {os.cpu_count()} cpus | load {load1():.2f}"
    )

    epoch_s = time_unit(args.data_dir, out)
    records: list[dict] = []
    if args.append and records_path.exists():
        records = read_records(records_path)[0]
    named = dict(kv.split("=", 1) for kv in args.data_dir_for)
    for recipe, seed in parse_runs(args.runs):
        where = data_dir_for(dataset_of(recipe, extra), args.data_dir, named)
        run_name = Path(recipe).stem if recipe.endswith(".toml") else recipe
        r = timed_train(recipe, seed, where, out / f"{run_name}-seed{seed}", extra)
        r["epoch_s_unit"] = epoch_s
        if args.unit_each:  # the unit after this run, and before the next
            epoch_s = r["epoch_s_unit_after"] = time_unit(args.data_dir, out)
        records.append(r)
        records_path.write_text(json.dumps({"epoch_s": epoch_s, "runs": records}, indent=1))
        print(
            f"{recipe} seed {seed}: {reported_accuracy(r) * 100:.2f}% in {r['wall_s']:.0f} s "
            f"({r['wall_s'] / unit_s(r, epoch_s):.2f} x unit; load before {r['load_before']:.2f}, CPU busy {r['busy_before']:.0%})"
        )
    render(records, epoch_s, out)


def time_unit(data_dir: str, out: Path) -> float:
    """One epoch of seed-improved, the real command: its training seconds (the budget unit / 25).
    A fresh run directory each time, so --append and --unit-each never resume an old one."""
    unit_dir = out / f"unit-seed-improved-1ep-{time.strftime('%Y%m%d-%H%M%S')}"
    unit_run = timed_train("seed-improved", 0, data_dir, unit_dir, ["--epochs", "1"])
    epoch_s = unit_run["train_time_s"]
    print(
        f"budget unit: seed-improved epoch {epoch_s:.1f} s (load before {unit_run['load_before']:.2f})"
    )
    return epoch_s


def render(records: list[dict], epoch_s: float, out: Path) -> None:
    md = table(records, epoch_s)
    (out / "frontier.md").write_text(md)
    figure(records, epoch_s, out / "frontier.png")
    print(md)


if __name__ == "__main__":
    main()
