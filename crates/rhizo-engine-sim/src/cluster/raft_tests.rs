//! Engines on the Raft backend: a lone member on a directory, and three members on temp
//! directories over rhizo-sim's network with a leader crash and a partition.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::Rng;
use rhizo_sim::{LatencyModel, SimulationBuilder};

use rhizo_algebra::AlgebraicValue;
use rhizo_commit::Operations;
use rhizo_txn::raft::{ProposalId, RaftConfig};
use rhizo_txn::{
    Backend, CommitOutcome, CommitPath, Engine, Submission, TransactionMode, TxnError,
};

use super::{ClusterConfig, EngineCluster};
use crate::ClusterError;
use crate::testkit::*;

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
    let raft_member = config().with_raft(raft_config());
    let mut engine = Engine::open(dir.path(), raft_member.clone()).unwrap();
    // Before an election nobody leads: a typed "retry", and nothing changed.
    let before = engine.fingerprint();
    let mut tx = engine.transaction(TransactionMode::Coordinated);
    tx.put("users", "u", "email", 1);
    assert!(matches!(decide(tx), Err(TxnError::NoLeader)));
    assert_eq!(engine.fingerprint(), before);
    // A coordination-free commit needs no leader.
    let mut tx = engine.transaction(TransactionMode::CoordinationFree);
    tx.increment("counters", "c", "value", 5);
    let local = decide(tx).unwrap();
    assert_eq!((local.path, local.sequence), (CommitPath::Local, None));
    assert!(local.durable);

    tick_until_leader(&mut engine);
    let mut tx = engine.transaction(TransactionMode::Coordinated);
    tx.put("users", "u", "email", 7)
        .increment("counters", "c", "value", 1);
    let first = decide(tx).unwrap();
    assert_eq!(first.path, CommitPath::Consensus);
    let index = first.sequence.unwrap();
    assert_eq!(engine.last_sequence(), index);
    let mut tx = engine.transaction(TransactionMode::Auto);
    tx.compare_and_set("users", "u", "email", 7, 8);
    let second = decide(tx).unwrap();
    assert_eq!(second.path, CommitPath::Consensus);
    assert!(second.sequence.unwrap() > index);
    // A failed condition is ordered too, and changes nothing.
    let mut tx = engine.transaction(TransactionMode::Coordinated);
    tx.compare_and_set("users", "u", "email", 7, 9)
        .increment("counters", "c", "value", 100);
    assert!(matches!(decide(tx), Err(TxnError::ConditionFailed { .. })));
    assert_eq!(engine.read("users", "u", "email").unwrap(), int(8));
    assert_eq!(engine.read("counters", "c", "value").unwrap(), int(6));
    let (fingerprint, sequence) = (engine.fingerprint(), engine.last_sequence());
    drop(engine);

    // The directory now holds a Raft log: the single-node backend refuses it.
    assert!(matches!(
        Engine::open(dir.path(), config()),
        Err(TxnError::Config { .. })
    ));
    let mut engine = Engine::open(dir.path(), raft_member).unwrap();
    assert_eq!(engine.fingerprint(), fingerprint);
    assert_eq!(engine.last_sequence(), sequence);
    assert_eq!(engine.read("users", "u", "email").unwrap(), int(8));
    tick_until_leader(&mut engine);
    let mut tx = engine.transaction(TransactionMode::Coordinated);
    tx.put("users", "u", "email", 10);
    assert!(decide(tx).unwrap().sequence.unwrap() > sequence);
    engine.compact().unwrap();
    assert_eq!(engine.read("users", "u", "email").unwrap(), int(10));
}

#[test]
fn a_single_node_engine_in_a_cluster_refuses_coordinated_transactions() {
    let config = config().with_members([node(0), node(1)]);
    let mut engine = Engine::in_memory(config).unwrap();
    let mut tx = engine.transaction(TransactionMode::Coordinated);
    tx.increment("counters", "c", "value", 1);
    let err = decide(tx).unwrap_err();
    assert!(
        matches!(&err, TxnError::Config { reason } if reason.contains("Raft")),
        "{err}"
    );
    let mut tx = engine.transaction(TransactionMode::Auto);
    tx.increment("counters", "c", "value", 1);
    assert_eq!(decide(tx).unwrap().path, CommitPath::Local);
}

// ---------------------------------------------------------------------- three engines

const MEMBERS: usize = 3;
const REGISTERS: u32 = 2;

/// A coordinated write whose outcome is awaited.
#[derive(Debug, Clone)]
struct InFlight {
    register: String,
    value: i64,
    increment: i64,
}

