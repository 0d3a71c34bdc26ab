//! A Raft node on a directory: restarts keep hard state, entries and applied state; a crash at
//! any write point keeps every acknowledgement, and the restarted node never answers differently.

use std::collections::BTreeMap;

use rhizo_algebra::{MergeType, Schema, ValueType};
use rhizo_commit::{AlgebraicTransaction, CellKey, Operations, OrderedOutcome};

use super::*;
use crate::TransactionMode;
use crate::raft::{ClientOutcome, RaftConfig, RaftNode, Submitted};
use crate::storage::fault::{Fault, FaultyStorage};
use crate::{FsStorage, MemStorage};

/// Registers `kv.reg` and counters `counters.value`.
fn sim_schema() -> Schema {
    Schema::builder()
        .table("kv")
        .column("reg", MergeType::Register, ValueType::Integer)
        .table("counters")
        .column("value", MergeType::Add, ValueType::Integer)
        .build()
        .unwrap()
}

fn me() -> NodeId {
    NodeId::numbered(0)
}

fn config() -> RaftConfig {
    RaftConfig {
        compact_after_entries: 6,
        ..RaftConfig::default()
    }
}

fn open_node(storage: Box<dyn Storage>) -> Result<RaftNode<FileRaftLog>, String> {
    let opened = FileRaftLog::open(storage).map_err(|e| e.to_string())?;
    RaftNode::open(
        me(),
        &[me()],
        sim_schema(),
        config(),
        opened.log,
        &opened.records,
    )
    .map_err(|e| e.to_string())
}

fn elect(node: &mut RaftNode<FileRaftLog>) -> Result<(), String> {
    for _ in 0..100 {
        node.tick();
        node.drain().map_err(|e| e.to_string())?;
        if node.is_leader() {
            return Ok(());
        }
    }
    Err("a lone node never elected itself".to_owned())
}

fn counter_key() -> CellKey {
    CellKey::new("counters", "shared", "value")
}

fn read_int(node: &RaftNode<FileRaftLog>, key: &CellKey) -> Option<i64> {
    node.replica().read_key(key).unwrap().as_integer()
}

/// What the client was told, and what it may not have been told yet.
#[derive(Debug, Default)]
struct Acks {
    /// Acknowledged puts: log index -> (register, value).
    puts: BTreeMap<u64, (String, i64)>,
    /// Acknowledged coordination-free increments, summed.
    increments: i64,
    /// Entries applied before the crash: index -> (term, command).
    applied: BTreeMap<u64, (u64, Vec<u8>)>,
    /// A put proposed but not acknowledged when the disk died.
    in_flight_put: Option<(String, i64)>,
    /// An increment committed but not acknowledged when the disk died.
    in_flight_increment: i64,
    highest_term: u64,
}

const STEPS: i64 = 24;

/// Runs the workload until the storage fails; returns what was acknowledged.
fn run(storage: Box<dyn Storage>) -> Acks {
    let mut acks = Acks::default();
    let Ok(mut node) = open_node(storage) else {
        return acks;
    };
    if elect(&mut node).is_err() {
        return acks;
    }
    for step in 1..=STEPS {
        acks.highest_term = acks.highest_term.max(node.term());
        if step % 3 == 0 {
            let mut tx = AlgebraicTransaction::new();
            tx.increment("counters", "shared", "value", step);
            let Ok(Submitted::Local(_)) = node.submit(tx, TransactionMode::CoordinationFree) else {
                panic!("a local commit is refused only for bad input");
            };
            acks.in_flight_increment = step;
            if node.drain().is_err() {
                return acks;
            }
            acks.increments += step;
            acks.in_flight_increment = 0;
        } else {
            let register = format!("r{}", step % 2);
            let mut tx = AlgebraicTransaction::new();
            tx.put("kv", &register, "reg", step);
            let id = node.propose(tx).unwrap();
            acks.in_flight_put = Some((register.clone(), step));
            let Ok(output) = node.drain() else {
                return acks;
            };
            for (index, term, data) in output.applied {
                acks.applied.insert(index, (term, data));
            }
            let outcome = output.outcomes.into_iter().find(|o| o.id() == id);
            let Some(ClientOutcome::Committed { index, outcome, .. }) = outcome else {
                panic!("a lone leader commits at once: {outcome:?}");
            };
            assert!(matches!(outcome, OrderedOutcome::Applied(_)));
            acks.puts.insert(index, (register, step));
            acks.in_flight_put = None;
        }
    }
    acks
}

