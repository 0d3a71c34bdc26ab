//! Membership changes through the log: a fourth node joins a loaded group and converges, a
//! member is removed and refused, and both survive restarts. The group runs on an in-memory
//! network the test drives round by round, so a run replays exactly.

use std::collections::BTreeMap;

use rhizo_algebra::AlgebraicValue;
use rhizo_clock::NodeId;
use rhizo_commit::{AlgebraicTransaction, Operations, OrderedOutcome};

use crate::raft::{
    ClientOutcome, MemRaftLog, ProposalId, RaftConfig, RaftError, RaftNode, RaftWire, Submitted,
};
use crate::testkit::schema;
use crate::{Engine, EngineConfig, MemStorage, Submission, TransactionMode, TxnError};

/// Raft nodes on a network that delivers everything, in order, once per round.
struct Group {
    nodes: BTreeMap<NodeId, RaftNode<MemRaftLog>>,
    /// Messages a node refused because their sender is not a member: `(from, to)`.
    refused: Vec<(NodeId, NodeId)>,
    /// Outcomes of proposals, by proposal.
    outcomes: BTreeMap<ProposalId, ClientOutcome>,
    /// Coordination-free increments acknowledged (each adds 1 to `counters/cf.value`).
    acked_increments: i64,
    /// Coordinated puts proposed: proposal → the register (and value) it wrote.
    puts: BTreeMap<ProposalId, usize>,
    /// A node whose anti-entropy messages are dropped (its Raft messages still flow): what it
    /// commits coordination-free stays on it alone.
    muted: Option<NodeId>,
    round: u64,
}

fn config(join: bool) -> RaftConfig {
    RaftConfig {
        compact_after_entries: 32,
        seed: 7,
        join,
        ..RaftConfig::default()
    }
}

fn open(id: NodeId, members: &[NodeId], join: bool, log: MemRaftLog) -> RaftNode<MemRaftLog> {
    let records = log.records().to_vec();
    RaftNode::open(id, members, schema(), config(join), log, &records).unwrap()
}

fn ids(n: u32) -> Vec<NodeId> {
    (0..n).map(NodeId::numbered).collect()
}

impl Group {
    fn new(size: u32) -> Self {
        let members = ids(size);
        let nodes = members
            .iter()
            .map(|id| (*id, open(*id, &members, false, MemRaftLog::new())))
            .collect();
        Self {
            nodes,
            refused: Vec::new(),
            outcomes: BTreeMap::new(),
            acked_increments: 0,
            puts: BTreeMap::new(),
            muted: None,
            round: 0,
        }
    }

    fn leader(&self) -> Option<NodeId> {
        self.nodes
            .values()
            .find(|n| n.is_leader() && n.members().contains(&n.id()))
            .map(RaftNode::id)
    }

    fn node(&mut self, id: NodeId) -> &mut RaftNode<MemRaftLog> {
        self.nodes.get_mut(&id).unwrap()
    }

    /// One round: every node ticks, gossips with its members every few rounds, drains; then
    /// every message is delivered.
    fn step(&mut self) {
        self.round += 1;
        let mut mail = Vec::new();
        for (id, node) in &mut self.nodes {
            node.tick();
            if self.round.is_multiple_of(3) {
                for peer in node.members().to_vec() {
                    if peer != *id {
                        node.sync_with(peer);
                    }
                }
            }
            let output = node.drain().unwrap();
            mail.extend(output.messages.into_iter().map(|(to, m)| (*id, to, m)));
            for outcome in output.outcomes {
                self.outcomes.insert(outcome.id(), outcome);
            }
        }
        for (from, to, message) in mail {
            self.deliver(from, to, message);
        }
    }

    fn deliver(&mut self, from: NodeId, to: NodeId, message: RaftWire) {
        let Some(node) = self.nodes.get_mut(&to) else {
            return;
        };
        if self.muted == Some(from) && matches!(message, RaftWire::Replica(_)) {
            return;
        }
        match node.step(from, message) {
            Ok(()) => {}
            Err(RaftError::UnknownMember { node }) if node == from => self.refused.push((from, to)),
            Err(other) => panic!("{to} refused a message from {from}: {other}"),
        }
    }

    fn run_until(&mut self, rounds: usize, done: impl Fn(&Self) -> bool) {
        for _ in 0..rounds {
            if done(self) {
                return;
            }
            self.step();
        }
        assert!(done(self), "not done after {rounds} rounds");
    }

