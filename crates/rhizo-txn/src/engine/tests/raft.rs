//! Engines on the Raft backend: a lone member on a directory, and three members on temp
//! directories over rhizo-sim's network with a leader crash and a partition.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use rand::Rng;
use rhizo_sim::{LatencyModel, NodeCtx, SimulatedCluster, SimulatedNode, SimulationBuilder};

use super::*;
use crate::raft::{ProposalId, RaftConfig};

fn raft_config() -> RaftConfig {
    RaftConfig {
        compact_after_entries: 16,
        proposal_timeout_ticks: 40,
        ..RaftConfig::default()
    }
}

fn tick_until_leader(engine: &mut Engine) {
    for _ in 0..100 {
        engine.tick().unwrap();
        if engine.raft().is_some_and(|n| n.is_leader()) {
            return;
        }
    }
    panic!("a lone member never became leader");
}

#[test]
fn a_lone_raft_engine_orders_through_its_log_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let config = config().with_raft(raft_config());
    let mut engine = Engine::open(dir.path(), config.clone()).unwrap();
    // Before an election nobody leads: a typed "retry", and nothing changed.
    let before = engine.fingerprint();
    let mut tx = engine.transaction(TransactionMode::Coordinated);
    tx.put("users", "u", "email", 1);
    assert!(matches!(tx.commit(), Err(TxnError::NoLeader)));
    assert_eq!(engine.fingerprint(), before);
    // A coordination-free commit needs no leader.
    let mut tx = engine.transaction(TransactionMode::CoordinationFree);
    tx.increment("counters", "c", 5);
    let local = tx.commit().unwrap();
    assert_eq!((local.path, local.sequence), (CommitPath::Local, None));
    assert!(local.durable);

    tick_until_leader(&mut engine);
    let mut tx = engine.transaction(TransactionMode::Coordinated);
    tx.put("users", "u", "email", 7)
        .increment("counters", "c", 1);
    let first = tx.commit().unwrap();
    assert_eq!(first.path, CommitPath::Consensus);
    let index = first.sequence.unwrap();
    assert_eq!(engine.last_sequence(), index);
    let mut tx = engine.transaction(TransactionMode::Auto);
    tx.compare_and_set("users", "u", "email", 7, 8);
    let second = tx.commit().unwrap();
    assert_eq!(second.path, CommitPath::Consensus);
    assert!(second.sequence.unwrap() > index);
    // A failed condition is ordered too, and changes nothing.
    let mut tx = engine.transaction(TransactionMode::Coordinated);
    tx.compare_and_set("users", "u", "email", 7, 9)
        .increment("counters", "c", 100);
    assert!(matches!(tx.commit(), Err(TxnError::ConditionFailed { .. })));
    assert_eq!(engine.read("users", "u", "email").unwrap(), int(8));
    assert_eq!(engine.read("counters", "c", "value").unwrap(), int(6));
    let (fingerprint, sequence) = (engine.fingerprint(), engine.last_sequence());
    drop(engine);

    // The directory now holds a Raft log: the single-node backend refuses it.
    assert!(matches!(
        Engine::open(dir.path(), crate::engine::tests::config()),
        Err(TxnError::Config { .. })
    ));
    let mut engine = Engine::open(dir.path(), config).unwrap();
    assert_eq!(engine.fingerprint(), fingerprint);
    assert_eq!(engine.last_sequence(), sequence);
    assert_eq!(engine.read("users", "u", "email").unwrap(), int(8));
    tick_until_leader(&mut engine);
    let mut tx = engine.transaction(TransactionMode::Coordinated);
    tx.put("users", "u", "email", 10);
    assert!(tx.commit().unwrap().sequence.unwrap() > sequence);
    engine.compact().unwrap();
    assert_eq!(engine.read("users", "u", "email").unwrap(), int(10));
}

#[test]
fn a_single_node_engine_in_a_cluster_refuses_coordinated_transactions() {
    let config = config().with_members([node(0), node(1)]);
    let mut engine = Engine::in_memory(config).unwrap();
    let mut tx = engine.transaction(TransactionMode::Coordinated);
    tx.increment("counters", "c", 1);
    let err = tx.commit().unwrap_err();
    assert!(
        matches!(&err, TxnError::Config { reason } if reason.contains("Raft")),
        "{err}"
    );
    let mut tx = engine.transaction(TransactionMode::Auto);
    tx.increment("counters", "c", 1);
    assert_eq!(tx.commit().unwrap().path, CommitPath::Local);
}

