"""Networked nodes in Python processes (`rhizo.start_node`), clients of running nodes
(`rhizo.connect`), and their transactions under threads and asyncio. Every node listens on
127.0.0.1; every child process is ended by pid, and every wait is bounded."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from net_helpers import certificates, children, free_ports, wait_until

import rhizo


@pytest.fixture(autouse=True)
def _insecure_is_asked_for() -> Iterator[None]:
    """These tests run insecure on loopback on purpose: its warning is expected."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="rhizo .* insecure", category=UserWarning)
        yield


def members(names: list[str]) -> dict[str, str]:
    return {name: f"127.0.0.1:{port}" for name, port in zip(names, free_ports(len(names)))}


def start(
    name: str, addresses: dict[str, str], data_dir: Path | None = None, **kw: Any
) -> rhizo.Node:
    peers = {n: a for n, a in addresses.items() if n != name}
    return rhizo.start_node(
        data_dir, name, listen=addresses[name], peers=peers, insecure=True, **kw
    )


@contextmanager
def three_nodes_and_a_client() -> Iterator[tuple[list[rhizo.Node], Any]]:
    """Nodes n1, n2 and n3 in this process, and a client of n3's listener; all closed on the
    way out, whatever the test did."""
    addresses = members(["n1", "n2", "n3"])
    nodes = [
        start(name, addresses, client_listen="127.0.0.1:0" if name == "n3" else None)
        for name in addresses
    ]
    try:
        address = nodes[2].client_address
        assert address is not None
        client = rhizo.connect(address, insecure=True)
        try:
            yield nodes, client
        finally:
            client.close()
    finally:
        for node in nodes:
            node.close()


# A member of a three-process cluster: commits one increment, prints the fingerprint once it
# holds all three, and stays up (so the others can sync from it) until told to stop.
MEMBER = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
import rhizo

data_dir, name, addresses = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
peers = {n: a for n, a in addresses.items() if n != name}
node = rhizo.start_node(data_dir, name, listen=addresses[name], peers=peers, insecure=True)
with node.transaction(mode="coordination_free") as tx:
    tx.increment("counters", "c", 1)
print("committed", flush=True)
deadline = time.monotonic() + 60
while node.read("counters", "c") < len(addresses) and time.monotonic() < deadline:
    time.sleep(0.01)
