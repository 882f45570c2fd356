"""Recipes train bit-identically to recorded runs: to the code before the regularisers
(issue 17), and to the code before the refactoring (issue 30).

Two records of short runs on the bundled sample, each a fingerprint per run: the SHA-256 of
the final weights, the full history (times left out) and the test metrics. Every run trains
in a fresh process, so nothing another test set (threads, flags) reaches it.

``unchanged_runs.json``: seed-improved and a small fast94 on the code of commit 933cad3,
before the regularisers (augment.trivial_augment, augment.random_erasing, augment.mixup,
augment.cutmix, train.ema) were added. Off by default, they take nothing from the step's
augmentation generator and change no other draw, so today's code must reproduce it. Float
kernels differ between SIMD levels, so both sides run with torch, oneDNN and MKL held to AVX2
(``PINNED_AVX2``) in fp32. That is not all the machine decides: within AVX2, oneDNN picks a
convolution kernel and its blocking from the CPU's caches (``brg_conv_fwd:avx2`` for some
layers on an Intel Xeon, whose fingerprint differs from the AMD EPYCs' while 933cad3's code and
today's agree on it). So the file holds one record per CPU maker (the AMD one taken on an AVX2
EPYC and reproduced on an AVX-512-BF16 one; the Intel one on an Ice Lake Xeon), the test
compares with its maker's and skips, saying so, where none was taken. A record is written on
the machine, from a checkout of 933cad3 (its ``src`` named by ``--code``)::

    git worktree add /tmp/c933 933cad3
    python tests/train/test_unchanged_by_regularisers.py --write regularisers --code /tmp/c933/src

``sample_runs.json``: seed-improved, cpu85, fast94 (narrowed) and a cpu85 run stopped at a
checkpoint and resumed, as the recipes run natively (bf16 where "auto" picks it), on the code
before the refactoring. It holds one record per machine kind (torch version, the ISA torch
dispatches to, native bf16, CPU vendor; the CPU's name is noted); the test compares with the
record of this machine's kind and skips, saying so, on a kind none was taken on. Written, on
the code to compare against, with::

    python tests/train/test_unchanged_by_regularisers.py --write sample
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve()
RECORD = HERE.with_name("unchanged_runs.json")
SAMPLE_RECORD = HERE.with_name("sample_runs.json")

# The dispatch every machine with AVX2 can run: ATen's kernels, oneDNN's (convolutions) and
# MKL's (matrix products). Read once at start-up, so the runs go in a child process.
PINNED_AVX2 = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
}

FAST94_SMALL = {
    "train.epochs": 2,
    "train.batch_size": 250,
    "model.options.widths": [16, 32, 32],
    "train.eval_points": 2,
    "system.threads": 1,
}

# name -> (recipe, overrides): short runs that between them touch flip, colour jitter,
# translate, batch norm, dropout, Adam, Muon + Nesterov SGD, label smoothing and TTA.
RUNS = {
    "seed-improved": (
        "seed-improved",
        # NCHW, as the record was taken before seed-baseline moved to channels_last.
        {
            "train.epochs": 0.4,
            "train.eval_points": 2,
            "system.threads": 1,
            "system.channels_last": False,
        },
    ),
    # fp32: "auto" picks bf16 on a CPU with native bf16 since b8af4f2, fp32 before.
    "fast94-small": ("fast94", {**FAST94_SMALL, "system.precision": "fp32"}),
}

# The refactoring's record: the recipes as shipped, shortened for the 2,000-image sample.
# cpu85 (15 steps of 500) goes through its 16, 24 and 32 px phases and flip TTA.
SAMPLE_RUNS = {
    "seed-improved": ("seed-improved", {"train.epochs": 0.4, "train.eval_points": 2}),
    "cpu85": ("cpu85", {}),
    "fast94": ("fast94", FAST94_SMALL),
    # stopped after its first checkpoint (step 5), then resumed: recorded equal to cpu85's
    "cpu85-resumed": ("cpu85", {}),
}


def machine() -> dict[str, str]:
    """What bit-identity depends on besides the code (the dispatched ISA may be pinned)."""
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def cpu_vendor() -> str:
    """The CPU's maker (``/proc/cpuinfo``'s vendor_id), or the architecture where there is none."""
    if Path("/proc/cpuinfo").is_file():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                return line.split(":", 1)[1].strip()
    return platform.machine()


def machine_kind() -> dict:
    """What native bit-identity depends on besides the code: torch, the ISA torch dispatches
    to, whether "auto" precision is bf16 here, the CPU's maker."""
    from cifarlab.runtime import cpu_has_native_bf16

    return {**machine(), "native_bf16": cpu_has_native_bf16(), "cpu_vendor": cpu_vendor()}


