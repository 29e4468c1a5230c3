"""Executors: order, recorded failures, per-item timeouts, a dying worker, and the Protocol."""

from __future__ import annotations

import math
import os
import time

import pytest

from harness.executors import default_executor
from harness.parallel import (
    Executor,
    Outcome,
    ProcessExecutor,
    SerialExecutor,
    format_error,
)


def test_serial_records_errors_and_timeouts():
    executor = SerialExecutor(progress=False)
    outcomes = executor.map(math.sqrt, [4.0, -1.0], timeout_s=5)
    assert outcomes[0] == Outcome(2.0, None, outcomes[0].seconds)
    assert outcomes[1].error == "ValueError: math domain error" and not outcomes[1].ok
    slow = executor.map(time.sleep, [3.0], timeout_s=0.2)[0]
    assert slow.error == "timeout after 0.2 s" and slow.seconds < 2


@pytest.fixture(scope="module")
def pool():
    with ProcessExecutor(2, progress=False) as executor:
        yield executor


def test_process_pool_keeps_order(pool):
    outcomes = pool.map(math.factorial, list(range(12)), timeout_s=30)
    assert [o.value for o in outcomes] == [math.factorial(i) for i in range(12)]


def test_process_pool_timeout_error_and_death(pool):
    # time.sleep(30) overruns; sqrt(-1) raises; os._exit kills its worker: each is recorded, the rest still run
    items = [(time.sleep, 30.0), (math.sqrt, -1.0), (os._exit, 3), (math.sqrt, 9.0)]
    outcomes = [pool.map(fn, [arg], timeout_s=1.5)[0] for fn, arg in items]
    assert outcomes[0].error == "timeout after 1.5 s"
    assert outcomes[1].error == "ValueError: math domain error"
    assert outcomes[2].error.startswith("worker died")
    assert outcomes[3].value == 3.0
    mixed = pool.map(time.sleep, [0.0, 30.0, 0.0, 0.0], timeout_s=1.5)
    assert [o.error for o in mixed] == [None, "timeout after 1.5 s", None, None]


def test_unpicklable_item_is_a_recorded_failure(pool):
    outcomes = pool.map(len, [[1, 2], lambda: None, "abc"], timeout_s=10)
    assert outcomes[0].value == 2 and outcomes[2].value == 3
    assert outcomes[1].error.startswith("cannot send to worker")


def test_protocol_and_factory():
    assert isinstance(SerialExecutor(), Executor) and isinstance(ProcessExecutor(1), Executor)
    assert isinstance(default_executor(1), SerialExecutor)
    assert isinstance(default_executor(2), ProcessExecutor)
    assert ProcessExecutor().workers == (os.cpu_count() or 1)
    assert format_error(KeyError("x")) == "KeyError: 'x'"
    assert SerialExecutor().map(abs, []) == [] and ProcessExecutor(2).map(abs, []) == []


def test_workers_end_when_the_pool_owner_is_killed(tmp_path):
    """A pool whose owner dies (SIGKILL: no chance to close it) leaves no worker running on."""
    import signal
    import subprocess
    import sys
    import time

    psutil = pytest.importorskip("psutil")
    script = tmp_path / "owner.py"
    script.write_text(
        "import time\n"
        "from harness.parallel import ProcessExecutor\n"
        "if __name__ == '__main__':\n"
        "    with ProcessExecutor(2, progress=False) as pool:\n"
        "        pool.map(time.sleep, [60, 60], timeout_s=None)\n"
    )
    owner = subprocess.Popen([sys.executable, str(script)])
    try:
        deadline = time.monotonic() + 60
        workers = []
        while len(workers) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
            workers = [p for p in psutil.Process(owner.pid).children(recursive=True) if "spawn_main" in " ".join(p.cmdline())]
        assert len(workers) == 2, "the pool did not start its workers"
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        gone, alive = psutil.wait_procs(workers, timeout=15)
        assert not alive, f"workers still running after their owner died: {[p.pid for p in alive]}"
    finally:
        if owner.poll() is None:
            owner.kill()


def test_a_worker_whose_owner_died_before_it_started_watching_exits(tmp_path):
    """The owner's pid is handed to the worker: an owner killed while its worker was still importing has already
    left the worker to another parent, which the worker must not take for its owner."""
    import subprocess
    import sys
    import time

    code = ("import os, time\n"
            "from harness.parallel import _exit_with_parent\n"
            "_exit_with_parent(os.getppid() + 10_000_000, interval_s=0.1)  # not this process's parent: gone\n"
            "time.sleep(60)\n")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], timeout=60)
    assert done.returncode == 1 and time.monotonic() - started < 30