/// What the clients were told.
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
    fn settle(&mut self, id: ProposalId, result: rhizo_txn::Result<CommitOutcome>) {
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
            // A timeout, or a proposer that crashed first (`RaftError::Interrupted`).
            Err(TxnError::Raft(_)) => {
                self.unknown_increments += write.increment;
                self.unknown_writes.push(write);
            }
            Err(other) => self.errors.push(format!("outcome of {id:?}: {other}")),
        }
    }

    /// One client operation on node `target`.
    fn issue(
        &mut self,
        cluster: &mut EngineCluster,
        target: usize,
        roll: u32,
        register: String,
        value: i64,
        amount: i64,
    ) {
        let (mode, increment) = match roll {
            0..=2 => (TransactionMode::Coordinated, 0),
            3 => (TransactionMode::Auto, 1),
            _ => (TransactionMode::CoordinationFree, amount),
        };
        let current = cluster.read(target, "users", &register, "email").unwrap();
        let submitted = cluster.submit(target, mode, |tx| match roll {
            0 | 1 => {
                tx.put("users", &register, "email", value);
            }
            2 => {
                tx.compare_and_set("users", &register, "email", current, value);
            }
            3 => {
                tx.put("users", &register, "email", value)
                    .increment("counters", "total", "value", increment);
            }
            _ => {
                tx.increment("counters", "total", "value", amount);
            }
        });
        match submitted {
            Ok(Submission::Committed(outcome)) if outcome.path == CommitPath::Local => {
                assert!(outcome.durable);
                self.acked_increments += amount;
            }
            Ok(Submission::Committed(outcome)) => {
                self.errors.push(format!(
                    "a three-member cluster decided a proposal at once: {outcome:?}"
                ));
            }
            Ok(Submission::Pending(id)) => {
                let write = InFlight {
                    register,
                    value,
                    increment,
                };
                self.in_flight.insert(id, write);
            }
            Err(ClusterError::Txn(TxnError::NoLeader)) => self.no_leader += 1,
            Err(other) => self.errors.push(format!("submit: {other}")),
        }
    }
}

fn run_three(seed: u64) {
    let mut builder = SimulationBuilder::new();
    builder
        .nodes(MEMBERS)
        .seed(seed)
        .latency(LatencyModel::Lan)
        .sync_interval(Some(Duration::from_millis(1)));
    let config = ClusterConfig {
        anti_entropy_every: 5,
        ..ClusterConfig::new(test_schema()).with_backend(Backend::Raft(raft_config()))
    };
    let mut cluster = EngineCluster::new(&builder, config).unwrap();
    let mut history = History::default();
    let mut crashed: Option<usize> = None;
    for round in 0..150u32 {
        match round {
            30 => {
                // Crash the leader: its in-flight proposals have unknown outcomes.
                let l = cluster.leader().expect("a leader after 30 rounds");
                cluster.crash(l).unwrap();
                crashed = Some(l);
            }
            70 => {
                // Bring it back, then cut the new leader off from the others.
                cluster.restart(crashed.take().unwrap()).unwrap();
                if let Some(l) = cluster.leader() {
                    cluster.isolate(l).unwrap();
                }
            }
            110 => cluster.heal(),
            _ => {}
        }
        let (target, roll, register, amount) = {
            let rng = cluster.simulation_mut().workload_rng();
            (
                rng.random_range(0..MEMBERS),
                rng.random_range(0..6u32),
                format!("r{}", rng.random_range(0..REGISTERS)),
                rng.random_range(1..50i64),
            )
        };
        let value = i64::from(round) + 1;
        if crashed != Some(target) {
            history.issue(&mut cluster, target, roll, register, value, amount);
        }
        cluster.run_for(Duration::from_millis(3));
        for (id, result) in cluster.take_outcomes() {
            history.settle(id, result);
        }
    }
    cluster.heal();
    if let Some(down) = crashed.take() {
        cluster.restart(down).unwrap();
    }
    cluster
        .run_until_quiescent(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("seed {seed}: the healed cluster did not settle: {e}"));
    // Let the last anti-entropy rounds and heartbeats land.
    cluster.run_for(Duration::from_millis(50));
    cluster
        .run_until_quiescent(Duration::from_secs(10))
        .unwrap();

    for (id, result) in cluster.take_outcomes() {
        history.settle(id, result);
    }
    let leftover: Vec<InFlight> = std::mem::take(&mut history.in_flight)
        .into_values()
        .collect();
    for write in leftover {
        history.unknown_increments += write.increment;
        history.unknown_writes.push(write);
    }
    history.errors.extend(
        cluster
            .faults()
            .into_iter()
            .map(|(n, f)| format!("{n}: {f}")),
    );
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
    let nodes: Vec<&Engine> = (0..MEMBERS).map(|i| cluster.engine(i).unwrap()).collect();
    let first = nodes[0];
    for n in &nodes[1..] {
        assert_eq!(n.last_sequence(), first.last_sequence(), "seed {seed}");
        assert_eq!(
            n.raft().unwrap().applied(),
            first.raft().unwrap().applied(),
            "seed {seed}"
        );
        for r in 0..REGISTERS {
            let row = format!("r{r}");
            assert_eq!(
                n.read("users", &row, "email").unwrap(),
                first.read("users", &row, "email").unwrap(),
                "seed {seed}: register {row}"
            );
        }
    }
    cluster.verify_convergence().unwrap();
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
            .filter_map(|n| n.raft().unwrap().log_entry(index))
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
