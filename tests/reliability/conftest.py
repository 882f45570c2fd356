"""The reliability suite's ledger, its shared training runs, and process helpers.

Every fault or hostile input the suite tries is one *case*, recorded in a ledger by
category: tried, handled (behaved as promised: a clear cifarlab error, or a correct
result), and data lost, measured for every case (a before/after snapshot of the files
the case could harm, and comparisons such as "the resumed run equals the uninterrupted
one"; how to add a category and its cases is at the top of relhelpers.py). At the end
of the session the ledger is written as JSON to
$CIFARLAB_RELIABILITY_RESULTS (default: .pytest_cache/cifarlab-reliability.json), which
``scripts/reliability_report.py`` turns into docs/RELIABILITY.md.

The kill, lock, write-failure and non-finite tests train the same tiny recipe on the
bundled sample (seednet-improved: dropout, batch norm and augmentation all draw random
numbers, so an exact resume must restore every RNG); one uninterrupted reference run is
shared by all of them.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import pytest
import torch
from relhelpers import CATEGORIES, RESULTS_ENV, Ledger, run_cli, train_argv

_LEDGER = Ledger()
_OUTCOMES = {"passed": 0, "failed": 0, "skipped": 0}
_START = time.time()


@pytest.fixture(scope="session")
def ledger() -> Ledger:
    return _LEDGER


def pytest_runtest_logreport(report) -> None:
    if "tests/reliability/" not in report.nodeid.replace("\\", "/"):
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _OUTCOMES[report.outcome] = _OUTCOMES.get(report.outcome, 0) + 1


def pytest_sessionfinish(session, exitstatus) -> None:
    if not _LEDGER.cases:
        return
    path = os.environ.get(RESULTS_ENV) or str(
        Path(session.config.rootpath) / ".pytest_cache" / "cifarlab-reliability.json"
    )
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "duration_s": round(time.time() - _START, 1),
        "machine": {
            "hostname": platform.node(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "torch": str(torch.__version__),
        },
        "tests": dict(_OUTCOMES),
        "categories": {k: {"what": c.what, "expected": c.expected} for k, c in CATEGORIES.items()},
        "pytest_args": list(session.config.invocation_params.args),
        "summary": _LEDGER.summary(),
        "cases": _LEDGER.cases,
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    os.replace(tmp, path)


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory) -> Path:
    """The uninterrupted tiny run (a real `python -m cifarlab train`), shared by the suite."""
    root = tmp_path_factory.mktemp("reference")
    run = root / "run"
    child = run_cli(train_argv(run), root / "log.txt", fork=False)
    assert child.returncode == 0, child.output()[-3000:]
    assert (run / "metrics.json").is_file()
    return run
