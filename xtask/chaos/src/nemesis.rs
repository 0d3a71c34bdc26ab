//! The nemesis: a schedule of faults drawn from a seed. The schedule — which fault, on which
//! node or links, at which offset from the start, for how long — is a pure function of the
//! seed, the run's length and the number of nodes; only the wall-clock moments at which the
//! runner carries it out vary from run to run.
//!
//! Faults come in episodes, one at a time, each undone by its own last step (a killed node is
//! restarted, a paused one resumed, links healed) before the next begins, with a quiet gap
//! between. At most one node is down (killed or paused) at any moment, so a majority can always
//! make progress; partitions may cut any links.

use std::fmt;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::proxy::{Cut, LinkMode};

/// A directed peer link: the connections `from` dials to `to`, carrying what `from` sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Link {
    /// The dialling node's index.
    pub from: usize,
    /// The listening node's index.
    pub to: usize,
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}->{}", node_name(self.from), node_name(self.to))
    }
}

/// The node id of the node at `index` (`n1`, `n2`, …).
pub fn node_name(index: usize) -> String {
    format!("n{}", index + 1)
}

/// One thing the nemesis does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// SIGKILL the node's process.
    Kill(usize),
    /// Start the node again on its data directory.
    Restart(usize),
    /// SIGSTOP the node's process.
    Pause(usize),
    /// SIGCONT the node's process.
    Resume(usize),
    /// Put links in a mode: partitioned, blackholed, delayed, or healed.
    SetLinks {
        /// The links.
        links: Vec<Link>,
        /// Their new mode.
        mode: LinkMode,
    },
    /// End the links' current connections (they may reconnect at once).
    CutLinks {
        /// The links.
        links: Vec<Link>,
        /// Close or reset.
        how: Cut,
    },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |links: &[Link]| {
            links
                .iter()
                .map(Link::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        };
        match self {
            Action::Kill(node) => write!(f, "kill -KILL {}", node_name(*node)),
            Action::Restart(node) => write!(f, "restart {}", node_name(*node)),
            Action::Pause(node) => write!(f, "kill -STOP {}", node_name(*node)),
            Action::Resume(node) => write!(f, "kill -CONT {}", node_name(*node)),
            Action::SetLinks { links, mode } => {
                let what = match mode {
                    LinkMode::Open { delay } if delay.is_zero() => "heal".to_owned(),
                    LinkMode::Open { delay } => format!("delay {} ms", delay.as_millis()),
                    LinkMode::Blackhole => "blackhole".to_owned(),
                    LinkMode::Partitioned => "partition".to_owned(),
                };
                write!(f, "{what} {}", list(links))
            }
            Action::CutLinks { links, how } => {
                let what = match how {
                    Cut::Close => "close",
                    Cut::Reset => "reset",
                };
                write!(f, "{what} connections {}", list(links))
            }
        }
    }
}

/// An action and its offset from the start of the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// When, from the start of the workload.
    pub at: Duration,
    /// What.
    pub action: Action,
}

/// The whole schedule of a run, in time order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// The steps, sorted by `at`.
    pub steps: Vec<Step>,
}

/// Faults begin only once the cluster has served a while unharmed.
const WARMUP: Duration = Duration::from_secs(3);
/// Every fault is undone this long before the end, so the final heal finds a running cluster.
const COOLDOWN: Duration = Duration::from_secs(2);

