//! Tests of the network and the verbs, with two toy nodes that live only here: a `Probe` that
//! records what reaches it, and a grow-only counter that gossips its whole state.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use rand::Rng;
use rhizo_clock::NodeId;

use crate::{
    GossipStrategy, LatencyModel, NetworkCondition, NodeCtx, RegionMatrix, SimError, SimTime,
    SimulatedCluster, SimulatedNode, SimulationBuilder,
};

const MS: Duration = Duration::from_millis(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Records every message it receives; sends only when a test tells it to.
#[derive(Default)]
struct Probe {
    received: Vec<(NodeId, u64, SimTime)>,
    timers: u64,
    /// When each wake-up it asked for came.
    wakes: Vec<SimTime>,
    starts: u64,
    /// What survives a crash: how many messages it had received.
    recovered_from: Option<usize>,
}

impl SimulatedNode for Probe {
    type Message = u64;
    type Durable = usize;
    type History = ();

    fn on_start(&mut self, _ctx: &mut NodeCtx<'_, u64>) {
        self.starts += 1;
    }

    fn on_message(&mut self, from: NodeId, msg: u64, ctx: &mut NodeCtx<'_, u64>) {
        self.received.push((from, msg, ctx.now()));
    }

    fn on_timer(&mut self, _ctx: &mut NodeCtx<'_, u64>) {
        self.timers += 1;
    }

    fn on_wake(&mut self, ctx: &mut NodeCtx<'_, u64>) {
        self.wakes.push(ctx.now());
    }

    fn durable(&self) -> usize {
        self.received.len()
    }

    fn message_bytes(_msg: &u64) -> usize {
        8
    }
}

fn probes(builder: &SimulationBuilder) -> SimulatedCluster<Probe> {
    builder
        .build(|_id, durable| Probe {
            recovered_from: durable,
            ..Probe::default()
        })
        .unwrap()
}

fn quiet(nodes: usize) -> SimulationBuilder {
    let mut b = SimulationBuilder::new();
    b.nodes(nodes).sync_interval(None);
    b
}

fn send(c: &mut SimulatedCluster<Probe>, from: usize, to: usize, msg: u64) {
    let to = NodeId::numbered(to as u32);
    c.with_node(from, |_, ctx| ctx.send(to, msg))
        .unwrap()
        .unwrap();
}

fn received(c: &SimulatedCluster<Probe>, node: usize) -> Vec<u64> {
    c.node(node).unwrap().received.iter().map(|r| r.1).collect()
}

/// Grow-only counter: one entry per node, merged by max; gossips its whole state for
/// `rounds` timer rounds after each change (`u32::MAX`: forever).
struct Counter {
    counts: BTreeMap<NodeId, u64>,
    rounds: u32,
    pending: u32,
}

impl Counter {
    fn value(&self) -> u64 {
        self.counts.values().sum()
    }
}

impl SimulatedNode for Counter {
    type Message = BTreeMap<NodeId, u64>;
    type Durable = u64;
    type History = ();

    fn on_message(
        &mut self,
        _from: NodeId,
        msg: Self::Message,
        _ctx: &mut NodeCtx<'_, Self::Message>,
    ) {
        for (node, count) in msg {
            let mine = self.counts.entry(node).or_insert(0);
            if count > *mine {
                *mine = count;
                self.pending = self.rounds;
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut NodeCtx<'_, Self::Message>) {
        if self.pending > 0 {
            if self.pending != u32::MAX {
                self.pending -= 1;
            }
            let state = &self.counts;
            ctx.gossip(|_| Some(state.clone()));
        }
    }

    fn durable(&self) -> u64 {
        self.counts.values().next().copied().unwrap_or(0)
    }

    fn is_idle(&self) -> bool {
        self.pending == 0
    }

    fn message_bytes(msg: &Self::Message) -> usize {
        1 + msg.len() * 17
    }
}

fn counters(builder: &SimulationBuilder, rounds: u32) -> SimulatedCluster<Counter> {
    builder
        .build(move |id, durable: Option<u64>| Counter {
            // Only a node's own entry is durable; the rest comes back by gossip.
            counts: durable
                .map(|c| BTreeMap::from([(id, c)]))
                .unwrap_or_default(),
            rounds,
            pending: 0,
        })
        .unwrap()
}

fn increment(c: &mut SimulatedCluster<Counter>, node: usize) {
    c.with_node(node, |n, ctx| {
        *n.counts.entry(ctx.id()).or_insert(0) += 1;
        n.pending = n.rounds;
    })
    .unwrap();
}

/// Stats conservation: every copy sent is delivered, dropped, or still in flight.
fn assert_conserved<N: SimulatedNode>(c: &SimulatedCluster<N>) {
    let s = c.stats();
    assert_eq!(
        s.messages_sent + s.duplicated,
        s.settled() + c.in_flight() as u64,
        "{s:?}"
    );
}

/// A mixed run: random increments, partitions, crashes and restarts, all from the seed.
fn chaos_run(builder: &SimulationBuilder, steps: usize) -> SimulatedCluster<Counter> {
    let mut c = counters(builder, 5);
    let n = c.node_count();
    for _ in 0..steps {
        let rng = c.workload_rng();
        let node = rng.random_range(0..n);
        let other = rng.random_range(0..n);
        let action = rng.random_range(0..100u32);
        match action {
            0..=69 => {
                if !c.is_crashed(node).unwrap() {
                    increment(&mut c, node);
                }
            }
            70..=79 => c.partition(node, other).unwrap(),
            80..=84 => c.partition_one_way(node, other).unwrap(),
            85..=89 => c.heal(),
            90..=94 => {
                let _ = c.crash(node);
            }
            _ => {
                let _ = c.restart(node);
            }
        }
        c.run_for(ms(3));
        assert_conserved(&c);
    }
    c
}

fn chaos_builder(seed: u64) -> SimulationBuilder {
    let mut b = SimulationBuilder::new();
    b.nodes(5)
        .seed(seed)
        .network_condition(NetworkCondition::Chaos)
        .gossip(GossipStrategy::PushPull { fanout: 2 });
    b
}

// ----- determinism ---------------------------------------------------------------------------

#[test]
fn same_seed_same_trace_and_different_seeds_differ() {
    let a = chaos_run(&chaos_builder(11), 300);
    let b = chaos_run(&chaos_builder(11), 300);
    assert_eq!(a.trace_hash(), b.trace_hash());
    assert_eq!(a.stats(), b.stats());
    assert_eq!(a.now(), b.now());
    let other = chaos_run(&chaos_builder(12), 300);
    assert_ne!(a.trace_hash(), other.trace_hash());
    assert!(a.stats().events_processed > 500, "{:?}", a.stats());
}

#[test]
fn verbs_are_part_of_the_trace() {
    let mut a = probes(&quiet(3));
    let mut b = probes(&quiet(3));
    assert_eq!(a.trace_hash(), b.trace_hash());
    a.partition(0, 1).unwrap();
    b.partition_one_way(0, 1).unwrap();
    assert_ne!(a.trace_hash(), b.trace_hash());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn prop_runs_are_reproducible_and_conserve_messages(seed in any::<u64>()) {
        let a = chaos_run(&chaos_builder(seed), 60);
        let b = chaos_run(&chaos_builder(seed), 60);
        prop_assert_eq!(a.trace_hash(), b.trace_hash());
        prop_assert_eq!(a.stats(), b.stats());
    }

    #[test]
    fn prop_counters_converge_once_faults_stop(seed in any::<u64>(), nodes in 2usize..7) {
        let mut b = chaos_builder(seed);
        b.nodes(nodes);
        let mut c = chaos_run(&b, 80);
        // Liveness phase: heal, restart everyone, make every node gossip forever.
        c.heal();
        for i in 0..nodes {
            if c.is_crashed(i).unwrap() {
                c.restart(i).unwrap();
            }
            c.node_mut(i).unwrap().rounds = u32::MAX;
            c.node_mut(i).unwrap().pending = u32::MAX;
        }
        c.run_for(Duration::from_secs(3));
        c.verify_convergence_by(|n| n.counts.clone()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        assert_conserved(&c);
    }

    #[test]
    fn prop_push_pull_peers_are_distinct_others(seed in any::<u64>(), nodes in 1usize..12, fanout in 1usize..14) {
        let mut c = quiet(nodes).seed(seed).gossip(GossipStrategy::PushPull { fanout }).build(|_, _: Option<usize>| Probe::default()).unwrap();
        for i in 0..nodes {
            let peers = c.with_node(i, |_, ctx| ctx.gossip_peers()).unwrap();
            prop_assert_eq!(peers.len(), fanout.min(nodes - 1));
            prop_assert!(!peers.contains(&NodeId::numbered(i as u32)));
            let mut sorted = peers.clone();
            sorted.sort();
            sorted.dedup();
            prop_assert_eq!(sorted.len(), peers.len());
        }
    }
}

// ----- network ---------------------------------------------------------------------------------

#[test]
fn time_never_goes_backwards() {
    let mut c = chaos_run(&chaos_builder(5), 20);
    let mut last = c.now();
    for _ in 0..2_000 {
        assert!(c.step());
        assert!(c.now() >= last);
        last = c.now();
    }
}

#[test]
fn perfect_links_are_fifo_and_reordering_reorders() {
    let mut b = quiet(2);
    b.network_condition(NetworkCondition::Perfect);
    let mut c = probes(&b);
    let to = NodeId::numbered(1);
    c.with_node(0, |_, ctx| (0..200).for_each(|i| ctx.send(to, i).unwrap()))
        .unwrap();
    c.run_until_quiescent(Duration::from_secs(1)).unwrap();
    assert_eq!(received(&c, 1), (0..200).collect::<Vec<_>>());
    assert_eq!(c.node(1).unwrap().received[0].2, SimTime::from_millis(1));

    b.network_condition(NetworkCondition::Reordered);
    let mut c = probes(&b);
    c.with_node(0, |_, ctx| (0..200).for_each(|i| ctx.send(to, i).unwrap()))
        .unwrap();
    c.run_until_quiescent(Duration::from_secs(1)).unwrap();
    let got = received(&c, 1);
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        (0..200).collect::<Vec<_>>(),
        "nothing lost or doubled"
    );
    assert_ne!(got, sorted, "some messages overtook others");
}

#[test]
fn loss_and_duplication_rates_hold_over_many_messages() {
    let mut b = quiet(2);
    b.loss_rate(0.2).duplication_rate(0.3).seed(9);
    let mut c = probes(&b);
    let to = NodeId::numbered(1);
    let sent = 20_000u64;
    c.with_node(0, |_, ctx| (0..sent).for_each(|i| ctx.send(to, i).unwrap()))
        .unwrap();
    c.run_until_quiescent(Duration::from_secs(1)).unwrap();
    let s = c.stats().clone();
    let lost = s.dropped_by_loss as f64 / sent as f64;
    let doubled = s.duplicated as f64 / (sent - s.dropped_by_loss) as f64;
    assert!((0.18..0.22).contains(&lost), "loss {lost}");
    assert!((0.28..0.32).contains(&doubled), "duplication {doubled}");
    assert_eq!(
        s.messages_delivered,
        sent - s.dropped_by_loss + s.duplicated
    );
    assert_eq!(s.per_node[1].received, s.messages_delivered);
    assert_eq!(s.bytes_delivered, 8 * s.messages_delivered);
    assert_eq!(received(&c, 1).len() as u64, s.messages_delivered);
    assert_conserved(&c);
}

#[test]
fn region_matrix_sets_one_way_latencies() {
    let mut b = quiet(6);
    b.latency(LatencyModel::Regions(RegionMatrix::sf_london_tokyo()));
    let mut c = probes(&b);
    // Round-robin placement: 0, 3 in San Francisco; 1, 4 in London; 2, 5 in Tokyo.
    assert_eq!(c.region_of(3).unwrap(), Some("san-francisco"));
    assert_eq!(c.region_of(4).unwrap(), Some("london"));
    assert_eq!(c.region_of(5).unwrap(), Some("tokyo"));
    send(&mut c, 0, 1, 1);
    send(&mut c, 0, 2, 2);
    send(&mut c, 1, 2, 3);
    send(&mut c, 2, 1, 4);
    send(&mut c, 0, 3, 5);
    c.run_until_quiescent(Duration::from_secs(1)).unwrap();
    let arrival = |node: usize, msg: u64| {
        c.node(node)
            .unwrap()
            .received
            .iter()
            .find(|r| r.1 == msg)
            .map(|r| r.2)
    };
    assert_eq!(arrival(1, 1), Some(SimTime::from_millis(70)));
    assert_eq!(arrival(2, 2), Some(SimTime::from_millis(55)));
    assert_eq!(arrival(2, 3), Some(SimTime::from_millis(115)));
    assert_eq!(arrival(1, 4), Some(SimTime::from_millis(115)));
    assert_eq!(arrival(3, 5), Some(SimTime::from_millis(1)));
    assert_eq!(probes(&quiet(2)).region_of(1).unwrap(), None);
}

#[test]
fn jitter_and_uniform_latency_stay_in_bounds() {
    let mut b = quiet(2);
    b.latency(LatencyModel::Uniform {
        min: ms(2),
        max: ms(4),
    })
    .jitter(ms(1));
    let mut c = probes(&b);
    let to = NodeId::numbered(1);
    c.with_node(0, |_, ctx| (0..1000).for_each(|i| ctx.send(to, i).unwrap()))
        .unwrap();
    c.run_until_quiescent(Duration::from_secs(1)).unwrap();
    let times: Vec<u64> = c
        .node(1)
        .unwrap()
        .received
        .iter()
        .map(|r| r.2.as_micros())
        .collect();
    assert_eq!(times.len(), 1000);
    assert!(times.iter().all(|t| (2_000..=5_000).contains(t)));
    assert!(times.iter().any(|t| *t < 2_500) && times.iter().any(|t| *t > 4_500));
}

// ----- partitions ------------------------------------------------------------------------------

#[test]
fn partition_blocks_both_ways_until_healed() {
    let mut c = probes(&quiet(3));
    c.partition(0, 1).unwrap();
    send(&mut c, 0, 1, 1);
    send(&mut c, 1, 0, 2);
    send(&mut c, 0, 2, 3);
    c.run_until_quiescent(ms(100)).unwrap();
    assert!(received(&c, 1).is_empty() && received(&c, 0).is_empty());
    assert_eq!(received(&c, 2), [3]);
    assert_eq!(c.stats().dropped_by_partition, 2);
    c.heal();
    send(&mut c, 0, 1, 4);
    send(&mut c, 1, 0, 5);
    c.run_until_quiescent(ms(100)).unwrap();
    assert_eq!((received(&c, 1), received(&c, 0)), (vec![4], vec![5]));
}

#[test]
fn one_way_partition_blocks_one_direction() {
    let mut c = probes(&quiet(2));
    c.partition_one_way(0, 1).unwrap();
    assert!(c.is_link_blocked(0, 1).unwrap());
    assert!(!c.is_link_blocked(1, 0).unwrap());
    send(&mut c, 0, 1, 1);
    send(&mut c, 1, 0, 2);
    c.run_until_quiescent(ms(100)).unwrap();
    assert!(received(&c, 1).is_empty());
    assert_eq!(received(&c, 0), [2]);
    c.heal_link(1, 0).unwrap();
    assert!(!c.is_link_blocked(0, 1).unwrap());
}

#[test]
fn isolate_cuts_every_link_of_a_node_and_partitions_catch_in_flight_messages() {
    let mut b = quiet(4);
    b.latency(LatencyModel::Constant(ms(10)));
    let mut c = probes(&b);
    send(&mut c, 0, 2, 1); // due at 10 ms
    send(&mut c, 1, 3, 2);
    c.run_for(ms(5));
    c.isolate(2).unwrap();
    c.run_until_quiescent(ms(100)).unwrap();
    assert!(
        received(&c, 2).is_empty(),
        "in flight when cut: dropped on arrival"
    );
    assert_eq!(received(&c, 3), [2]);
    for other in [0, 1, 3] {
        assert!(c.is_link_blocked(2, other).unwrap() && c.is_link_blocked(other, 2).unwrap());
    }
    assert!(
        !c.is_link_blocked(2, 2).unwrap(),
        "a node always reaches itself"
    );
    send(&mut c, 2, 2, 3);
    c.run_until_quiescent(ms(100)).unwrap();
    assert_eq!(received(&c, 2), [3]);
}

#[test]
fn partitioned_preset_splits_halves() {
    let mut b = quiet(5);
    b.network_condition(NetworkCondition::Partitioned);
    let c = probes(&b);
    assert!(c.is_link_blocked(0, 2).unwrap() && c.is_link_blocked(4, 1).unwrap());
    assert!(!c.is_link_blocked(0, 1).unwrap() && !c.is_link_blocked(2, 4).unwrap());
}

// ----- crashes ---------------------------------------------------------------------------------

#[test]
fn crash_drops_incoming_and_restart_recovers_durable_state() {
    let mut b = quiet(2);
    b.latency(LatencyModel::Constant(ms(10)));
    let mut c = probes(&b);
    send(&mut c, 0, 1, 1);
    c.run_until_quiescent(ms(100)).unwrap();
    send(&mut c, 0, 1, 2); // sent at 10 ms, due at 20 ms: in flight when 1 crashes at 15 ms
    c.run_for(ms(5));
    c.crash(1).unwrap();
    assert_eq!(c.durable_state(1).unwrap(), Some(&1));
    assert_eq!(
        c.crash(1),
        Err(SimError::NodeCrashed {
            node: NodeId::numbered(1)
        })
    );
    assert!(matches!(c.node(1), Err(SimError::NodeCrashed { .. })));
    assert!(matches!(
        c.with_node(1, |_, _| ()),
        Err(SimError::NodeCrashed { .. })
    ));
    send(&mut c, 0, 1, 3); // sent while crashed at 15 ms, due at 25 ms while still crashed
    c.run_for(ms(12)); // messages 2 and 3 arrive at the crashed node: dropped
    send(&mut c, 0, 1, 4); // sent while crashed at 27 ms, due at 37 ms, after the restart
    c.run_for(ms(3));
    c.restart(1).unwrap();
    c.run_until_quiescent(ms(100)).unwrap();
    let node = c.node(1).unwrap();
    assert_eq!(node.recovered_from, Some(1));
    assert_eq!(
        node.received,
        [(NodeId::numbered(0), 4, SimTime::from_millis(37))]
    );
    assert_eq!(node.starts, 1);
    assert_eq!(c.stats().dropped_at_crashed_node, 2);
    assert_eq!((c.stats().crashes, c.stats().restarts), (1, 1));
    assert_eq!(c.durable_state(1).unwrap(), None);
    assert_eq!(
        c.restart(0),
        Err(SimError::NodeNotCrashed {
            node: NodeId::numbered(0)
        })
    );
    send(&mut c, 0, 1, 5);
    c.run_until_quiescent(ms(100)).unwrap();
    assert_eq!(received(&c, 1), [4, 5]);
}

#[test]
fn copies_addressed_to_an_earlier_life_are_dropped() {
    let mut b = quiet(2);
    b.latency(LatencyModel::Constant(ms(10)));
    let mut c = probes(&b);
    send(&mut c, 0, 1, 1);
    c.crash(1).unwrap();
    c.restart(1).unwrap(); // back before the copy is due, but the copy was for the old life
    send(&mut c, 0, 1, 2); // sent to the new life
    c.run_until_quiescent(ms(100)).unwrap();
    assert_eq!(received(&c, 1), [2]);
    assert_eq!(c.stats().dropped_at_crashed_node, 1);
}

#[test]
fn messages_sent_before_a_crash_still_arrive() {
    let mut c = probes(&quiet(2));
    send(&mut c, 0, 1, 1);
    c.crash(0).unwrap();
    c.run_until_quiescent(ms(100)).unwrap();
    assert_eq!(received(&c, 1), [1]);
}

#[test]
fn timers_fire_every_interval_and_stop_while_crashed() {
    let mut b = SimulationBuilder::new();
    b.nodes(3).sync_interval(Some(ms(10)));
    let mut c = probes(&b);
    c.run_for(Duration::from_secs(1));
    for i in 0..3 {
        let t = c.node(i).unwrap().timers;
        assert!((100..=101).contains(&t), "node {i}: {t} timers");
        assert_eq!(c.node(i).unwrap().starts, 1);
    }
    c.crash(2).unwrap();
    c.run_for(Duration::from_secs(1));
    c.restart(2).unwrap();
    c.run_for(ms(100));
    let t = c.node(2).unwrap().timers;
    assert!(
        (10..=11).contains(&t),
        "a restarted node's timers start afresh: {t}"
    );
    // Every event was a timer; one was the stale timer of node 2's first life, which ended its chain.
    assert_eq!(c.stats().timer_fires + 1, c.stats().events_processed);
}

#[test]
fn wake_ups_come_once_each_when_due_and_not_to_a_later_life() {
    let mut c = probes(&quiet(2));
    c.with_node(0, |_, ctx| {
        ctx.wake_after(ms(5));
        ctx.wake_after(ms(2));
        ctx.wake_after(Duration::ZERO);
    })
    .unwrap();
    c.run_for(ms(10));
    assert_eq!(
        c.node(0).unwrap().wakes,
        [
            SimTime::from_micros(1),
            SimTime::from_millis(2),
            SimTime::from_millis(5)
        ]
    );
    // Asked for by node 1's first life, due in its second: not delivered.
    c.with_node(1, |_, ctx| ctx.wake_after(ms(5))).unwrap();
    c.crash(1).unwrap();
    c.restart(1).unwrap();
    c.with_node(1, |_, ctx| ctx.wake_after(ms(7))).unwrap();
    c.run_for(ms(10));
    assert_eq!(c.node(1).unwrap().wakes, [SimTime::from_millis(17)]);
    assert_eq!(c.node(0).unwrap().wakes.len(), 3);
}

// ----- running and quiescence --------------------------------------------------------------------

#[test]
fn counters_converge_and_become_quiescent() {
    let mut b = SimulationBuilder::new();
    b.nodes(7)
        .seed(3)
        .network_condition(NetworkCondition::Reordered);
    let mut c = counters(&b, 3);
    for i in 0..7 {
        for _ in 0..=i {
            increment(&mut c, i);
        }
    }
    assert!(!c.is_quiescent());
    let at = c.run_until_quiescent(Duration::from_secs(5)).unwrap();
    assert!(at > SimTime::ZERO && c.is_quiescent());
    c.verify_convergence_by(|n| n.value()).unwrap();
    assert_eq!(c.node(4).unwrap().value(), 28);
    // Quiescent means nothing further happens except idle timers.
    let delivered = c.stats().messages_delivered;
    c.run_for(Duration::from_secs(1));
    assert_eq!(c.stats().messages_delivered, delivered);
}

#[test]
fn never_idle_nodes_are_not_quiescent() {
    let mut c = counters(&SimulationBuilder::new(), u32::MAX);
    increment(&mut c, 0);
    assert_eq!(
        c.run_until_quiescent(ms(50)),
        Err(SimError::NotQuiescent {
            at: SimTime::from_millis(50),
            in_flight: c.in_flight(),
            busy_nodes: 3
        })
    );
    let mut c = probes(&quiet(2));
    c.node_mut(0).unwrap(); // quiet probes are always idle
    assert_eq!(c.run_until_quiescent(ms(50)), Ok(SimTime::ZERO));
}

#[test]
fn run_until_stops_when_the_condition_holds() {
    let mut c = counters(&SimulationBuilder::new(), 3);
    increment(&mut c, 1);
    let at = c
        .run_until(Duration::from_secs(1), |c| {
            c.running_nodes().all(|(_, n)| n.value() == 1)
        })
        .unwrap();
    assert!(at <= SimTime::from_millis(12), "{at}");
    assert_eq!(
        c.run_until(ms(30), |c| c.node(0).unwrap().value() == 2),
        Err(SimError::DeadlineReached {
            at: at.saturating_add(ms(30))
        })
    );
}

/// A cluster of counters with work in flight, for comparing runs cut into budgets with
/// uninterrupted ones.
fn busy_counters(seed: u64) -> SimulatedCluster<Counter> {
    let mut b = SimulationBuilder::new();
    b.nodes(5)
        .seed(seed)
        .network_condition(NetworkCondition::Chaos);
    let mut c = counters(&b, 4);
    for i in 0..5 {
        increment(&mut c, i);
    }
    c
}

#[test]
fn runs_cut_into_event_budgets_are_the_uninterrupted_runs() {
    let mut whole = busy_counters(9);
    let mut cut = busy_counters(9);
    whole.run_for(ms(200));
    let until = SimTime::from_millis(200);
    let mut calls = 0;
    while !cut.run_to(until, 3) {
        calls += 1;
        assert!(cut.now() <= until);
    }
    assert!(
        calls > 10,
        "the budget must have cut the run: {calls} calls"
    );
    assert_eq!(cut.now(), whole.now());
    assert_eq!(cut.trace_hash(), whole.trace_hash());
    assert_eq!(cut.stats(), whole.stats());
    // A zero budget processes nothing; an instant in the past leaves the clock where it is.
    let events = cut.stats().events_processed;
    assert!(!cut.run_to(SimTime::from_millis(400), 0));
    assert_eq!(cut.stats().events_processed, events);
    assert!(cut.run_to(SimTime::from_millis(100), 0));
    assert_eq!(cut.now(), until);

    let mut whole = busy_counters(10);
    let mut cut = busy_counters(10);
    let everyone_has_5 =
        |c: &SimulatedCluster<Counter>| c.running_nodes().all(|(_, n)| n.value() == 5);
    let at = whole
        .run_until(Duration::from_secs(5), everyone_has_5)
        .unwrap();
    let until = SimTime::from_millis(5_000);
    let cut_at = loop {
        if let Some(result) = cut.run_until_within(until, 2, everyone_has_5) {
            break result.unwrap();
        }
    };
    assert_eq!((cut_at, cut.trace_hash()), (at, whole.trace_hash()));
    assert_eq!(
        cut.run_until_within(cut.now().saturating_add(ms(30)), 1_000, |_| false),
        Some(Err(SimError::DeadlineReached {
            at: at.saturating_add(ms(30))
        }))
    );

    let mut whole = busy_counters(11);
    let mut cut = busy_counters(11);
    let at = whole.run_until_quiescent(Duration::from_secs(5)).unwrap();
    let cut_at = loop {
        if let Some(result) = cut.run_until_quiescent_within(until, 2) {
            break result.unwrap();
        }
    };
    assert_eq!((cut_at, cut.trace_hash()), (at, whole.trace_hash()));
}

#[test]
fn a_cluster_of_send_nodes_can_move_to_another_thread() {
    let mut c = busy_counters(12);
    let value = std::thread::spawn(move || {
        c.run_until_quiescent(Duration::from_secs(5)).unwrap();
        c.node(0).unwrap().value()
    })
    .join()
    .unwrap();
    assert_eq!(value, 5);
}

#[test]
fn divergence_is_reported_with_both_nodes() {
    let mut c = counters(&quiet(3), 3);
    increment(&mut c, 2);
    let err = c.verify_convergence_by(|n| n.value()).unwrap_err();
    assert_eq!(
        err,
        SimError::Diverged {
            left: NodeId::numbered(0),
            right: NodeId::numbered(2),
            detail: "0 != 1".into()
        }
    );
    c.crash(2).unwrap();
    c.verify_convergence_by(|n| n.value()).unwrap();
}

#[test]
fn full_broadcast_gossip_reaches_everyone_each_round() {
    let mut b = SimulationBuilder::new();
    b.nodes(6);
    let mut c = counters(&b, 1);
    increment(&mut c, 0);
    c.run_until_quiescent(Duration::from_secs(1)).unwrap();
    // Node 0 told its 5 peers once; each then told the 5 others once.
    assert_eq!(c.stats().messages_sent, 6 * 5);
    assert_eq!(c.stats().per_node[0].sent, 5);
}

// ----- addressing and validation ---------------------------------------------------------------

#[test]
fn nodes_are_addressed_by_index_or_id() {
    let mut c = probes(&quiet(12));
    let id = NodeId::numbered(10);
    c.crash(id).unwrap();
    assert!(c.is_crashed(10).unwrap());
    assert_eq!(c.node_ids()[10], id);
    assert_eq!(
        c.crash(12),
        Err(SimError::UnknownNode { node: "#12".into() })
    );
    let stranger = NodeId::new("stranger").unwrap();
    assert_eq!(
        c.partition(0, stranger),
        Err(SimError::UnknownNode {
            node: "stranger".into()
        })
    );
    let sent = c.with_node(0, |_, ctx| ctx.send(stranger, 1)).unwrap();
    assert_eq!(
        sent,
        Err(SimError::UnknownNode {
            node: "stranger".into()
        })
    );
    assert_eq!(c.stats().messages_sent, 0);
}

#[test]
fn builder_rejects_bad_settings() {
    let build = |f: &dyn Fn(&mut SimulationBuilder)| {
        let mut b = SimulationBuilder::new();
        f(&mut b);
        b.build(|_, _: Option<usize>| Probe::default()).map(|_| ())
    };
    assert_eq!(
        build(&|b| {
            b.nodes(0);
        }),
        Err(SimError::NoNodes)
    );
    assert!(matches!(
        build(&|b| {
            b.nodes(5000);
        }),
        Err(SimError::TooManyNodes {
            requested: 5000,
            ..
        })
    ));
    assert!(matches!(
        build(&|b| {
            b.loss_rate(1.5);
        }),
        Err(SimError::InvalidRate {
            setting: "loss rate",
            ..
        })
    ));
    assert!(matches!(
        build(&|b| {
            b.duplication_rate(-0.1);
        }),
        Err(SimError::InvalidRate {
            setting: "duplication rate",
            ..
        })
    ));
    assert!(matches!(
        build(&|b| {
            b.reordering(f64::NAN, MS);
        }),
        Err(SimError::InvalidRate { .. })
    ));
    assert!(matches!(
        build(&|b| {
            b.latency(LatencyModel::Uniform {
                min: ms(3),
                max: ms(2),
            });
        }),
        Err(SimError::InvalidLatency { .. })
    ));
    assert_eq!(
        build(&|b| {
            b.gossip(GossipStrategy::PushPull { fanout: 0 });
        }),
        Err(SimError::ZeroFanout)
    );
    assert_eq!(
        build(&|b| {
            b.batch_size(0);
        }),
        Err(SimError::ZeroBatchSize)
    );
    assert_eq!(
        build(&|b| {
            b.sync_interval(Some(Duration::ZERO));
        }),
        Err(SimError::ZeroSyncInterval)
    );
    assert_eq!(
        build(&|b| {
            b.nodes(1).batch_size(7);
        }),
        Ok(())
    );
}

#[test]
fn context_reports_identity_and_settings() {
    let mut b = quiet(4);
    b.batch_size(17).seed(1);
    let mut c = probes(&b);
    c.run_for(ms(3));
    let (id, index, now, batch, peers) = c
        .with_node(2, |_, ctx| {
            (
                ctx.id(),
                ctx.index(),
                ctx.now(),
                ctx.batch_size(),
                ctx.peers().collect::<Vec<_>>(),
            )
        })
        .unwrap();
    assert_eq!(
        (id, index, now, batch),
        (NodeId::numbered(2), 2, SimTime::from_millis(3), 17)
    );
    assert_eq!(peers, [0, 1, 3].map(NodeId::numbered));
    assert_eq!(c.seed(), 1);
}

/// A flood at benchmark scale (20 nodes × 1000 commits, every commit broadcast once): checks
/// the accounting at size; its wall time is measured by the criterion bench, not here.
#[test]
fn broadcast_at_benchmark_scale_is_accounted_exactly() {
    let mut b = SimulationBuilder::new();
    b.nodes(20).latency(LatencyModel::Lan).sync_interval(None);
    let mut c = probes(&b);
    for round in 0..1000u64 {
        for node in 0..20 {
            c.with_node(node, |_, ctx| ctx.broadcast(round)).unwrap();
        }
        c.run_for(ms(1));
    }
    c.run_until_quiescent(Duration::from_secs(1)).unwrap();
    assert_eq!(c.stats().messages_delivered, 20 * 1000 * 19);
    assert!(c.stats().peak_in_flight <= 20 * 19);
    assert_eq!(received(&c, 7).len(), 1000 * 19);
}