    /// A coordination-free increment on `on` and a coordinated put through the leader, both
    /// counted once acknowledged.
    fn load(&mut self, on: NodeId, register: usize) {
        let mut tx = AlgebraicTransaction::new();
        tx.increment("counters", "cf", "value", 1);
        if let Ok(Submitted::Local(_)) = self.node(on).submit(tx, TransactionMode::CoordinationFree)
        {
            // Acknowledged at the next drain, which persists it; the run drains every round.
            self.acked_increments += 1;
        }
        if let Some(leader) = self.leader() {
            let mut tx = AlgebraicTransaction::new();
            tx.put("kv", &format!("r{register}"), "reg", register as i64);
            if let Ok(id) = self.node(leader).propose(tx) {
                self.puts.insert(id, register);
            }
        }
        self.step();
    }

    /// Runs quiet rounds until every node holds the same state.
    fn settle(&mut self) {
        self.run_until(600, |g| {
            let mut prints = g.nodes.values().map(|n| n.replica().fingerprint());
            let first = prints.next();
            prints.all(|p| Some(p) == first)
        });
    }

    /// Every acknowledged operation is on every node, once: the counter holds exactly the
    /// acknowledged increments, every acknowledged put its value.
    fn assert_acknowledged_everywhere(&self) {
        let acked: Vec<usize> = self
            .puts
            .iter()
            .filter(|(id, _)| {
                matches!(
                    self.outcomes.get(id),
                    Some(ClientOutcome::Committed {
                        outcome: OrderedOutcome::Applied(_),
                        ..
                    })
                )
            })
            .map(|(_, register)| *register)
            .collect();
        assert!(!acked.is_empty(), "no coordinated put was acknowledged");
        for node in self.nodes.values() {
            let replica = node.replica();
            assert_eq!(
                replica.read("counters", "cf", "value").unwrap(),
                AlgebraicValue::Integer(self.acked_increments),
                "on {}",
                node.id()
            );
            for register in &acked {
                assert_eq!(
                    replica.read("kv", &format!("r{register}"), "reg").unwrap(),
                    AlgebraicValue::Integer(*register as i64),
                    "r{register} on {}",
                    node.id()
                );
            }
        }
    }

    /// `count` coordination-free increments on `on` alone, each counted once acknowledged;
    /// returns how many were.
    fn increment_on(&mut self, on: NodeId, count: usize) -> i64 {
        let mut acked = 0;
        for _ in 0..count {
            let mut tx = AlgebraicTransaction::new();
            tx.increment("counters", "cf", "value", 1);
            if let Ok(Submitted::Local(_)) =
                self.node(on).submit(tx, TransactionMode::CoordinationFree)
            {
                acked += 1;
            }
            self.step();
        }
        self.acked_increments += acked;
        acked
    }

    /// The counter `counters/cf.value` on `on`.
    fn counter_on(&self, on: NodeId) -> AlgebraicValue {
        self.nodes[&on]
            .replica()
            .read("counters", "cf", "value")
            .unwrap()
    }

    /// Waits for the draining removal `id` of `gone` to be answered, asserts it removed `gone`
    /// alone, then drops `gone` and asserts the others converge holding every acknowledged
    /// increment (its own included).
    fn assert_removed_with_every_commit(&mut self, id: ProposalId, gone: NodeId) {
        self.run_until(400, |g| g.outcomes.contains_key(&id));
        let remaining: Vec<NodeId> = ids(3).into_iter().filter(|n| *n != gone).collect();
        assert!(
            matches!(&self.outcomes[&id], ClientOutcome::MembershipChanged { members, .. } if *members == remaining),
            "removing {gone}: {:?}",
            self.outcomes[&id]
        );
        self.nodes.remove(&gone);
        self.run_until(200, |g| g.leader().is_some());
        self.settle();
        for node in &remaining {
            assert_eq!(
                self.counter_on(*node),
                AlgebraicValue::Integer(self.acked_increments),
                "on {node}"
            );
        }
    }

    /// Proposes a membership change through whichever node leads, retrying while none does or
    /// another change is in flight; returns its outcome.
    fn change(
        &mut self,
        propose: impl Fn(&mut RaftNode<MemRaftLog>) -> Result<ProposalId, RaftError>,
    ) -> ClientOutcome {
        for _ in 0..300 {
            let Some(leader) = self.leader() else {
                self.step();
                continue;
            };
            match propose(self.node(leader)) {
                Ok(id) => {
                    self.run_until(200, |g| g.outcomes.contains_key(&id));
                    return self.outcomes.remove(&id).unwrap();
                }
                Err(RaftError::NoLeader | RaftError::MembershipPending) => self.step(),
                Err(other) => panic!("membership change refused: {other}"),
            }
        }
        panic!("no leader took the membership change");
    }
}

