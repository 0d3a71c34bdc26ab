"""The bindings under threads: calls that wait on the disk let other threads run, and clusters
work (and are dropped) on any thread.

Waiting is checked by counting what another thread gets done meanwhile, against floors far
below what it does when the GIL is released and far above what it does when it is held: no
assertion depends on how fast the machine is."""

from __future__ import annotations

import gc
import json
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import rhizo

# An LD_PRELOAD shim that makes every fsync and fdatasync sleep SLOW_US microseconds first.
SLOW_SYNC_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

static void slow_down(void) {
    const char *text = getenv("SLOW_US");
    usleep(text ? (useconds_t)atoi(text) : 50000);
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    slow_down();
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    slow_down();
    return real(fd);
}
"""

# Runs COMMITS commits, each waiting on a sync slowed to SLOW_US, while a thread ticks every
# millisecond; prints how many ticks fell inside the commits and how long they took.
SLOW_COMMITS = """
import json, sys, threading, time
import rhizo

engine = rhizo.open(sys.argv[1], sync="every_commit")
ticks = []
stop = threading.Event()

def ticker():
    while not stop.is_set():
        ticks.append(time.perf_counter())
        time.sleep(0.001)

thread = threading.Thread(target=ticker)
thread.start()
time.sleep(0.05)
start = time.perf_counter()
for _ in range(int(sys.argv[2])):
    with engine.transaction(mode="coordination_free") as tx:
        tx.increment("counters", "c", 1)
