//! The node loop and the transport under turmoil: three nodes with real engines (memory logs
//! that a crash cuts back to what was synced), a client committing increments, register writes
//! and linearizable register reads through them, and a fault schedule of partitions, held
//! links, and crashes with restarts. After the faults stop and the cluster settles: every node
//! holds the same bytes, every acknowledged increment counted exactly once, the register history
//! linearizable, and the transport's queues within their limits throughout.
//!
//! `RHIZO_NODE_SEEDS=N` runs N seeds (default 200); `RHIZO_NODE_SEED=S` runs seed S alone, as a
//! failing seed's message says.

use std::cell::RefCell;
use std::rc::Rc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rhizo_engine_sim::raft::{RegisterOp, check_linearizable};
use rhizo_txn::raft::RaftConfig;
use rhizo_txn::{EngineConfig, MemStorage};

use super::*;
use crate::{QueueLimits, TurmoilNetwork};

const NODES: usize = 3;
const PORT: u16 = 7000;
/// Faults happen before this; then every link heals and a crashed node restarts.
const FAULTS_END: Duration = Duration::from_millis(2500);
/// The client stops issuing operations here.
const LOAD_END: Duration = Duration::from_millis(3000);
/// By here the cluster must have settled.
const RUN_END: Duration = Duration::from_millis(7000);
const CONTROL_LIMITS: QueueLimits = QueueLimits {
    max_messages: 256,
    max_bytes: 256 << 10,
};
const BULK_LIMITS: QueueLimits = QueueLimits {
    max_messages: 32,
    max_bytes: 256 << 10,
};

fn name(index: usize) -> String {
    format!("n{index}")
}

/// What the hosts and the client share with the test (turmoil runs them all on this thread).
#[derive(Default)]
struct World {
    /// Each node's disk: replaced by its power-lost copy when the node crashes.
    disks: Vec<MemStorage>,
    /// Each running node's handle.
    handles: Vec<Option<NodeHandle>>,
    incarnations: Vec<u64>,
    /// Increments acknowledged, and attempted (acknowledged or unknown).
    acked: i64,
    attempted: i64,
    /// Register operations as the client saw them.
    ops: Vec<RegisterOp>,
    violations: Vec<String>,
}

fn node_config(index: usize, seed: u64, incarnation: u64) -> NodeConfig {
    let members = (0..NODES)
        .map(|i| (node(i as u32), format!("{}:{PORT}", name(i))))
        .collect();
    let mut config = NodeConfig::new(node(index as u32), "sim", members, Security::Insecure)
        .with_schema(schema());
    config.engine = EngineConfig {
        background_flush: false,
        ..config.engine.with_raft(RaftConfig {
            seed,
            ..RaftConfig::default()
        })
    };
    config.transport.listen = format!("0.0.0.0:{PORT}");
    config.transport.incarnation = incarnation;
    config.transport.control_queue = CONTROL_LIMITS;
    config.transport.bulk_queue = BULK_LIMITS;
    config.transport.handshake_timeout = Duration::from_millis(400);
    config.transport.idle_timeout = Duration::from_millis(900);
    config.transport.backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(300),
        jitter: 0.5,
        seed: seed ^ index as u64,
    };
    config.commit_timeout = Duration::from_millis(800);
    config
}

/// One node's host: its engine reopened from its disk, its node loop, until crashed.
async fn node_host(index: usize, seed: u64, world: Rc<RefCell<World>>) -> turmoil::Result {
    let (disk, incarnation) = {
        let mut world = world.borrow_mut();
        world.incarnations[index] += 1;
        (world.disks[index].clone(), world.incarnations[index])
    };
    let config = node_config(index, seed, incarnation);
    let engine = rhizo_txn::Engine::open_in_memory_log(disk, config.engine.clone())?;
    let handle = Node::start_engine(config, engine, TurmoilNetwork).await?;
    world.borrow_mut().handles[index] = Some(handle.clone());
    loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        check_queues(index, &handle, &world);
    }
}

/// The transport's queues stay within their limits (it keeps their peaks).
fn check_queues(index: usize, handle: &NodeHandle, world: &RefCell<World>) {
    let stats = handle.status().transport;
    for (peer, peer_stats) in &stats.peers {
        for (lane, limits) in [
            (&peer_stats.control, CONTROL_LIMITS),
            (&peer_stats.bulk, BULK_LIMITS),
        ] {
            if lane.peak_queued_bytes > limits.max_bytes as u64 {
                world.borrow_mut().violations.push(format!(
                    "n{index} -> {peer}: a queue beyond its limit: {lane:?}"
                ));
            }
        }
    }
}

