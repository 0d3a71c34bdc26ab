//! The Raft path: a node alone, restarts, refusals, Auto mode, and the seeded sweep.

use rhizo_algebra::{AlgebraicValue, MergeType, Schema, ValueType};
use rhizo_clock::NodeId;
use rhizo_commit::{AlgebraicTransaction, CellKey, LocalCommitError, Operations, OrderedOutcome};

use super::storage::RaftLogStore;
use super::*;
use crate::engine::tests::decide;
use crate::testkit::schema;
use crate::{CommitPath, Engine, EngineConfig, TransactionMode};

mod at_most_once;
mod durability;
mod membership;

fn solo(config: RaftConfig, log: MemRaftLog) -> RaftNode<MemRaftLog> {
    let records = log.records().to_vec();
    RaftNode::open(
        NodeId::numbered(0),
        &[NodeId::numbered(0)],
        schema(),
        config,
        log,
        &records,
    )
    .unwrap()
}

/// Ticks a lone node until it leads.
fn elect(node: &mut RaftNode<MemRaftLog>) {
    for _ in 0..100 {
        node.tick();
        node.drain().unwrap();
        if node.is_leader() {
            return;
        }
    }
    panic!("a single node never elected itself");
}

fn put(register: &str, value: i64) -> AlgebraicTransaction {
    let mut tx = AlgebraicTransaction::new();
    tx.put("kv", register, "reg", value);
    tx
}

fn committed(node: &mut RaftNode<MemRaftLog>, id: ProposalId) -> ClientOutcome {
    let outcomes = node.drain().unwrap().outcomes;
    let outcome = outcomes.into_iter().find(|o| o.id() == id);
    outcome.expect("a lone leader commits at once")
}

#[test]
fn a_lone_node_commits_reads_and_recovers_from_its_log() {
    let mut node = solo(RaftConfig::default(), MemRaftLog::new());
    elect(&mut node);
    let id = node.propose(put("r0", 7)).unwrap();
    let ClientOutcome::Committed { index, outcome, .. } = committed(&mut node, id) else {
        panic!("expected a commit");
    };
    assert!(matches!(outcome, OrderedOutcome::Applied(_)));
    let id = node.read(vec![CellKey::new("kv", "r0", "reg")]).unwrap();
    let ClientOutcome::Read {
        index: read_at,
        values,
        ..
    } = committed(&mut node, id)
    else {
        panic!("expected a read");
    };
    assert!(read_at > index);
    assert_eq!(values[0].1.as_ref().unwrap(), &AlgebraicValue::Integer(7));

    // A restart replays hard state, entries and replica records.
    let log = node.durable_log().clone();
    let fingerprint = node.replica().fingerprint();
    let (term, applied) = (node.term(), node.applied());
    let mut again = solo(RaftConfig::default(), log);
    again.drain().unwrap();
    assert_eq!(again.replica().fingerprint(), fingerprint);
    assert_eq!(again.applied(), applied);
    assert!(again.term() >= term);
    elect(&mut again);
    // New proposals carry a new incarnation: never confused with the old life's.
    let id2 = again.propose(put("r0", 8)).unwrap();
    assert_ne!(id2.incarnation, id.incarnation);
    assert!(matches!(
        committed(&mut again, id2),
        ClientOutcome::Committed { .. }
    ));
    assert_eq!(
        again.replica().read("kv", "r0", "reg").unwrap(),
        AlgebraicValue::Integer(8)
    );
}

#[test]
fn snapshots_compact_the_log_and_survive_a_restart() {
    let config = RaftConfig {
        compact_after_entries: 4,
        ..RaftConfig::default()
    };
    let mut node = solo(config.clone(), MemRaftLog::new());
    elect(&mut node);
    for i in 0..20 {
        let id = node.propose(put("r1", i)).unwrap();
        committed(&mut node, id);
    }
    assert!(
        node.snapshot_index() >= 16,
        "snapshot at {}",
        node.snapshot_index()
    );
    let log = node.durable_log().clone();
    assert!(
        log.records().len() < 30,
        "a snapshot drops what it supersedes ({} records)",
        log.records().len()
    );
    let again = solo(config, log);
    assert_eq!(again.replica().fingerprint(), node.replica().fingerprint());
    assert_eq!(
        again.replica().read("kv", "r1", "reg").unwrap(),
        AlgebraicValue::Integer(19)
    );
}

#[test]
fn without_a_leader_a_proposal_is_refused_and_nothing_changes() {
    let members: Vec<NodeId> = (0..3).map(NodeId::numbered).collect();
    let mut node = RaftNode::open(
        members[1],
        &members,
        schema(),
        RaftConfig::default(),
        MemRaftLog::new(),
        &[],
    )
    .unwrap();
    let before = node.replica().fingerprint();
    assert!(matches!(
        node.propose(put("r0", 1)),
        Err(RaftError::NoLeader)
    ));
    assert!(matches!(
        node.read(vec![CellKey::new("kv", "r0", "reg")]),
        Err(RaftError::NoLeader)
    ));
    assert_eq!(node.pending(), 0);
    assert_eq!(node.replica().fingerprint(), before);
    assert!(RaftError::NoLeader.to_string().contains("retry"));
    // Not a member, or a bad configuration: typed errors.
    assert!(matches!(
        RaftNode::open(
            NodeId::numbered(9),
            &members,
            schema(),
            RaftConfig::default(),
            MemRaftLog::new(),
            &[]
        ),
        Err(RaftError::UnknownMember { .. })
    ));
    let bad = RaftConfig {
        heartbeat_tick: 10,
        ..RaftConfig::default()
    };
    assert!(matches!(
        RaftNode::open(members[0], &members, schema(), bad, MemRaftLog::new(), &[]),
        Err(RaftError::Config { .. })
    ));
}