#[test]
fn a_fourth_node_added_under_load_catches_up_and_converges() {
    let mut group = Group::new(3);
    let n3 = NodeId::numbered(3);
    group.run_until(200, |g| g.leader().is_some());
    for i in 0..100 {
        group.load(NodeId::numbered(i as u32 % 3), i);
    }
    // The newcomer names the group and itself; until the change commits, peers refuse it.
    group
        .nodes
        .insert(n3, open(n3, &ids(4), true, MemRaftLog::new()));
    for i in 100..120 {
        group.load(NodeId::numbered(i as u32 % 3), i);
    }
    assert!(
        group.refused.iter().any(|(from, _)| *from == n3),
        "the newcomer was not refused before it was added"
    );
    assert!(!group.nodes[&NodeId::numbered(0)].members().contains(&n3));

    let outcome = group.change(|leader| leader.propose_add_member(n3, "10.0.0.3:7000".into()));
    let ClientOutcome::MembershipChanged { members, .. } = outcome else {
        panic!("the addition failed: {outcome:?}");
    };
    assert_eq!(members, ids(4));
    // Under load, the learner catches up (by snapshot: the log it lacks was compacted at its
    // addition) and is promoted to voter.
    for i in 120..300 {
        group.load(NodeId::numbered(i as u32 % 4), i);
        if group
            .nodes
            .values()
            .all(|n| n.membership().get(n3).is_some_and(|m| m.voter))
            && i > 200
        {
            break;
        }
    }
    for node in group.nodes.values() {
        let member = node
            .membership()
            .get(n3)
            .expect("every node counts the newcomer");
        assert!(member.voter, "{} does not count n3 as a voter", node.id());
        assert_eq!(member.address, "10.0.0.3:7000");
        assert!(node.replica().members().any(|m| m == n3));
    }
    assert!(
        group.nodes[&n3].snapshot_index() > 0,
        "the newcomer never got a snapshot"
    );
    group.settle();
    group.assert_acknowledged_everywhere();

    // With four voters, a quorum needs three: the group commits without one of the originals.
    let n0 = NodeId::numbered(0);
    let stopped = group.nodes.remove(&n0).unwrap();
    group.run_until(400, |g| g.leader().is_some());
    let before = group.outcomes.len();
    for i in 300..320 {
        group.load(n3, i);
    }
    group.run_until(200, |g| g.outcomes.len() > before);
    // Restarted with the static configuration of three, n0 uses the membership it persisted.
    let log = stopped.durable_log().clone();
    let again = open(n0, &ids(3), false, log);
    assert_eq!(again.members(), ids(4));
    group.nodes.insert(n0, again);
    group.settle();
    group.assert_acknowledged_everywhere();
}

