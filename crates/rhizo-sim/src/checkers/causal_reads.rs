//! Causal reads: what a replica shows is exactly a causally closed set of acknowledged updates.
//!
//! For every recorded read of replica `n` with clock `c`:
//! - **closure**: every acknowledged update whose dot `c` contains has its own clock (its causal
//!   past) dominated by `c` — no effect is visible without its causes;
//! - **no invented updates**: every dot in `c` names an acknowledged update;
//! - **read your writes**: `c` contains every update acknowledged on `n` before the read (also
//!   across a crash: acknowledged means durable);
//! - **values** (the value-level check): `n`'s cells equal, cell by cell, the sequential oracle
//!   (`LocalCommitProtocol::merge_all`) of exactly the acknowledged updates `c` contains. This
//!   catches an update applied twice or partly, applied without being counted in the clock, or
//!   counted without being applied — whatever the column type.

use std::collections::BTreeMap;

use rhizo_algebra::{AlgebraicValue, CellState, Schema};
use rhizo_clock::{Dot, NodeId, VectorClock};
use rhizo_commit::{CellKey, VersionedUpdate};

use crate::history::{History, Observation};

/// How a read broke causality.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CausalViolation {
    /// A visible update's causal past is not visible.
    #[error("{node} at #{seq} shows {dot} (which depends on {depends_on}) with clock {clock}")]
    NotCausallyClosed {
        /// The replica.
        node: NodeId,
        /// The read's position in the history.
        seq: u64,
        /// The visible update.
        dot: Dot,
        /// Its clock.
        depends_on: VectorClock,
        /// The replica's clock.
        clock: VectorClock,
    },
    /// A replica's clock names an update nobody acknowledged.
    #[error("{node} at #{seq} has delivered {dot}, which no client was acknowledged")]
    UnknownDot {
        /// The replica.
        node: NodeId,
        /// The read's position in the history.
        seq: u64,
        /// The dot.
        dot: Dot,
    },
    /// A replica does not show an update acknowledged on it earlier.
    #[error("{node} at #{seq} does not show its own acknowledged {dot}")]
    OwnWriteMissing {
        /// The replica.
        node: NodeId,
        /// The read's position in the history.
        seq: u64,
        /// The update.
        dot: Dot,
    },
    /// A cell differs from the oracle of the updates the replica's clock contains.
    #[error("{node} at #{seq} reads {key} as {read:?}; its clock's updates make {expected:?}")]
    StateNotExplained {
        /// The replica.
        node: NodeId,
        /// The read's position in the history.
        seq: u64,
        /// The cell.
        key: CellKey,
        /// The replica's read (`None`: cell not held; `Some(None)`: the read failed).
        read: Option<Option<AlgebraicValue>>,
        /// The oracle's (`None`: no update touched it; `Some(None)`: the read failed).
        expected: Option<Option<AlgebraicValue>>,
    },
    /// The oracle refused the updates a clock contains.
    #[error("the oracle refused {node}'s updates at #{seq}: {reason}")]
    OracleRefused {
        /// The replica.
        node: NodeId,
        /// The read's position in the history.
        seq: u64,
        /// Why.
        reason: String,
    },
}

/// Acknowledged updates of one origin, with their positions in the history, in dot order.
type ByOrigin<'h> = BTreeMap<NodeId, Vec<(u64, &'h VersionedUpdate)>>;

/// Checks every recorded read.
pub fn check(history: &History, schema: &Schema) -> Result<(), CausalViolation> {
    let by_origin = acknowledged_by_origin(history);
    let protocol = Oracle { schema };
    let mut views: BTreeMap<NodeId, View> = BTreeMap::new();
    for obs in history.observations() {
        let view = views.entry(obs.node).or_default();
        if !view.clock.dominated_by(&obs.clock) {
            *view = View::default();
        }
        check_causally_closed(obs, view, &by_origin)?;
        check_own_writes(obs, &by_origin)?;
        view.advance(&protocol, &by_origin, &obs.clock);
        check_values(obs, view)?;
    }
    Ok(())
}

/// The history's acknowledged updates, grouped by origin in dot order.
fn acknowledged_by_origin(history: &History) -> ByOrigin<'_> {
    let mut by_origin: ByOrigin<'_> = BTreeMap::new();
    for ack in history.acknowledged() {
        by_origin
            .entry(ack.update.origin())
            .or_default()
            .push((ack.seq, &ack.update));
    }
    for updates in by_origin.values_mut() {
        updates.sort_unstable_by_key(|(_, u)| u.dot.counter());
    }
    by_origin
}

/// Every dot the read's clock names is an acknowledged update, and every such update's own
/// dependencies are in the clock too. Updates the replica's previous read showed (`view`) were
/// checked then; its clock has only grown since, so they stay causally closed.
fn check_causally_closed(
    obs: &Observation,
    view: &View,
    by_origin: &ByOrigin<'_>,
) -> Result<(), CausalViolation> {
    for (origin, counter) in obs.clock.iter() {
        let updates = by_origin.get(&origin).map_or(&[][..], Vec::as_slice);
        let shown = updates.partition_point(|(_, u)| u.dot.counter() <= counter);
        if shown as u64 != counter {
            // Dots are dense per origin: some counter up to `counter` has no update.
            let missing = (1..=counter)
                .zip(
                    updates
                        .iter()
                        .map(|(_, u)| u.dot.counter())
                        .chain(std::iter::repeat(0)),
                )
                .find(|(want, have)| want != have)
                .map_or(counter, |(want, _)| want);
            return Err(CausalViolation::UnknownDot {
                node: obs.node,
                seq: obs.seq,
                dot: Dot::new(origin, missing).expect("counter is at least 1"),
            });
        }
        let checked = updates.partition_point(|(_, u)| u.dot.counter() <= view.clock.get(origin));
        for (_, update) in &updates[checked..shown] {
            if !update.clock.dominated_by(&obs.clock) {
                return Err(CausalViolation::NotCausallyClosed {
                    node: obs.node,
                    seq: obs.seq,
                    dot: update.dot,
                    depends_on: update.clock.clone(),
                    clock: obs.clock.clone(),
                });
            }
        }
    }
    Ok(())
}

