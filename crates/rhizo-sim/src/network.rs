//! The network model: latency, faults and gossip settings, and their compiled fast form.

use std::str::FromStr;
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::RngCore;

use crate::time::micros;
use crate::{Result, SimError};

/// How long a message takes from sender to receiver (before jitter and reordering delay).
#[derive(Clone, Debug, PartialEq)]
pub enum LatencyModel {
    /// Every message takes exactly this long.
    Constant(Duration),
    /// Each message draws a latency uniformly from `min..=max`.
    Uniform {
        /// Shortest latency.
        min: Duration,
        /// Longest latency.
        max: Duration,
    },
    /// A data-centre LAN: uniform 100–500 µs.
    Lan,
    /// Nodes live in regions (assigned round-robin: node `i` is in region `i % regions`) and a
    /// message takes the one-way latency between its endpoints' regions.
    Regions(RegionMatrix),
}

/// One-way latencies between named regions.
#[derive(Clone, Debug, PartialEq)]
pub struct RegionMatrix {
    names: Vec<String>,
    /// Row-major `names.len()²` one-way latencies, `one_way[from * k + to]`.
    one_way: Vec<Duration>,
}

impl RegionMatrix {
    /// A matrix from region names and a square table of one-way latencies (`one_way[from][to]`,
    /// the diagonal being the latency inside a region).
    pub fn new(names: Vec<String>, one_way: Vec<Vec<Duration>>) -> Result<Self> {
        if names.is_empty() {
            return Err(SimError::InvalidRegionMatrix {
                reason: "it names no regions",
            });
        }
        if one_way.len() != names.len() || one_way.iter().any(|row| row.len() != names.len()) {
            return Err(SimError::InvalidRegionMatrix {
                reason: "the latency table must be square with one row and column per region",
            });
        }
        Ok(Self {
            names,
            one_way: one_way.into_iter().flatten().collect(),
        })
    }

    /// San Francisco, London and Tokyo, with one-way latencies of half the typical public
    /// internet round trip: SF–London 70 ms (RTT ≈ 140 ms), SF–Tokyo 55 ms (RTT ≈ 110 ms),
    /// London–Tokyo 115 ms (RTT ≈ 230 ms), and 1 ms inside a region.
    pub fn sf_london_tokyo() -> Self {
        let ms = Duration::from_millis;
        Self {
            names: vec!["san-francisco".into(), "london".into(), "tokyo".into()],
            #[rustfmt::skip]
            one_way: vec![
                ms(1),   ms(70),  ms(55),
                ms(70),  ms(1),   ms(115),
                ms(55),  ms(115), ms(1),
            ],
        }
    }

    /// How many regions there are.
    pub fn region_count(&self) -> usize {
        self.names.len()
    }

    /// The name of region `region`, if it exists.
    pub fn name(&self, region: usize) -> Option<&str> {
        self.names.get(region).map(String::as_str)
    }

    /// The one-way latency from region `from` to region `to`, if both exist.
    pub fn one_way(&self, from: usize, to: usize) -> Option<Duration> {
        let k = self.names.len();
        (from < k && to < k).then(|| self.one_way[from * k + to])
    }
}

/// How a node picks whom to gossip with on its timer (offered through
/// [`NodeCtx::gossip_peers`](crate::NodeCtx::gossip_peers)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GossipStrategy {
    /// Every other node, every round.
    FullBroadcast,
    /// `fanout` distinct other nodes chosen at random (seeded) each round; a fanout at least the
    /// number of peers means all peers.
    PushPull {
        /// Peers per round; at least 1.
        fanout: usize,
    },
}

