//! Membership changes at run time under turmoil, with the real node loop and transport: three
//! nodes under coordination-free and coordinated load, a fourth started to join (refused until
//! added), added through the log, caught up and converged; then removed: refused at the
//! handshake, its reported clock dropped by every remaining member, and the removed node itself
//! told (by its log or a member's refusal), after which it refuses writes.
//!
//! `RHIZO_MEMBERSHIP_SEEDS=N` runs N seeds (default 20); `RHIZO_MEMBERSHIP_SEED=S` runs seed S.

use std::cell::RefCell;
use std::rc::Rc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rhizo_txn::raft::RaftConfig;
use rhizo_txn::{EngineConfig, MemStorage};

use super::*;
use crate::{MembershipChange, RefusalReason, TurmoilNetwork};

/// The group at the start; the newcomer is `node(STARTING)`.
const STARTING: usize = 3;
const PORT: u16 = 7000;
/// The client adds the newcomer here, under load.
const ADD_AT: Duration = Duration::from_millis(400);
/// The client stops its load here.
const LOAD_END: Duration = Duration::from_millis(1500);
/// The client removes the newcomer here, once the four have converged.
const REMOVE_AT: Duration = Duration::from_millis(2500);
const RUN_END: Duration = Duration::from_millis(6000);

fn name(index: usize) -> String {
    format!("n{index}")
}

#[derive(Default)]
struct World {
    handles: Vec<Option<NodeHandle>>,
    /// Increments acknowledged (each adds 1 to `counters/c`).
    acked: i64,
    /// Registers whose coordinated put was acknowledged (register `rI` holds `I`).
    puts: Vec<i64>,
    added: Option<Result<(), String>>,
    removed: Option<Result<(), String>>,
    /// Whether the four held the same state before the removal.
    converged_with_four: bool,
}

fn node_config(index: usize, seed: u64) -> NodeConfig {
    // The newcomer's configuration names the group and itself; the others' only the group.
    let size = if index == STARTING {
        STARTING + 1
    } else {
        STARTING
    };
    let members = (0..size)
        .map(|i| (node(i as u32), format!("{}:{PORT}", name(i))))
        .collect();
    let mut config = NodeConfig::new(node(index as u32), "sim", members, Security::Insecure)
        .with_schema(schema());
    config.engine = EngineConfig {
        background_flush: false,
        ..config.engine.with_raft(RaftConfig {
            seed,
            join: index == STARTING,
            ..RaftConfig::default()
        })
    };
    config.transport.listen = format!("0.0.0.0:{PORT}");
    config.transport.incarnation = 1;
    config.transport.handshake_timeout = Duration::from_millis(400);
    config.transport.idle_timeout = Duration::from_millis(900);
    config.transport.backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        jitter: 0.5,
        seed: seed ^ index as u64,
    };
    config.commit_timeout = Duration::from_millis(1500);
    config
}

async fn node_host(index: usize, seed: u64, world: Rc<RefCell<World>>) -> turmoil::Result {
    let config = node_config(index, seed);
    let engine = rhizo_txn::Engine::open_in_memory_log(MemStorage::new(), config.engine.clone())?;
    let handle = Node::start_engine(config, engine, TurmoilNetwork).await?;
    world.borrow_mut().handles[index] = Some(handle);
    std::future::pending::<()>().await;
    Ok(())
}

fn handle(world: &RefCell<World>, index: usize) -> Option<NodeHandle> {
    world.borrow().handles[index].clone()
}

/// Load through the first three nodes, the addition under it, then the removal.
async fn client(seed: u64, world: Rc<RefCell<World>>) -> turmoil::Result {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0dd);
    let mut register = 0i64;
    while turmoil::elapsed() < LOAD_END {
        tokio::time::sleep(Duration::from_millis(rng.random_range(2..8))).await;
        let Some(target) = handle(&world, rng.random_range(0..STARTING)) else {
            continue;
        };
        if world.borrow().added.is_none() && turmoil::elapsed() >= ADD_AT {
            let change = MembershipChange::Add {
                node: node(STARTING as u32),
                address: format!("{}:{PORT}", name(STARTING)),
            };
            let added = target.change_members_async(change).await;
            world.borrow_mut().added = Some(added.map_err(|e| e.to_string()));
        }
        if rng.random_bool(0.7) {
            let mut tx = target.transaction(TransactionMode::CoordinationFree);
            tx.increment("counters", "c", "value", 1);
            if tx.commit_async().await.is_ok() {
                world.borrow_mut().acked += 1;
            }
        } else {
            register += 1;
            let mut tx = target.transaction(TransactionMode::Coordinated);
            tx.put("kv", &format!("r{register}"), "reg", register);
            if tx.commit_async().await.is_ok() {
                world.borrow_mut().puts.push(register);
            }
        }
    }
    while turmoil::elapsed() < REMOVE_AT {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let mut world = world.borrow_mut();
        world.converged_with_four |= same_state(&world.handles);
    }
    let first = handle(&world, 0).expect("n0 runs");
    let removed = first
        .change_members_async(MembershipChange::Remove {
            node: node(STARTING as u32),
        })
        .await;
    world.borrow_mut().removed = Some(removed.map_err(|e| e.to_string()));
    std::future::pending::<()>().await;
    Ok(())
}

fn same_state(handles: &[Option<NodeHandle>]) -> bool {
    let prints: Vec<u64> = handles
        .iter()
        .flatten()
        .map(|h| h.status().fingerprint)
        .collect();
    prints.len() == handles.len() && prints.windows(2).all(|w| w[0] == w[1])
}