#[test]
fn mixing_rules_hold_on_the_raft_path() {
    let mut node = solo(RaftConfig::default(), MemRaftLog::new());
    elect(&mut node);
    // A condition on an algebraic column is refused before proposing.
    let mut cas = AlgebraicTransaction::new();
    cas.compare_and_set("counters", "shared", "value", 0, 1);
    assert!(matches!(node.propose(cas), Err(RaftError::Refused(_))));
    // An algebraic column accepts only its merge op, in either mode.
    let mut tx = AlgebraicTransaction::new();
    tx.put("counters", "shared", "value", 3);
    assert!(matches!(
        node.submit(tx.clone(), TransactionMode::Coordinated),
        Err(RaftError::Refused(_))
    ));
    assert!(matches!(
        node.submit(tx, TransactionMode::Auto),
        Err(RaftError::Refused(_))
    ));
    // A register never changes without the log.
    let refused = node.submit(put("r0", 1), TransactionMode::CoordinationFree);
    assert!(matches!(
        refused,
        Err(RaftError::Refused(e)) if matches!(*e, LocalCommitError::RequiresCoordination { .. })
    ));
    // Auto: all-algebraic commits locally, anything else escalates whole.
    let mut add = AlgebraicTransaction::new();
    add.increment("counters", "shared", "value", 2);
    let local = node.submit(add.clone(), TransactionMode::Auto).unwrap();
    assert_eq!(local.path(), CommitPath::Local);
    let mut mixed = add;
    mixed.put("kv", "r0", "reg", 5);
    let escalated = node.submit(mixed, TransactionMode::Auto).unwrap();
    assert_eq!(escalated.path(), CommitPath::Consensus);
    let Submitted::Proposed(id) = escalated else {
        panic!()
    };
    assert!(matches!(
        committed(&mut node, id),
        ClientOutcome::Committed { .. }
    ));
    // The coordinated ADD and the local ADD both count, once each.
    assert_eq!(
        node.replica().read("counters", "shared", "value").unwrap(),
        AlgebraicValue::Integer(4)
    );
    // A compare-and-set whose condition fails consumes its index and changes nothing.
    let mut cas = AlgebraicTransaction::new();
    cas.compare_and_set("kv", "r0", "reg", 99, 6)
        .increment("counters", "shared", "value", 50);
    let id = node.propose(cas).unwrap();
    let ClientOutcome::Committed { outcome, .. } = committed(&mut node, id) else {
        panic!()
    };
    assert!(matches!(outcome, OrderedOutcome::Refused(_)));
    assert_eq!(
        node.replica().read("counters", "shared", "value").unwrap(),
        AlgebraicValue::Integer(4)
    );
}

#[test]
fn engine_auto_mode_reports_its_path() {
    let schema = Schema::builder()
        .table("counters")
        .column("value", MergeType::Add, ValueType::Integer)
        .table("kv")
        .column("reg", MergeType::Register, ValueType::Integer)
        .build()
        .unwrap();
    let config = EngineConfig::new(NodeId::numbered(0)).with_schema(schema);
    let mut engine = Engine::in_memory(config).unwrap();
    let mut tx = engine.transaction(TransactionMode::Auto);
    tx.increment("counters", "c", "value", 1);
    assert_eq!(decide(tx).unwrap().path, CommitPath::Local);
    let mut tx = engine.transaction(TransactionMode::Auto);
    tx.increment("counters", "c", "value", 1)
        .put("kv", "r", "reg", 4);
    let outcome = decide(tx).unwrap();
    assert_eq!(outcome.path, CommitPath::Consensus);
    assert!(outcome.sequence.is_some());
    let mut tx = engine.transaction(TransactionMode::Coordinated);
    tx.increment("counters", "c", "value", 1);
    assert_eq!(decide(tx).unwrap().path, CommitPath::Consensus);
    assert_eq!(
        engine.read("counters", "c", "value").unwrap(),
        AlgebraicValue::Integer(3)
    );
    assert_eq!(
        engine.read("kv", "r", "reg").unwrap(),
        AlgebraicValue::Integer(4)
    );
}

#[test]
fn a_second_snapshot_at_the_same_index_keeps_the_log_after_it() {
    use raft::eraftpb::{Entry, Snapshot};
    let mut store = RaftLogStore::new(vec![1]);
    let entries: Vec<Entry> = (1..=10)
        .map(|index| Entry {
            index,
            term: 1,
            ..Entry::default()
        })
        .collect();
    store.append(&entries).unwrap();
    let at = |index| {
        let mut snapshot = Snapshot::default();
        snapshot.mut_metadata().index = index;
        snapshot.mut_metadata().term = 1;
        snapshot
    };
    store.install_snapshot(at(5));
    assert_eq!(store.entries_ref().first().map(|e| e.index), Some(6));
    // Taken again at the same point (a fresh snapshot for a follower): the entries after it
    // are not dropped with it.
    store.install_snapshot(at(5));
    let held: Vec<u64> = store.entries_ref().iter().map(|e| e.index).collect();
    assert_eq!(held, [6, 7, 8, 9, 10]);
}

mod hand_driven;