/// Named network presets. [`SimulationBuilder::network_condition`](crate::SimulationBuilder::network_condition)
/// first resets latency, jitter, loss, duplication, reordering and the initial partition to
/// their defaults, then applies the preset's values below.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkCondition {
    /// 1 ms constant latency, no faults: every link is FIFO.
    Perfect,
    /// Uniform 1–10 ms latency, and half of the messages wait up to 50 ms more.
    Reordered,
    /// Wide-area latency: the San Francisco / London / Tokyo matrix plus up to 5 ms jitter.
    Delayed,
    /// LAN latency, and the first half of the nodes cut off from the second half (both ways)
    /// from the start until `heal`.
    Partitioned,
    /// LAN latency and 10 % of messages lost.
    Lossy,
    /// LAN latency and 20 % of messages delivered twice.
    Duplicating,
    /// Everything at once: uniform 1–20 ms, 30 % reordered by up to 50 ms, 10 % loss, 10 %
    /// duplication.
    Chaos,
}

impl NetworkCondition {
    /// Every preset, in declaration order.
    pub const ALL: [NetworkCondition; 7] = [
        NetworkCondition::Perfect,
        NetworkCondition::Reordered,
        NetworkCondition::Delayed,
        NetworkCondition::Partitioned,
        NetworkCondition::Lossy,
        NetworkCondition::Duplicating,
        NetworkCondition::Chaos,
    ];

    /// The preset's name: `"perfect"`, `"reordered"`, `"delayed"`, `"partitioned"`, `"lossy"`,
    /// `"duplicating"` or `"chaos"`.
    pub fn name(self) -> &'static str {
        match self {
            NetworkCondition::Perfect => "perfect",
            NetworkCondition::Reordered => "reordered",
            NetworkCondition::Delayed => "delayed",
            NetworkCondition::Partitioned => "partitioned",
            NetworkCondition::Lossy => "lossy",
            NetworkCondition::Duplicating => "duplicating",
            NetworkCondition::Chaos => "chaos",
        }
    }
}

impl FromStr for NetworkCondition {
    type Err = SimError;

    /// Parses a preset's [`name`](NetworkCondition::name).
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| SimError::UnknownCondition { name: s.to_owned() })
    }
}

/// A probability compiled to an integer threshold on 53 random bits: one `next_u64` and one
/// comparison per draw, and no draw at all when the probability is zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Chance(u64);

impl Chance {
    const BITS: u32 = 53;
    pub(crate) const NEVER: Chance = Chance(0);

    pub(crate) fn new(setting: &'static str, p: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&p) {
            return Err(SimError::InvalidRate { setting, value: p });
        }
        // p = 1.0 gives 2^53, above every 53-bit draw: always.
        Ok(Self((p * (1u64 << Self::BITS) as f64) as u64))
    }

    #[inline]
    pub(crate) fn hit(self, rng: &mut ChaCha8Rng) -> bool {
        self.0 != 0 && (rng.next_u64() >> (64 - Self::BITS)) < self.0
    }
}

/// A uniform draw from `0..=span` (multiply-shift; the bias is below 2^-64 per draw).
#[inline]
pub(crate) fn up_to(rng: &mut ChaCha8Rng, span: u64) -> u64 {
    if span == 0 {
        return 0;
    }
    match span.checked_add(1) {
        Some(n) => ((u128::from(rng.next_u64()) * u128::from(n)) >> 64) as u64,
        None => rng.next_u64(),
    }
}

/// Latency in microseconds, in the form the event loop samples.
#[derive(Clone, Debug)]
pub(crate) enum CompiledLatency {
    Constant(u64),
    Uniform { min: u64, span: u64 },
    Regions { regions: usize, one_way: Vec<u64> },
}

impl CompiledLatency {
    pub(crate) fn new(model: &LatencyModel) -> Result<Self> {
        Ok(match model {
            LatencyModel::Constant(d) => Self::Constant(micros(*d)),
            LatencyModel::Uniform { min, max } => {
                if min > max {
                    return Err(SimError::InvalidLatency {
                        reason: "uniform latency needs min <= max",
                    });
                }
                let (min, max) = (micros(*min), micros(*max));
                Self::Uniform {
                    min,
                    span: max - min,
                }
            }
            LatencyModel::Lan => Self::Uniform {
                min: 100,
                span: 400,
            },
            LatencyModel::Regions(m) => Self::Regions {
                regions: m.region_count(),
                one_way: m.one_way.iter().map(|d| micros(*d)).collect(),
            },
        })
    }

