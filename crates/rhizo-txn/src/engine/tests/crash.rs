//! Crash safety: a fault at every write point of a 50-operation workload, every torn prefix of
//! the last record, and random bit flips. Recovery must give a correct prefix holding every
//! acknowledged commit, or a clean error — never wrong data.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;

use crate::storage::fault::{Fault, FaultyStorage};

const OPS: usize = 50;
/// The workload compacts the log before this operation, so rotation is crashed into too.
const COMPACT_BEFORE: usize = 25;

/// Operation `i` of the workload: every kind of write, in both modes.
fn run_op(engine: &mut Engine, i: usize) -> Result<CommitOutcome> {
    if i == COMPACT_BEFORE {
        engine.compact()?;
    }
    let n = i as i64;
    let row = format!("u{}", i % 4);
    let mode = if i.is_multiple_of(5) || i % 5 == 3 {
        TransactionMode::Coordinated
    } else {
        TransactionMode::CoordinationFree
    };
    let current = engine.read("users", "u0", "score")?;
    let mut tx = engine.transaction(mode);
    match i % 5 {
        0 => {
            tx.put("users", &row, "email", n)
                .increment("counters", "page_views", "value", n);
        }
        1 => {
            tx.increment("counters", "page_views", "value", 1)
                .add_to_set("users", &row, "tags", format!("t{i}"));
        }
        2 => {
            tx.remove_from_set("users", &row, "tags", format!("t{}", i.saturating_sub(5)))
                .max("counters", "latency", "peak", n * 7 % 31);
        }
        3 => {
            tx.compare_and_set("users", "u0", "score", current, n)
                .add_to_set("users", "u0", "tags", "cas");
        }
        _ => {
            tx.min("counters", "latency", "low", (n as f64) / 3.0)
                .increment("counters", &row, "value", -n);
        }
    }
    decide(tx)
}

/// Fingerprints after 0, 1, …, OPS operations of a fault-free run.
fn reference() -> Vec<u64> {
    let mut engine = Engine::open_in_memory_log(MemStorage::new(), config()).unwrap();
    let mut prints = vec![engine.fingerprint()];
    for i in 0..OPS {
        assert!(run_op(&mut engine, i).unwrap().durable);
        prints.push(engine.fingerprint());
    }
    prints
}

fn count_write_points() -> u64 {
    let storage = FaultyStorage::new(MemStorage::new(), None, Fault::Fail);
    let writes = storage.writes.clone();
    let mut engine = Engine::open_with_storage(Box::new(storage), config()).unwrap();
    for i in 0..OPS {
        run_op(&mut engine, i).unwrap();
    }
    drop(engine);
    writes.load(std::sync::atomic::Ordering::Relaxed)
}

#[test]
fn crash_at_every_write_point_loses_nothing_acknowledged() {
    let prints = reference();
    let total = count_write_points();
    assert!(
        total > 2 * OPS as u64,
        "each commit writes and syncs: {total}"
    );
    let mut checked = 0;
    for fault_at in 1..=total {
        for fault in [Fault::Fail, Fault::Tear] {
            let disk = MemStorage::new();
            let storage = FaultyStorage::new(disk.clone(), Some(fault_at), fault);
            let (mut acked, mut attempted, mut last_dot) = (0usize, 0usize, 0u64);
            if let Ok(mut engine) = Engine::open_with_storage(Box::new(storage), config()) {
                for i in 0..OPS {
                    attempted = i + 1;
                    match run_op(&mut engine, i) {
                        Ok(outcome) => {
                            assert!(outcome.durable);
                            acked = i + 1;
                            // Coordinated commits carry the consensus log's dots; own dots count here.
                            last_dot = outcome
                                .dot
                                .filter(|d| d.node() == node(0))
                                .map_or(last_dot, |d| d.counter());
                        }
                        Err(err) => {
                            assert!(!err.is_input_error(), "{err}");
                            // Poisoned: it refuses everything until reopened.
                            assert!(matches!(
                                run_op(&mut engine, i),
                                Err(TxnError::Poisoned { .. })
                            ));
                            break;
                        }
                    }
                }
            }
            for keep_unsynced in [false, true] {
                let after = disk.deep_clone();
                after.power_loss(keep_unsynced);
                let mut engine = Engine::open_in_memory_log(after, config()).unwrap_or_else(|e| {
                    panic!("fault {fault:?} at write {fault_at}: recovery failed: {e}")
                });
                let state = prints.iter().position(|p| *p == engine.fingerprint());
                assert!(
                    state.is_some_and(|k| acked <= k && k <= attempted),
                    "fault {fault:?} at write {fault_at} (keep {keep_unsynced}): state {state:?}, acked {acked}, attempted {attempted}"
                );
                // The restarted node never reuses a dot it acknowledged.
                let mut tx = engine.transaction(TransactionMode::CoordinationFree);
                tx.increment("counters", "after", "value", 1);
                let dot = decide(tx).unwrap().dot.unwrap();
                assert!(dot.counter() > last_dot);
                checked += 1;
            }
        }
    }
    assert_eq!(checked, total * 4);
}

