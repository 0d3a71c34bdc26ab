//! Several engines on temp directories over rhizo-sim's network, with loss, reordering,
//! crashes and restarts: they converge, and nothing acknowledged is lost.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use rand::Rng;
use rhizo_sim::{NetworkCondition, NodeCtx, SimulatedNode, SimulationBuilder};

use super::*;

const NODES: u32 = 4;

fn engine_config(id: NodeId) -> EngineConfig {
    EngineConfig::new(id)
        .with_schema(test_schema())
        .with_members((0..NODES).map(node))
}

/// The simulator's view of an engine: messages are the engine's encoded bytes, and what
/// survives a crash is the data directory.
struct EngineNode {
    engine: Engine,
    dir: PathBuf,
}

impl EngineNode {
    fn send_outgoing(&mut self, ctx: &mut NodeCtx<'_, Vec<u8>>) {
        for (to, bytes) in self.engine.outgoing().unwrap() {
            ctx.send(to, bytes).unwrap();
        }
    }
}

impl SimulatedNode for EngineNode {
    type Message = Vec<u8>;
    type Durable = PathBuf;
    type History = ();

    fn on_message(&mut self, from: NodeId, msg: Vec<u8>, ctx: &mut NodeCtx<'_, Vec<u8>>) {
        self.engine.receive_bytes(from, &msg).unwrap();
        self.send_outgoing(ctx);
    }

    fn on_timer(&mut self, ctx: &mut NodeCtx<'_, Vec<u8>>) {
        // Only peers believed behind: a cluster where everyone holds everything goes quiet.
        let behind = self.engine.peers_behind();
        for peer in ctx.gossip_peers() {
            if behind.contains(&peer) {
                self.engine.sync_with(peer).unwrap();
            }
        }
        self.send_outgoing(ctx);
    }

    fn durable(&self) -> PathBuf {
        self.dir.clone()
    }

    fn is_idle(&self) -> bool {
        self.engine.is_idle()
    }

    fn message_bytes(msg: &Vec<u8>) -> usize {
        msg.len()
    }
}

#[derive(Default)]
struct Acknowledged {
    total: i64,
    elements: Vec<String>,
}

fn run(seed: u64) {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().to_path_buf();
    let mut builder = SimulationBuilder::new();
    builder
        .nodes(NODES as usize)
        .seed(seed)
        .network_condition(NetworkCondition::Chaos)
        .sync_interval(Some(Duration::from_millis(5)));
    let mut cluster = builder
        .build(move |id: NodeId, durable: Option<PathBuf>| {
            let dir = durable.unwrap_or_else(|| root.join(id.to_string()));
            let engine = Engine::open(&dir, engine_config(id)).unwrap();
            EngineNode { engine, dir }
        })
        .unwrap();
    let acked = Rc::new(RefCell::new(Acknowledged::default()));
    let mut crashed: Option<usize> = None;
    for round in 0..80usize {
        let (target, amount) = {
            let rng = cluster.workload_rng();
            (
                rng.random_range(0..NODES as usize),
                rng.random_range(1..100i64),
            )
        };
        if round % 20 == 10 {
            if let Some(down) = crashed.take() {
                cluster.restart(down).unwrap();
            }
            cluster.crash(target).unwrap();
            crashed = Some(target);
        }
        if crashed != Some(target) {
            let acked = acked.clone();
            cluster
                .with_node(target, move |node, ctx| {
                    let element = format!("e{round}");
                    let mut tx = node.engine.transaction(TransactionMode::CoordinationFree);
                    tx.increment("counters", "total", amount)
                        .add_to_set("users", "all", "tags", &element);
                    let outcome = tx.commit().unwrap();
                    assert!(outcome.durable);
                    let mut acked = acked.borrow_mut();
                    acked.total += amount;
                    acked.elements.push(element);
                    node.send_outgoing(ctx);
                })
                .unwrap();
        }
        cluster.run_for(Duration::from_millis(3));
    }
    if let Some(down) = crashed {
        cluster.restart(down).unwrap();
    }
    cluster
        .run_until_quiescent(Duration::from_secs(60))
        .unwrap();
    cluster
        .verify_convergence_by(|n: &EngineNode| n.engine.manager().replica().canonical_state())
        .unwrap();
    let acked = acked.borrow();
    for (_, n) in cluster.running_nodes() {
        assert_eq!(
            n.engine.read("counters", "total", "value").unwrap(),
            AlgebraicValue::Integer(acked.total)
        );
        assert_eq!(
            n.engine.read("users", "all", "tags").unwrap(),
            AlgebraicValue::string_set(acked.elements.iter().cloned())
        );
    }
    assert!(cluster.stats().crashes >= 3);
}

#[test]
fn engines_over_the_simulated_network_converge_through_crashes_and_keep_every_ack() {
    for seed in 0..3 {
        run(seed);
    }
}
