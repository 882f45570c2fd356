"""The ledger itself: data loss is measured for every case, simulated faults are counted
apart, and the report refuses a ledger from a partial run.

These tests use a ledger of their own (not the session's), so they add no rows to
docs/RELIABILITY.md.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
from relhelpers import CATEGORIES, Ledger

ROOT = Path(__file__).resolve().parents[2]


def _report():
    spec = importlib.util.spec_from_file_location(
        "reliability_report", ROOT / "scripts" / "reliability_report.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _results(ledger: Ledger) -> dict:
    return {
        "date": "today",
        "duration_s": 1.0,
        "machine": dict.fromkeys(
            ("hostname", "platform", "processor", "cpus", "python", "torch"), "x"
        ),
        "tests": {"passed": 1, "failed": 0, "skipped": 0},
        "categories": {k: {"what": c.what, "expected": c.expected} for k, c in CATEGORIES.items()},
        "summary": ledger.summary(),
        "cases": ledger.cases,
    }


def test_a_case_that_measures_no_loss_fails_instead_of_counting_zero():
    ledger = Ledger()
    with pytest.raises(AssertionError, match="data loss was not measured"):
        with ledger.case("kill", "nothing compared"):
            pass
    assert ledger.cases[0]["handled"] is False


def test_a_guarded_file_rewritten_in_place_is_lost_though_its_size_and_mtime_stay(tmp_path):
    users = tmp_path / "notes.txt"
    users.write_bytes(b"the user's notes\n")
    st = users.stat()
    ledger = Ledger()
    with pytest.raises(AssertionError, match="notes.txt"):
        with ledger.case("user_paths", "a command rewrites the file", guard=[tmp_path]):
            users.write_bytes(b"the user's NOTES\n")  # same size
            os.utime(users, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime
    row = ledger.cases[0]
    assert row["lost"] and not row["handled"] and row["measured"] == ["snapshot"]


def test_a_change_the_case_allows_is_not_a_loss_and_one_beside_it_is(tmp_path):
    ledger = Ledger()
    with ledger.case("evaluate_outputs", "writes only its own file", guard=[tmp_path]) as case:
        case.allow(tmp_path / "evaluation.json")
        (tmp_path / "evaluation.json").write_text("{}")
    assert ledger.cases[-1]["handled"] and not ledger.cases[-1]["lost"]
    with pytest.raises(AssertionError, match="stray"):
        with ledger.case("evaluate_outputs", "writes beside it", guard=[tmp_path]) as case:
            case.allow(tmp_path / "evaluation.json")
            (tmp_path / "stray").write_text("x")
    assert ledger.cases[-1]["lost"]


def test_a_guarded_path_outside_that_appears_is_lost(tmp_path):
    outside = tmp_path / "escape.txt"  # absent before: recorded as absent
    ledger = Ledger()
    with pytest.raises(AssertionError, match="escape.txt"):
        with ledger.case("hostile_tarball", "member lands outside", guard=[outside]):
            outside.write_text("pwned")
    assert ledger.cases[0]["lost"]


def test_a_check_counts_a_loss_no_snapshot_shows():
    ledger = Ledger()
    with ledger.case("fuzz_batch", "read different data") as case:
        case.check(True, "read back vs the original")
    row = ledger.cases[0]
    assert row["lost"] and not row["handled"] and row["losses"] == ["read back vs the original"]


def test_simulated_and_not_applicable_cases_are_counted_apart():
    ledger = Ledger()
    with ledger.case("user_paths", "read-only disk, simulated") as case:
        case.simulated = True
        case.check(False, "snapshot in the child")
    with ledger.case("user_paths", "read-only disk, real mount") as case:
        case.check(False, "snapshot in the child")
    with ledger.case("recipe_bounds", "checked in memory", na="no file read or written"):
        pass
    ledger.not_run("user_paths", "a device node", "needs root")
    s = ledger.summary()
    assert (s["user_paths"]["tried"], s["user_paths"]["simulated"]) == (2, 1)
    assert s["user_paths"]["simulated_handled"] == 1 and s["user_paths"]["not_run"] == 1
    assert (s["recipe_bounds"]["na"], s["recipe_bounds"]["measured"]) == (1, 0)


def test_the_report_refuses_a_ledger_from_a_partial_run(tmp_path):
    report = _report()
    ledger = Ledger()
    for key, cat in CATEGORIES.items():  # a full run, but one row a case short
        for i in range(cat.expected - (key == "fuzz_batch")):
            with ledger.case(key, f"case {i}") as case:
                case.check(False, "compared")
    results = tmp_path / "results.json"
    results.write_text(json.dumps(_results(ledger)))
    out = tmp_path / "RELIABILITY.md"
    assert report.main(["--results", str(results), "--out", str(out)]) == 3
    assert not out.exists()
    assert report.incomplete(_results(ledger)) == [
        "fuzz_batch: 149 cases recorded, 150 expected (relhelpers.CATEGORIES)"
    ]

    ledger.not_run("fuzz_batch", "the last one", "cannot run here")  # accounted for: complete
    results.write_text(json.dumps(_results(ledger)))
    assert report.main(["--results", str(results), "--out", str(out)]) == 0
    text = out.read_text()
    assert "| 149 | 149 | 0 | 149 of 149 | 0 (0) | 1 |" in text
    assert "- fuzz_batch: the last one: cannot run here" in text
