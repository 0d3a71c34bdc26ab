//! Linearizable reads on the Raft backend: a member that has not yet applied a coordinated
//! write another member acknowledged answers a local read with the old value, and a
//! linearizable read with the new one.

use super::*;

const MEMBERS: u32 = 3;

fn raft_member(id: NodeId) -> Engine {
    let config = EngineConfig::new(id)
        .with_members((0..MEMBERS).map(node))
        .with_schema(test_schema())
        .with_raft(RaftConfig::default());
    Engine::in_memory(config).unwrap()
}

/// Carries messages between `engines` until none is left, dropping every message to or from
/// a member in `cut`.
fn carry(engines: &mut [Engine], cut: &[usize]) {
    carry_where(engines, |from, to, _| {
        !cut.contains(&from) && !cut.contains(&to)
    });
}

/// Carries messages between `engines` until none is left, dropping those `keep` refuses.
fn carry_where(engines: &mut [Engine], keep: impl Fn(usize, usize, &EngineMessage) -> bool) {
    for _ in 0..1_000 {
        let mut carried = false;
        for from in 0..engines.len() {
            for (to, message) in engines[from].take_messages().unwrap() {
                let to = engines.iter().position(|e| e.node_id() == to).unwrap();
                if !keep(from, to, &message) {
                    continue;
                }
                let sender = engines[from].node_id();
                engines[to].receive(sender, message).unwrap();
                carried = true;
            }
        }
        if !carried {
            return;
        }
    }
    panic!("messages still flowing after 1,000 rounds");
}

/// Whether `message` could bring its receiver entries of the log or their effects: Raft's
/// appends and snapshots, and anti-entropy.
fn carries_log(message: &EngineMessage) -> bool {
    match message {
        RaftWire::Raft(message) => matches!(
            message.get_msg_type(),
            raft::prelude::MessageType::MsgAppend | raft::prelude::MessageType::MsgSnapshot
        ),
        RaftWire::Replica(_) => true,
    }
}

/// Ticks everyone (carrying messages between ticks) until a leader is elected.
fn elect(engines: &mut [Engine]) -> usize {
    for _ in 0..1_000 {
        for engine in engines.iter_mut() {
            engine.tick().unwrap();
        }
        carry(engines, &[]);
        if let Some(leader) = engines
            .iter()
            .position(|e| e.raft().is_some_and(|raft| raft.is_leader()))
        {
            return leader;
        }
    }
    panic!("no leader after 1,000 ticks");
}

/// Drives the members (ticking and carrying, with `cut` isolated) until `engines[at]` has
/// the outcome of `id`.
fn outcome_of(
    engines: &mut [Engine],
    at: usize,
    id: ProposalId,
    cut: &[usize],
) -> Result<CommitOutcome> {
    for _ in 0..1_000 {
        carry(engines, cut);
        if let Some((_, outcome)) = engines[at]
            .take_outcomes()
            .into_iter()
            .find(|(i, _)| *i == id)
        {
            return outcome;
        }
        for engine in engines.iter_mut() {
            engine.tick().unwrap();
        }
    }
    panic!("proposal {id:?} undecided after 1,000 ticks");
}

fn put_score(engines: &mut [Engine], at: usize, value: i64, cut: &[usize]) {
    let mut tx = AlgebraicTransaction::new();
    tx.put("users", "ada", "score", value);
    match engines[at]
        .submit(TransactionMode::Coordinated, tx)
        .unwrap()
    {
        Submission::Committed(_) => {}
        Submission::Pending(id) => {
            outcome_of(engines, at, id, cut).unwrap();
        }
    }
}

#[test]
fn a_lagging_member_reads_an_acknowledged_write_only_when_linearizable() {
    let mut engines: Vec<Engine> = (0..MEMBERS).map(|i| raft_member(node(i))).collect();
    let leader = elect(&mut engines);
    let lagging = (leader + 1) % engines.len();
    put_score(&mut engines, leader, 1, &[]);
    carry(&mut engines, &[]);
    for engine in engines.iter_mut() {
        engine.tick().unwrap();
    }
    carry(&mut engines, &[]);
    let score = [CellKey::new("users", "ada", "score")];
    assert_eq!(engines[lagging].read_cells(&score).unwrap(), [int(1)]);

    // The leader and the third member acknowledge a new value while `lagging` hears nothing.
    put_score(&mut engines, leader, 2, &[lagging]);
    assert_eq!(engines[leader].read_cells(&score).unwrap(), [int(2)]);
    assert_eq!(
        engines[lagging].read_cells(&score).unwrap(),
        [int(1)],
        "a local read on the lagging member is stale"
    );

    let Submission::Pending(id) = engines[lagging].start_linearizable_read(&score).unwrap() else {
        panic!("a member of three must ask the leader");
    };
    // The leader confirms the read while everything that would bring the lagging member the
    // second put is held back: the read must not be answered yet.
    // (Fewer ticks than a proposal's timeout.)
    for _ in 0..20 {
        carry_where(&mut engines, |_, to, message| {
            to != lagging || !carries_log(message)
        });
        for engine in engines.iter_mut() {
            engine.tick().unwrap();
        }
        let early = engines[lagging].take_outcomes();
        assert!(
            early.iter().all(|(i, _)| *i != id),
            "answered before applying what it must see: {early:?}"
        );
    }
    assert_eq!(engines[lagging].read_cells(&score).unwrap(), [int(1)]);
    let decided = outcome_of(&mut engines, lagging, id, &[]).unwrap();
    assert_eq!(decided.dot, None);
    assert!(
        decided.sequence.unwrap() > 2,
        "ordered after both puts: {decided:?}"
    );
    assert_eq!(
        engines[lagging].read_cells(&score).unwrap(),
        [int(2)],
        "once its read is decided, the member holds every write acknowledged before it"
    );
}