#[test]
fn a_removed_member_is_refused_and_its_clock_is_collected_everywhere() {
    let mut group = Group::new(4);
    group.run_until(200, |g| g.leader().is_some());
    for i in 0..40 {
        group.load(NodeId::numbered(i as u32 % 4), i);
    }
    group.settle();
    // Remove a member that does not lead (a leader hands leadership on first; tested below).
    let leader = group.leader().unwrap();
    let gone = ids(4).into_iter().find(|n| *n != leader).unwrap();
    for node in group.nodes.values() {
        assert!(node.replica().peer_clock(gone).is_some() || node.id() == gone);
    }
    let outcome = group.change(|leader| leader.propose_remove_member(gone));
    assert!(
        matches!(&outcome, ClientOutcome::MembershipChanged { members, .. } if !members.contains(&gone)),
        "{outcome:?}"
    );
    group.run_until(200, |g| {
        g.nodes
            .values()
            .filter(|n| n.id() != gone)
            .all(|n| !n.members().contains(&gone))
    });
    let refused_before = group.refused.iter().filter(|(f, _)| *f == gone).count();
    // The removed node keeps gossiping with the members it still knows of; they refuse it.
    let remaining: Vec<NodeId> = ids(4).into_iter().filter(|n| *n != gone).collect();
    for i in 40..80 {
        group.load(remaining[i % 3], i);
    }
    let refused_after = group.refused.iter().filter(|(f, _)| *f == gone).count();
    assert!(
        refused_after > refused_before,
        "the removed member's messages were not refused"
    );
    group.nodes.remove(&gone);
    group.settle();
    for node in group.nodes.values() {
        assert_eq!(node.members().len(), 3);
        assert!(!node.replica().members().any(|m| m == gone));
        assert!(
            node.replica().peer_clock(gone).is_none(),
            "{} still holds the removed member's clock",
            node.id()
        );
    }
    group.assert_acknowledged_everywhere();

    // The membership survives a restart from the durable log, whatever the static config says.
    let id = *group.nodes.keys().next().unwrap();
    let log = group.nodes[&id].durable_log().clone();
    let again = open(id, &ids(4), false, log);
    assert!(!again.members().contains(&gone));
    assert!(!again.replica().members().any(|m| m == gone));

    // Refusals change nothing: removing a non-member, adding a member, the leader removing
    // itself (it hands leadership on instead).
    let leader = group.leader().unwrap();
    let node = group.node(leader);
    let members_before = node.members().to_vec();
    assert!(matches!(
        node.propose_remove_member(gone),
        Err(RaftError::UnknownMember { .. })
    ));
    assert!(matches!(
        node.propose_force_remove_member(gone),
        Err(RaftError::UnknownMember { .. })
    ));
    assert!(matches!(
        node.propose_add_member(leader, String::new()),
        Err(RaftError::AlreadyMember { .. })
    ));
    assert!(matches!(
        node.propose_force_remove_member(leader),
        Err(RaftError::LeaderTransfer { .. })
    ));
    assert_eq!(node.members(), members_before);
    assert_eq!(node.pending(), 0);
}

#[test]
fn an_engine_changes_members_through_raft_and_a_single_node_engine_refuses() {
    let (a, b) = (NodeId::numbered(0), NodeId::numbered(1));
    let mut single = Engine::in_memory(EngineConfig::new(a).with_schema(schema())).unwrap();
    assert!(matches!(
        single.add_member(b, "10.0.0.1:7000".into()),
        Err(TxnError::Config { .. })
    ));
    let config = EngineConfig::new(a)
        .with_schema(schema())
        .with_raft(RaftConfig::default());
    let mut lone = Engine::in_memory(config).unwrap();
    for _ in 0..100 {
        lone.tick().unwrap();
        if lone.raft().unwrap().is_leader() {
            break;
        }
    }
    let submission = lone.add_member(b, "10.0.0.1:7000".into()).unwrap();
    assert!(
        submission.committed().is_some(),
        "a lone leader decides at once"
    );
    let raft = lone.raft().unwrap();
    assert_eq!(raft.members(), [a, b]);
    assert!(!raft.membership().get(b).unwrap().retired);
    let added = raft.membership().get(b).unwrap();
    assert!(!added.voter, "a newcomer is a learner until it catches up");
    assert_eq!(added.address, "10.0.0.1:7000");
    assert!(lone.replica().members().any(|m| m == b));
    // The only voter cannot go, even with a learner beside it.
    let refused = lone.remove_member(a).unwrap_err();
    assert!(
        matches!(&refused, TxnError::Raft(e) if matches!(**e, RaftError::LastVoter { .. })),
        "{refused}"
    );
    assert!(!refused.is_retryable());
    // b never ran, so it cannot show that it drained: the draining removal retires it and
    // waits, then fails with the typed error (retryable) after the proposal timeout.
    let Submission::Pending(id) = lone.remove_member(b).unwrap() else {
        panic!("a removal that must drain decided at once");
    };
    assert!(lone.raft().unwrap().membership().is_retired(b));
    let mut decided = Vec::new();
    for _ in 0..=RaftConfig::default().proposal_timeout_ticks {
        lone.tick().unwrap();
        decided.extend(lone.take_outcomes());
    }
    let [(done, Err(not_drained))] = &decided[..] else {
        panic!("{decided:?}");
    };
    assert_eq!(*done, id);
    assert!(
        matches!(not_drained, TxnError::Raft(e) if matches!(**e, RaftError::NotDrained { node } if node == b)),
        "{not_drained}"
    );
    assert!(not_drained.is_retryable());
    assert_eq!(lone.raft().unwrap().members(), [a, b]);
    // Forced, it goes at once.
    let submission = lone.force_remove_member(b).unwrap();
    assert!(submission.committed().is_some());
    assert_eq!(lone.raft().unwrap().members(), [a]);
    assert!(!lone.replica().members().any(|m| m == b));
}

