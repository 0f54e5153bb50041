"""app/forks.py: side jobs and the deferred child respond hands the work after the scan to."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from smbsentry.app.forks import Deferred, side

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the children need fork (POSIX)")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_the_deferred_child_warms_first_then_runs_the_message_and_returns_its_status(tmp_path):
    marks = tmp_path / "marks"

    def warm():
        marks.write_text("warm\n")

    def run(message: str) -> int:
        with marks.open("a") as fh:
            fh.write(f"run {message}\n")
        return 7

    later = Deferred.start(warm, run)
    assert later.go("scan 42") == 7
    assert marks.read_text().splitlines() == ["warm", "run scan 42"]
    assert _gone(later.pid)


def test_a_cancelled_child_never_runs_and_is_reaped(tmp_path):
    ran = tmp_path / "ran"
    later = Deferred.start(lambda: time.sleep(5), lambda m: ran.write_text(m) or 0)
    started = time.monotonic()
    later.cancel()
    assert time.monotonic() - started < 4  # killed, not waited for its warm-up
    assert not ran.exists()
    with pytest.raises(ChildProcessError):
        os.waitpid(later.pid, os.WNOHANG)  # reaped: no zombie left


def test_a_child_killed_by_a_signal_is_minus_the_signal_and_an_exit_130_stays_130():
    """Exit status 130 (the child caught Ctrl-C and said so) and death by SIGINT must not look alike."""
    later = Deferred.start(lambda: None, lambda m: os.kill(os.getpid(), signal.SIGKILL) or 0)
    assert later.go("x") == -signal.SIGKILL
    assert Deferred.start(lambda: None, lambda m: 130).go("x") == 130


def test_an_exception_in_the_child_is_status_1_with_its_traceback_on_stderr(capfd):
    def run(message: str) -> int:
        raise RuntimeError("broken writer")

    assert Deferred.start(lambda: None, run).go("x") == 1
    assert "RuntimeError: broken writer" in capfd.readouterr().err


def test_the_child_ends_when_the_parent_dies_without_a_word(tmp_path):
    """A parent killed during the scan closes the pipe: the child must not wait for ever."""
    pidfile = tmp_path / "child.pid"
    code = textwrap.dedent(f"""
        import os, time
        from smbsentry.app.forks import Deferred
        later = Deferred.start(lambda: None, lambda m: 0)
        open({str(pidfile)!r}, "w").write(str(later.pid))
        time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 30
    while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(pidfile.read_text())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)  # orphaned children are reaped by init once they exit
    assert _gone(child) or Path(f"/proc/{child}/stat").read_text().split(")")[1].split()[0] == "Z"


def test_a_side_job_failure_reaches_the_parent_with_its_own_reason(tmp_path):
    def job():
        raise OSError(28, "No space left on device")

    wait = side(job, "the plan")
    with pytest.raises(OSError, match="the plan: No space left on device"):
        wait()


def test_ctrl_c_during_the_wait_is_the_parents_not_the_childs(tmp_path):
    """The child ignores SIGINT until it is told to run: a Ctrl-C during the scan stops the scan (the parent's
    to handle), not the writer waiting for it."""
    done, warm = tmp_path / "done", tmp_path / "warm"
    later = Deferred.start(lambda: warm.write_text("1"), lambda m: 0 if done.write_text(m) else 0)
    deadline = time.monotonic() + 30
    while not warm.exists() and time.monotonic() < deadline:
        time.sleep(0.02)  # warm() runs once SIGINT is ignored
    os.kill(later.pid, signal.SIGINT)
    time.sleep(0.2)
    assert later.go("after") == 0
    assert done.read_text() == "after"


def test_the_deferred_child_prepares_at_a_lower_priority_and_works_at_its_own(tmp_path):
    """While the parent scans, the child's warm-up and read-ahead give way to it; once the parent waits, the child
    works at the priority it started with where it may raise it again (root, CAP_SYS_NICE), else at the lower one."""
    seen = tmp_path / "seen"
    start = os.getpriority(os.PRIO_PROCESS, 0)

    def warm():
        seen.write_text(f"{os.getpriority(os.PRIO_PROCESS, 0)}\n")

    def run(message: str) -> int:
        with seen.open("a") as fh:
            fh.write(f"{os.getpriority(os.PRIO_PROCESS, 0)}\n")
        return 0

    assert Deferred.start(warm, run).go("x") == 0
    warm_prio, run_prio = (int(x) for x in seen.read_text().split())
    assert warm_prio == min(start + 10, 19) and warm_prio > start or start == 19
    if os.geteuid() == 0:
        assert run_prio == start
    else:
        assert start <= run_prio <= warm_prio
    assert os.getpriority(os.PRIO_PROCESS, 0) == start  # the parent's own priority is untouched