#[test]
fn a_linearizable_read_of_an_unknown_cell_is_refused_and_proposes_nothing() {
    let mut engines: Vec<Engine> = (0..MEMBERS).map(|i| raft_member(node(i))).collect();
    let leader = elect(&mut engines);
    let keys = [
        CellKey::new("users", "ada", "score"),
        CellKey::new("nope", "ada", "score"),
        CellKey::new("users", "ada", "nope"),
    ];
    let refused = engines[leader].start_linearizable_read(&keys);
    assert!(
        matches!(&refused, Err(TxnError::InvalidOperations { errors }) if errors.len() == 2),
        "{refused:?}"
    );
    assert_eq!(engines[leader].raft().unwrap().pending(), 0);
    assert!(matches!(
        engines[leader].read_cells(&keys),
        Err(TxnError::InvalidOperations { errors }) if errors.len() == 2
    ));
}

#[test]
fn a_node_that_orders_alone_decides_a_linearizable_read_at_once() {
    let mut single = Engine::in_memory(config()).unwrap();
    let mut tx = single.transaction(TransactionMode::Coordinated);
    tx.put("users", "ada", "score", 7);
    decide(tx).unwrap();
    let score = [CellKey::new("users", "ada", "score")];
    let decided = single
        .start_linearizable_read(&score)
        .unwrap()
        .committed()
        .unwrap();
    assert_eq!(decided.sequence, Some(1));
    assert_eq!(single.read_cells(&score).unwrap(), [int(7)]);

    // A Raft group of one acknowledges nothing it has not applied.
    let mut alone = Engine::in_memory(
        EngineConfig::new(node(0))
            .with_schema(test_schema())
            .with_raft(RaftConfig::default()),
    )
    .unwrap();
    elect(std::slice::from_mut(&mut alone));
    let mut tx = alone.transaction(TransactionMode::Coordinated);
    tx.put("users", "ada", "score", 8);
    decide(tx).unwrap();
    assert!(
        alone
            .start_linearizable_read(&score)
            .unwrap()
            .committed()
            .is_some()
    );
    assert_eq!(alone.read_cells(&score).unwrap(), [int(8)]);
}

#[test]
fn reads_started_between_two_drains_share_one_read_index_request() {
    let mut engines: Vec<Engine> = (0..MEMBERS).map(|i| raft_member(node(i))).collect();
    let leader = elect(&mut engines);
    put_score(&mut engines, leader, 4, &[]);
    let follower = (leader + 1) % engines.len();
    let score = [CellKey::new("users", "ada", "score")];
    let ids: Vec<ProposalId> = (0..3)
        .map(
            |_| match engines[follower].start_linearizable_read(&score).unwrap() {
                Submission::Pending(id) => id,
                decided => panic!("a follower must ask the leader: {decided:?}"),
            },
        )
        .collect();
    assert!(
        engines[follower].has_messages(),
        "the request waits to be sent"
    );
    let sent = engines[follower].take_messages().unwrap();
    let requests = sent
        .iter()
        .filter(|(_, m)| {
            matches!(m, RaftWire::Raft(m) if m.get_msg_type() == raft::prelude::MessageType::MsgReadIndex)
        })
        .count();
    assert_eq!(requests, 1, "{sent:?}");
    let follower_id = engines[follower].node_id();
    for (to, message) in sent {
        let to = engines.iter().position(|e| e.node_id() == to).unwrap();
        engines[to].receive(follower_id, message).unwrap();
    }
    let mut decided = std::collections::BTreeMap::new();
    for _ in 0..100 {
        carry(&mut engines, &[]);
        for (id, outcome) in engines[follower].take_outcomes() {
            decided.insert(id, outcome.unwrap().sequence);
        }
        if decided.len() == ids.len() {
            break;
        }
        for engine in engines.iter_mut() {
            engine.tick().unwrap();
        }
    }
    assert_eq!(decided.keys().copied().collect::<Vec<_>>(), ids);
    let sequences: Vec<_> = decided.values().collect();
    assert!(sequences.windows(2).all(|w| w[0] == w[1]), "{decided:?}");
    assert_eq!(engines[follower].read_cells(&score).unwrap(), [int(4)]);
}
