use rhizo_algebra::{
    AlgebraError, AlgebraicValue, ColumnSpec, MergeType, OpType, Schema, ValueType,
};
use rhizo_clock::NodeId;

use rhizo_commit::Operations;

use super::*;
use crate::MemStorage;

mod crash;
mod durability;
mod linearizable;
mod stale;

pub(super) fn node(i: u32) -> NodeId {
    NodeId::numbered(i)
}

/// The roadmap's tables plus a MAX, a MIN, a register and a bounded set.
pub(super) fn test_schema() -> Schema {
    Schema::builder()
        .table("counters")
        .column("value", MergeType::Add, ValueType::Integer)
        .column("peak", MergeType::Max, ValueType::Integer)
        .column("low", MergeType::Min, ValueType::Float)
        .table("users")
        .column("tags", MergeType::ObservedRemoveSet, ValueType::StringSet)
        .column("email", MergeType::Register, ValueType::Integer)
        .column("score", MergeType::Register, ValueType::Integer)
        .column_spec(
            "badges",
            ColumnSpec::new(MergeType::Union, ValueType::StringSet)
                .unwrap()
                .with_max_set_len(3),
        )
        .build()
        .unwrap()
}

pub(super) fn config() -> EngineConfig {
    EngineConfig::new(node(0)).with_schema(test_schema())
}

/// Commits a transaction the engine decides at once (every one a single node orders).
pub(crate) fn decide(tx: Transaction<'_>) -> Result<CommitOutcome> {
    tx.commit()
        .map(|submitted| submitted.committed().expect("decided at once"))
}

fn mem_engine() -> (Engine, MemStorage) {
    let storage = MemStorage::new();
    let engine = Engine::open_in_memory_log(storage.clone(), config()).unwrap();
    (engine, storage)
}

fn int(v: i64) -> AlgebraicValue {
    AlgebraicValue::Integer(v)
}

fn log_bytes(storage: &MemStorage) -> usize {
    let mut s = storage.clone();
    s.list()
        .unwrap()
        .iter()
        .map(|n| storage.contents(n).unwrap().len())
        .sum()
}

#[test]
fn roadmap_calls_work_as_written_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig::new(node(0)).with_schema(crate::default_schema());
    let mut engine = Engine::open(dir.path(), config.clone()).unwrap();
    let mut tx = engine.transaction(TransactionMode::CoordinationFree);
    tx.increment("counters", "page_views", "value", 1);
    tx.add_to_set("users", "user_123", "tags", "premium");
    let outcome = decide(tx).unwrap();
    assert!(outcome.durable);
    assert_eq!(outcome.dot.unwrap().counter(), 1);
    drop(engine);
    let mut engine = Engine::open(dir.path(), config).unwrap();
    assert_eq!(
        engine.read("counters", "page_views", "value").unwrap(),
        int(1)
    );
    assert_eq!(
        engine.read("users", "user_123", "tags").unwrap(),
        AlgebraicValue::string_set(["premium"])
    );
    // The restarted node continues its dots; it never reuses 1.
    let mut tx = engine.transaction(TransactionMode::CoordinationFree);
    tx.increment("counters", "page_views", "value", 1);
    assert_eq!(decide(tx).unwrap().dot.unwrap().counter(), 2);
}

#[test]
fn coordinated_is_the_default_and_serializes_register_writes() {
    let (mut engine, _) = mem_engine();
    let mut tx = engine.transaction(TransactionMode::default());
    tx.put("users", "u", "email", 7)
        .increment("counters", "c", "value", 2);
    let first = decide(tx).unwrap();
    assert_eq!(first.sequence, Some(1));
    assert!(first.dot.is_some());
    let mut tx = engine.transaction(TransactionMode::Coordinated);
    assert_eq!(tx.read("users", "u", "email").unwrap(), int(7));
    tx.compare_and_set("users", "u", "email", 7, 8);
    assert_eq!(decide(tx).unwrap().sequence, Some(2));
    assert_eq!(engine.read("users", "u", "email").unwrap(), int(8));
    assert_eq!(
        engine.read("users", "nobody", "email").unwrap(),
        AlgebraicValue::Null
    );
}