/// The kinds of episode, and how often each is drawn (out of the weights' sum).
const EPISODES: [(Episode, u32); 9] = [
    (Episode::KillRestart, 3),
    (Episode::Pause, 2),
    (Episode::Isolate, 2),
    (Episode::OneWay, 2),
    (Episode::Split, 1),
    (Episode::Blackhole, 2),
    (Episode::Delay, 2),
    (Episode::Cut, 2),
    (Episode::KillWhileIsolated, 1),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Episode {
    /// SIGKILL a node, restart it later.
    KillRestart,
    /// SIGSTOP a node, SIGCONT it later.
    Pause,
    /// Partition a node from every other, both ways.
    Isolate,
    /// Partition one direction only: a node's outgoing links, or one link.
    OneWay,
    /// Partition the nodes into two sides.
    Split,
    /// Blackhole a node's links (in, out or both).
    Blackhole,
    /// Delay a node's links or every link.
    Delay,
    /// Close or reset connections of some links, once.
    Cut,
    /// Isolate a node, kill it, restart it while still isolated, then heal.
    KillWhileIsolated,
}

impl Schedule {
    /// The schedule of a run of `duration` over `nodes` nodes, drawn from `seed`.
    pub fn generate(seed: u64, duration: Duration, nodes: usize) -> Schedule {
        let mut draw = Draw {
            rng: ChaCha8Rng::seed_from_u64(seed),
            nodes,
            steps: Vec::new(),
        };
        let end = duration.saturating_sub(COOLDOWN);
        let mut now = WARMUP;
        while now < end {
            let episode = draw.episode();
            let length = draw.millis(500, 6_000).min(end - now);
            draw.episode_steps(episode, now, length);
            now += length + draw.millis(500, 3_000);
        }
        let mut steps = draw.steps;
        // Stable: steps at one offset keep the order their episode gave them.
        steps.sort_by_key(|step| step.at);
        Schedule { steps }
    }
}

struct Draw {
    rng: ChaCha8Rng,
    nodes: usize,
    steps: Vec<Step>,
}

impl Draw {
    fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(self.rng.random_range(low..=high))
    }

    fn node(&mut self) -> usize {
        self.rng.random_range(0..self.nodes)
    }

    fn episode(&mut self) -> Episode {
        let total: u32 = EPISODES.iter().map(|(_, weight)| weight).sum();
        let mut pick = self.rng.random_range(0..total);
        for (episode, weight) in EPISODES {
            if pick < weight {
                return episode;
            }
            pick -= weight;
        }
        unreachable!("the pick is below the weights' sum")
    }

    fn at(&mut self, at: Duration, action: Action) {
        self.steps.push(Step { at, action });
    }

    fn set(&mut self, at: Duration, links: Vec<Link>, mode: LinkMode) {
        self.at(at, Action::SetLinks { links, mode });
    }

    /// Every link out of `node`.
    fn outgoing(&self, node: usize) -> Vec<Link> {
        (0..self.nodes)
            .filter(|&to| to != node)
            .map(|to| Link { from: node, to })
            .collect()
    }

    /// Every link into `node`.
    fn incoming(&self, node: usize) -> Vec<Link> {
        (0..self.nodes)
            .filter(|&from| from != node)
            .map(|from| Link { from, to: node })
            .collect()
    }

    fn both_ways(&self, node: usize) -> Vec<Link> {
        let mut links = self.outgoing(node);
        links.extend(self.incoming(node));
        links
    }

    fn all_links(&self) -> Vec<Link> {
        (0..self.nodes)
            .flat_map(|node| self.outgoing(node))
            .collect()
    }

    /// A non-empty random subset of the links.
    fn some_links(&mut self) -> Vec<Link> {
        let all = self.all_links();
        let mut links: Vec<Link> = all
            .iter()
            .copied()
            .filter(|_| self.rng.random_bool(0.3))
            .collect();
        if links.is_empty() {
            let pick = self.rng.random_range(0..all.len());
            links.push(all[pick]);
        }
        links
    }

    fn episode_steps(&mut self, episode: Episode, start: Duration, length: Duration) {
        let end = start + length;
        match episode {
            Episode::KillRestart => {
                let node = self.node();
                self.at(start, Action::Kill(node));
                self.at(end, Action::Restart(node));
            }
            Episode::Pause => {
                let node = self.node();
                self.at(start, Action::Pause(node));
                self.at(end, Action::Resume(node));
            }
            Episode::Isolate => {
                let node = self.node();
                let links = self.both_ways(node);
                self.cut_for(start, end, links, LinkMode::Partitioned);
            }
            Episode::OneWay => {
                let node = self.node();
                let links = if self.rng.random_bool(0.5) {
                    self.outgoing(node)
                } else {
                    let to = (node + self.rng.random_range(1..self.nodes)) % self.nodes;
                    vec![Link { from: node, to }]
                };
                self.cut_for(start, end, links, LinkMode::Partitioned);
            }
            Episode::Split => {
                // A minority side of one to half the nodes; the rest is the other side.
                let size = self.rng.random_range(1..=self.nodes / 2);
                let mut side = vec![false; self.nodes];
                while side.iter().filter(|&&s| s).count() < size {
                    let node = self.node();
                    side[node] = true;
                }
                let links = self
                    .all_links()
                    .into_iter()
                    .filter(|link| side[link.from] != side[link.to])
                    .collect();
                self.cut_for(start, end, links, LinkMode::Partitioned);
            }
            Episode::Blackhole => {
                let node = self.node();
                let links = match self.rng.random_range(0..3) {
                    0 => self.incoming(node),
                    1 => self.outgoing(node),
                    _ => self.both_ways(node),
                };
                self.cut_for(start, end, links, LinkMode::Blackhole);
            }
            Episode::Delay => {
                let links = if self.rng.random_bool(0.5) {
                    self.all_links()
                } else {
                    let node = self.node();
                    self.both_ways(node)
                };
                let delay = self.millis(5, 300);
                self.cut_for(start, end, links, LinkMode::Open { delay });
            }
            Episode::Cut => {
                let links = self.some_links();
                let how = if self.rng.random_bool(0.5) {
                    Cut::Close
                } else {
                    Cut::Reset
                };
                self.at(start, Action::CutLinks { links, how });
            }
            Episode::KillWhileIsolated => {
                let node = self.node();
                let links = self.both_ways(node);
                let third = length / 3;
                self.set(start, links.clone(), LinkMode::Partitioned);
                self.at(start + third, Action::Kill(node));
                self.at(start + 2 * third, Action::Restart(node));
                self.set(end, links, LinkMode::HEALED);
            }
        }
    }

    /// `links` in `mode` from `start`, healed at `end`.
    fn cut_for(&mut self, start: Duration, end: Duration, links: Vec<Link>, mode: LinkMode) {
        self.set(start, links.clone(), mode);
        self.set(end, links, LinkMode::HEALED);
    }
}

#[cfg(test)]
mod tests;
