"""Python overhead of Rhizo's bindings: a 1-op transaction through the context manager, and
the batch API. Run after a release build (`maturin develop --release`):

    python crates/rhizo-py/bench/overhead.py
"""

from __future__ import annotations

import timeit

import rhizo


def best_per_call(stmt: object, number: int, repeat: int = 7) -> float:
    """The fastest of `repeat` runs of `number` calls, in seconds per call."""
    return min(timeit.repeat(stmt, number=number, repeat=repeat)) / number  # type: ignore[arg-type]


def main() -> None:
    engine = rhizo.open(None)  # in memory: measures the bindings and the engine, not fsync

    def one_op_transaction() -> None:
        with engine.transaction(mode="coordination_free") as tx:
            tx.increment("counters", "page_views", 1)

    def trivial_call() -> None:
        engine.is_idle()

    trivial = best_per_call(trivial_call, 200_000)
    tx_cost = best_per_call(one_op_transaction, 100_000)

    batch_size = 100_000
    ops = [("increment", "counters", f"row{i % 1000}", "value", 1) for i in range(batch_size)]
    per_tx = best_per_call(lambda: engine.commit_batch(ops), 1, repeat=5) / batch_size
    one_tx = (
        best_per_call(lambda: engine.commit_batch(ops, ops_per_transaction=None), 1, repeat=5)
        / batch_size
    )

    print(f"trivial method call:                   {trivial * 1e9:8.0f} ns")
    print(f"1-op transaction (context manager):    {tx_cost * 1e6:8.3f} us")
    print(f"commit_batch, 1 op per transaction:    {1 / per_tx / 1e6:8.2f} M ops/s")
    print(f"commit_batch, {batch_size} ops in one transaction: {1 / one_tx / 1e6:8.2f} M ops/s")


if __name__ == "__main__":
    main()
