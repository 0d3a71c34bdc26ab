//! What a drain syncs, and when (rule 6 of docs/proofs/coordinated_path.md): three members on
//! logs that tell written records from synced ones, driven by hand through a leader's appends
//! that leave before its sync.

use raft::eraftpb::MessageType;

use super::*;

/// A log that keeps every record written and how many of them a sync made durable: what a
/// power loss would keep is `records[..synced]`.
#[derive(Debug, Default, Clone)]
struct WrittenLog {
    records: Vec<RaftRecord>,
    synced: usize,
}

impl DurableRaftLog for WrittenLog {
    fn persist(&mut self, records: Vec<RaftRecord>) -> Result<(), RaftError> {
        self.write_unsynced(records)?;
        self.sync_written()
    }

    fn write_unsynced(&mut self, records: Vec<RaftRecord>) -> Result<(), RaftError> {
        self.records.extend(records);
        Ok(())
    }

    fn sync_written(&mut self) -> Result<(), RaftError> {
        self.synced = self.records.len();
        Ok(())
    }
}

impl WrittenLog {
    /// The highest log index among the synced entries.
    fn synced_index(&self) -> u64 {
        self.records[..self.synced]
            .iter()
            .filter_map(|r| match r {
                RaftRecord::Entries(entries) => entries.last().map(|e| e.index),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }
}

fn members() -> Vec<NodeId> {
    (0..3).map(NodeId::numbered).collect()
}

fn index_of(node: NodeId) -> usize {
    members().iter().position(|m| *m == node).unwrap()
}

/// No compaction (the log keeps every record, so its prefixes are what a crash could keep).
fn config() -> RaftConfig {
    RaftConfig {
        compact_after_entries: 1 << 20,
        ..RaftConfig::default()
    }
}

fn open(id: NodeId, records: &[RaftRecord]) -> Result<RaftNode<WrittenLog>, RaftError> {
    let log = WrittenLog {
        records: records.to_vec(),
        synced: records.len(),
    };
    RaftNode::open(id, &members(), schema(), config(), log, records)
}

fn group() -> Vec<RaftNode<WrittenLog>> {
    members()
        .into_iter()
        .map(|id| open(id, &[]).unwrap())
        .collect()
}

type InFlight = Vec<(NodeId, NodeId, RaftWire)>;

/// Drains every member and delivers what they send, until nothing is left.
fn settle(nodes: &mut [RaftNode<WrittenLog>]) {
    for _ in 0..50 {
        let mut in_flight: InFlight = Vec::new();
        for node in nodes.iter_mut() {
            let from = node.id();
            for (to, message) in node.drain().unwrap().messages {
                in_flight.push((from, to, message));
            }
        }
        if in_flight.is_empty() {
            return;
        }
        for (from, to, message) in in_flight {
            nodes[index_of(to)].step(from, message).unwrap();
        }
    }
    panic!("the group did not settle");
}

fn elect(nodes: &mut [RaftNode<WrittenLog>]) -> usize {
    for _ in 0..500 {
        for node in nodes.iter_mut() {
            node.tick();
        }
        settle(nodes);
        if let Some(leader) = nodes.iter().position(RaftNode::is_leader)
            && nodes.iter().all(|n| n.leader() == Some(members()[leader]))
        {
            return leader;
        }
    }
    panic!("no leader elected");
}

fn is_kind(message: &RaftWire, kind: MessageType) -> bool {
    matches!(message, RaftWire::Raft(m) if m.get_msg_type() == kind)
}

/// Steps the messages for `to` among `messages` into it.
fn deliver(nodes: &mut [RaftNode<WrittenLog>], from: NodeId, to: usize, messages: InFlight) {
    for (_, _, message) in messages.into_iter().filter(|(_, t, _)| index_of(*t) == to) {
        nodes[to].step(from, message).unwrap();
    }
}

fn with_sender(from: NodeId, messages: Vec<(NodeId, RaftWire)>) -> InFlight {
    messages.into_iter().map(|(to, m)| (from, to, m)).collect()
}

/// Delivers the leader's `messages` to the follower, checks that the follower answers no client
/// (the leader's copy is not synced), and delivers the follower's replies back to the leader.
fn unanswered_round_trip(
    nodes: &mut [RaftNode<WrittenLog>],
    (l, f): (usize, usize),
    messages: InFlight,
) {
    let (leader, follower) = (members()[l], members()[f]);
    deliver(nodes, leader, f, messages);
    let output = nodes[f].drain().unwrap();
    assert!(
        output.outcomes.is_empty(),
        "answered before the leader's copy was synced"
    );
    deliver(nodes, follower, l, with_sender(follower, output.messages));
}

/// A follower's proposal, with the third member cut off, commits only once the leader synced
/// its own copy: the appends leave before the leader's sync, the follower syncs and acknowledges
/// them, but until the leader's sync returned it holds the entry on one member alone — a
/// leader that counted its unsynced copy would let the follower answer its client, and a power
/// loss of the leader then lose an acknowledged write.
#[test]
fn synced_before_persisted_is_reported() {
    let mut nodes = group();
    let l = elect(&mut nodes);
    let f = (l + 1) % 3;
    let (leader, follower) = (members()[l], members()[f]);
    let id = nodes[f].propose(put("r0", 1)).unwrap();
    let forwarded = with_sender(follower, nodes[f].drain().unwrap().messages);
    deliver(&mut nodes, follower, l, forwarded);
    // The leader's appends leave before its sync.
    let appends = with_sender(leader, nodes[l].take_messages_before_sync().unwrap());
    assert!(
        appends
            .iter()
            .any(|(_, _, m)| is_kind(m, MessageType::MsgAppend))
    );
    let entry = nodes[l].durable_log().records.len();
    assert!(
        nodes[l].durable_log().synced < entry,
        "the leader's copy is not synced yet"
    );
    for _ in 0..5 {
        // Whatever the follower and the leader exchange without the leader's drain completing,
        // the follower never answers its client.
        unanswered_round_trip(&mut nodes, (l, f), appends.clone());
        let more = with_sender(leader, nodes[l].take_messages_before_sync().unwrap());
        unanswered_round_trip(&mut nodes, (l, f), more);
    }
    // The leader's drain syncs, then counts its copy: the entry commits and the follower answers.
    let mut answered = None;
    for _ in 0..5 {
        let messages = with_sender(leader, nodes[l].drain().unwrap().messages);
        let synced = nodes[l].durable_log().synced_index();
        deliver(&mut nodes, leader, f, messages);
        let output = nodes[f].drain().unwrap();
        if let Some(outcome) = output.outcomes.into_iter().find(|o| o.id() == id) {
            let ClientOutcome::Committed { index, .. } = outcome else {
                panic!("expected a commit, got {outcome:?}");
            };
            assert!(synced >= index, "the leader had not synced entry {index}");
            answered = Some(index);
            break;
        }
        deliver(
            &mut nodes,
            follower,
            l,
            with_sender(follower, output.messages),
        );
    }
    assert!(answered.is_some(), "the proposal never committed");
}

/// A follower's acknowledgement of an append (and a vote) leaves only with the drain that synced
/// what it acknowledges, never among the messages that may leave before the sync.
#[test]
fn a_follower_acknowledges_an_append_only_once_synced() {
    let mut nodes = group();
    let l = elect(&mut nodes);
    let f = (l + 1) % 3;
    let leader = members()[l];
    nodes[l].propose(put("r0", 1)).unwrap();
    let appends = with_sender(leader, nodes[l].take_messages_before_sync().unwrap());
    deliver(&mut nodes, leader, f, appends);
    let early = nodes[f].take_messages_before_sync().unwrap();
    assert!(
        early
            .iter()
            .all(|(_, m)| !is_kind(m, MessageType::MsgAppendResponse)),
        "an acknowledgement left before the sync"
    );
    let log = nodes[f].durable_log();
    assert!(
        log.synced < log.records.len(),
        "the follower wrote the entry unsynced"
    );
    let output = nodes[f].drain().unwrap();
    let log = nodes[f].durable_log();
    assert_eq!(
        log.synced,
        log.records.len(),
        "the drain synced what it acknowledges"
    );
    assert!(
        output
            .messages
            .iter()
            .any(|(to, m)| *to == leader && is_kind(m, MessageType::MsgAppendResponse))
    );
}

/// Whatever prefix of its written records a power loss keeps, a member reopens: the records of
/// applying entries (`Applied`) follow the entries and the commit index they depend on.
#[test]
fn every_prefix_of_a_members_log_reopens() {
    let mut nodes = group();
    let l = elect(&mut nodes);
    for value in 0..4 {
        nodes[(l + value as usize) % 3]
            .propose(put("r0", value))
            .unwrap();
        settle(&mut nodes);
    }
    for node in &nodes {
        let records = &node.durable_log().records;
        assert!(
            records
                .iter()
                .any(|r| matches!(r, RaftRecord::Applied(i) if *i > 1))
        );
        for end in 0..=records.len() {
            if let Err(err) = open(node.id(), &records[..end]) {
                panic!(
                    "{}: the first {end} records do not reopen: {err}",
                    node.id()
                );
            }
        }
    }
}