/// The recovered node holds every acknowledgement, and nothing it did not hold before.
fn check_recovered(node: &mut RaftNode<FileRaftLog>, acks: &Acks) -> Result<(), String> {
    let (term, _, commit) = node.hard_state();
    if term < acks.highest_term {
        return Err(format!("term went back: {term} < {}", acks.highest_term));
    }
    let last_acked = acks.puts.keys().next_back().copied().unwrap_or(0);
    if node.applied() < last_acked || commit < last_acked {
        return Err(format!(
            "applied {} / commit {commit} before the last acknowledged index {last_acked}",
            node.applied()
        ));
    }
    // Every entry the node still holds at an index it applied before is the same entry.
    for (index, before) in &acks.applied {
        if let Some(after) = node.log_entry(*index)
            && after != *before
            && *index <= node.applied()
        {
            return Err(format!("entry {index} changed across the restart"));
        }
    }
    for r in 0..2 {
        let register = format!("r{r}");
        let key = CellKey::new("kv", &register, "reg");
        let acked = acks
            .puts
            .values()
            .rev()
            .find(|(reg, _)| *reg == register)
            .map(|(_, v)| *v);
        let in_flight = acks
            .in_flight_put
            .as_ref()
            .filter(|(reg, _)| *reg == register)
            .map(|(_, v)| *v);
        let found = read_int(node, &key);
        if found != acked && (in_flight.is_none() || found != in_flight) {
            return Err(format!(
                "{register}: acknowledged {acked:?}, recovered {found:?}"
            ));
        }
    }
    let counter = read_int(node, &counter_key()).unwrap_or(0);
    if counter != acks.increments && counter != acks.increments + acks.in_flight_increment {
        return Err(format!(
            "counter {counter}, acknowledged {}",
            acks.increments
        ));
    }
    // The restarted node goes on at a fresh index: nothing acknowledged is answered again.
    elect(node)?;
    let mut tx = AlgebraicTransaction::new();
    tx.put("kv", "r0", "reg", -1);
    let id = node.propose(tx).map_err(|e| e.to_string())?;
    let output = node.drain().map_err(|e| e.to_string())?;
    match output.outcomes.into_iter().find(|o| o.id() == id) {
        Some(ClientOutcome::Committed { index, .. }) if index > last_acked => Ok(()),
        other => Err(format!("after the restart: {other:?}")),
    }
}

#[test]
fn a_node_on_a_directory_keeps_hard_state_entries_and_applied_state() {
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::open(dir.path()).unwrap();
    let mut node = open_node(Box::new(storage)).unwrap();
    elect(&mut node).unwrap();
    let acks = {
        let mut last = 0;
        for step in 1..=20i64 {
            let mut tx = AlgebraicTransaction::new();
            tx.put("kv", "r0", "reg", step)
                .increment("counters", "shared", "value", 1);
            node.propose(tx).unwrap();
            let mut tx = AlgebraicTransaction::new();
            tx.increment("counters", "shared", "value", 10);
            node.submit(tx, TransactionMode::CoordinationFree).unwrap();
            node.drain().unwrap();
            last = step;
        }
        last
    };
    assert!(node.snapshot_index() > 0, "the log was compacted");
    let (hard_state, applied, fingerprint) = (
        node.hard_state(),
        node.applied(),
        node.replica().fingerprint(),
    );
    let tail = node.log_entry(applied).expect("the last entry is held");
    drop(node);
    // Compaction rotated the segments; only the newest is left.
    let raft_files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name != crate::storage::LOCK_FILE)
        .collect();
    assert_eq!(raft_files.len(), 1, "{raft_files:?}");
    assert!(
        raft_files[0].starts_with("raft-")
            && raft_files[0].as_str() > "raft-00000000000000000002.log"
    );

    let mut again = open_node(Box::new(FsStorage::open(dir.path()).unwrap())).unwrap();
    again.drain().unwrap();
    assert_eq!(again.hard_state(), hard_state);
    assert_eq!(again.applied(), applied);
    assert_eq!(again.replica().fingerprint(), fingerprint);
    assert_eq!(again.log_entry(applied), Some(tail));
    assert_eq!(
        read_int(&again, &CellKey::new("kv", "r0", "reg")),
        Some(acks)
    );
    assert_eq!(read_int(&again, &counter_key()), Some(20 * 11));
    elect(&mut again).unwrap();
    assert!(again.term() > hard_state.0);
}