// ---------------------------------------------------------------------- three engines

const MEMBERS: u32 = 3;
const REGISTERS: u32 = 2;

/// A coordinated write whose outcome is awaited.
#[derive(Debug, Clone)]
struct InFlight {
    register: String,
    value: i64,
    increment: i64,
}

/// What the clients were told, kept outside the nodes so that it survives crashes.
#[derive(Debug, Default)]
struct History {
    /// Acknowledged register writes: (register, value, log index).
    acked_writes: Vec<(String, i64, u64)>,
    /// Writes whose outcome is unknown (timed out, or their proposer crashed).
    unknown_writes: Vec<InFlight>,
    acked_increments: i64,
    unknown_increments: i64,
    in_flight: BTreeMap<ProposalId, InFlight>,
    refused: usize,
    no_leader: usize,
    errors: Vec<String>,
}

impl History {
    fn settle(&mut self, id: ProposalId, result: Result<CommitOutcome>) {
        let Some(write) = self.in_flight.remove(&id) else {
            return;
        };
        match result {
            Ok(outcome) => {
                let index = outcome.sequence.expect("a consensus outcome has an index");
                self.acked_writes.push((write.register, write.value, index));
                self.acked_increments += write.increment;
            }
            Err(TxnError::ConditionFailed { .. }) => self.refused += 1,
            Err(TxnError::Raft(_)) => {
                self.unknown_increments += write.increment;
                self.unknown_writes.push(write);
            }
            Err(other) => self.errors.push(format!("outcome of {id:?}: {other}")),
        }
    }
}

struct RaftEngineNode {
    engine: Engine,
    dir: PathBuf,
    history: Rc<RefCell<History>>,
    ticks: u32,
}

impl RaftEngineNode {
    fn after(&mut self, ctx: &mut NodeCtx<'_, Vec<u8>>) {
        let outcomes = self.engine.take_outcomes();
        {
            let mut history = self.history.borrow_mut();
            for (id, result) in outcomes {
                history.settle(id, result);
            }
        }
        match self.engine.outgoing() {
            Ok(messages) => {
                for (to, bytes) in messages {
                    let _ = ctx.send(to, bytes);
                }
            }
            Err(err) => self.history.borrow_mut().errors.push(err.to_string()),
        }
    }

    /// One client operation on this node.
    fn issue(&mut self, roll: u32, register: String, value: i64, amount: i64) {
        let (mode, increment) = match roll {
            0..=2 => (TransactionMode::Coordinated, 0),
            3 => (TransactionMode::Auto, 1),
            _ => (TransactionMode::CoordinationFree, amount),
        };
        let current = self.engine.read("users", &register, "email").unwrap();
        let mut tx = self.engine.transaction(mode);
        match roll {
            0 | 1 => {
                tx.put("users", &register, "email", value);
            }
            2 => {
                tx.compare_and_set("users", &register, "email", current, value);
            }
            3 => {
                tx.put("users", &register, "email", value)
                    .increment("counters", "total", increment);
            }
            _ => {
                tx.increment("counters", "total", amount);
            }
        }
        let submitted = tx.submit();
        let mut history = self.history.borrow_mut();
        match submitted {
            Ok(Submission::Committed(outcome)) if outcome.path == CommitPath::Local => {
                assert!(outcome.durable);
                history.acked_increments += amount;
            }
            Ok(Submission::Committed(outcome)) => {
                history.errors.push(format!(
                    "a three-member cluster decided a proposal at once: {outcome:?}"
                ));
            }
            Ok(Submission::Proposed(id)) => {
                history.in_flight.insert(
                    id,
                    InFlight {
                        register,
                        value,
                        increment,
                    },
                );
            }
            Err(TxnError::NoLeader) => history.no_leader += 1,
            Err(other) => history.errors.push(format!("submit: {other}")),
        }
    }
}

impl SimulatedNode for RaftEngineNode {
    type Message = Vec<u8>;
    type Durable = PathBuf;
    type History = ();

    fn on_start(&mut self, ctx: &mut NodeCtx<'_, Vec<u8>>) {
        self.after(ctx);
    }

    fn on_message(&mut self, from: NodeId, msg: Vec<u8>, ctx: &mut NodeCtx<'_, Vec<u8>>) {
        if let Err(err) = self.engine.receive_bytes(from, &msg) {
            self.history
                .borrow_mut()
                .errors
                .push(format!("receive from {from}: {err}"));
        }
        self.after(ctx);
    }

