//! What must hold once the faults are healed and the cluster has settled, checked against what
//! the clients were told ([`History`]) and what each node holds ([`NodeState`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use rhizo_engine_sim::raft::{RegisterOp, check_linearizable};

use crate::workload::{History, MAX_OPS_PER_REGISTER, Outcome};

/// What one node holds after the settle.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeState {
    /// The node's name.
    pub node: String,
    /// Its replicated state's digest.
    pub fingerprint: u64,
    /// Every counter row's value.
    pub counters: BTreeMap<String, i64>,
    /// Every set row's elements.
    pub sets: BTreeMap<String, BTreeSet<String>>,
    /// Every register's value (`None`: never written).
    pub registers: BTreeMap<String, Option<i64>>,
}

/// A check that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The checker.
    pub checker: &'static str,
    /// What it found.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.checker, self.detail)
    }
}

fn violation(checker: &'static str, detail: String) -> Violation {
    Violation { checker, detail }
}

/// Every node holds the same state.
pub fn check_converged(states: &[NodeState]) -> Vec<Violation> {
    let Some(first) = states.first() else {
        return Vec::new();
    };
    states
        .iter()
        .filter(|state| {
            state.fingerprint != first.fingerprint
                || state.counters != first.counters
                || state.sets != first.sets
                || state.registers != first.registers
        })
        .map(|state| {
            violation(
                "convergence",
                format!(
                    "{} (fingerprint {:#x}) differs from {} (fingerprint {:#x})",
                    state.node, state.fingerprint, first.node, first.fingerprint
                ),
            )
        })
        .collect()
}

/// Each node's counter = the acknowledged increments plus some of the unknown ones: within
/// `[acknowledged, acknowledged + unknown]` (increments are positive). A refused increment
/// counted, or an acknowledged one lost, leaves the range.
pub fn check_counters(history: &History, states: &[NodeState]) -> Vec<Violation> {
    let mut found = Vec::new();
    for state in states {
        let rows: BTreeSet<&String> = history
            .counters
            .keys()
            .chain(state.counters.keys())
            .collect();
        for row in rows {
            let sums = history.counters.get(row).copied().unwrap_or_default();
            let value = state.counters.get(row).copied().unwrap_or(0);
            let (low, high) = (sums.acknowledged, sums.acknowledged + sums.unknown);
            if value < low || value > high {
                found.push(violation(
                    "counter",
                    format!(
                        "{}: counter {row} = {value}, outside [{low}, {high}] (acknowledged \
                         {low}, unknown {})",
                        state.node, sums.unknown
                    ),
                ));
            }
        }
    }
    found
}

/// Every acknowledged add is present unless an acknowledged remove followed it (then it is
/// absent: the remove ran on the node that acknowledged the add, so it observed it); a refused
/// add is absent; nothing is present that no client added.
pub fn check_sets(history: &History, states: &[NodeState]) -> Vec<Violation> {
    let mut found = Vec::new();
    let empty = BTreeSet::new();
    for state in states {
        let mut known: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for entry in &history.elements {
            known.entry(&entry.row).or_default().insert(&entry.element);
            let present = state
                .sets
                .get(&entry.row)
                .unwrap_or(&empty)
                .contains(&entry.element);
            let expected = match (&entry.add, &entry.remove) {
                (Outcome::Refused(_), _) => Some(false),
                (Outcome::Unknown(_), _) => None,
                (Outcome::Acknowledged, None | Some(Outcome::Refused(_))) => Some(true),
                (Outcome::Acknowledged, Some(Outcome::Acknowledged)) => Some(false),
                (Outcome::Acknowledged, Some(Outcome::Unknown(_))) => None,
            };
            if expected.is_some_and(|expected| expected != present) {
                found.push(violation(
                    "set",
                    format!(
                        "{}: element {} of set {} is {} (add {:?}, remove {:?})",
                        state.node,
                        entry.element,
                        entry.row,
                        if present { "present" } else { "absent" },
                        entry.add,
                        entry.remove
                    ),
                ));
            }
        }
        for (row, elements) in &state.sets {
            for element in elements {
                if !known
                    .get(row.as_str())
                    .is_some_and(|k| k.contains(element.as_str()))
                {
                    found.push(violation(
                        "set",
                        format!(
                            "{}: set {row} holds {element}, which no client added",
                            state.node
                        ),
                    ));
                }
            }
        }
    }
    found
}

/// The register writes and every node's final read (at `read_at`, after every write was
/// invoked and every acknowledged one completed) are linearizable.
pub fn check_registers(history: &History, states: &[NodeState], read_at: u64) -> Vec<Violation> {
    let mut ops = history.registers.clone();
    for state in states {
        for (key, value) in &state.registers {
            ops.push(RegisterOp {
                key: key.clone(),
                write: None,
                read: Some(*value),
                invoked: read_at,
                completed: Some(read_at),
            });
        }
    }
    // Tasks on different nodes may each take a register's last place at once.
    let bound = MAX_OPS_PER_REGISTER + 2 * states.len();
    match check_linearizable(&ops, bound) {
        Ok(()) => Vec::new(),
        Err(detail) => vec![violation("register", detail)],
    }
}

#[cfg(test)]
mod tests;