def cpu_name() -> str:
    return str(getattr(torch.cpu, "get_capabilities", dict)().get("cpu_name", "unknown"))


def fingerprint(run: Path) -> dict:
    """SHA-256 of the final weights (keys sorted), the history without times, test metrics."""
    from cifarlab.rundir import load_checkpoint

    weights = load_checkpoint(run)["model"]
    digest = hashlib.sha256()
    for key in sorted(weights):
        digest.update(key.encode())
        digest.update(weights[key].detach().cpu().contiguous().numpy().tobytes())
    history = json.loads((run / "history.json").read_text())
    history.pop("time_s")
    metrics = json.loads((run / "metrics.json").read_text())
    keep = ("test_accuracy", "test_loss", "test_accuracy_tta", "val_accuracy", "confusion")
    return {
        "weights_sha256": digest.hexdigest(),
        "history": history,
        "metrics": {k: metrics[k] for k in keep if k in metrics},
    }


def run_fingerprint(name: str, out: Path, data, runs: dict = RUNS) -> dict:
    from cifarlab.train.loop import train

    recipe, overrides = runs[name]
    overrides = {"system.threads": 1, **overrides}
    quiet = {"progress": False, "log": lambda s: None}
    if not name.endswith("-resumed"):
        train(recipe, out_dir=out, data=data, overrides=overrides, **quiet)
        return fingerprint(out)

    import cifarlab.train.loop as loop

    class Stop(Exception):
        pass

    real_save, stopped = loop.save, []

    def save_then_stop(state, ctx):
        path = real_save(state, ctx)
        if 0 < state.step < ctx.total:
            stopped.append(state.step)
            raise Stop
        return path

    loop.save = save_then_stop
    try:
        train(recipe, out_dir=out, data=data, overrides=overrides, **quiet)
    except Stop:
        pass
    finally:
        loop.save = real_save
    assert stopped, f"{name}: no checkpoint before the end to stop at"
    train(out_dir=out, data=data, resume=True, **quiet)
    return {"stopped_at_step": stopped[0], **fingerprint(out)}


