//! A write entry applies at most once: three members driven by hand, with the forwarded
//! proposal repeated or reordered on its way to the leader, across snapshots and restarts.

use raft::eraftpb::MessageType;

use super::*;

/// Three Raft members and the messages between them, delivered when the test says.
struct Group {
    nodes: Vec<RaftNode<MemRaftLog>>,
    config: RaftConfig,
    /// `(from, to, message)` not delivered yet.
    in_flight: Vec<(NodeId, NodeId, RaftWire)>,
    outcomes: Vec<ClientOutcome>,
}

fn members() -> Vec<NodeId> {
    (0..3).map(NodeId::numbered).collect()
}

impl Group {
    fn new(config: RaftConfig) -> Self {
        let nodes = members()
            .into_iter()
            .map(|id| open_member(id, config.clone(), MemRaftLog::new()))
            .collect();
        Self {
            nodes,
            config,
            in_flight: Vec::new(),
            outcomes: Vec::new(),
        }
    }

    /// Collects every member's output.
    fn drain(&mut self) {
        for node in &mut self.nodes {
            let from = node.id();
            let output = node.drain().unwrap();
            self.outcomes.extend(output.outcomes);
            for (to, message) in output.messages {
                self.in_flight.push((from, to, message));
            }
        }
    }

    /// Delivers everything in flight (and what that provokes) until nothing is left.
    fn settle(&mut self) {
        for _ in 0..50 {
            self.drain();
            if self.in_flight.is_empty() {
                return;
            }
            for (from, to, message) in std::mem::take(&mut self.in_flight) {
                self.nodes[index_of(to)].step(from, message).unwrap();
            }
        }
        panic!("the group did not settle");
    }

    /// Ticks until a leader is elected and every member knows it; returns its position.
    fn elect(&mut self) -> usize {
        for _ in 0..500 {
            for node in &mut self.nodes {
                node.tick();
            }
            self.settle();
            if let Some(leader) = self.nodes.iter().position(RaftNode::is_leader)
                && self
                    .nodes
                    .iter()
                    .all(|n| n.leader() == Some(members()[leader]))
            {
                return leader;
            }
        }
        panic!("no leader elected");
    }

    /// The forwarded proposals now in flight, taken out of it.
    fn take_proposals(&mut self) -> Vec<(NodeId, NodeId, RaftWire)> {
        self.drain();
        let (proposals, rest) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|(_, _, message)| {
                matches!(message, RaftWire::Raft(m) if m.get_msg_type() == MessageType::MsgPropose)
            });
        self.in_flight = rest;
        proposals
    }

    fn deliver(&mut self, messages: &[(NodeId, NodeId, RaftWire)]) {
        for (from, to, message) in messages {
            self.nodes[index_of(*to)]
                .step(*from, message.clone())
                .unwrap();
        }
        self.settle();
    }

    /// Every member restarts from its durable log.
    fn restart_all(&mut self) {
        let config = self.config.clone();
        self.in_flight.clear();
        self.nodes = std::mem::take(&mut self.nodes)
            .into_iter()
            .map(|node| open_member(node.id(), config.clone(), node.durable_log().clone()))
            .collect();
    }

    fn counters(&self) -> Vec<AlgebraicValue> {
        self.nodes
            .iter()
            .map(|n| n.replica().read("counters", "hits", "value").unwrap())
            .collect()
    }

    fn outcome(&self, id: ProposalId) -> Vec<&ClientOutcome> {
        self.outcomes.iter().filter(|o| o.id() == id).collect()
    }
}

fn index_of(node: NodeId) -> usize {
    members().iter().position(|m| *m == node).unwrap()
}

fn open_member(id: NodeId, config: RaftConfig, log: MemRaftLog) -> RaftNode<MemRaftLog> {
    let records = log.records().to_vec();
    RaftNode::open(id, &members(), schema(), config, log, &records).unwrap()
}

fn add(amount: i64) -> AlgebraicTransaction {
    let mut tx = AlgebraicTransaction::new();
    tx.increment("counters", "hits", "value", amount);
    tx
}

fn everywhere(value: i64) -> Vec<AlgebraicValue> {
    vec![AlgebraicValue::Integer(value); 3]
}

fn config() -> RaftConfig {
    RaftConfig {
        seed: 7,
        ..RaftConfig::default()
    }
}

#[test]
fn a_repeated_forward_is_applied_once() {
    let mut group = Group::new(config());
    let leader = group.elect();
    let follower = (leader + 1) % 3;
    let id = group.nodes[follower].propose(add(5)).unwrap();
    let proposals = group.take_proposals();
    assert_eq!(proposals.len(), 1, "the follower forwards its proposal");
    // The network repeats the forward: the leader appends two entries of one proposal.
    group.deliver(&[proposals[0].clone(), proposals[0].clone()]);
    assert_eq!(group.counters(), everywhere(5));
    let answers = group.outcome(id);
    assert_eq!(answers.len(), 1);
    assert!(matches!(
        answers[0],
        ClientOutcome::Committed {
            outcome: OrderedOutcome::Applied(_),
            ..
        }
    ));
}

#[test]
fn a_proposal_overtaken_by_its_proposers_next_is_refused_everywhere() {
    let mut group = Group::new(config());
    let leader = group.elect();
    let follower = (leader + 2) % 3;
    let first = group.nodes[follower].propose(add(1)).unwrap();
    let second = group.nodes[follower].propose(add(10)).unwrap();
    let proposals = group.take_proposals();
    assert_eq!(proposals.len(), 2);
    // The second forward reaches the leader first.
    group.deliver(&[proposals[1].clone(), proposals[0].clone()]);
    assert_eq!(group.counters(), everywhere(10));
    assert!(matches!(
        group.outcome(second)[..],
        [ClientOutcome::Committed { .. }]
    ));
    assert!(matches!(
        group.outcome(first)[..],
        [ClientOutcome::Failed {
            error: RaftError::Overtaken { .. },
            ..
        }]
    ));
}

/// After a restart every member still knows which proposals it applied — from the log alone
/// (no snapshot yet) or from a snapshot that covers every one of them — so a forward delivered
/// late is skipped by all.
#[test]
fn a_late_repeat_is_skipped_after_restarts_from_the_log_and_from_snapshots() {
    for from_snapshot in [false, true] {
        let mut group = Group::new(config());
        let leader = group.elect();
        let follower = (leader + 1) % 3;
        let mut late = Vec::new();
        for _ in 0..4 {
            group.nodes[follower].propose(add(3)).unwrap();
            let proposals = group.take_proposals();
            late.extend(proposals.iter().cloned());
            group.deliver(&proposals);
        }
        assert_eq!(group.counters(), everywhere(12));
        if from_snapshot {
            for node in &mut group.nodes {
                node.compact().unwrap();
                assert_eq!(node.snapshot_index(), node.applied());
            }
        }
        group.restart_all();
        let leader = group.elect();
        let to = members()[leader];
        let raft_to = leader as u64 + 1;
        let redirected: Vec<_> = late
            .into_iter()
            .map(|(from, _, message)| {
                let RaftWire::Raft(mut m) = message else {
                    unreachable!()
                };
                m.to = raft_to;
                (from, to, RaftWire::Raft(m))
            })
            .collect();
        group.deliver(&redirected);
        assert_eq!(
            group.counters(),
            everywhere(12),
            "from a snapshot: {from_snapshot}"
        );
    }
}