/// Every acknowledged operation is on `handle`, once.
fn check_acknowledged(handle: &NodeHandle, world: &World) -> Result<(), String> {
    let value = counter(handle, "c");
    if value != world.acked {
        return Err(format!(
            "{}: the counter reads {value}, {} increments were acknowledged",
            handle.node_id(),
            world.acked
        ));
    }
    for register in &world.puts {
        let read = handle.read("kv", &format!("r{register}"), "reg");
        if read.as_ref().ok() != Some(&AlgebraicValue::Integer(*register)) {
            return Err(format!("{}: r{register} reads {read:?}", handle.node_id()));
        }
    }
    Ok(())
}

/// After the removal: the remaining three agree and count only each other, hold no clock the
/// newcomer reported, no longer take it as a peer, and have refused its handshakes.
fn removal_done(world: &World) -> Result<(), String> {
    let remaining: Vec<&NodeHandle> = world.handles[..STARTING].iter().flatten().collect();
    let newcomer = node(STARTING as u32);
    for handle in &remaining {
        if handle.status().members.contains(&newcomer) {
            return Err(format!("{} still counts {newcomer}", handle.node_id()));
        }
        let (counted, reported) = handle.with_engine(|engine| {
            let replica = engine.replica();
            (
                replica.members().any(|m| m == newcomer),
                replica.peer_clock(newcomer).is_some(),
            )
        });
        if counted || reported {
            return Err(format!(
                "{}: the replica still counts {newcomer} ({counted}) or holds its clock \
                 ({reported})",
                handle.node_id()
            ));
        }
        let transport = handle.status().transport;
        if transport.peers.contains_key(&newcomer) {
            return Err(format!(
                "{} still takes {newcomer} as a peer",
                handle.node_id()
            ));
        }
        let refused = transport
            .unattributed_handshake_failures
            .get(&RefusalReason::NotAMember)
            .copied()
            .unwrap_or(0);
        if refused == 0 {
            return Err(format!(
                "{} refused no handshake of {newcomer}",
                handle.node_id()
            ));
        }
    }
    let removed = world.handles[STARTING]
        .as_ref()
        .ok_or("the newcomer is not running")?;
    if removed.status().removed_by.is_none() {
        return Err(format!("{newcomer} has not learned its removal"));
    }
    let prints: Vec<u64> = remaining.iter().map(|h| h.status().fingerprint).collect();
    if prints.len() != STARTING || prints.windows(2).any(|w| w[0] != w[1]) {
        return Err(format!("the remaining members differ: {prints:?}"));
    }
    Ok(())
}

fn run_seed(seed: u64) -> Result<(), String> {
    let world = Rc::new(RefCell::new(World {
        handles: vec![None; STARTING + 1],
        ..World::default()
    }));
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(Duration::from_secs(30))
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(5))
        .build();
    for index in 0..=STARTING {
        let world = world.clone();
        sim.host(name(index), move || node_host(index, seed, world.clone()));
    }
    let client_world = world.clone();
    sim.host("client", move || client(seed, client_world.clone()));
    let mut refused_before_added = false;
    let mut last = Err("the run ended before the removal".to_owned());
    while sim.elapsed() < RUN_END {
        sim.step().map_err(|e| e.to_string())?;
        let world = world.borrow();
        if world.added.is_none() && sim.elapsed() >= ADD_AT / 2 {
            // The newcomer dials the group from its start; until added it is refused.
            refused_before_added |= world.handles[..STARTING].iter().flatten().any(|h| {
                let stats = h.status().transport;
                stats
                    .unattributed_handshake_failures
                    .contains_key(&RefusalReason::NotAMember)
            });
        }
        if world.removed.is_some() {
            last = removal_done(&world);
            if last.is_ok() {
                break;
            }
        }
    }
    let world = world.borrow();
    match &world.added {
        Some(Ok(())) => {}
        other => return Err(format!("the addition: {other:?}")),
    }
    if !refused_before_added {
        return Err("the newcomer was not refused before it was added".to_owned());
    }
    if !world.converged_with_four {
        return Err("the four never held the same state".to_owned());
    }
    match &world.removed {
        Some(Ok(())) => {}
        other => return Err(format!("the removal: {other:?}")),
    }
    last?;
    let removed = world.handles[STARTING]
        .as_ref()
        .expect("checked in removal_done");
    let mut tx = removed.transaction(TransactionMode::CoordinationFree);
    tx.increment("counters", "c", "value", 1);
    match tx.commit() {
        Err(NetError::Removed { .. }) => {}
        other => return Err(format!("a commit on the removed node: {other:?}")),
    }
    for handle in world.handles.iter().flatten() {
        check_acknowledged(handle, &world)?;
    }
    if world.acked < 20 || world.puts.len() < 5 {
        return Err(format!(
            "too little load acknowledged: {} increments, {} puts",
            world.acked,
            world.puts.len()
        ));
    }
    drop(world);
    drop(sim);
    Ok(())
}

fn seeds() -> Vec<u64> {
    crate::testkit::sweep_seeds("RHIZO_MEMBERSHIP_SEED", "RHIZO_MEMBERSHIP_SEEDS", 20)
}

#[test]
fn a_member_added_under_load_converges_and_a_removed_one_is_refused() {
    let mut failures = Vec::new();
    for seed in seeds() {
        if let Err(reason) = run_seed(seed) {
            failures.push(format!(
                "seed {seed}: {reason}\n  replay: RHIZO_MEMBERSHIP_SEED={seed} cargo test -p \
                 rhizo-net --lib node::tests::membership"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