#[test]
fn failed_compare_and_set_applies_nothing_of_its_transaction() {
    let (mut engine, storage) = mem_engine();
    let mut tx = engine.transaction(TransactionMode::Coordinated);
    tx.put("users", "u", "email", 1);
    decide(tx).unwrap();
    let (before, bytes) = (engine.fingerprint(), log_bytes(&storage));
    let mut tx = engine.transaction(TransactionMode::Coordinated);
    tx.increment("counters", "c", "value", 5)
        .put("users", "v", "email", 3)
        .compare_and_set("users", "u", "email", 99, 2);
    assert!(matches!(
        decide(tx),
        Err(TxnError::ConditionFailed { key, .. }) if key == CellKey::new("users", "u", "email")
    ));
    assert_eq!(engine.fingerprint(), before);
    assert_eq!(log_bytes(&storage), bytes);
    // The refused transaction took no sequence number.
    let mut tx = engine.transaction(TransactionMode::Coordinated);
    tx.put("users", "u", "email", 2);
    assert_eq!(decide(tx).unwrap().sequence, Some(2));
}

#[test]
fn coordination_free_refuses_non_algebraic_operations_whole() {
    let (mut engine, storage) = mem_engine();
    let (before, bytes) = (engine.fingerprint(), log_bytes(&storage));
    let mut tx = engine.transaction(TransactionMode::CoordinationFree);
    tx.increment("counters", "c", "value", 1)
        .put("users", "u", "email", 1);
    let err = decide(tx).unwrap_err();
    assert!(matches!(
        &err,
        TxnError::NotAlgebraic { operations }
            if operations == &vec![(CellKey::new("users", "u", "email"), OpType::GenericOverwrite)]
    ));
    assert!(
        err.to_string().contains("TransactionMode::Coordinated"),
        "{err}"
    );
    // An algebraic op kind aimed at a register column is refused the same way.
    let mut tx = engine.transaction(TransactionMode::CoordinationFree);
    tx.max("users", "u", "email", 3);
    assert!(matches!(decide(tx), Err(TxnError::NotAlgebraic { .. })));
    assert_eq!(engine.fingerprint(), before);
    assert_eq!(log_bytes(&storage), bytes);
    assert_eq!(engine.read("counters", "c", "value").unwrap(), int(0));
}

