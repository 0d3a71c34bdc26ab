//! Convergence: replicas that have delivered the same updates hold bit-identical state.
//!
//! It protects the central promise of coordination-free commits — once messages stop, every
//! replica answers every read the same way, down to the bytes of its canonical encoding.

use rhizo_clock::NodeId;

use crate::{ReplicaNode, SimulatedCluster};

/// How convergence failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvergenceViolation {
    /// Two running replicas' canonical states differ.
    #[error(
        "{left} (fingerprint {left_fingerprint:016x}) and {right} ({right_fingerprint:016x}) diverge: {difference}"
    )]
    Diverged {
        /// The first running replica (the reference).
        left: NodeId,
        /// A replica that differs from it.
        right: NodeId,
        /// The reference's fingerprint.
        left_fingerprint: u64,
        /// The other's fingerprint.
        right_fingerprint: u64,
        /// The first difference found (clock or cell).
        difference: String,
    },
}

/// Checks that every running replica's canonical state equals the first running replica's,
/// byte for byte.
pub fn check(cluster: &SimulatedCluster<ReplicaNode>) -> Result<(), ConvergenceViolation> {
    let mut running = cluster.running_nodes().map(|(id, n)| (id, n.replica()));
    let Some((left, reference)) = running.next() else {
        return Ok(());
    };
    for (right, other) in running {
        // The bytes' answer without encoding every replica (`same_canonical_state` is checked
        // against the encodings in rhizo-commit's property tests).
        if reference.same_canonical_state(other) {
            continue;
        }
        let difference = if reference.clock() != other.clock() {
            format!("clocks {} vs {}", reference.clock(), other.clock())
        } else {
            let (a, b) = (reference.values(), other.values());
            a.iter()
                .find(|(k, v)| b.get(*k) != Some(*v))
                .map(|(k, v)| format!("{k}: {v:?} vs {:?}", b.get(k)))
                .or_else(|| {
                    b.keys()
                        .find(|k| !a.contains_key(*k))
                        .map(|k| format!("{k} held only by {right}"))
                })
                .unwrap_or_else(|| "equal values, different cell states".to_owned())
        };
        return Err(ConvergenceViolation::Diverged {
            left,
            right,
            left_fingerprint: reference.fingerprint(),
            right_fingerprint: other.fingerprint(),
            difference,
        });
    }
    Ok(())
}
