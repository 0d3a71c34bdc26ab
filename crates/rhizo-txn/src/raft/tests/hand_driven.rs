//! Three Raft engines whose messages the test carries by hand, holding back or dropping the
//! ones it names: orders of delivery that can break outcomes, snapshots and schema changes,
//! replayed exactly.

use rhizo_algebra::{AlgebraicValue, MergeType, Schema, ValueType};
use rhizo_clock::NodeId;
use rhizo_commit::{Message, Operations};

use crate::raft::{ProposalId, RaftConfig, RaftWire};
use crate::{Engine, EngineConfig, EngineMessage, Submission, TransactionMode, TxnError};

/// Counters `counters.value` and registers `users.email`.
fn schema() -> Schema {
    Schema::builder()
        .table("counters")
        .column("value", MergeType::Add, ValueType::Integer)
        .table("users")
        .column("email", MergeType::Register, ValueType::Integer)
        .build()
        .unwrap()
}

/// Which messages a delivery keeps back: `(from, to, message)` → hold it.
type Hold<'a> = &'a dyn Fn(NodeId, NodeId, &EngineMessage) -> bool;

/// Delivers everything.
fn none(_: NodeId, _: NodeId, _: &EngineMessage) -> bool {
    false
}

/// Whether `message` is a replica delta (anti-entropy carrying state, not a bare digest).
fn is_delta(message: &EngineMessage) -> bool {
    match message {
        RaftWire::Replica(m) => {
            let Message::Sync(sync) = &**m;
            sync.delta().is_some()
        }
        RaftWire::Raft(_) => false,
    }
}

/// Three in-memory engines and the messages held back from them.
struct Hand {
    engines: Vec<Engine>,
    ids: Vec<NodeId>,
    held: Vec<(NodeId, NodeId, EngineMessage)>,
    /// Messages an engine refused, as `(receiver, error)`.
    refused: Vec<(NodeId, TxnError)>,
}

impl Hand {
    fn new(schema: Schema, raft: RaftConfig) -> Self {
        let ids: Vec<NodeId> = (0..3).map(NodeId::numbered).collect();
        let engines = ids
            .iter()
            .map(|id| {
                let config = EngineConfig::new(*id)
                    .with_members(ids.clone())
                    .with_schema(schema.clone())
                    .with_raft(raft.clone());
                Engine::in_memory(config).unwrap()
            })
            .collect();
        Self {
            engines,
            ids,
            held: Vec::new(),
            refused: Vec::new(),
        }
    }

    fn index(&self, node: NodeId) -> usize {
        self.ids.iter().position(|n| *n == node).unwrap()
    }

    /// Delivers messages until none is left, keeping aside those `hold` names.
    fn deliver(&mut self, hold: Hold<'_>) {
        loop {
            let mut any = false;
            for i in 0..self.engines.len() {
                let from = self.ids[i];
                for (to, message) in self.engines[i].take_messages().unwrap() {
                    if hold(from, to, &message) {
                        self.held.push((from, to, message));
                        continue;
                    }
                    any = true;
                    self.receive(from, to, message);
                }
            }
            if !any {
                return;
            }
        }
    }

    fn receive(&mut self, from: NodeId, to: NodeId, message: EngineMessage) {
        let j = self.index(to);
        if let Err(err) = self.engines[j].receive(from, message) {
            self.refused.push((to, err));
        }
    }

    /// `n` ticks of every engine, each followed by a delivery.
    fn ticks(&mut self, n: usize, hold: Hold<'_>) {
        for _ in 0..n {
            for engine in &mut self.engines {
                engine.tick().unwrap();
            }
            self.deliver(hold);
        }
    }

    /// Ticks until an engine leads; returns it.
    fn elect(&mut self) -> usize {
        for _ in 0..200 {
            self.ticks(1, &none);
            if let Some(l) = self
                .engines
                .iter()
                .position(|e| e.raft().unwrap().is_leader())
            {
                return l;
            }
        }
        panic!("no leader after 200 ticks");
    }

    /// Delivers the held messages `release` names; the others stay held.
    fn release(&mut self, release: Hold<'_>) {
        let held = std::mem::take(&mut self.held);
        for (from, to, message) in held {
            if release(from, to, &message) {
                self.receive(from, to, message);
            } else {
                self.held.push((from, to, message));
            }
        }
    }