/// A replica reads its own acknowledged writes. Own updates are acknowledged in dot order, so
/// the last one before the read suffices.
fn check_own_writes(obs: &Observation, by_origin: &ByOrigin<'_>) -> Result<(), CausalViolation> {
    if let Some((_, own)) = by_origin.get(&obs.node).and_then(|updates| {
        updates
            .iter()
            .rev()
            .find(|(seq, _)| *seq < obs.seq)
            .filter(|(_, u)| !obs.clock.contains(u.dot))
    }) {
        return Err(CausalViolation::OwnWriteMissing {
            node: obs.node,
            seq: obs.seq,
            dot: own.dot,
        });
    }
    Ok(())
}

/// Every cell the read shows (and every cell the oracle holds) reads as the oracle of the
/// read's clock says.
fn check_values(obs: &Observation, view: &View) -> Result<(), CausalViolation> {
    let mismatch = |key: &CellKey| {
        // A failed read (an exact sum out of range) must fail in the oracle too; the two
        // errors are worded by different layers, so only their failing is compared.
        let read = obs.values.get(key).map(|r| r.as_ref().ok().cloned());
        let expected = match view.cells.get(key) {
            Some(Ok(cell)) => Some(cell.value().ok()),
            Some(Err(reason)) => {
                return Some(CausalViolation::OracleRefused {
                    node: obs.node,
                    seq: obs.seq,
                    reason: reason.clone(),
                });
            }
            None => None,
        };
        (read != expected).then(|| CausalViolation::StateNotExplained {
            node: obs.node,
            seq: obs.seq,
            key: key.clone(),
            read,
            expected,
        })
    };
    match view
        .cells
        .keys()
        .chain(obs.values.keys())
        .find_map(mismatch)
    {
        Some(violation) => Err(violation),
        None => Ok(()),
    }
}

/// The sequential oracle of the updates a replica's clock contains, kept per replica and
/// advanced as its clock grows (a replica's clock never shrinks, not even across a crash; if
/// it did, the view is rebuilt from nothing). Updates are applied in (origin, counter) order,
/// as [`rhizo_commit::LocalCommitProtocol::merge_all`] applies them; the tests check the two agree.
#[derive(Default)]
struct View {
    clock: VectorClock,
    /// Each cell's state, or why the oracle could not apply an update to it.
    cells: BTreeMap<CellKey, Result<CellState, String>>,
}

struct Oracle<'a> {
    schema: &'a Schema,
}

impl View {
    fn advance(
        &mut self,
        oracle: &Oracle<'_>,
        by_origin: &BTreeMap<NodeId, Vec<(u64, &VersionedUpdate)>>,
        clock: &VectorClock,
    ) {
        if !self.clock.dominated_by(clock) {
            *self = View::default();
        }
        for (origin, updates) in by_origin {
            let (from, to) = (self.clock.get(*origin), clock.get(*origin));
            for (_, update) in updates
                .iter()
                .filter(|(_, u)| u.dot.counter() > from && u.dot.counter() <= to)
            {
                self.apply(oracle, update);
            }
        }
        self.clock = clock.clone();
    }

    fn apply(&mut self, oracle: &Oracle<'_>, update: &VersionedUpdate) {
        for effect in &update.effects {
            let key = &effect.key;
            let slot = self.cells.entry(key.clone()).or_insert_with(|| {
                oracle
                    .schema
                    .column(key.table(), key.column())
                    .map(CellState::new)
                    .map_err(|e| format!("{key}: {e}"))
            });
            if let Ok(cell) = slot
                && let Err(e) = cell.apply_all(&effect.ops, update.dot)
            {
                *slot = Err(format!("{key} at {}: {e}", update.dot));
            }
        }
    }
}

/// Checks that the incremental view [`check`] uses agrees with
/// [`rhizo_commit::LocalCommitProtocol::merge_all`] on `updates` (for tests).
#[cfg(test)]
pub(crate) fn view_agrees_with_merge_all(schema: &Schema, updates: &[VersionedUpdate]) -> bool {
    let mut by_origin: BTreeMap<NodeId, Vec<(u64, &VersionedUpdate)>> = BTreeMap::new();
    let mut clock = VectorClock::new();
    for u in updates {
        by_origin.entry(u.origin()).or_default().push((0, u));
        clock.merge(&u.clock);
    }
    for list in by_origin.values_mut() {
        list.sort_unstable_by_key(|(_, u)| u.dot.counter());
    }
    let mut view = View::default();
    view.advance(&Oracle { schema }, &by_origin, &clock);
    let Some(first) = updates.first() else {
        return view.cells.is_empty();
    };
    let merged = rhizo_commit::LocalCommitProtocol::new(first.origin(), schema.clone())
        .merge_all(updates)
        .expect("valid updates");
    merged.len() == view.cells.len()
        && merged
            .cells()
            .all(|(k, c)| matches!(view.cells.get(k), Some(Ok(mine)) if mine.value() == c.value()))
}
