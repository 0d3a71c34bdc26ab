"""Latency of a 1-op commit from Python through a networked node and through a client on
loopback, beside a Redis INCR from Python on the same machine. `cargo xtask bench` runs it
(after a release build of the bindings) and starts the Redis server; by hand:

    python crates/rhizo-py/bench/network.py [--redis-port PORT] [--samples N]

Prints one JSON object: p50 and p99 in microseconds per row (`redis_*` are null without a
port, or with `redis_skipped` saying why the row could not be measured).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable

import rhizo


def percentiles_us(call: Callable[[], object], samples: int) -> tuple[float, float]:
    """p50 and p99 of `samples` timed calls, in microseconds, after a tenth as many untimed."""
    for _ in range(max(1, samples // 10)):
        call()
    timings = []
    clock = time.perf_counter_ns
    for _ in range(samples):
        started = clock()
        call()
        timings.append(clock() - started)
    timings.sort()
    return timings[samples // 2] / 1e3, timings[min(samples - 1, samples * 99 // 100)] / 1e3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis-port", type=int, default=None)
    parser.add_argument("--samples", type=int, default=20_000)
    args = parser.parse_args()
    out: dict[str, object] = {"samples": args.samples}

    # Loopback and in memory, plaintext on purpose: the figures are the bindings, the node and
    # the client protocol, not TLS or fsync (as for the engine row).
    warnings.simplefilter("ignore", UserWarning)
    node = rhizo.start_node(None, "n1", insecure=True, client_listen="127.0.0.1:0")
    assert node.client_address is not None
    client = rhizo.connect(node.client_address, insecure=True)

    def node_commit() -> None:
        with node.transaction(mode="coordination_free") as tx:
            tx.increment("counters", "page_views", 1)

    def client_commit() -> None:
        with client.transaction(mode="coordination_free") as tx:
            tx.increment("counters", "page_views", 1)

    out["node_p50_us"], out["node_p99_us"] = percentiles_us(node_commit, args.samples)
    out["client_p50_us"], out["client_p99_us"] = percentiles_us(client_commit, args.samples)
    client.close()
    node.close()

    out["redis_p50_us"] = out["redis_p99_us"] = None
    if args.redis_port is not None:
        try:
            import redis  # type: ignore[import-not-found, import-untyped, unused-ignore]
        except ImportError as err:
            out["redis_skipped"] = f"the redis client is not installed: {err}"
        else:
            server = redis.Redis(host="127.0.0.1", port=args.redis_port)
            out["redis_p50_us"], out["redis_p99_us"] = percentiles_us(
                lambda: server.incr("page_views"), args.samples
            )
            server.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