print("converged", json.dumps([node.read("counters", "c"), node.fingerprint()]), flush=True)
sys.stdin.readline()
node.close()
print("closed", flush=True)
"""


def test_three_python_processes_with_networked_nodes_converge(tmp_path: Path) -> None:
    addresses = members(["n1", "n2", "n3"])
    argss = [
        ["-c", MEMBER, str(tmp_path / name), name, json.dumps(addresses)] for name in addresses
    ]
    with children(*argss) as nodes:
        for node in nodes:
            node.line_starting("committed")
        seen = [json.loads(node.line_starting("converged", timeout=90)) for node in nodes]
        for node in nodes:
            node.send("stop")
        for node in nodes:
            node.line_starting("closed")
            assert node.wait() == 0
    counts = [count for count, _ in seen]
    assert counts == [3, 3, 3]
    assert len({fingerprint for _, fingerprint in seen}) == 1, seen


def test_a_client_connected_to_one_node_sees_a_commit_made_on_another() -> None:
    addresses = members(["n1", "n2"])
    (client_port,) = free_ports(1)
    n1 = start("n1", addresses, client_listen=f"127.0.0.1:{client_port}")
    n2 = start("n2", addresses)
    try:
        assert n1.client_address == f"127.0.0.1:{client_port}"
        client = rhizo.connect(n1.client_address, insecure=True)
        assert client.node_id == rhizo.NodeId("n1")
        with n2.transaction(mode="coordination_free") as tx:
            tx.increment("counters", "c", 5)
        wait_until(lambda: client.read("counters", "c") == 5)
        # A client's commit, in turn, reaches the other node.
        with client.transaction(mode="coordination_free") as tx:
            tx.increment("counters", "c", 2)
        assert tx.state == "committed"
        wait_until(lambda: n2.read("counters", "c") == 7)
        wait_until(lambda: client.fingerprint() == n2.fingerprint())
        client.close()
        assert client.closed
    finally:
        n1.close()
        n2.close()


def test_a_linearizable_read_sees_a_put_acknowledged_on_another_node() -> None:
    with three_nodes_and_a_client() as ((n1, n2, n3), client):
        n1.declare_column("kv", "v", "REGISTER", "integer")
        for value in range(1, 4):
            with n1.transaction(mode="coordinated") as tx:
                tx.put("kv", "r", "v", value)
                tx.increment("counters", "c", 1)
            # Acknowledged on n1: every linearizable read that starts now sees it, on any node.
            assert n2.read("kv", "r", "v", consistency="linearizable") == value
            assert client.read("kv", "r", "v", consistency="linearizable") == value
            cells = [("kv", "r", "v"), ("counters", "c", "value")]
            assert n3.read_many(cells, consistency="linearizable") == [value, value]
            assert client.read_many(cells, consistency="linearizable") == [value, value]
        assert n2.read_many([]) == []
        with pytest.raises(rhizo.ConfigError) as unknown:
            n2.read("kv", "r", "v", consistency="strong")
        assert unknown.value.kind == "UnknownName"
        with pytest.raises(rhizo.UnknownCellError):
            client.read_many([("kv", "r", "v"), ("nowhere", "r", "v")], consistency="linearizable")


def test_a_read_after_a_commit_on_another_node_sees_it() -> None:
    with three_nodes_and_a_client() as ((n1, n2, _), client):
        for count in range(1, 11):
            with n1.transaction(mode="coordination_free") as tx:
                tx.increment("counters", "c", 1)
            assert tx.outcome is not None
            # Committed on n1 only: a read after it waits until the reading node holds it, and
            # nothing else writes the counter, so each sees exactly the commits made so far.
            assert n2.read("counters", "c", after=[tx.outcome]) == count
            assert client.read("counters", "c", after=[tx.outcome]) == count
            assert client.read_many([("counters", "c", "value")], after=[tx.outcome]) == [count]
        with pytest.raises(TypeError):
            n2.read("counters", "c", after=[1])


def test_errors_through_a_client_are_the_local_classes() -> None:
    with rhizo.start_node(None, "n1", insecure=True, client_listen="127.0.0.1:0") as node:
        address = node.client_address
        assert address is not None
        with rhizo.connect(address, insecure=True) as client:
            tx = client.transaction(mode="coordination_free")
            tx.put("counters", "c", "value", 3)
            with pytest.raises(rhizo.RequiresCoordinationError) as refused:
                tx.commit()
            assert refused.value.kind == "NotAlgebraic"
            assert tx.state == "failed" and not tx.retryable

            tx = client.transaction(mode="coordinated")
            tx.increment("nowhere", "r", 1)
            with pytest.raises(rhizo.UnknownCellError):
                tx.commit()

            # A register read in a coordinated transaction is validated by the log.
            client.declare_column("kv", "v", "REGISTER", "integer")
            with client.transaction(mode="coordinated") as tx:
                tx.put("kv", "r", "v", 1)
            stale = client.transaction(mode="coordinated")
            assert stale.read("kv", "r", "v") == 1
            stale.put("kv", "r", "v", 2)
            with node.transaction(mode="coordinated") as tx:
                tx.put("kv", "r", "v", 5)
            with pytest.raises(rhizo.ReadConflictError) as conflict:
                stale.commit()
            assert conflict.value.retryable and stale.retryable
            assert client.read("kv", "r", "v") == 5
        with pytest.raises(rhizo.StorageError):
            client.read("kv", "r", "v")
    with pytest.raises(rhizo.StorageError) as refused_connection:
        rhizo.connect(str(address), insecure=True, timeout=2)
    assert refused_connection.value.kind == "Connection"


def test_nodes_and_clients_over_tls_replicate_and_a_client_without_a_certificate_is_refused(
    tmp_path: Path,
) -> None:
    certificates(tmp_path, ["n1", "n2"], ["app"])
    addresses = members(["n1", "n2"])

    def tls(name: str) -> rhizo.Tls:
        return rhizo.Tls(tmp_path / "ca.crt", tmp_path / f"{name}.crt", tmp_path / f"{name}.key")

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # secure: no warning
        n1 = rhizo.start_node(
            None, "n1", listen=addresses["n1"], peers={"n2": addresses["n2"]}, tls=tls("n1"),
            client_listen="127.0.0.1:0",
        )  # fmt: skip
        n2 = rhizo.start_node(
            None, "n2", listen=addresses["n2"], peers={"n1": addresses["n1"]}, tls=tls("n2")
        )
    try:
        assert n1.client_address is not None
        with rhizo.connect(n1.client_address, tls=tls("app")) as client:
            with client.transaction(mode="coordination_free") as tx:
                tx.increment("counters", "c", 3)
            wait_until(lambda: n2.read("counters", "c") == 3)
        with pytest.raises(rhizo.StorageError) as refused:
            rhizo.connect(n1.client_address, tls=rhizo.Tls(tmp_path / "ca.crt"), timeout=5)
        assert refused.value.kind == "Connection"
    finally:
        n1.close()
        n2.close()


def test_settings_are_checked_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(rhizo.ConfigError, match="tls"):
        rhizo.start_node(tmp_path, "n1")
    with pytest.raises(rhizo.ConfigError, match="tick_msec"):
        rhizo.start_node(tmp_path, "n1", insecure=True, tick_msec=5)
    with pytest.raises(rhizo.ConfigError):
        rhizo.connect("127.0.0.1:1")
    with pytest.warns(UserWarning, match="insecure"):
        rhizo.start_node(tmp_path, "n1", insecure=True, tick_ms=5).close()
    # Nothing was left running: the directory opens again.
    rhizo.open(tmp_path, "n1").close()


def test_a_node_starts_from_a_configuration_file(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    config = tmp_path / "n1.toml"
    config.write_text(
        f'node_id = "n1"\ndata_dir = "data"\ninsecure = true\n'
        f'[members]\nn1 = "127.0.0.1:{port}"\n'
        '[schema.counters]\nvalue = { merge = "ADD", type = "integer" }\n'
    )
    with rhizo.start_node(config=config) as node:
        assert node.address == f"127.0.0.1:{port}"
        with node.transaction(mode="coordination_free") as tx:
            tx.increment("counters", "c", 4)
        assert node.status()["node"] == "n1"
    assert (tmp_path / "data").is_dir()
    with rhizo.start_node(config=config) as node:
        assert node.read("counters", "c") == 4


# Commits one increment at a time, printing each count once its commit returned, until killed.
ACKNOWLEDGER = """
import sys, warnings
warnings.simplefilter("ignore")
import rhizo

