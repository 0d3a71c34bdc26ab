//! Reconnection delays: exponential, capped, with seeded jitter.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rhizo_clock::NodeId;

use crate::{Backoff, Lane};

/// The delays before successive reconnection attempts of one link.
#[derive(Debug)]
pub(crate) struct BackoffSchedule {
    config: Backoff,
    failures: u32,
    rng: ChaCha8Rng,
}

impl BackoffSchedule {
    /// A schedule for the link from `node` to `peer` on `lane`: the seed is mixed with the three
    /// so that the links of one node do not retry in step.
    pub(crate) fn new(config: Backoff, node: NodeId, peer: NodeId, lane: Lane) -> Self {
        let mut seed = config.seed ^ 0x9e37_79b9_7f4a_7c15;
        for byte in node
            .name()
            .as_bytes()
            .iter()
            .chain([0xff].iter())
            .chain(peer.name().as_bytes())
            .chain([lane.index() as u8].iter())
        {
            // FNV-1a: stable across platforms and releases, unlike std's hasher.
            seed = (seed ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        Self {
            config,
            failures: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// The delay before the next attempt; each call without a [`BackoffSchedule::reset`]
    /// doubles the base delay up to the maximum.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let doubling = 1u32 << self.failures.min(20);
        let base = self
            .config
            .initial
            .saturating_mul(doubling)
            .min(self.config.max);
        self.failures = self.failures.saturating_add(1);
        let cut: f64 = self.rng.random::<f64>() * self.config.jitter;
        base.mul_f64(1.0 - cut)
    }

    /// After a successful connection the next failure starts from the initial delay again.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(seed: u64) -> BackoffSchedule {
        let config = Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(100),
            jitter: 0.5,
            seed,
        };
        BackoffSchedule::new(
            config,
            NodeId::numbered(0),
            NodeId::numbered(1),
            Lane::Control,
        )
    }

    /// Delays double up to the cap, each jittered down by at most half, and a reset starts over.
    #[test]
    fn delays_double_to_the_cap_with_bounded_jitter() {
        let mut backoff = schedule(7);
        let bases = [10, 20, 40, 80, 100, 100, 100];
        for base in bases {
            let delay = backoff.next_delay();
            let base = Duration::from_millis(base);
            assert!(delay <= base && delay >= base / 2, "{delay:?} for {base:?}");
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(10));
    }

    /// The same seed gives the same delays; another seed other delays.
    #[test]
    fn jitter_is_seeded() {
        let delays = |seed| {
            let mut backoff = schedule(seed);
            (0..8).map(|_| backoff.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(delays(3), delays(3));
        assert_ne!(delays(3), delays(4));
    }
}