def child_fingerprint(name: str, sample: bool = False, code: Path | None = None) -> dict:
    """The fingerprint of RUNS[name] (with PINNED_AVX2), or of SAMPLE_RUNS[name] (natively),
    trained in a fresh process, untouched by what other tests set, on the cifarlab under
    ``code`` (default: the one this process imports)."""
    if code is None:
        import cifarlab

        code = Path(cifarlab.__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k not in PINNED_AVX2}
    env.update({} if sample else PINNED_AVX2, PYTHONPATH=str(code))
    out = subprocess.run(
        [sys.executable, str(HERE), "--fingerprint", name, *(["--sample"] if sample else [])],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def record_for(path: Path, kind: dict) -> dict | None:
    """The record in ``path`` whose machine agrees with ``kind`` on each of its keys, or None."""
    records = json.loads(path.read_text())["records"]
    return next(
        (r for r in records if all(r["machine"].get(k) == v for k, v in kind.items())), None
    )


def regularisers_record() -> dict | None:
    """The unchanged_runs.json record taken on this CPU's maker with this torch, or None."""
    return record_for(RECORD, {"torch": torch.__version__, "cpu_vendor": cpu_vendor()})


def sample_record() -> dict | None:
    """The sample_runs.json record taken on this machine's kind, or None."""
    return record_for(SAMPLE_RECORD, machine_kind())


def can_pin_avx2() -> bool:
    return torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")


@pytest.mark.parametrize("name", list(RUNS))
def test_an_existing_recipe_trains_bit_identically_to_before_the_regularisers(name):
    records = json.loads(RECORD.read_text())["records"]
    # Pinning needs AVX2; the record needs its torch. Anything else fails: it checks nothing.
    assert can_pin_avx2(), f"needs an x86 CPU with AVX2 or AVX-512, this is {machine()}"
    torches = sorted({r["machine"]["torch"] for r in records})
    assert torch.__version__ in torches, (
        f"records taken with torch {', '.join(torches)}, this is {torch.__version__}: "
        "rewrite them (see this file's docstring)"
    )
    record = regularisers_record()
    if record is None:
        pytest.skip(
            f"unchanged_runs.json has no record for a {cpu_vendor()} CPU: write one on this "
            "machine from 933cad3's code (see this file's docstring)"
        )
    assert child_fingerprint(name) == record["runs"][name], (
        f"{name} trains differently from 933cad3 on a {record['machine']['written_on']}; if "
        "933cad3's own code gives this machine the same fingerprint as today's, the difference "
        "is the machine's kernels (this file's docstring): write a record for it"
    )


@pytest.mark.parametrize("name", list(SAMPLE_RUNS))
def test_a_shipped_recipe_trains_bit_identically_to_its_record(name):
    record = sample_record()
    if record is None:
        pytest.skip(
            f"sample_runs.json has no record for this machine kind {machine_kind()}: "
            "write one on the code to compare against (see this file's docstring)"
        )
    assert child_fingerprint(name, sample=True) == record["runs"][name]


def _write(which: str, code: Path | None) -> None:
    if which == "regularisers":
        runs = {name: child_fingerprint(name, code=code) for name in RUNS}
        where = {
            "torch": torch.__version__,
            "cpu_capability": "AVX2",
            "pinned": dict(PINNED_AVX2),
            "cpu_vendor": cpu_vendor(),
            "written_on": f"{cpu_name()} ({machine()['cpu_capability']})",
        }
        kind = ("torch", "cpu_vendor")
        records = [
            r
            for r in json.loads(RECORD.read_text())["records"]
            if any(r["machine"][k] != where[k] for k in kind)
        ]
        records.append({"machine": where, "runs": runs})
        RECORD.write_text(json.dumps({"records": records}, indent=1) + "\n")
        print(f"wrote {RECORD} for a {where['cpu_vendor']} CPU")
        return
    from cifarlab.runtime import git_commit

    runs = {name: child_fingerprint(name, sample=True) for name in SAMPLE_RUNS}
    kind = machine_kind()
    records = [
        r
        for r in (
            json.loads(SAMPLE_RECORD.read_text())["records"] if SAMPLE_RECORD.exists() else []
        )
        if r["machine"] != kind
    ]
    records.append({"machine": kind, "cpu_name": cpu_name(), "code": git_commit(), "runs": runs})
    SAMPLE_RECORD.write_text(json.dumps({"records": records}, indent=1) + "\n")
    print(f"wrote {SAMPLE_RECORD} for {kind}")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--fingerprint"] and args[2:] in ([], ["--sample"]):
        from cifarlab.data import load_cifar10

        runs = SAMPLE_RUNS if args[2:] else RUNS
        with tempfile.TemporaryDirectory() as tmp:
            fp = run_fingerprint(args[1], Path(tmp) / "run", load_cifar10("sample"), runs)
        print(json.dumps(fp))
    elif args == ["--write", "sample"]:
        _write("sample", None)
    elif args[:3] == ["--write", "regularisers", "--code"] and len(args) == 4:
        _write("regularisers", Path(args[3]).resolve())
    else:
        sys.exit(
            "usage: test_unchanged_by_regularisers.py --write regularisers --code SRC"
            " | --write sample"
        )