    /// Rounds of anti-entropy between every pair and Raft ticks, nothing held.
    fn heal(&mut self, rounds: usize) {
        for _ in 0..rounds {
            for i in 0..3 {
                for j in 0..3 {
                    if i != j {
                        self.engines[i].sync_with(self.ids[j]).unwrap();
                        self.deliver(&none);
                    }
                }
            }
            self.ticks(2, &none);
        }
    }

    /// Submits a coordinated transaction on engine `at`; it must wait for the log.
    fn propose(
        &mut self,
        at: usize,
        build: impl FnOnce(&mut crate::Transaction<'_>),
    ) -> ProposalId {
        let mut tx = self.engines[at].transaction(TransactionMode::Coordinated);
        build(&mut tx);
        match tx.commit().unwrap() {
            Submission::Pending(id) => id,
            decided => panic!("a three-member group decided at once: {decided:?}"),
        }
    }

    fn read(&self, at: usize, table: &str, row: &str, column: &str) -> AlgebraicValue {
        self.engines[at].read(table, row, column).unwrap()
    }

    /// No engine refused a message.
    fn assert_nothing_refused(&self) {
        assert!(self.refused.is_empty(), "refused: {:?}", self.refused);
    }

    /// Every engine holds the same state.
    fn assert_converged(&self) {
        let first = self.engines[0].fingerprint();
        for engine in &self.engines[1..] {
            assert_eq!(engine.clock(), self.engines[0].clock());
            assert_eq!(engine.fingerprint(), first, "{}", engine.node_id());
        }
    }
}

/// A follower proposes a compare-and-set whose condition is false; the leader commits it while
/// Raft's messages to the follower are held, and anti-entropy then offers the follower the
/// entry's (refused) result before Raft applies it there. The follower must still learn that
/// the condition failed — not hear "committed" for a write that took effect nowhere.
#[test]
fn a_failed_compare_and_set_is_refused_even_when_anti_entropy_brings_its_entry_first() {
    let raft = RaftConfig {
        proposal_timeout_ticks: 1000,
        ..RaftConfig::default()
    };
    let mut hand = Hand::new(schema(), raft);
    let l = hand.elect();
    let f = (l + 1) % 3;
    let put = hand.propose(l, |tx| {
        tx.put("users", "u", "email", 1);
    });
    hand.ticks(5, &none);
    let outcomes = hand.engines[l].take_outcomes();
    assert!(matches!(outcomes.as_slice(), [(id, Ok(_))] if *id == put));

    let cas = hand.propose(f, |tx| {
        tx.compare_and_set("users", "u", "email", 5, 2);
    });
    let follower = hand.ids[f];
    let raft_to_follower = move |_: NodeId, to: NodeId, m: &EngineMessage| {
        to == follower && matches!(m, RaftWire::Raft(_))
    };
    hand.ticks(6, &raft_to_follower);
    let leader_index = hand.engines[l].last_sequence();
    assert!(leader_index > hand.engines[f].last_sequence());
    // Anti-entropy from the leader: the follower holds the entry back while its proposal
    // waits, so that it applies the entry itself, in log order.
    hand.engines[f].sync_with(hand.ids[l]).unwrap();
    hand.deliver(&raft_to_follower);
    assert!(
        hand.engines[f].last_sequence() < leader_index,
        "the follower took the log's news by anti-entropy while its proposal waited"
    );
    hand.release(&none);
    hand.ticks(10, &none);
    let outcomes = hand.engines[f].take_outcomes();
    let answer = outcomes.iter().find(|(id, _)| *id == cas).map(|(_, a)| a);
    assert!(
        matches!(answer, Some(Err(TxnError::ConditionFailed { .. }))),
        "the follower's failed compare-and-set was answered {answer:?}"
    );
    for at in 0..3 {
        assert_eq!(
            hand.read(at, "users", "u", "email"),
            AlgebraicValue::Integer(1)
        );
    }
    hand.assert_nothing_refused();
}

/// A follower cut off while the leader commits and compacts, then offered only digests and
/// Raft's catch-up (its deltas lost, or held and delivered late with `delay`): whatever
/// snapshot reaches it, it must not skip entries it never applied, so once healed every member
/// holds the same state with every entry counted once.
fn a_follower_behind_a_compacted_log_catches_up_whole(delay: bool) {
    let raft = RaftConfig {
        compact_after_entries: 3,
        proposal_timeout_ticks: 1000,
        ..RaftConfig::default()
    };
    let mut hand = Hand::new(schema(), raft);
    let l = hand.elect();
    let (f, b) = ((l + 1) % 3, (l + 2) % 3);
    let follower = hand.ids[f];
    hand.ticks(3, &none);
    let coordinated = |hand: &mut Hand, v: i64, hold: Hold<'_>| {
        hand.propose(l, |tx| {
            tx.put("users", "u", "email", v)
                .increment("counters", "c", "value", 10);
        });
        hand.ticks(3, hold);
    };
    // The follower is cut off while the leader orders eight entries and compacts its log.
    let cut = move |from: NodeId, to: NodeId, _: &EngineMessage| from == follower || to == follower;
    for v in 1..=8 {
        coordinated(&mut hand, v, &cut);
    }
    assert!(hand.engines[l].raft().unwrap().snapshot_index() > 0);
    // It commits without coordination, and its peers learn that commit while every delta to
    // it is lost: its view of what every member has seen moves past the leader's older images.
    let mut tx = hand.engines[f].transaction(TransactionMode::CoordinationFree);
    tx.increment("counters", "x", "value", 1);
    assert!(tx.commit().unwrap().committed().is_some());
    let deltas_to_follower = move |from: NodeId, to: NodeId, m: &EngineMessage| {
        (from == follower || to == follower)
            && (matches!(m, RaftWire::Raft(_)) || (to == follower && is_delta(m)))
    };
    for _ in 0..2 {
        for peer in [l, b] {
            hand.engines[peer].sync_with(follower).unwrap();
            hand.deliver(&deltas_to_follower);
        }
    }
    hand.engines[f].sync_with(hand.ids[l]).unwrap();
    hand.deliver(&deltas_to_follower);
    if !delay {
        hand.held.clear();
    }
    // Raft reaches the follower again (replica deltas to it still held back), and one more
    // entry is ordered.
    let deltas_only = move |from: NodeId, to: NodeId, m: &EngineMessage| {
        to == follower && from != follower && is_delta(m)
    };
    hand.ticks(10, &deltas_only);
    coordinated(&mut hand, 100, &deltas_only);
    hand.ticks(5, &deltas_only);
    // Everything heals; held deltas arrive late.
    hand.release(&|_, to, m| to == follower && matches!(m, RaftWire::Replica(_)));
    hand.held.clear();
    hand.heal(10);
    hand.assert_converged();
    for at in 0..3 {
        assert_eq!(
            hand.read(at, "counters", "c", "value"),
            AlgebraicValue::Integer(90)
        );
        assert_eq!(
            hand.read(at, "counters", "x", "value"),
            AlgebraicValue::Integer(1)
        );
        assert_eq!(
            hand.read(at, "users", "u", "email"),
            AlgebraicValue::Integer(100)
        );
    }
    let applied = hand.engines[l].raft().unwrap().applied();
    assert_eq!(hand.engines[f].raft().unwrap().applied(), applied);
    assert_eq!(
        hand.engines[f].last_sequence(),
        hand.engines[l].last_sequence()
    );
    hand.assert_nothing_refused();
}