    fn on_timer(&mut self, ctx: &mut NodeCtx<'_, Vec<u8>>) {
        self.ticks += 1;
        if let Err(err) = self.engine.tick() {
            self.history
                .borrow_mut()
                .errors
                .push(format!("tick: {err}"));
        }
        if self.ticks % 5 == 0 {
            for peer in self.engine.peers_behind() {
                self.engine.sync_with(peer).unwrap();
            }
        }
        self.after(ctx);
    }

    fn durable(&self) -> PathBuf {
        self.dir.clone()
    }

    fn is_idle(&self) -> bool {
        false // a leader heartbeats forever
    }

    fn message_bytes(msg: &Vec<u8>) -> usize {
        msg.len()
    }
}

fn leader(cluster: &SimulatedCluster<RaftEngineNode>) -> Option<usize> {
    let mut best: Option<(u64, usize)> = None;
    for (i, id) in cluster.node_ids().iter().enumerate() {
        if cluster.is_crashed(*id).unwrap_or(true) {
            continue;
        }
        let raft = cluster.node(i).ok()?.engine.raft()?;
        if raft.is_leader() && best.is_none_or(|(term, _)| raft.term() > term) {
            best = Some((raft.term(), i));
        }
    }
    best.map(|(_, i)| i)
}

fn settled(cluster: &SimulatedCluster<RaftEngineNode>) -> bool {
    let Some(l) = leader(cluster) else {
        return false;
    };
    let commit = cluster
        .node(l)
        .ok()
        .and_then(|n| n.engine.raft().map(|r| r.commit_index()))
        .unwrap_or(u64::MAX);
    cluster.running_nodes().count() == MEMBERS as usize
        && cluster.running_nodes().all(|(_, n)| {
            let raft = n.engine.raft().expect("a Raft engine");
            raft.applied() >= commit && raft.pending() == 0 && n.engine.peers_behind().is_empty()
        })
}