/// The client: one operation at a time through a random running node.
async fn client(seed: u64, world: Rc<RefCell<World>>) -> turmoil::Result {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xc11e);
    let mut next_value = 1i64;
    while turmoil::elapsed() < LOAD_END {
        tokio::time::sleep(Duration::from_millis(rng.random_range(2..8))).await;
        let target = rng.random_range(0..NODES);
        let Some(handle) = world.borrow().handles[target].clone() else {
            continue;
        };
        match rng.random_range(0..10u8) {
            0..=5 => increment(&handle, &world).await,
            6..=7 => {
                next_value += 1;
                write_register(&handle, &world, next_value).await;
            }
            8 => read_register_by_compare_and_set(&handle, &world).await,
            _ => read_register(&handle, &world).await,
        }
    }
    std::future::pending::<()>().await;
    Ok(())
}

async fn increment(handle: &NodeHandle, world: &RefCell<World>) {
    let mut tx = handle.transaction(TransactionMode::CoordinationFree);
    tx.increment("counters", "c", "value", 1);
    world.borrow_mut().attempted += 1;
    // Decided within the call: a coordination-free commit waits for no one.
    match tx.commit_async().await {
        Ok(outcome) if outcome.durable => world.borrow_mut().acked += 1,
        Ok(outcome) => world.borrow_mut().violations.push(format!(
            "an increment acknowledged before it was durable: {outcome:?}"
        )),
        Err(err) => world
            .borrow_mut()
            .violations
            .push(format!("increment refused: {err}")),
    }
}

fn micros() -> u64 {
    turmoil::elapsed().as_micros() as u64
}

async fn write_register(handle: &NodeHandle, world: &RefCell<World>, value: i64) {
    let at = {
        let mut world = world.borrow_mut();
        world.ops.push(RegisterOp {
            key: "r".to_owned(),
            write: Some(value),
            read: None,
            invoked: micros(),
            completed: None,
        });
        world.ops.len() - 1
    };
    let mut tx = handle.transaction(TransactionMode::Coordinated);
    tx.put("kv", "r", "reg", value);
    if tx.commit_async().await.is_ok() {
        world.borrow_mut().ops[at].completed = Some(micros());
    }
}

/// A linearizable read through the node's own API: the leader confirms its commit index, and
/// the node answers from its state once it has applied the log up to it.
async fn read_register(handle: &NodeHandle, world: &RefCell<World>) {
    let invoked = micros();
    let key = [CellKey::new("kv", "r", "reg")];
    if let Ok(values) = handle
        .read_cells_async(ReadConsistency::Linearizable, &key)
        .await
    {
        record_read(world, invoked, &values[0]);
    }
}

/// A read made linearizable by hand: a compare-and-set of the value read locally with itself,
/// ordered by the log. If it commits, the register held that value at its place in the log.
async fn read_register_by_compare_and_set(handle: &NodeHandle, world: &RefCell<World>) {
    let invoked = micros();
    let Ok(local) = handle.read("kv", "r", "reg") else {
        return;
    };
    let mut tx = handle.transaction(TransactionMode::Coordinated);
    tx.compare_and_set("kv", "r", "reg", local.clone(), local.clone());
    if tx.commit_async().await.is_ok() {
        record_read(world, invoked, &local);
    }
}

/// Records a read of the register, invoked at `invoked` and answered now with `value`.
fn record_read(world: &RefCell<World>, invoked: u64, value: &AlgebraicValue) {
    let seen = match value {
        AlgebraicValue::Integer(v) => Some(*v),
        _ => None,
    };
    world.borrow_mut().ops.push(RegisterOp {
        key: "r".to_owned(),
        write: None,
        read: Some(seen),
        invoked,
        completed: Some(micros()),
    });
}