node = rhizo.start_node(sys.argv[1], "n1", insecure=True)
acknowledged = 0
while True:
    with node.transaction(mode="coordination_free") as tx:
        tx.increment("counters", "c", 1)
    acknowledged += 1
    print("acked", acknowledged, flush=True)
"""


def test_a_killed_processs_node_restarted_on_its_directory_has_what_it_acknowledged(
    tmp_path: Path,
) -> None:
    with children(["-c", ACKNOWLEDGER, str(tmp_path)]) as (child,):
        acknowledged = 0
        while acknowledged < 200:
            acknowledged = int(child.line_starting("acked"))
        child.kill()
        # Lines printed before the kill are acknowledgements too.
        while not child.lines.empty():
            line = child.lines.get()
            if line is not None and line.startswith("acked"):
                acknowledged = int(line.split()[1])
    with rhizo.start_node(tmp_path, "n1", insecure=True) as node:
        count = node.read("counters", "c")
    assert isinstance(count, int)
    # Everything acknowledged survived; at most the commit in flight at the kill more.
    assert acknowledged <= count <= acknowledged + 1, (acknowledged, count)


def hammer(target: rhizo.Engine | rhizo.Node, threads: int, per_thread: int) -> list[BaseException]:
    """`threads` threads each committing `per_thread` increments on `target`; what they raised."""
    raised: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(per_thread):
                with target.transaction(mode="coordination_free") as tx:
                    tx.increment("counters", "c", 1)
        except BaseException as err:
            raised.append(err)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
        assert not worker.is_alive()
    return raised


def test_eight_threads_commit_on_one_engine_and_one_node_and_every_increment_counts() -> None:
    engine = rhizo.open(None)
    assert hammer(engine, 8, 2_000) == []
    assert engine.read("counters", "c") == 16_000
    with rhizo.start_node(None, "n1", insecure=True) as node:
        assert hammer(node, 8, 2_000) == []
        assert node.read("counters", "c") == 16_000


async def ticking_while(awaitable: object, every: float = 0.005) -> tuple[object, int]:
    """Awaits `awaitable` while another task ticks every `every` seconds; returns its result
    and the ticks counted meanwhile."""
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(every)

    task = asyncio.create_task(ticker())
    try:
        result = await awaitable  # type: ignore[misc]
    finally:
        done.set()
        await task
    return result, ticks


def test_the_event_loop_keeps_running_while_a_coordinated_commit_waits() -> None:
    addresses = members(["n1", "n2"])
    n1 = start("n1", addresses)
    started: list[rhizo.Node] = []

    async def scenario() -> tuple[object, int, float]:
        loop = asyncio.get_running_loop()
        # n2 is not up: n1 cannot reach a majority, so the commit waits until n2 starts.
        loop.call_later(0.5, lambda: started.append(start("n2", addresses)))
        began = time.monotonic()

        async def commit() -> object:
            async with n1.atransaction(mode="coordinated") as tx:
                tx.increment("counters", "c", 1)
            return tx.outcome

        outcome, ticks = await ticking_while(commit())
        return outcome, ticks, time.monotonic() - began

    try:
        outcome, ticks, waited = asyncio.run(scenario())
        assert isinstance(outcome, rhizo.CommitOutcome) and outcome.path == "consensus"
        assert waited >= 0.5
        # Blocked, the ticker could not tick at all while the commit waited; running, it ticks
        # about every 5 ms through the half second.
        assert ticks >= 20, ticks
        assert n1.read("counters", "c") == 1
    finally:
        n1.close()
        for node in started:
            node.close()


def test_awaitable_commits_interleave_on_an_engine_and_through_a_client() -> None:
    engine = rhizo.open(None)
    with rhizo.start_node(None, "n1", insecure=True, client_listen="127.0.0.1:0") as node:
        assert node.client_address is not None
        client = rhizo.connect(node.client_address, insecure=True)

        async def many() -> None:
            async def one(target: rhizo.Engine | rhizo.Client, amount: int) -> None:
                async with target.atransaction(mode="coordination_free") as tx:
                    tx.increment("counters", "c", amount)
                assert tx.state == "committed"

            await asyncio.gather(*(one(t, i) for i in range(1, 11) for t in (engine, client)))
            tx = client.transaction(mode="coordinated")
            tx.increment("counters", "c", 100)
            outcome = await tx.acommit()
            assert outcome.path == "consensus"
            # An exception in the block aborts: nothing is committed.
            with pytest.raises(KeyError):
                async with engine.atransaction(mode="coordination_free") as tx:
                    tx.increment("counters", "c", 1000)
                    raise KeyError("boom")
            assert tx.state == "aborted"

        asyncio.run(many())
        assert engine.read("counters", "c") == 55
        assert node.read("counters", "c") == 155
        client.close()


def test_tls_files_are_written_as_rhizo_tls_writes_them_and_bad_requests_are_refused(
    tmp_path: Path,
) -> None:
    with pytest.raises(rhizo.ConfigError, match=r"ca\.(crt|key)"):
        rhizo.tls_node(tmp_path, "n1")  # no CA in the directory yet
    ca_cert, ca_key = rhizo.tls_ca(tmp_path, cluster="demo")
    assert (Path(ca_cert).name, Path(ca_key).name) == ("ca.crt", "ca.key")
    assert Path(ca_cert).read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert Path(ca_key).stat().st_mode & 0o077 == 0  # the key is its owner's alone
    node_cert, _ = rhizo.tls_node(tmp_path, "n1")
    client_cert, _ = rhizo.tls_client(tmp_path, "app")
    assert (Path(node_cert).name, Path(client_cert).name) == ("n1.crt", "app.crt")
    with pytest.raises(rhizo.ConfigError, match="not a node id"):
        rhizo.tls_node(tmp_path, "")


def member_rows(node: Any) -> dict[str, tuple[str, bool, bool]]:
    """A node's (or client's) `members()`, by name: (address, voter, retired)."""
    return {m["node"]: (m["address"], m["voter"], m["retired"]) for m in node.members()}


def test_a_node_is_added_listed_then_a_live_member_is_removed_after_draining(
    tmp_path: Path,
) -> None:
    addresses = members(["n1", "n2", "n3", "n4"])
    group = {name: addresses[name] for name in ["n1", "n2", "n3"]}
    started: list[rhizo.Node] = []
    try:
        for name in group:
            listen = "127.0.0.1:0" if name == "n1" else None
            started.append(start(name, group, tmp_path / name, client_listen=listen))
        n1, n2, n3 = started
        # The newcomer names every member and itself, and waits to be added.
        n4 = start("n4", addresses, tmp_path / "n4", raft={"join": True})
        started.append(n4)
        assert n1.client_address is not None
        client = rhizo.connect(n1.client_address, insecure=True)

        assert member_rows(client) == {name: ("", True, False) for name in group}
        n1.add_member("n4", addresses["n4"])
        assert member_rows(n1)["n4"] == (addresses["n4"], False, False)
        # A learner until it has caught up, then a voter; every member lists it, with no
        # writes in between (an idle cluster promotes it too).
        added = {name: ("", True, False) for name in group}
        added["n4"] = (addresses["n4"], True, False)
        wait_until(lambda: all(member_rows(n) == added for n in started), every=0.2)
        assert member_rows(client) == added

        # n3 acknowledges coordination-free increments, then is removed at once: the removal
        # waits until every other member holds them.
        for _ in range(5):
            with n3.transaction(mode="coordination_free") as tx:
                tx.increment("counters", "drained", 1)
        n1.remove_member("n3")
        survivors = [n1, n2, n4]
        assert [n.read("counters", "drained") for n in survivors] == [5, 5, 5]
        del added["n3"]
        assert member_rows(n1) == added
        wait_until(lambda: all(member_rows(n) == added for n in survivors))
        # The removed node takes no writes.
        with pytest.raises(rhizo.StorageError) as refused:
            with n3.transaction(mode="coordination_free") as tx:
                tx.increment("counters", "drained", 1)
        assert refused.value.kind in ("Removed", "Retired")
        client.close()
    finally:
        for node in started:
            node.close()


def test_membership_refusals_change_nothing_and_force_removes_a_stopped_node(
    tmp_path: Path,
) -> None:
    addresses = members(["n1", "n2", "n3"])
    nodes = [
        start(
            name,
            addresses,
            tmp_path / name,
            commit_timeout_ms=2000,
            client_listen="127.0.0.1:0" if name == "n1" else None,
        )
        for name in addresses
    ]
    try:
        n1, n2, n3 = nodes
        assert n1.client_address is not None
        client = rhizo.connect(n1.client_address, insecure=True)
        before = member_rows(n1)
        assert sorted(before) == ["n1", "n2", "n3"]

        for target in (n1, client):
            with pytest.raises(rhizo.ConfigError) as unknown:
                target.remove_member("nx")
            assert unknown.value.kind == "UnknownMember"
            assert unknown.value.node == "nx"
            assert not unknown.value.retryable
            with pytest.raises(rhizo.ConfigError) as already:
                target.add_member(rhizo.NodeId("n2"), addresses["n2"])
            assert already.value.kind == "AlreadyMember"
        assert member_rows(n1) == before
        assert member_rows(client) == before

        # A stopped node cannot drain: its removal is refused as retryable, ...
        n3.close()
        with pytest.raises(rhizo.RhizoError) as not_drained:
            n1.remove_member("n3")
        assert not_drained.value.kind == "NotDrained"
        assert not_drained.value.retryable
        # (Retired through the log; the answer may come before this node applied it.)
        wait_until(lambda: member_rows(n1)["n3"][2] is True)
        # ... and forcing it removes it at once.
        client.remove_member("n3", force=True)
        assert sorted(member_rows(n1)) == ["n1", "n2"]
        wait_until(lambda: sorted(member_rows(n2)) == ["n1", "n2"])
        # The two survivors still commit coordinated transactions.
        with n2.transaction() as tx:
            tx.increment("counters", "after", 1)
        wait_until(lambda: n1.read("counters", "after") == 1)
        client.close()
    finally:
        for node in nodes:
            node.close()