#[test]
fn a_follower_behind_a_compacted_log_catches_up_whole_when_its_deltas_are_lost() {
    a_follower_behind_a_compacted_log_catches_up_whole(false);
}

#[test]
fn a_follower_behind_a_compacted_log_catches_up_whole_when_its_deltas_arrive_late() {
    a_follower_behind_a_compacted_log_catches_up_whole(true);
}

/// A column declared on one member is ordered through the log: an entry using it, acknowledged
/// at once, reaches every member with the column already there — none reads 0 for ever.
#[test]
fn a_column_declared_on_the_leader_reaches_every_member_before_the_entries_that_use_it() {
    let base = Schema::builder()
        .table("counters")
        .column("value", MergeType::Add, ValueType::Integer)
        .build()
        .unwrap();
    let mut hand = Hand::new(base, RaftConfig::default());
    let l = hand.elect();
    let declared = hand.engines[l]
        .declare_column("counters", "extra", MergeType::Add, ValueType::Integer)
        .unwrap();
    let Submission::Pending(schema_change) = declared else {
        panic!("a schema change under Raft is ordered by the log: {declared:?}")
    };
    hand.ticks(5, &none);
    let outcomes = hand.engines[l].take_outcomes();
    assert!(matches!(outcomes.as_slice(), [(id, Ok(_))] if *id == schema_change));
    let increment = hand.propose(l, |tx| {
        tx.increment("counters", "c", "extra", 10);
    });
    hand.ticks(5, &none);
    let outcomes = hand.engines[l].take_outcomes();
    assert!(matches!(outcomes.as_slice(), [(id, Ok(_))] if *id == increment));
    // The rest of a rolling rollout declares the column again: nothing changes.
    for at in 0..3 {
        let again = hand.engines[at]
            .declare_column("counters", "extra", MergeType::Add, ValueType::Integer)
            .unwrap();
        assert!(matches!(again, Submission::Committed(_)), "{again:?}");
    }
    hand.heal(5);
    hand.assert_converged();
    for at in 0..3 {
        assert_eq!(
            hand.read(at, "counters", "c", "extra"),
            AlgebraicValue::Integer(10)
        );
    }
    hand.assert_nothing_refused();
}
/// A member cut off while a column is declared, used and compacted away behind a snapshot
/// learns the column with the snapshot: it reads what the log decided, and takes later entries
/// using the column.
#[test]
fn a_member_that_misses_a_schema_change_behind_a_snapshot_still_learns_the_column() {
    let base = Schema::builder()
        .table("counters")
        .column("value", MergeType::Add, ValueType::Integer)
        .build()
        .unwrap();
    let raft = RaftConfig {
        compact_after_entries: 3,
        ..RaftConfig::default()
    };
    let mut hand = Hand::new(base, raft);
    let l = hand.elect();
    let follower = hand.ids[(l + 1) % 3];
    let cut = move |from: NodeId, to: NodeId, _: &EngineMessage| from == follower || to == follower;
    hand.ticks(3, &none);
    let declared = hand.engines[l]
        .declare_column("counters", "extra", MergeType::Add, ValueType::Integer)
        .unwrap();
    assert!(matches!(declared, Submission::Pending(_)));
    hand.ticks(3, &cut);
    for _ in 0..6 {
        hand.propose(l, |tx| {
            tx.increment("counters", "c", "extra", 10);
        });
        hand.ticks(3, &cut);
    }
    assert!(hand.engines[l].raft().unwrap().snapshot_index() > 0);
    hand.held.clear();
    hand.heal(5);
    hand.propose(l, |tx| {
        tx.increment("counters", "c", "extra", 1);
    });
    hand.heal(5);
    hand.assert_converged();
    for at in 0..3 {
        assert_eq!(
            hand.read(at, "counters", "c", "extra"),
            AlgebraicValue::Integer(61)
        );
    }
}

/// A follower's proposal forwarded to the leader and delivered twice (a retransmission, a
/// duplicating network) is appended to the log twice; applied twice, a coordinated increment
/// counts twice. Each proposal must take effect once.
#[test]
fn a_proposal_delivered_twice_to_the_leader_takes_effect_once() {
    use raft::eraftpb::MessageType;
    let mut hand = Hand::new(schema(), RaftConfig::default());
    let l = hand.elect();
    let f = (l + 1) % 3;
    hand.propose(f, |tx| {
        tx.increment("counters", "c", "value", 10);
    });
    let (follower, leader) = (hand.ids[f], hand.ids[l]);
    let messages = hand.engines[f].take_messages().unwrap();
    for (to, message) in messages {
        let forwarded =
            matches!(&message, RaftWire::Raft(m) if m.get_msg_type() == MessageType::MsgPropose);
        if forwarded && to == leader {
            hand.receive(follower, to, message.clone());
        }
        hand.receive(follower, to, message);
    }
    hand.ticks(10, &none);
    hand.heal(3);
    hand.assert_converged();
    assert_eq!(
        hand.read(l, "counters", "c", "value"),
        AlgebraicValue::Integer(10)
    );
}
