//! Replica metadata through the Engine: a reopened engine keeps refusing the stale deltas it
//! refused before (its stable point is in its checkpoint), and reopening re-logs nothing.

use super::*;

/// Three in-memory engines and the messages in flight between them, `(from, to, message)`.
struct Trio {
    engines: Vec<Engine>,
    stores: Vec<MemStorage>,
    wire: Vec<(usize, usize, EngineMessage)>,
}

fn trio_config(i: u32) -> EngineConfig {
    EngineConfig::new(node(i))
        .with_schema(test_schema())
        .with_members([node(0), node(1), node(2)])
}

impl Trio {
    fn new() -> Self {
        let stores: Vec<MemStorage> = (0..3).map(|_| MemStorage::new()).collect();
        let engines = (0..3)
            .map(|i| Engine::open_in_memory_log(stores[i].clone(), trio_config(i as u32)).unwrap())
            .collect();
        Self {
            engines,
            stores,
            wire: Vec::new(),
        }
    }

    fn collect(&mut self, i: usize) {
        for (to, message) in self.engines[i].take_messages().unwrap() {
            let j = (0..3).find(|&j| node(j) == to).unwrap() as usize;
            self.wire.push((i, j, message));
        }
    }

    /// Delivers what is in flight from `from` to `to` now; drops everything else in flight.
    fn hop(&mut self, from: usize, to: usize) {
        for (f, t, message) in std::mem::take(&mut self.wire) {
            if (f, t) == (from, to) {
                self.engines[t].receive(node(f as u32), message).unwrap();
                self.collect(t);
            }
        }
    }

    fn sync(&mut self, a: usize, b: usize) {
        self.engines[a].sync_with(node(b as u32)).unwrap();
        self.collect(a);
    }

    /// One exchange started by `a` with `b`, carried to its end.
    fn exchange(&mut self, a: usize, b: usize) {
        self.sync(a, b);
        while !self.wire.is_empty() {
            for (f, t, message) in std::mem::take(&mut self.wire) {
                self.engines[t].receive(node(f as u32), message).unwrap();
                self.collect(t);
            }
        }
    }

    fn commit(&mut self, i: usize, write: impl FnOnce(&mut Transaction<'_>)) {
        let mut tx = self.engines[i].transaction(TransactionMode::CoordinationFree);
        write(&mut tx);
        decide(tx).unwrap();
    }

    fn tags(&self, i: usize) -> AlgebraicValue {
        self.engines[i].read("users", "u", "tags").unwrap()
    }
}

/// `adv2/p8_engine_stale`: n1 collects a tombstone and checkpoints (`compact`), is reopened,
/// and then receives a delta n2 sent before, still carrying the removed element's add.
#[test]
fn a_reopened_engine_does_not_take_back_a_collected_remove_from_a_late_delta() {
    let mut trio = Trio::new();
    trio.commit(0, |tx| {
        tx.add_to_set("users", "u", "tags", "x");
    });
    trio.exchange(2, 0);
    trio.commit(2, |tx| {
        tx.increment("counters", "k", "value", 1);
    });
    // n1 asks n2; n2's answer (x live, and its increment) is held in the network.
    trio.sync(1, 2);
    trio.hop(1, 2);
    let late = trio.wire.pop().unwrap();
    assert_eq!((late.0, late.1), (2, 1));
    trio.wire.clear();
    trio.exchange(1, 0);
    trio.commit(0, |tx| {
        tx.remove_from_set("users", "u", "tags", "x");
    });
    trio.exchange(1, 0);
    // n2 learns the remove (its answer is lost), then reports to n1 (n1's answer is lost).
    trio.sync(2, 0);
    trio.hop(2, 0);
    trio.hop(0, 2);
    trio.wire.clear();
    trio.sync(2, 1);
    trio.hop(2, 1);
    trio.wire.clear();
    trio.exchange(1, 0);
    assert_eq!(trio.engines[1].replica().tombstones(), 0, "n1 collected it");
    trio.engines[1].compact().unwrap();
    let stable = trio.engines[1].replica().stable_clock().clone();
    trio.engines[1] = Engine::open_in_memory_log(trio.stores[1].clone(), trio_config(1)).unwrap();
    let (from, to, message) = late;
    trio.engines[to]
        .receive(node(from as u32), message)
        .unwrap();
    trio.collect(to);
    assert_eq!(
        trio.tags(1),
        AlgebraicValue::string_set(Vec::<String>::new()),
        "the late delta brought x back"
    );
    assert_eq!(trio.engines[1].replica().stable_clock(), &stable);
    for _ in 0..3 {
        for a in 0..3 {
            for b in 0..3 {
                if a != b {
                    trio.exchange(a, b);
                }
            }
        }
    }
    let fingerprint = trio.engines[0].fingerprint();
    assert!(trio.engines.iter().all(|e| e.fingerprint() == fingerprint));
}

/// Reopening an engine replays its log without writing it again: the ordered records of
/// coordinated transactions are not logged anew at each restart, so the commit after a reopen
/// adds to the log what a commit without one adds.
#[test]
fn reopening_an_engine_re_logs_nothing_it_replayed() {
    let (mut engine, storage) = mem_engine();
    for i in 0..20 {
        let mut tx = engine.transaction(TransactionMode::Coordinated);
        tx.put("users", "u", "email", i)
            .increment("counters", "c", "value", 1);
        decide(tx).unwrap();
    }
    let increment = |engine: &mut Engine| {
        let mut tx = engine.transaction(TransactionMode::CoordinationFree);
        tx.increment("counters", "c", "value", 1);
        decide(tx).unwrap();
    };
    increment(&mut engine);
    let before = log_bytes(&storage);
    increment(&mut engine);
    let one_commit = log_bytes(&storage) - before;
    engine.close().unwrap();
    for reopening in 0..3 {
        let mut engine = Engine::open_in_memory_log(storage.clone(), config()).unwrap();
        let before = log_bytes(&storage);
        increment(&mut engine);
        assert_eq!(
            log_bytes(&storage) - before,
            one_commit,
            "reopening {reopening} logged replayed records again"
        );
        assert_eq!(
            engine.read("counters", "c", "value").unwrap(),
            int(23 + reopening)
        );
        engine.close().unwrap();
    }
}