#[test]
fn a_damaged_raft_segment_is_an_error_and_a_torn_tail_is_cut() {
    let disk = MemStorage::new();
    let mut node = open_node(Box::new(disk.clone())).unwrap();
    elect(&mut node).unwrap();
    for step in 0..3 {
        let mut tx = AlgebraicTransaction::new();
        tx.put("kv", "r0", "reg", step);
        node.propose(tx).unwrap();
        node.drain().unwrap();
    }
    drop(node);
    let name = crate::log::prefixed_segment_name(RAFT_PREFIX, 1);
    let bytes = disk.contents(&name).unwrap();
    // A torn last frame: cut off, the rest recovers.
    let torn = disk.deep_clone();
    torn.set_contents(&name, bytes[..bytes.len() - 3].to_vec());
    let node = open_node(Box::new(torn)).unwrap();
    assert!(node.applied() >= 3);
    // A flipped byte early in the segment: a clean corruption error.
    let damaged = disk.deep_clone();
    let mut flipped = bytes.clone();
    flipped[20] ^= 0x40;
    damaged.set_contents(&name, flipped);
    let err = FileRaftLog::open(Box::new(damaged)).unwrap_err();
    assert!(matches!(err, TxnError::Corrupt { .. }), "{err}");
}

#[test]
fn crash_at_every_write_point_keeps_every_acknowledgement() {
    let counting = FaultyStorage::new(MemStorage::new(), None, Fault::Fail);
    let writes = counting.writes.clone();
    let acks = run(Box::new(counting));
    assert_eq!(
        acks.puts.len() as i64,
        STEPS - STEPS / 3,
        "the fault-free run completes"
    );
    let total = writes.load(std::sync::atomic::Ordering::Relaxed);
    assert!(total > STEPS as u64, "every commit writes: {total}");
    let mut checked = 0;
    for fault_at in 1..=total {
        for fault in [Fault::Fail, Fault::Tear] {
            let disk = MemStorage::new();
            let acks = run(Box::new(FaultyStorage::new(
                disk.clone(),
                Some(fault_at),
                fault,
            )));
            for keep_unsynced in [false, true] {
                let disk = disk.deep_clone();
                disk.power_loss(keep_unsynced);
                let mut node = open_node(Box::new(disk)).unwrap_or_else(|e| {
                    panic!("fault {fault:?} at write {fault_at}: reopen failed: {e}")
                });
                node.drain().unwrap();
                // The commit index and the records of applying entries need not be durable
                // when a client is answered (rule 6 of docs/proofs/coordinated_path.md): a lone
                // node learns its commit index again by re-electing itself, and re-applies.
                elect(&mut node).unwrap_or_else(|e| {
                    panic!("fault {fault:?} at write {fault_at} (keep {keep_unsynced}): {e}")
                });
                node.drain().unwrap();
                check_recovered(&mut node, &acks).unwrap_or_else(|e| {
                    panic!("fault {fault:?} at write {fault_at} (keep {keep_unsynced}): {e}")
                });
                checked += 1;
            }
        }
    }
    assert_eq!(checked, total * 4);
}

