use std::fmt;
use std::time::Duration;

/// An instant of virtual time: microseconds since the simulation started.
///
/// Microseconds are fine enough for LAN latencies (the `Lan` model draws 100–500 µs) and a
/// `u64` of them lasts 584,000 years, so arithmetic saturates instead of failing. Nothing here
/// reads a wall clock; time moves only when the simulator processes an event.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SimTime(u64);

impl SimTime {
    /// The start of every simulation.
    pub const ZERO: Self = Self(0);

    /// The instant `micros` microseconds after the start.
    pub const fn from_micros(micros: u64) -> Self {
        Self(micros)
    }

    /// The instant `millis` milliseconds after the start (saturating).
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis.saturating_mul(1_000))
    }

    /// Microseconds since the start.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// The time elapsed since the start, as a `Duration`.
    pub const fn as_duration(self) -> Duration {
        Duration::from_micros(self.0)
    }

    /// This instant moved `span` later, saturating at the end of time.
    #[must_use]
    pub fn saturating_add(self, span: Duration) -> Self {
        Self(self.0.saturating_add(micros(span)))
    }

    /// How long after `earlier` this instant is (zero if it is not later).
    pub fn saturating_since(self, earlier: SimTime) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

/// A `Duration` in whole microseconds, saturating; sub-microsecond parts are dropped.
pub(crate) fn micros(span: Duration) -> u64 {
    u64::try_from(span.as_micros()).unwrap_or(u64::MAX)
}

impl fmt::Display for SimTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}ms", self.0 / 1_000, self.0 % 1_000)
    }
}

impl fmt::Debug for SimTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SimTime({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_display() {
        let t = SimTime::from_millis(12).saturating_add(Duration::from_micros(345));
        assert_eq!(t.as_micros(), 12_345);
        assert_eq!(t.to_string(), "12.345ms");
        assert_eq!(
            t.saturating_since(SimTime::from_millis(2)),
            Duration::from_micros(10_345)
        );
        assert_eq!(SimTime::ZERO.saturating_since(t), Duration::ZERO);
        assert_eq!(
            SimTime::from_micros(u64::MAX - 1).saturating_add(Duration::from_secs(1)),
            SimTime::from_micros(u64::MAX)
        );
        assert_eq!(micros(Duration::from_nanos(1_999)), 1);
    }
}
