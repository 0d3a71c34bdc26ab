//! The trace hash: a fingerprint of every event the simulator processed, in order.

/// Folds event words into a 64-bit fingerprint.
///
/// FNV-1a applied to whole 64-bit words instead of bytes (one multiply per word keeps the event
/// loop cheap), followed by an xor-shift so high input bits reach the low output bits. It is a
/// determinism check, not a cryptographic hash: two runs with equal traces always agree, and
/// two different traces collide with negligible probability.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TraceHash(u64);

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Kinds of traced events; the numbers are part of the fingerprint, so never reuse one.
#[derive(Clone, Copy)]
pub(crate) enum TraceKind {
    Deliver = 1,
    DropLoss = 2,
    DropPartition = 3,
    DropCrashed = 4,
    Duplicate = 5,
    Timer = 6,
    External = 7,
    Crash = 8,
    Restart = 9,
    Partition = 10,
    Heal = 11,
    Start = 12,
    Settings = 13,
    Wake = 14,
}

impl TraceHash {
    pub(crate) fn new(seed: u64) -> Self {
        let mut hash = Self(FNV_OFFSET);
        hash.word(seed);
        hash
    }

    #[inline]
    fn word(&mut self, w: u64) {
        let h = (self.0 ^ w).wrapping_mul(FNV_PRIME);
        self.0 = h ^ (h >> 29);
    }

    /// Records one event: when, what, between which node indices, and how many bytes.
    #[inline]
    pub(crate) fn event(&mut self, time: u64, kind: TraceKind, from: u32, to: u32, bytes: u32) {
        self.word(time);
        self.word((kind as u64) << 56 | u64::from(from) << 28 | u64::from(to));
        self.word(u64::from(bytes));
    }

    pub(crate) fn value(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_content_change_the_hash() {
        let run = |events: &[(u64, TraceKind, u32, u32, u32)]| {
            let mut h = TraceHash::new(7);
            for &(t, k, f, to, b) in events {
                h.event(t, k, f, to, b);
            }
            h.value()
        };
        let a = (1, TraceKind::Deliver, 0, 1, 10);
        let b = (1, TraceKind::Deliver, 1, 0, 10);
        assert_eq!(run(&[a, b]), run(&[a, b]));
        assert_ne!(run(&[a, b]), run(&[b, a]));
        assert_ne!(run(&[a]), run(&[(1, TraceKind::Deliver, 0, 1, 11)]));
        assert_ne!(run(&[a]), run(&[(1, TraceKind::DropLoss, 0, 1, 10)]));
        assert_ne!(TraceHash::new(1).value(), TraceHash::new(2).value());
    }
}
