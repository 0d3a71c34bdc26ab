//! Recovery replays without emitting: a recovered replica's first `Ready` holds nothing it read
//! from its log, and its snapshot cadence goes on where the log left it.

use proptest::prelude::*;
use rhizo_algebra::AlgebraicValue;

use super::{build_tx, incr, node, schema};
use crate::wire::{decode_record, encode_record, encoded_record_len};
use crate::{LocalCommitError, Message, Record, Replica, ReplicaConfig};

fn lone(snapshot_every: usize) -> ReplicaConfig {
    ReplicaConfig {
        members: vec![node(0)],
        snapshot_every,
        ..ReplicaConfig::default()
    }
}

/// The records a driver following the `Ready` contract keeps, over two restarts: the second
/// recovery reads every acknowledged commit, and its replica goes on from its last dot.
#[test]
fn a_recovered_replica_hands_back_nothing_it_read_from_its_log() {
    let config = lone(2);
    let mut replica = Replica::new(node(0), schema(), config.clone());
    let ordered = replica.prepare_ordered(incr("r", 1)).unwrap();
    replica.apply_ordered(1, &ordered).unwrap();
    replica.apply_ordered(2, &ordered).unwrap();
    replica.commit(incr("r", 10)).unwrap();
    replica.commit(incr("r", 10)).unwrap();
    let mut log = replica.take_ready().records;
    let mut recovered = Replica::recover(node(0), schema(), config.clone(), log.clone()).unwrap();
    let ready = recovered.take_ready();
    assert!(
        ready.is_empty(),
        "recovery handed back {:?}",
        ready.records.len()
    );
    log.extend(ready.records);
    // A crash right after the restart recovers the same replica.
    let again = Replica::recover(node(0), schema(), config.clone(), log.clone()).unwrap();
    assert_eq!(
        again.read("t", "r", "sum").unwrap(),
        AlgebraicValue::Integer(22)
    );
    assert_eq!(again.canonical_state(), replica.canonical_state());
    recovered.commit(incr("r", 100)).unwrap();
    log.extend(recovered.take_ready().records);
    let last = Replica::recover(node(0), schema(), config, log).unwrap();
    assert_eq!(
        last.read("t", "r", "sum").unwrap(),
        AlgebraicValue::Integer(122)
    );
    assert_eq!(last.clock().get(node(0)), 3);
}

/// A snapshot whose stable point is ahead of its clock is refused where it stands: a replica
/// must not have collected what it has not delivered.
#[test]
fn a_snapshot_whose_stable_point_is_ahead_of_its_clock_is_refused() {
    let mut replica = Replica::new(node(0), schema(), lone(4096));
    replica.commit(incr("r", 1)).unwrap();
    let mut snapshot = replica.snapshot();
    snapshot.stable = snapshot.clock.clone().with_node(node(1), 1);
    let records = vec![Record::Snapshot(Box::new(snapshot))];
    let err = Replica::recover(node(0), schema(), lone(4096), records).unwrap_err();
    assert!(
        matches!(err, LocalCommitError::Recovery { index: 0, .. }),
        "{err:?}"
    );
}

/// What the replica under test, or its peer, does next.
#[derive(Debug, Clone)]
enum Step {
    /// A local commit.
    Local(Vec<(u8, u8, i64)>),
    /// A transaction ordered by the (simulated) consensus log at its next index.
    Ordered(Vec<(u8, u8, i64)>),
    /// A local commit on the peer.
    PeerCommit(Vec<(u8, u8, i64)>),
    /// An anti-entropy exchange, started by the replica (`true`) or by the peer.
    Exchange(bool),
    /// A power loss and a restart from the durable log, trimmed before its last snapshot or
    /// not.
    Crash { trim: bool },
}

fn arb_ops() -> impl Strategy<Value = Vec<(u8, u8, i64)>> {
    prop::collection::vec((0u8..6, 0u8..3, -50i64..50), 1..4)
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => arb_ops().prop_map(Step::Local),
        3 => arb_ops().prop_map(Step::Ordered),
        2 => arb_ops().prop_map(Step::PeerCommit),
        2 => any::<bool>().prop_map(Step::Exchange),
        2 => any::<bool>().prop_map(|trim| Step::Crash { trim }),
    ]
}

/// A replica (`node(0)`) with a peer (`node(1)`), driven by the `Ready` contract: records made
/// durable first, then messages carried.
struct World {
    config: ReplicaConfig,
    replica: Replica,
    peer: Replica,
    log: Vec<Record>,
    next_index: u64,
}