fn run_three(seed: u64) {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().to_path_buf();
    let history = Rc::new(RefCell::new(History::default()));
    let shared = Rc::clone(&history);
    let mut builder = SimulationBuilder::new();
    builder
        .nodes(MEMBERS as usize)
        .seed(seed)
        .latency(LatencyModel::Lan)
        .sync_interval(Some(Duration::from_millis(1)));
    let members: Vec<NodeId> = (0..MEMBERS).map(node).collect();
    let mut cluster = builder
        .build(move |id: NodeId, durable: Option<PathBuf>| {
            let dir = durable.unwrap_or_else(|| root.join(id.to_string()));
            let config = EngineConfig::new(id)
                .with_schema(test_schema())
                .with_members(members.iter().copied())
                .with_raft(RaftConfig {
                    seed,
                    ..raft_config()
                });
            let engine = Engine::open(&dir, config).unwrap();
            RaftEngineNode {
                engine,
                dir,
                history: Rc::clone(&shared),
                ticks: 0,
            }
        })
        .unwrap();
    let mut crashed: Option<usize> = None;
    for round in 0..150u32 {
        match round {
            30 => {
                // Crash the leader: its in-flight proposals have unknown outcomes.
                let l = leader(&cluster).expect("a leader after 30 rounds");
                cluster.crash(l).unwrap();
                crashed = Some(l);
                let mut history = history.borrow_mut();
                let lost: Vec<ProposalId> = history
                    .in_flight
                    .keys()
                    .filter(|id| id.node == node(l as u32))
                    .copied()
                    .collect();
                for id in lost {
                    let write = history.in_flight.remove(&id).unwrap();
                    history.unknown_increments += write.increment;
                    history.unknown_writes.push(write);
                }
            }
            70 => {
                // Bring it back, then cut the new leader off from the others.
                cluster.restart(crashed.take().unwrap()).unwrap();
                if let Some(l) = leader(&cluster) {
                    cluster.isolate(l).unwrap();
                }
            }
            110 => cluster.heal(),
            _ => {}
        }
        let (target, roll, register, amount) = {
            let rng = cluster.workload_rng();
            (
                rng.random_range(0..MEMBERS as usize),
                rng.random_range(0..6u32),
                format!("r{}", rng.random_range(0..REGISTERS)),
                rng.random_range(1..50i64),
            )
        };
        let value = i64::from(round) + 1;
        if crashed != Some(target) {
            cluster
                .with_node(target, |n, ctx| {
                    n.issue(roll, register, value, amount);
                    n.after(ctx);
                })
                .unwrap();
        }
        cluster.run_for(Duration::from_millis(3));
    }
    cluster.heal();
    if let Some(down) = crashed.take() {
        cluster.restart(down).unwrap();
    }
    cluster
        .run_until(Duration::from_secs(10), settled)
        .unwrap_or_else(|e| panic!("seed {seed}: the healed cluster did not settle: {e}"));
    // Let the last anti-entropy rounds and heartbeats land.
    cluster.run_for(Duration::from_millis(50));
    cluster.run_until(Duration::from_secs(10), settled).unwrap();

    let mut history = history.borrow_mut();
    let leftover: Vec<InFlight> = std::mem::take(&mut history.in_flight)
        .into_values()
        .collect();
    for write in leftover {
        history.unknown_increments += write.increment;
        history.unknown_writes.push(write);
    }
    assert!(
        history.errors.is_empty(),
        "seed {seed}: {:?}",
        history.errors
    );
    assert!(cluster.stats().crashes >= 1);
    assert!(
        history.acked_writes.len() >= 10,
        "seed {seed}: only {} acknowledged writes",
        history.acked_writes.len()
    );

    // Every engine: the same log index applied, the same registers, the same counter.
    let nodes: Vec<&RaftEngineNode> = cluster.running_nodes().map(|(_, n)| n).collect();
    assert_eq!(nodes.len(), MEMBERS as usize);
    let first = &nodes[0].engine;
    for n in &nodes[1..] {
        assert_eq!(
            n.engine.last_sequence(),
            first.last_sequence(),
            "seed {seed}"
        );
        assert_eq!(
            n.engine.raft().unwrap().applied(),
            first.raft().unwrap().applied(),
            "seed {seed}"
        );
        for r in 0..REGISTERS {
            let row = format!("r{r}");
            assert_eq!(
                n.engine.read("users", &row, "email").unwrap(),
                first.read("users", &row, "email").unwrap(),
                "seed {seed}: register {row}"
            );
        }
        assert_eq!(n.engine.fingerprint(), first.fingerprint(), "seed {seed}");
    }
    // No acknowledged increment lost, none counted twice.
    let total = first
        .read("counters", "total", "value")
        .unwrap()
        .as_integer()
        .unwrap();
    assert!(
        history.acked_increments <= total
            && total <= history.acked_increments + history.unknown_increments,
        "seed {seed}: counter {total}, acknowledged {}, unknown {}",
        history.acked_increments,
        history.unknown_increments
    );
    // No acknowledged register write lost: each register holds its last acknowledged value,
    // or a value whose write had an unknown outcome.
    for r in 0..REGISTERS {
        let row = format!("r{r}");
        let last_acked = history
            .acked_writes
            .iter()
            .filter(|(reg, ..)| *reg == row)
            .max_by_key(|(.., index)| *index)
            .map(|(_, v, _)| AlgebraicValue::Integer(*v));
        let found = first.read("users", &row, "email").unwrap();
        let unknown = history
            .unknown_writes
            .iter()
            .any(|w| w.register == row && AlgebraicValue::Integer(w.value) == found);
        assert!(
            last_acked.as_ref() == Some(&found)
                || unknown
                || (last_acked.is_none() && found == AlgebraicValue::Null),
            "seed {seed}: {row} holds {found}, last acknowledged {last_acked:?}"
        );
    }
    // Acknowledged indices are distinct, and every engine holding one of them holds the same
    // entry there.
    let mut indices: Vec<u64> = history.acked_writes.iter().map(|(.., i)| *i).collect();
    indices.sort_unstable();
    let before = indices.len();
    indices.dedup();
    assert_eq!(
        indices.len(),
        before,
        "seed {seed}: an index acknowledged twice"
    );
    for index in indices {
        let held: Vec<_> = nodes
            .iter()
            .filter_map(|n| n.engine.raft().unwrap().log_entry(index))
            .collect();
        assert!(
            held.windows(2).all(|w| w[0] == w[1]),
            "seed {seed}: entry {index} differs"
        );
    }
}

#[test]
fn three_raft_engines_survive_a_leader_crash_and_a_partition() {
    for seed in 0..3 {
        run_three(seed);
    }
}