/// Each bad input gets its typed error, changes nothing (state and log), and the engine
/// commits normally afterwards.
#[test]
fn bad_input_is_refused_with_a_typed_error_and_changes_nothing() {
    let (mut engine, storage) = mem_engine();
    let mut tx = engine.transaction(TransactionMode::CoordinationFree);
    tx.increment("counters", "c", "value", i64::MAX - 1);
    decide(tx).unwrap();
    type Build = fn(&mut Transaction<'_>);
    type Expect = fn(&TxnError) -> bool;
    let cases: Vec<(&str, TransactionMode, Build, Expect)> = vec![
        (
            "unknown table",
            TransactionMode::CoordinationFree,
            |tx| {
                tx.increment("nope", "r", "value", 1);
            },
            |e| matches!(e, TxnError::InvalidOperations { errors } if matches!(errors[0].1, AlgebraError::UnknownTable { .. })),
        ),
        (
            "unknown column",
            TransactionMode::CoordinationFree,
            |tx| {
                tx.increment("counters", "r", "nope", 1);
            },
            |e| matches!(e, TxnError::InvalidOperations { errors } if matches!(errors[0].1, AlgebraError::UnknownColumn { .. })),
        ),
        (
            "wrong value type",
            TransactionMode::CoordinationFree,
            |tx| {
                tx.increment("counters", "r", "value", 1.5);
            },
            |e| matches!(e, TxnError::InvalidOperations { errors } if matches!(errors[0].1, AlgebraError::TypeMismatch { .. })),
        ),
        (
            "NaN",
            TransactionMode::CoordinationFree,
            |tx| {
                tx.min("counters", "r", "low", f64::NAN);
            },
            |e| matches!(e, TxnError::InvalidOperations { errors } if matches!(errors[0].1, AlgebraError::NonFiniteFloat { .. })),
        ),
        (
            "overflow",
            TransactionMode::CoordinationFree,
            |tx| {
                tx.increment("counters", "other", "value", 1)
                    .increment("counters", "c", "value", 2);
            },
            |e| matches!(e, TxnError::Overflow { key, .. } if key.row() == "c"),
        ),
        (
            "overflow, coordinated",
            TransactionMode::Coordinated,
            |tx| {
                tx.put("users", "u", "email", 1)
                    .increment("counters", "c", "value", 2);
            },
            |e| matches!(e, TxnError::Overflow { .. }),
        ),
        (
            "oversized set",
            TransactionMode::CoordinationFree,
            |tx| {
                tx.add_to_set("users", "u", "badges", ["a", "b", "c", "d"]);
            },
            |e| matches!(e, TxnError::InvalidOperations { errors } if matches!(errors[0].1, AlgebraError::SetTooLarge { .. })),
        ),
        (
            "put on a counter",
            TransactionMode::Coordinated,
            |tx| {
                tx.put("counters", "r", "value", 3);
            },
            |e| matches!(e, TxnError::InvalidOperations { .. }),
        ),
        (
            "register value of the wrong type",
            TransactionMode::Coordinated,
            |tx| {
                tx.put("users", "u", "email", true);
            },
            |e| matches!(e, TxnError::InvalidOperations { .. }),
        ),
        (
            "empty, coordination-free",
            TransactionMode::CoordinationFree,
            |_| {},
            |e| matches!(e, TxnError::EmptyTransaction),
        ),
        (
            "empty, coordinated",
            TransactionMode::Coordinated,
            |_| {},
            |e| matches!(e, TxnError::EmptyTransaction),
        ),
    ];
    for (name, mode, build, expected) in cases {
        let (before, bytes, clock) = (
            engine.fingerprint(),
            log_bytes(&storage),
            engine.clock().clone(),
        );
        let mut tx = engine.transaction(mode);
        tx.increment("counters", "innocent", "value", 1); // never half-applied beside the bad op
        build(&mut tx);
        if name.starts_with("empty") {
            tx = engine.transaction(mode);
        }
        let err = decide(tx).unwrap_err();
        assert!(expected(&err), "{name}: unexpected {err:?}");
        assert!(err.is_input_error(), "{name}");
        assert_eq!(engine.fingerprint(), before, "{name}");
        assert_eq!(log_bytes(&storage), bytes, "{name}");
        assert_eq!(engine.clock(), &clock, "{name}");
    }
    assert_eq!(
        engine.read("counters", "innocent", "value").unwrap(),
        int(0)
    );
    // Reads of unknown cells are typed errors too.
    assert!(matches!(
        engine.read("nope", "r", "value"),
        Err(TxnError::InvalidOperations { .. })
    ));
    // Still usable.
    let mut tx = engine.transaction(TransactionMode::CoordinationFree);
    tx.increment("counters", "c", "value", -5);
    decide(tx).unwrap();
    assert_eq!(
        engine.read("counters", "c", "value").unwrap(),
        int(i64::MAX - 6)
    );
}

#[test]
fn an_aborted_transaction_applies_nothing() {
    let (mut engine, storage) = mem_engine();
    let bytes = log_bytes(&storage);
    let mut tx = engine.transaction(TransactionMode::CoordinationFree);
    tx.increment("counters", "c", "value", 10);
    tx.abort();
    assert_eq!(engine.read("counters", "c", "value").unwrap(), int(0));
    assert_eq!(log_bytes(&storage), bytes);
    // `commit` and `abort` take the transaction: a finished one cannot be used again.
}

#[test]
fn schema_changes_are_versioned_and_persisted() {
    let storage = MemStorage::new();
    let mut engine = Engine::open_in_memory_log(storage.clone(), config()).unwrap();
    let v = engine.schema().version();
    let declared = engine
        .declare_column("events", "seen", MergeType::Max, ValueType::Integer)
        .unwrap();
    assert!(declared.committed().is_some_and(|o| o.durable));
    assert_eq!(engine.schema().version(), v + 1);
    // Re-declaring the same column changes nothing.
    let again = engine
        .declare_column("events", "seen", MergeType::Max, ValueType::Integer)
        .unwrap();
    assert!(again.committed().is_some());
    assert_eq!(engine.schema().version(), v + 1);
    assert!(matches!(
        engine.declare_column("events", "seen", MergeType::Min, ValueType::Integer),
        Err(TxnError::Schema(AlgebraError::ColumnRedefined { .. }))
    ));
    assert!(matches!(
        engine.declare_column("", "x", MergeType::Max, ValueType::Integer),
        Err(TxnError::Schema(AlgebraError::InvalidName { .. }))
    ));
    let mut tx = engine.transaction(TransactionMode::CoordinationFree);
    tx.max("events", "e", "seen", 4);
    decide(tx).unwrap();
    drop(engine);
    let engine = Engine::open_in_memory_log(storage.clone(), config()).unwrap();
    assert_eq!(engine.schema().version(), v + 1);
    assert_eq!(engine.read("events", "e", "seen").unwrap(), int(4));
    // A configured schema that contradicts the stored one is refused.
    let clash = Schema::builder()
        .table("events")
        .column("seen", MergeType::Add, ValueType::Integer)
        .build()
        .unwrap();
    assert!(matches!(
        Engine::open_in_memory_log(storage, config().with_schema(clash)),
        Err(TxnError::Schema(AlgebraError::ColumnRedefined { .. }))
    ));
}

#[test]
fn a_directory_belongs_to_one_node() {
    let storage = MemStorage::new();
    drop(Engine::open_in_memory_log(storage.clone(), config()).unwrap());
    let other = EngineConfig::new(node(1)).with_schema(test_schema());
    assert!(matches!(
        Engine::open_in_memory_log(storage, other),
        Err(TxnError::WrongNode { .. })
    ));
}

#[test]
fn group_commit_acknowledges_in_batches_and_never_sends_ahead_of_the_log() {
    let storage = MemStorage::new();
    // Without a flusher the commit that fills a group syncs it itself (with one, it hands the
    // group over and returns: `a_full_group_is_acknowledged_durable_only_after_...`).
    let mut config = config()
        .with_members([node(0), node(1)])
        .with_sync(SyncPolicy::Group {
            max_delay_ms: 60_000,
            max_records: 3,
        });
    config.background_flush = false;
    let mut engine = Engine::open_in_memory_log(storage.clone(), config.clone()).unwrap();
    let mut outcomes = Vec::new();
    for _ in 0..4 {
        let mut tx = engine.transaction(TransactionMode::CoordinationFree);
        tx.increment("counters", "c", "value", 1);
        outcomes.push(decide(tx).unwrap());
    }
    let durable: Vec<bool> = outcomes.iter().map(|o| o.durable).collect();
    assert_eq!(durable, [false, false, true, false]);
    assert!(engine.is_durable(&outcomes[0]));
    assert!(!engine.is_durable(&outcomes[3]));
    // A power loss now keeps the first three.
    let lost = storage.deep_clone();
    lost.power_loss(false);
    let recovered = Engine::open_in_memory_log(lost, config.clone()).unwrap();
    assert_eq!(recovered.read("counters", "c", "value").unwrap(), int(3));
    // A message leaves only after the log is durable.
    engine.sync_with(node(1)).unwrap();
    let messages = engine.take_messages().unwrap();
    assert_eq!(messages.len(), 1);
    assert!(engine.is_durable(&outcomes[3]));
    let lost = storage.deep_clone();
    lost.power_loss(false);
    let recovered = Engine::open_in_memory_log(lost, config).unwrap();
    assert_eq!(recovered.read("counters", "c", "value").unwrap(), int(4));
}

/// The counter `counters/c/value` an engine reopened on `storage` after a crash reads: a power
/// loss when `keep_unsynced` is false, a process crash (the file holds what was written) when true.
fn after_crash(storage: &MemStorage, keep_unsynced: bool, config: &EngineConfig) -> AlgebraicValue {
    let disk = storage.deep_clone();
    disk.power_loss(keep_unsynced);
    Engine::open_in_memory_log(disk, config.clone())
        .unwrap()
        .read("counters", "c", "value")
        .unwrap()
}

#[test]
fn sync_policy_none_buffers_until_tick_and_syncs_only_on_flush() {
    let storage = MemStorage::new();
    let config = config().with_sync(SyncPolicy::None);
    let mut engine = Engine::open_in_memory_log(storage.clone(), config.clone()).unwrap();
    let written = log_bytes(&storage);
    let mut tx = engine.transaction(TransactionMode::CoordinationFree);
    tx.increment("counters", "c", "value", 1);
    assert!(!decide(tx).unwrap().durable);
    // Buffered: not in the file yet, so a process crash loses it.
    assert_eq!(log_bytes(&storage), written);
    assert_eq!(after_crash(&storage, true, &config), int(0));
    // A tick writes it (a process crash keeps it), without syncing (a power loss does not).
    engine.tick().unwrap();
    assert!(log_bytes(&storage) > written);
    assert_eq!(after_crash(&storage, true, &config), int(1));
    assert_eq!(after_crash(&storage, false, &config), int(0));
    engine.flush().unwrap();
    assert_eq!(after_crash(&storage, false, &config), int(1));
}

#[test]
fn sync_policy_none_writes_each_full_batch_without_a_tick() {
    let storage = MemStorage::new();
    let config = config().with_sync(SyncPolicy::None);
    let mut engine = Engine::open_in_memory_log(storage.clone(), config.clone()).unwrap();
    let written = log_bytes(&storage);
    // Enough commits that their frames outgrow one batch several times over.
    let commits = 5_000;
    for _ in 0..commits {
        let mut tx = engine.transaction(TransactionMode::CoordinationFree);
        tx.increment("counters", "c", "value", 1);
        decide(tx).unwrap();
    }
    let in_file = log_bytes(&storage) - written;
    assert!(in_file >= NONE_WRITE_BATCH, "{in_file} bytes written");
    // A process crash keeps every written batch: a prefix of the commits, all but fewer than
    // one batch's worth of the newest.
    let kept = after_crash(&storage, true, &config).as_integer().unwrap();
    assert!(kept > 0 && kept < commits, "{kept} of {commits} kept");
    engine.tick().unwrap();
    assert_eq!(after_crash(&storage, true, &config), int(commits));
}

#[test]
fn compaction_rotates_segments_and_keeps_everything() {
    let storage = MemStorage::new();
    let config = config().with_compaction_after(2_000);
    let mut engine = Engine::open_in_memory_log(storage.clone(), config.clone()).unwrap();
    for i in 0..200 {
        let mut tx = engine.transaction(if i % 7 == 0 {
            TransactionMode::Coordinated
        } else {
            TransactionMode::CoordinationFree
        });
        tx.increment("counters", "c", "value", 1);
        tx.add_to_set("users", &format!("u{}", i % 5), "tags", format!("t{i}"));
        if i % 7 == 0 {
            tx.put("users", "u", "email", i);
        }
        decide(tx).unwrap();
    }
    let fingerprint = engine.fingerprint();
    let mut s = storage.clone();
    let names = s.list().unwrap();
    assert_eq!(names.len(), 1, "{names:?}");
    // It rotated, but not at every commit although the checkpoint outgrew the threshold.
    assert!(
        names[0] > log::segment_name(2) && names[0] < log::segment_name(40),
        "{names:?}"
    );
    drop(engine);
    let engine = Engine::open_in_memory_log(storage, config).unwrap();
    assert_eq!(engine.fingerprint(), fingerprint);
    assert_eq!(engine.read("counters", "c", "value").unwrap(), int(200));
    assert_eq!(engine.last_sequence(), 29);
}

#[test]
fn in_memory_engine_commits_without_a_log() {
    let mut engine = Engine::in_memory(config()).unwrap();
    let mut tx = engine.transaction(TransactionMode::CoordinationFree);
    tx.increment("counters", "page_views", "value", 1);
    let outcome = decide(tx).unwrap();
    assert!(!outcome.durable);
    assert!(!engine.is_durable(&outcome));
    assert_eq!(
        engine.read("counters", "page_views", "value").unwrap(),
        int(1)
    );
}

#[test]
fn malformed_messages_are_refused_and_the_engine_stays_usable() {
    let (mut engine, _) = mem_engine();
    assert!(matches!(
        engine.receive_bytes(node(1), b"garbage"),
        Err(TxnError::CoordinationFree(e)) if matches!(*e, CoordinationFreeError::Replica(_))
    ));
    let mut tx = engine.transaction(TransactionMode::CoordinationFree);
    tx.increment("counters", "c", "value", 1);
    decide(tx).unwrap();
}

#[test]
fn two_engines_converge_through_their_hooks() {
    let config = |i| {
        EngineConfig::new(node(i))
            .with_schema(test_schema())
            .with_members([node(0), node(1)])
    };
    let mut a = Engine::open_in_memory_log(MemStorage::new(), config(0)).unwrap();
    let mut b = Engine::open_in_memory_log(MemStorage::new(), config(1)).unwrap();
    for (engine, amount) in [(&mut a, 2), (&mut b, 3)] {
        let mut tx = engine.transaction(TransactionMode::CoordinationFree);
        tx.increment("counters", "c", "value", amount)
            .add_to_set("users", "u", "tags", "x");
        decide(tx).unwrap();
    }
    for round in 0..6 {
        if round < 3 {
            a.sync_with(node(1)).unwrap();
            b.sync_with(node(0)).unwrap();
        }
        for (to, bytes) in a.outgoing().unwrap() {
            assert_eq!(to, node(1));
            b.receive_bytes(node(0), &bytes).unwrap();
        }
        for (to, msg) in b.take_messages().unwrap() {
            assert_eq!(to, node(0));
            a.receive(node(1), msg).unwrap();
        }
    }
    assert_eq!(a.read("counters", "c", "value").unwrap(), int(5));
    assert_eq!(
        a.manager().replica().canonical_state(),
        b.manager().replica().canonical_state()
    );
    assert!(a.is_idle() && b.is_idle());
}