impl World {
    fn new(snapshot_every: usize) -> Self {
        let config = ReplicaConfig {
            members: vec![node(0), node(1)],
            snapshot_every,
            ..ReplicaConfig::default()
        };
        Self {
            replica: Replica::new(node(0), schema(), config.clone()),
            peer: Replica::new(node(1), schema(), config.clone()),
            config,
            log: Vec::new(),
            next_index: 1,
        }
    }

    /// Takes the replica's and the peer's `Ready`: the replica's records go to its log (their
    /// kinds are returned), messages are returned in flight.
    fn drain(&mut self) -> (Vec<&'static str>, Vec<(bool, Message)>) {
        let ready = self.replica.take_ready();
        for record in &ready.records {
            let bytes = encode_record(record);
            assert_eq!(encoded_record_len(record), bytes.len());
            assert_eq!(
                &decode_record(&bytes).unwrap(),
                record,
                "a record round-trips"
            );
        }
        let kinds = ready.records.iter().map(kind).collect();
        self.log.extend(ready.records);
        let mut in_flight: Vec<(bool, Message)> =
            ready.messages.into_iter().map(|(_, m)| (true, m)).collect();
        in_flight.extend(
            self.peer
                .take_ready()
                .messages
                .into_iter()
                .map(|(_, m)| (false, m)),
        );
        (kinds, in_flight)
    }

    /// Carries out `step`; returns the kinds of the records the replica emitted.
    fn run(&mut self, step: &Step) -> Vec<&'static str> {
        match step {
            Step::Local(ops) => {
                let _ = self.replica.commit(build_tx(ops));
            }
            Step::Ordered(ops) => {
                if let Ok(update) = self.replica.prepare_ordered(build_tx(ops)) {
                    self.replica
                        .apply_ordered(self.next_index, &update)
                        .unwrap();
                    self.peer.apply_ordered(self.next_index, &update).unwrap();
                }
                self.next_index += 1;
            }
            Step::PeerCommit(ops) => {
                let _ = self.peer.commit(build_tx(ops));
            }
            Step::Exchange(by_replica) => {
                if *by_replica {
                    self.replica.sync_with(node(1));
                } else {
                    self.peer.sync_with(node(0));
                }
            }
            Step::Crash { trim } => {
                let mut log = self.log.clone();
                if *trim
                    && let Some(at) = log.iter().rposition(|r| matches!(r, Record::Snapshot(_)))
                {
                    log.drain(..at);
                }
                self.replica =
                    Replica::recover(node(0), schema(), self.config.clone(), log).unwrap();
                assert!(self.replica.take_ready().is_empty(), "recovery re-emitted");
            }
        }
        let mut kinds = Vec::new();
        loop {
            let (emitted, in_flight) = self.drain();
            kinds.extend(emitted);
            if in_flight.is_empty() {
                return kinds;
            }
            for (from_replica, message) in in_flight {
                if from_replica {
                    self.peer.step(node(0), message).unwrap();
                } else {
                    self.replica.step(node(1), message).unwrap();
                }
            }
        }
    }
}

fn kind(record: &Record) -> &'static str {
    match record {
        Record::Commit(_) => "commit",
        Record::Merge { .. } => "merge",
        Record::Ordered { .. } => "ordered",
        Record::Snapshot(_) => "snapshot",
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Local commits, ordered entries and merges from a peer, with crashes at random points:
    /// after every restart the replica holds what a replica that never crashed holds, emits
    /// the same kinds of records from then on (its snapshot cadence goes on where the log left
    /// it), and its log recovers it again at the end.
    #[test]
    fn prop_recover_drive_recover_matches_a_replica_that_never_crashed(
        snapshot_every in 1usize..=8,
        steps in prop::collection::vec(arb_step(), 1..60),
    ) {
        let mut crashing = World::new(snapshot_every);
        let mut oracle = World::new(snapshot_every);
        for step in &steps {
            let emitted = crashing.run(step);
            let expected = match step {
                Step::Crash { .. } => Vec::new(),
                other => oracle.run(other),
            };
            prop_assert_eq!(emitted, expected, "records emitted after {:?}", step);
            prop_assert_eq!(crashing.replica.clock(), oracle.replica.clock());
            prop_assert!(crashing.replica.same_canonical_state(&oracle.replica));
            prop_assert!(crashing.peer.same_canonical_state(&oracle.peer));
        }
        let recovered = Replica::recover(node(0), schema(), crashing.config.clone(), crashing.log.clone()).unwrap();
        prop_assert!(recovered.same_canonical_state(&oracle.replica));
    }
}