    #[inline]
    pub(crate) fn sample(&self, rng: &mut ChaCha8Rng, from: u32, to: u32) -> u64 {
        match self {
            Self::Constant(l) => *l,
            Self::Uniform { min, span } => min + up_to(rng, *span),
            Self::Regions { regions, one_way } => {
                let (f, t) = (from as usize % regions, to as usize % regions);
                one_way[f * regions + t]
            }
        }
    }
}

/// Every network setting, validated and in the form the event loop uses.
#[derive(Clone, Debug)]
pub(crate) struct NetConfig {
    pub(crate) latency: CompiledLatency,
    pub(crate) jitter: u64,
    pub(crate) loss: Chance,
    pub(crate) duplication: Chance,
    pub(crate) reorder: Chance,
    pub(crate) reorder_max: u64,
    pub(crate) gossip: GossipStrategy,
    pub(crate) sync_interval: Option<u64>,
    pub(crate) batch_size: usize,
    pub(crate) region_names: Vec<String>,
}

impl NetConfig {
    /// The full delay of one message copy: latency, then jitter, then a possible reordering delay.
    #[inline]
    pub(crate) fn delay(&self, rng: &mut ChaCha8Rng, from: u32, to: u32) -> u64 {
        let mut d = self.latency.sample(rng, from, to);
        if self.jitter != 0 {
            d += up_to(rng, self.jitter);
        }
        if self.reorder.hit(rng) {
            d += up_to(rng, self.reorder_max);
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_conditions_parse_from_their_names() {
        for condition in NetworkCondition::ALL {
            assert_eq!(condition.name().parse(), Ok(condition));
        }
        let err = "sunny".parse::<NetworkCondition>().unwrap_err();
        assert_eq!(
            err,
            SimError::UnknownCondition {
                name: "sunny".into()
            }
        );
        // The message lists every valid name.
        let message = err.to_string();
        assert!(
            NetworkCondition::ALL
                .iter()
                .all(|c| message.contains(&format!("\"{}\"", c.name()))),
            "{message}"
        );
    }
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn chance_extremes_and_validation() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let never = Chance::new("x", 0.0).unwrap();
        let always = Chance::new("x", 1.0).unwrap();
        assert!((0..1000).all(|_| always.hit(&mut rng) && !never.hit(&mut rng)));
        for bad in [-0.1, 1.01, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                Chance::new("loss", bad),
                Err(SimError::InvalidRate {
                    setting: "loss",
                    ..
                })
            ));
        }
    }

    #[test]
    fn up_to_stays_in_range_and_covers_it() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut seen = [false; 5];
        for _ in 0..1000 {
            let x = up_to(&mut rng, 4);
            seen[x as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
        assert_eq!(up_to(&mut rng, 0), 0);
        let _ = up_to(&mut rng, u64::MAX); // full range must not overflow
    }

    #[test]
    fn region_matrix_validation_and_lookup() {
        let m = RegionMatrix::sf_london_tokyo();
        assert_eq!(m.one_way(0, 2), Some(Duration::from_millis(55)));
        assert_eq!(m.one_way(2, 1), Some(Duration::from_millis(115)));
        assert_eq!(m.one_way(3, 0), None);
        assert_eq!(m.name(1), Some("london"));
        assert!(matches!(
            RegionMatrix::new(vec![], vec![]),
            Err(SimError::InvalidRegionMatrix { .. })
        ));
        assert!(matches!(
            RegionMatrix::new(vec!["a".into()], vec![vec![]]),
            Err(SimError::InvalidRegionMatrix { .. })
        ));
        assert!(matches!(
            CompiledLatency::new(&LatencyModel::Uniform {
                min: Duration::from_millis(2),
                max: Duration::from_millis(1)
            }),
            Err(SimError::InvalidLatency { .. })
        ));
    }
}