/// Opens `a`'s Raft engine on `storage`, ticking until it leads.
fn leading_engine(storage: &MemStorage, members: &[NodeId]) -> Engine {
    let config = EngineConfig::new(members[0])
        .with_members(members.iter().copied())
        .with_schema(schema())
        .with_raft(RaftConfig::default());
    let mut engine = Engine::open_in_memory_log(storage.clone(), config).unwrap();
    for _ in 0..100 {
        engine.tick().unwrap();
        if engine.raft().unwrap().is_leader() {
            break;
        }
    }
    engine
}

#[test]
fn an_engine_reopened_from_its_log_keeps_the_membership_the_log_changed() {
    let (a, b) = (NodeId::numbered(0), NodeId::numbered(1));
    let storage = MemStorage::new();
    let mut engine = leading_engine(&storage, &[a]);
    let added = engine.add_member(b, "10.0.0.1:7000".into()).unwrap();
    assert!(added.committed().is_some());
    engine.close().unwrap();
    // Reopened with the static configuration of one: the log's membership (an addition is
    // followed by a snapshot, which carries it).
    let mut engine = leading_engine(&storage, &[a]);
    let raft = engine.raft().unwrap();
    assert_eq!(raft.members(), [a, b]);
    assert_eq!(raft.membership().get(b).unwrap().address, "10.0.0.1:7000");
    assert!(engine.replica().members().any(|m| m == b));
    // A removal is recorded after the snapshot; reopened with b still configured, the log's
    // membership wins again.
    let removed = engine.force_remove_member(b).unwrap();
    assert!(removed.committed().is_some());
    engine.close().unwrap();
    let engine = leading_engine(&storage, &[a, b]);
    assert_eq!(engine.raft().unwrap().members(), [a]);
    assert!(!engine.replica().members().any(|m| m == b));
}

/// A member that leads nothing and holds coordination-free commits no other member has: the
/// one whose removal could lose them.
fn muted_member_holding_commits(group: &mut Group) -> (NodeId, i64) {
    group.run_until(200, |g| g.leader().is_some());
    for i in 0..30 {
        group.load(NodeId::numbered(i as u32 % 3), i);
    }
    group.settle();
    let leader = group.leader().unwrap();
    let gone = ids(3).into_iter().find(|n| *n != leader).unwrap();
    group.muted = Some(gone);
    let acked = group.increment_on(gone, 25);
    assert_eq!(acked, 25, "the member refused its own commits");
    (gone, acked)
}

#[test]
fn a_draining_removal_waits_until_the_others_hold_every_commit_the_member_acknowledged() {
    let mut group = Group::new(3);
    let (gone, _) = muted_member_holding_commits(&mut group);
    let others: Vec<NodeId> = ids(3).into_iter().filter(|n| *n != gone).collect();
    let held_elsewhere = group.counter_on(others[0]);
    assert_ne!(held_elsewhere, group.counter_on(gone));

    // While its commits reach nobody, the removal cannot finish: the caller is told so.
    let outcome = group.change(|leader| leader.propose_remove_member(gone));
    assert!(
        matches!(&outcome, ClientOutcome::Failed { error: RaftError::NotDrained { node }, .. } if *node == gone),
        "{outcome:?}"
    );
    for node in group.nodes.values() {
        assert!(node.members().contains(&gone), "removed before it drained");
        assert!(
            node.membership().is_retired(gone),
            "{} did not retire it",
            node.id()
        );
    }
    // Retired, it refuses writes of both kinds, changing nothing.
    let clock_before = group.nodes[&gone].replica().clock().clone();
    let mut tx = AlgebraicTransaction::new();
    tx.increment("counters", "cf", "value", 1);
    assert!(matches!(
        group.node(gone).submit(tx.clone(), TransactionMode::CoordinationFree),
        Err(RaftError::Retired { node }) if node == gone
    ));
    assert!(matches!(
        group.node(gone).propose(tx.clone()),
        Err(RaftError::Retired { .. })
    ));
    assert_eq!(group.nodes[&gone].replica().clock(), &clock_before);

    // A restart of the retired member keeps it retired: it still refuses writes.
    let log = group.nodes[&gone].durable_log().clone();
    let again = open(gone, &ids(3), false, log);
    assert!(again.is_retired());
    group.nodes.insert(gone, again);
    assert!(matches!(
        group
            .node(gone)
            .submit(tx, TransactionMode::CoordinationFree),
        Err(RaftError::Retired { .. })
    ));

    // Asked again (safe: no second retirement), the removal finishes once its commits flow.
    group.muted = None;
    let outcome = group.change(|leader| leader.propose_remove_member(gone));
    assert!(
        matches!(&outcome, ClientOutcome::MembershipChanged { members, .. } if *members == others),
        "{outcome:?}"
    );
    group.nodes.remove(&gone);
    group.settle();
    for node in &others {
        assert_eq!(
            group.counter_on(*node),
            AlgebraicValue::Integer(group.acked_increments),
            "an acknowledged commit of the removed member is missing on {node}"
        );
    }
    group.assert_acknowledged_everywhere();
}