fn reference_log() -> (MemStorage, String, Vec<usize>, Vec<u64>) {
    let storage = MemStorage::new();
    let mut engine = Engine::open_in_memory_log(storage.clone(), config()).unwrap();
    let mut lens = Vec::new();
    let mut prints = vec![engine.fingerprint()];
    let mut name = String::new();
    for i in 0..OPS {
        run_op(&mut engine, i).unwrap();
        prints.push(engine.fingerprint());
        let mut s = storage.clone();
        name = s.list().unwrap().pop().unwrap();
        lens.push(storage.contents(&name).unwrap().len());
    }
    drop(engine);
    (storage, name, lens, prints)
}

#[test]
fn every_torn_prefix_of_the_last_record_recovers_the_prefix_before_it() {
    let (storage, name, lens, prints) = reference_log();
    let full = storage.contents(&name).unwrap();
    let (before_last, end) = (lens[OPS - 2], lens[OPS - 1]);
    assert_eq!(end, full.len());
    for cut in before_last..=end {
        let disk = MemStorage::new();
        disk.set_contents(&name, full[..cut].to_vec());
        let mut engine = Engine::open_in_memory_log(disk.clone(), config()).unwrap();
        let expected = if cut == end {
            prints[OPS]
        } else {
            prints[OPS - 1]
        };
        assert_eq!(engine.fingerprint(), expected, "cut at {cut}");
        // A torn tail is never appended to: what is valid was rewritten into a new segment.
        let torn = cut != end && cut != before_last;
        let segments = disk.clone().list().unwrap();
        assert_eq!(segments.len(), 1, "cut at {cut}: {segments:?}");
        assert_eq!(segments[0] != name, torn, "cut at {cut}");
        let mut tx = engine.transaction(TransactionMode::CoordinationFree);
        tx.increment("counters", "after", "value", 1);
        decide(tx).unwrap();
        let print = engine.fingerprint();
        drop(engine);
        assert_eq!(
            Engine::open_in_memory_log(disk, config())
                .unwrap()
                .fingerprint(),
            print
        );
    }
}

#[test]
fn random_bit_flips_give_a_clean_error_or_a_correct_prefix() {
    let (storage, name, _, prints) = reference_log();
    let full = storage.contents(&name).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let (mut errors, mut prefixes) = (0u32, 0u32);
    for _ in 0..10_000 {
        let mut damaged = full.clone();
        let bit = rng.random_range(0..damaged.len() * 8);
        damaged[bit / 8] ^= 1 << (bit % 8);
        let disk = MemStorage::new();
        disk.set_contents(&name, damaged);
        match Engine::open_in_memory_log(disk, config()) {
            Ok(engine) => {
                assert!(
                    prints.contains(&engine.fingerprint()),
                    "bit {bit}: wrong data"
                );
                prefixes += 1;
            }
            Err(err) => {
                assert!(
                    matches!(err, TxnError::Corrupt { .. } | TxnError::Recovery(_)),
                    "bit {bit}: {err}"
                );
                errors += 1;
            }
        }
    }
    // Most flips hit records before the last one (a clean error); flips in the last record
    // cut it off (a correct prefix).
    assert!(
        errors > 0 && prefixes > 0,
        "errors {errors}, prefixes {prefixes}"
    );
}