end = time.perf_counter()
stop.set()
thread.join()
inside = sum(1 for t in ticks if start <= t <= end)
print(json.dumps({"ticks": inside, "seconds": end - start, "count": engine.read("counters", "c")}))
"""

COMMITS = 10
SLOW_US = 50_000


def test_a_commit_waiting_on_a_slow_sync_lets_other_threads_run(tmp_path: Path) -> None:
    compiler = shutil.which("cc") or shutil.which("gcc")
    assert compiler is not None, "a C compiler builds the slow-sync shim"
    source = tmp_path / "slowsync.c"
    source.write_text(SLOW_SYNC_C)
    shim = tmp_path / "slowsync.so"
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-o", str(shim), str(source), "-ldl"],
        check=True,
        timeout=120,
    )
    env = {"LD_PRELOAD": str(shim), "SLOW_US": str(SLOW_US), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", SLOW_COMMITS, str(tmp_path / "data"), str(COMMITS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(done.stdout)
    assert report["count"] == COMMITS
    # The shim worked: every commit waited at least one slowed sync.
    assert report["seconds"] >= COMMITS * SLOW_US / 1e6
    # Released, the ticker runs about once a millisecond through every wait (~450 ticks
    # here); held, it runs only between two commits (one or two ticks each).
    assert report["ticks"] >= 5 * COMMITS, report


@contextmanager
def ticking() -> Iterator[list[float]]:
    """A thread that records a tick every millisecond while the block runs."""
    ticks: list[float] = []
    stop = threading.Event()

    def tick() -> None:
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    thread = threading.Thread(target=tick)
    thread.start()
    try:
        time.sleep(0.02)
        yield ticks
    finally:
        stop.set()
        thread.join(timeout=60)


def test_compacting_a_large_state_does_not_stall_other_threads(tmp_path: Path) -> None:
    engine = rhizo.open(tmp_path, sync="none")
    rows = [("increment", "counters", f"r{i}", "value", 1) for i in range(200_000)]
    assert engine.commit_batch(rows, ops_per_transaction=1000) == 200
    with ticking() as ticks:
        start = time.perf_counter()
        engine.compact()
        end = time.perf_counter()
    inside = sum(1 for t in ticks if start <= t <= end)
    # Held, the GIL lets the ticker in at most once (as the call starts); released, it ticks
    # through the whole rewrite of 200 000 rows.
    assert inside >= 5, (inside, end - start)
    assert engine.read("counters", "r199999") == 1
    engine.close()


def in_thread(work):  # type: ignore[no-untyped-def]
    """Runs `work()` on another thread; returns its result or re-raises what it raised
    (any BaseException: a PanicException would escape `except Exception`)."""
    out: dict[str, object] = {}

    def run() -> None:
        try:
            out["value"] = work()
        except BaseException as err:
            out["error"] = err

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive()
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out["value"]


def test_a_cluster_is_used_from_any_thread() -> None:
    cluster = rhizo.simulate(3, seed=1)
    node = cluster.node(0)

    def commit() -> int:
        with node.transaction(mode="coordination_free") as tx:
            tx.increment("counters", "x", 1)
        return node.read("counters", "x")

    assert in_thread(commit) == 1
    assert in_thread(lambda: cluster.read(0, "counters", "x")) == 1
    in_thread(lambda: cluster.run_until_quiescent(1_000))
    assert cluster.read(2, "counters", "x") == 1


def test_a_cluster_made_on_one_thread_is_dropped_on_another() -> None:
    made = in_thread(lambda: rhizo.simulate(2, seed=2))
    root = Path(made.root)
    assert root.exists()
    del made
    gc.collect()
    # Dropped here, on the main thread: its temporary directory went with it.
    assert not root.exists()


def test_replica_and_round_clusters_are_used_from_any_thread() -> None:
    schema = rhizo.Schema({"counters": {"value": ("ADD", "integer")}})
    replicas = rhizo.SimulationBuilder().nodes(2).seed(3).build(schema)

    def commit() -> object:
        tx = rhizo.AlgebraicTransaction()
        tx.increment("counters", "c", "value", 2)
        replicas.commit_on_node(0, tx)
        replicas.run_until_quiescent(1_000)
        return replicas.read(1, "counters", "c", "value")

    assert in_thread(commit) == 2
    rounds = in_thread(lambda: rhizo.PySimulatedCluster(3))
    assert rounds.num_nodes == 3  # made there, used and dropped here


def test_threads_committing_at_once_all_count() -> None:
    engine = rhizo.open(None)
    cluster = rhizo.simulate(2, seed=4)
    per_thread = 50

    def work(index: int) -> None:
        for _ in range(per_thread):
            with engine.transaction(mode="coordination_free") as tx:
                tx.increment("counters", "c", 1)
            with cluster.node(index % 2).transaction(mode="coordination_free") as tx:
                tx.increment("counters", "c", 1)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert engine.read("counters", "c") == 4 * per_thread
    cluster.run_until_quiescent(5_000)
    assert [cluster.read(n, "counters", "c") for n in range(2)] == [4 * per_thread] * 2


# The child: a long run, interrupted by SIGINT from the parent; then the cluster must still
# commit and converge. SIGINT's default handler is installed explicitly: a child started from
# a background job would otherwise inherit SIGINT ignored.
INTERRUPTED_RUN = textwrap.dedent(
    """
    import signal, sys, time
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import rhizo

    kind, run = sys.argv[1], sys.argv[2]
    schema = rhizo.Schema({"counters": {"value": ("ADD", "integer")}})
    if kind == "replicas":
        cluster = rhizo.SimulationBuilder().nodes(3).seed(5).build(schema)
        tx = rhizo.AlgebraicTransaction()
        tx.increment("counters", "c", "value", 1)
        cluster.commit_on_node(0, tx)
    else:
        cluster = rhizo.simulate(3, seed=5, schema=schema)
        with cluster.node(0).transaction(mode="coordination_free") as tx:
            tx.increment("counters", "c", 1)
    # Node 0 cut off: the cluster never settles, so the waits below last until interrupted.
    cluster.isolate(0)
    try:
        print("ready", flush=True)
        getattr(cluster, run)(1e12)
        print("finished", flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    cluster.heal()
    if kind == "replicas":
        tx = rhizo.AlgebraicTransaction()
        tx.increment("counters", "c", "value", 1)
        cluster.commit_on_node(1, tx)
        cluster.run_until_quiescent(10_000)
        print("usable", cluster.read(2, "counters", "c", "value"), flush=True)
    else:
        with cluster.node(1).transaction(mode="coordination_free") as tx:
            tx.increment("counters", "c", 1)
        cluster.run_until_quiescent(10_000)
        print("usable", cluster.node(2).read("counters", "c"), flush=True)
    """
)


@pytest.mark.parametrize(
    ("kind", "run"),
    [
        ("engines", "run_for"),
        ("engines", "run_until_quiescent"),
        ("replicas", "run_for"),
        ("replicas", "run_until_quiescent"),
        ("replicas", "run_until_converged"),
    ],
)
def test_ctrl_c_interrupts_a_long_run_and_leaves_the_cluster_usable(kind: str, run: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED_RUN, kind, run],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.5)  # well inside the run, which would last for days of wall time
        child.send_signal(signal.SIGINT)
        # Promptly: a run that ignored the signal would go on for days.
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
    assert child.returncode == 0, err
    # Node 0's commit reaches node 2 once healed, beside node 1's.
    assert out.split("\n")[:2] == ["interrupted", "usable 2"], (out, err)