#[test]
fn a_forced_removal_applies_at_once_and_loses_what_only_the_member_held() {
    let mut group = Group::new(3);
    let (gone, acked) = muted_member_holding_commits(&mut group);
    let others: Vec<NodeId> = ids(3).into_iter().filter(|n| *n != gone).collect();
    let outcome = group.change(|leader| leader.propose_force_remove_member(gone));
    assert!(
        matches!(&outcome, ClientOutcome::MembershipChanged { members, .. } if *members == others),
        "{outcome:?}"
    );
    // Once the removal applies on the removed node itself, it takes no writes of either kind:
    // no member would take them from it.
    group.run_until(200, |g| !g.nodes[&gone].members().contains(&gone));
    let mut tx = AlgebraicTransaction::new();
    tx.increment("counters", "c", "value", 1);
    let refused = group.node(gone).commit_local(tx.clone()).unwrap_err();
    assert!(
        matches!(refused, RaftError::Retired { node } if node == gone),
        "{refused}"
    );
    let refused = group.node(gone).propose(tx.clone()).unwrap_err();
    assert!(
        matches!(refused, RaftError::Retired { node } if node == gone),
        "{refused}"
    );
    // Nor after a restart from its log, which shows it a member once and then not.
    let log = group.nodes[&gone].durable_log().clone();
    let mut again = open(gone, &ids(3), false, log);
    let refused = again.commit_local(tx).unwrap_err();
    assert!(
        matches!(refused, RaftError::Retired { node } if node == gone),
        "{refused}"
    );
    group.nodes.remove(&gone);
    group.muted = None;
    group.settle();
    // Documented loss: the forced member's unsent commits are on no remaining member.
    for node in &others {
        assert_eq!(
            group.counter_on(*node),
            AlgebraicValue::Integer(group.acked_increments - acked)
        );
    }
}

#[test]
fn a_retired_leader_hands_leadership_on_then_removes_itself_once_drained() {
    let mut group = Group::new(3);
    group.run_until(200, |g| g.leader().is_some());
    let leader = group.leader().unwrap();
    group.muted = Some(leader);
    group.increment_on(leader, 10);
    // Asked of a follower; the leader is the one retired.
    let asker = ids(3).into_iter().find(|n| *n != leader).unwrap();
    let id = group.node(asker).propose_remove_member(leader).unwrap();
    group.run_until(200, |g| g.nodes[&leader].is_retired());
    // Muted, it cannot drain: it keeps leading and stays a member (for fewer rounds than the
    // asker's proposal timeout).
    for _ in 0..20 {
        group.step();
    }
    assert!(
        group.nodes[&asker].members().contains(&leader),
        "removed before its commits left it"
    );
    assert_eq!(
        group.leader(),
        Some(leader),
        "it handed on leadership undrained"
    );
    group.muted = None;
    group.assert_removed_with_every_commit(id, leader);
}

#[test]
fn a_member_asked_to_remove_itself_answers_once_the_removal_applies() {
    for asked_of_leader in [false, true] {
        let mut group = Group::new(3);
        group.run_until(200, |g| g.leader().is_some());
        let leader = group.leader().unwrap();
        let gone = if asked_of_leader {
            leader
        } else {
            ids(3).into_iter().find(|n| *n != leader).unwrap()
        };
        group.increment_on(gone, 10);
        let id = loop {
            match group.node(gone).propose_remove_member(gone) {
                Ok(id) => break id,
                Err(RaftError::NoLeader) => group.step(),
                Err(other) => panic!("removal refused: {other}"),
            }
        };
        group.assert_removed_with_every_commit(id, gone);
    }
}
