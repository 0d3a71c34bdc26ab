"""The durability boundary seen from Python: one engine per data directory, group commits made
durable by their deadline without help, a failed write that is never read, and a simulated
crash that is a power loss.

Each test that needs a process of its own runs a short script with this interpreter and ends it
by its pid, whatever happens.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import rhizo


def run_script(code: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Runs `code` in a child interpreter (killed by its pid on timeout) and returns it."""
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = child.communicate(timeout=timeout)
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
    return subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)


def test_a_second_engine_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    first = rhizo.open(tmp_path, node_id="a")
    for _ in range(10):
        with first.transaction(mode="coordination_free") as tx:
            tx.increment("counters", "c", 1)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(rhizo.DirectoryLockedError) as refused:
        rhizo.open(tmp_path, node_id="a")
    assert str(tmp_path) in str(refused.value)
    assert isinstance(refused.value, rhizo.StorageError)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    first.close()
    assert rhizo.open(tmp_path, node_id="a").read("counters", "c") == 10


def test_a_group_commit_is_durable_by_its_deadline_without_help(tmp_path: Path) -> None:
    # Three commits half a second apart under a 2 ms group delay, then SIGKILL a second later,
    # with no flush, poll or close: every one of them was due long before the kill.
    script = """
        import os, sys, time
        import rhizo
        engine = rhizo.open(sys.argv[1], sync="group")
        for _ in range(3):
            with engine.transaction(mode="coordination_free") as tx:
                tx.increment("counters", "c", 1)
            time.sleep(0.5)
        print("durable", engine.is_durable(tx.outcome), flush=True)
        time.sleep(1)
        os.kill(os.getpid(), 9)
    """
    done = run_script(script, str(tmp_path))
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert "durable True" in done.stdout
    assert rhizo.open(tmp_path, sync="group").read("counters", "c") == 3


def test_a_commit_that_fails_on_disk_is_never_read(tmp_path: Path) -> None:
    # A file-size limit makes the log's writes fail the way a full disk does.
    script = """
        import resource, signal, sys
        import rhizo
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        engine = rhizo.open(sys.argv[1], sync="every_commit")
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
        acked = 0
        try:
            while acked < 100_000:
                with engine.transaction(mode="coordination_free") as tx:
                    tx.add_to_set("users", "u", "tags", f"element-{acked:06d}-" + "x" * 200)
                    tx.increment("counters", "c", 1)
                acked += 1
        except rhizo.StorageError as failed:
            print("failed", type(failed).__name__, flush=True)
        print("acked", acked, flush=True)
        for call in (lambda: engine.read("counters", "c"),
                     lambda: engine.read("users", "u", "tags")):
            try:
                call()
                print("read allowed", flush=True)
            except rhizo.PoisonedError:
                print("read refused", flush=True)
    """
    done = run_script(script, str(tmp_path))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("\n")
    assert "failed StorageError" in lines, done.stdout
    acked = int(next(line for line in lines if line.startswith("acked ")).split()[1])
    assert acked > 10
    assert lines.count("read refused") == 2, done.stdout
    reopened = rhizo.open(tmp_path)
    assert reopened.read("counters", "c") == acked
    assert len(reopened.read("users", "u", "tags")) == acked


@pytest.mark.parametrize(("sync", "kept"), [("group", 0), ("none", 0), ("every_commit", 1)])
def test_a_simulated_crash_keeps_only_what_was_synced(sync: str, kept: int) -> None:
    cluster = rhizo.simulate(3, seed=1, sync=sync)
    with cluster.node(0).transaction(mode="coordination_free") as tx:
        tx.increment("counters", "pv", 1)
    assert tx.outcome is not None and tx.outcome.durable == (kept == 1)
    cluster.isolate(0)
    cluster.crash(0)
    cluster.restart(0)
    assert cluster.node(0).read("counters", "pv") == kept