/// A schema the log ordered is recorded after the segment's owner record; reopened, then
/// rotated by a snapshot (which supersedes that record), the log must still name it: a node
/// restarted twice across a snapshot otherwise replays its cells without their column.
#[test]
fn a_schema_the_log_ordered_survives_a_reopen_and_the_next_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let open = || FileRaftLog::open(Box::new(FsStorage::open(dir.path()).unwrap())).unwrap();
    let spec = rhizo_algebra::ColumnSpec::new(MergeType::Add, ValueType::Integer).unwrap();
    let wider = sim_schema().with_column("counters", "extra", spec).unwrap();
    let mut opened = open();
    opened.log.set_owner(me(), &sim_schema()).unwrap();
    let ordered = RaftRecord::Schema(Box::new(wider.clone()));
    opened.log.persist(vec![ordered]).unwrap();
    drop(opened);
    let mut opened = open();
    let snapshot = RaftRecord::Snapshot {
        index: 5,
        term: 1,
        voters: vec![1],
        data: Vec::new(),
    };
    opened.log.persist(vec![snapshot]).unwrap();
    drop(opened);
    let opened = open();
    assert!(
        !opened
            .records
            .iter()
            .any(|r| matches!(r, RaftRecord::Schema(_)))
    );
    let (_, schema) = opened.owner.unwrap();
    assert_eq!(schema.version(), wider.version());
    assert!(schema.column("counters", "extra").is_ok());
}

/// Bytes in every file of `disk`, written or synced.
fn bytes_on(disk: &MemStorage) -> usize {
    let names = disk.clone().list().unwrap();
    names
        .iter()
        .map(|name| disk.contents(name).map_or(0, |bytes| bytes.len()))
        .sum()
}

/// A coordination-free commit's record, as the replica logs it.
fn commit_record(replica: &mut rhizo_commit::Replica, row: &str) -> RaftRecord {
    let mut tx = AlgebraicTransaction::new();
    tx.increment("counters", row, "value", 1);
    replica.commit(tx).unwrap();
    let record = replica.take_ready().records.pop().unwrap();
    RaftRecord::Replica(Box::new(record))
}

#[test]
fn a_group_commits_replica_records_wait_in_memory_for_the_sync_or_a_full_batch() {
    let disk = MemStorage::new();
    let opened = FileRaftLog::open(Box::new(disk.clone())).unwrap();
    let mut log = opened.log.with_replica_sync(false);
    let mut replica =
        rhizo_commit::Replica::new(me(), sim_schema(), rhizo_commit::ReplicaConfig::default());
    let empty = bytes_on(&disk);
    log.persist(vec![commit_record(&mut replica, "k0")])
        .unwrap();
    assert_eq!(
        bytes_on(&disk),
        empty,
        "a group's record is not written alone"
    );
    assert!(log.is_dirty(), "and is not counted durable");
    log.sync().unwrap();
    let synced = bytes_on(&disk);
    assert!(synced > empty && !log.is_dirty());
    let reopened = FileRaftLog::open(Box::new(disk.clone())).unwrap();
    let replicas = reopened.records.iter();
    assert_eq!(
        replicas
            .filter(|r| matches!(r, RaftRecord::Replica(_)))
            .count(),
        1
    );
    // Records pile up in memory until a batch's worth waits; then they reach the file.
    let mut rows = 1;
    while bytes_on(&disk) == synced {
        log.persist(vec![commit_record(&mut replica, &format!("k{rows}"))])
            .unwrap();
        rows += 1;
        assert!(rows < REPLICA_WRITE_BATCH, "a full batch is never written");
    }
    assert!(bytes_on(&disk) - synced >= REPLICA_WRITE_BATCH);
    assert!(log.is_dirty(), "written is not synced");
}

#[test]
fn records_synced_at_once_reach_the_file_at_once() {
    let disk = MemStorage::new();
    let opened = FileRaftLog::open(Box::new(disk.clone())).unwrap();
    let mut log = opened.log;
    let mut replica =
        rhizo_commit::Replica::new(me(), sim_schema(), rhizo_commit::ReplicaConfig::default());
    let empty = bytes_on(&disk);
    log.persist(vec![commit_record(&mut replica, "k0")])
        .unwrap();
    assert!(bytes_on(&disk) > empty && !log.is_dirty());
}
