"""The job runner that studies and tune share (cifarlab.jobs): its death rules and policy.

A worker that dies in a job, and a job that fails, come back as that job's failure while the
other jobs go on; when the caller stops, no worker is left running."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from cifarlab.errors import CifarlabError
from cifarlab.jobs.directory import JobLog, start_dir
from cifarlab.jobs.pool import cpu_count, plan_jobs, run_jobs


def job(what: str) -> dict:
    """A job for the pool (module level: it travels to spawned workers by name)."""
    if what == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    if what == "bad":
        raise CifarlabError("bad job")
    if what.startswith("sleep:"):
        Path(what[len("sleep:") :]).write_text(str(os.getpid()))
        time.sleep(60)
    return {"pid": os.getpid()}


def test_a_killed_worker_fails_its_job_and_the_others_go_on():
    started: list[str] = []
    done: dict[str, dict] = {}
    jobs = ["a", "die", "b", "bad", "c"]
    run_jobs(jobs, job, 2, on_start=started.append, on_done=done.__setitem__)
    assert started == jobs  # handed out in order, each once
    assert done["die"] == {"error": "its worker process was killed (signal 9)"}
    assert done["bad"] == {"error": "bad job"}
    pids = {done[k]["pid"] for k in ("a", "b", "c")}
    assert os.getpid() not in pids  # in worker processes
    assert len(pids) <= 3


def test_one_worker_runs_the_jobs_in_this_process():
    done: dict[str, dict] = {}
    run_jobs(["a", "bad"], job, 1, on_start=lambda j: None, on_done=done.__setitem__)
    assert done == {"a": {"pid": os.getpid()}, "bad": {"error": "bad job"}}


def _state(pid: int) -> str:
    """A process's state letter ("Z": ended, not yet reaped), or "gone"."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return "gone"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_when_the_caller_stops_no_worker_is_left_running(tmp_path):
    marker = tmp_path / "pid"

    def stop(what: str, result: dict) -> None:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_jobs(["a", f"sleep:{marker}"], job, 2, on_start=lambda j: None, on_done=stop)
    pid = int(marker.read_text())
    deadline = time.monotonic() + 30
    while _state(pid) not in ("Z", "gone") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _state(pid) in ("Z", "gone")


def test_policy_one_job_at_a_time_off_the_cpu_and_threads_shared_on_it():
    lines: list[str] = []
    plan = plan_jobs(2, None, "cpu", threads_fixed=False, noun="run", log=lines.append)
    assert plan.jobs == 2 and plan.runtime == {"system.threads": max(cpu_count() // 2, 1)}
    plan = plan_jobs(3, "cpu", "auto", threads_fixed=True, noun="trial", log=lines.append)
    assert plan.jobs == 3 and plan.runtime == {"system.device": "cpu"} and not lines


def test_start_dir_refuses_another_definition_and_a_failed_start_leaves_nothing(tmp_path):
    import json

    path = tmp_path / "a" / "b" / "def.json"

    def start(definition: dict, fail: bool = False) -> bool:
        with start_dir(
            path,
            definition,
            what="thing",
            error=CifarlabError,
            read=lambda p: json.loads(p.read_text()),
            differ=lambda a, b: next((k for k in sorted(a) if a[k] != b.get(k)), None),
            write=lambda: path.write_text(json.dumps(definition)),
        ) as resumed:
            (path.parent / "made").write_text("x")
            if fail:
                raise CifarlabError("no storage")
        return resumed

    with pytest.raises(CifarlabError, match="no storage"):
        start({"x": 1}, fail=True)
    assert not (tmp_path / "a").exists()  # the folders the start made went too
    assert start({"x": 1}) is False and path.is_file()
    assert start({"x": 1}) is True
    with pytest.raises(CifarlabError, match=r"def.json: holds another thing \(x differs\)"):
        start({"x": 2})
    log = JobLog(tmp_path / "a" / "x.log", lambda line: None)
    log("one")
    log("two")
    lines = (tmp_path / "a" / "x.log").read_text().splitlines()
    assert [x.split("] ", 1)[1] for x in lines] == ["one", "two"]
    assert all(f"[{os.getpid()}]" in x for x in lines)