/// A fault: partition or hold a link, heal one, or crash a node (power loss) for a while.
fn fault(
    sim: &mut turmoil::Sim<'_>,
    now: Duration,
    rng: &mut ChaCha8Rng,
    world: &RefCell<World>,
    faulty: &mut Vec<(usize, usize, bool)>,
    crashed: &mut Option<(usize, Duration)>,
) {
    let a = rng.random_range(0..NODES);
    let b = (a + rng.random_range(1..NODES)) % NODES;
    match rng.random_range(0..5u8) {
        0 | 1 if faulty.len() < 2 => {
            let hold = rng.random_bool(0.5);
            if hold {
                sim.hold(name(a), name(b));
            } else {
                sim.partition(name(a), name(b));
            }
            faulty.push((a, b, hold));
        }
        2 | 3 => {
            if let Some((a, b, hold)) = faulty.pop() {
                heal_link(sim, a, b, hold);
            }
        }
        4 if crashed.is_none() => {
            sim.crash(name(a));
            let mut world = world.borrow_mut();
            world.handles[a] = None;
            let lost = world.disks[a].deep_clone();
            lost.power_loss(false);
            world.disks[a] = lost;
            let back = now + Duration::from_millis(rng.random_range(100..700));
            *crashed = Some((a, back));
        }
        _ => {}
    }
}

fn heal_link(sim: &mut turmoil::Sim<'_>, a: usize, b: usize, held: bool) {
    if held {
        sim.release(name(a), name(b));
    } else {
        sim.repair(name(a), name(b));
    }
}

/// Runs one seed; returns what went wrong, if anything.
fn run_seed(seed: u64) -> Result<(), String> {
    let world = Rc::new(RefCell::new(World {
        disks: (0..NODES).map(|_| MemStorage::new()).collect(),
        handles: vec![None; NODES],
        incarnations: vec![0; NODES],
        ..World::default()
    }));
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(Duration::from_secs(60))
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(5))
        .build();
    for index in 0..NODES {
        let world = world.clone();
        sim.host(name(index), move || node_host(index, seed, world.clone()));
    }
    let client_world = world.clone();
    sim.host("client", move || client(seed, client_world.clone()));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut faulty, mut crashed) = (Vec::new(), None);
    let mut next_fault = Duration::from_millis(400);
    let mut healed = false;
    while sim.elapsed() < RUN_END {
        sim.step().map_err(|e| e.to_string())?;
        let now = sim.elapsed();
        if let Some((index, at)) = crashed
            && (now >= at || now >= FAULTS_END)
        {
            sim.bounce(name(index));
            crashed = None;
        }
        if now < FAULTS_END && now >= next_fault {
            next_fault = now + Duration::from_millis(rng.random_range(100..400));
            fault(&mut sim, now, &mut rng, &world, &mut faulty, &mut crashed);
        }
        if now >= FAULTS_END && !healed {
            for (a, b, hold) in faulty.drain(..) {
                heal_link(&mut sim, a, b, hold);
            }
            healed = true;
        }
        if now > LOAD_END + Duration::from_millis(500) && settled(&world.borrow()) {
            break;
        }
    }
    let result = check(&world.borrow());
    drop(sim);
    result
}

/// Every node up, holding the same state, as far as the handles tell.
fn settled(world: &World) -> bool {
    let prints: Vec<u64> = world
        .handles
        .iter()
        .flatten()
        .map(|h| h.status().fingerprint)
        .collect();
    prints.len() == NODES && prints.windows(2).all(|w| w[0] == w[1])
}

fn check(world: &World) -> Result<(), String> {
    if let Some(violation) = world.violations.first() {
        return Err(violation.clone());
    }
    if !settled(world) {
        let prints: Vec<Option<u64>> = world
            .handles
            .iter()
            .map(|h| h.as_ref().map(|h| h.status().fingerprint))
            .collect();
        return Err(format!("not converged by the end: {prints:?}"));
    }
    for handle in world.handles.iter().flatten() {
        let value = counter(handle, "c");
        if value < world.acked || value > world.attempted {
            return Err(format!(
                "{}: the counter reads {value}, outside [{} acknowledged, {} attempted]",
                handle.node_id(),
                world.acked,
                world.attempted
            ));
        }
    }
    check_linearizable(&world.ops, 400)?;
    if world.acked < 20 {
        return Err(format!("only {} increments acknowledged", world.acked));
    }
    Ok(())
}

fn seeds() -> Vec<u64> {
    crate::testkit::sweep_seeds("RHIZO_NODE_SEED", "RHIZO_NODE_SEEDS", 200)
}

#[test]
fn turmoil_node_sweep() {
    let mut failures = Vec::new();
    for seed in seeds() {
        if let Err(reason) = run_seed(seed) {
            failures.push(format!(
                "seed {seed}: {reason}\n  replay: RHIZO_NODE_SEED={seed} cargo test -p rhizo-net \
                 --lib node::tests::sim::turmoil_node_sweep"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
