"""Ctrl-C stops a long report at once: exit 130, one line on stderr, no worker left behind
(issue 13, item 1: the sweep's pool used to wait for every queued job)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# From Ctrl-C to exit: terminating two workers and unwinding takes well under a second; the
# margin covers a loaded 2-core machine.
EXIT_WITHIN_S = 5.0


def _children(pid: int) -> set:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return {int(c) for c in f.read().split()}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("to_group", [True, False], ids=["ctrl-c-at-a-terminal", "kill-int-to-the-parent"])
def test_ctrl_c_on_a_long_report_exits_130_with_one_line_and_no_orphaned_worker(to_group):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "theory.report", "--instances", "100000", "--symbolic", "off",
                             "--counterexamples", "skip"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            # a terminal's default SIGINT, even when pytest itself runs where SIGINT is
                            # ignored (nohup, a background job): Python then would not install its handler
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        workers = set()
        while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            workers = _children(proc.pid)
        assert len(workers) == 2, "the sweep did not start its two workers"
        time.sleep(1.0)                      # the workers are busy with their jobs
        sent = time.monotonic()
        if to_group:
            os.killpg(proc.pid, signal.SIGINT)   # what a terminal's Ctrl-C does
        else:
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130
    assert took < EXIT_WITHIN_S, f"exit took {took:.1f} s after Ctrl-C"
    lines = [line for line in err.replace("\r", "\n").splitlines() if line and not line.startswith("report: ")]
    assert lines == ["interrupted"], err
    assert out == ""
    time.sleep(0.2)
    assert not [w for w in workers if _alive(w)], "a worker outlived the report"
