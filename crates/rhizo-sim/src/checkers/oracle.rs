//! Oracle equality: after convergence, every replica equals the sequential oracle
//! (`LocalCommitProtocol::merge_all`) of exactly the acknowledged commits.
//!
//! It protects against lost, duplicated or invented effects: convergence alone would accept
//! replicas that agree on a wrong state.

use rhizo_algebra::AlgebraicValue;
use rhizo_clock::{NodeId, VectorClock};
use rhizo_commit::{CellKey, LocalCommitError, LocalCommitProtocol};

use crate::history::History;
use crate::{ReplicaNode, SimulatedCluster};

/// How a replica differs from the oracle.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OracleViolation {
    /// The oracle itself refused the acknowledged updates.
    #[error("the oracle refused the acknowledged updates: {reason}")]
    OracleRefused {
        /// Why.
        reason: String,
    },
    /// A replica's clock is not the union of the acknowledged updates' clocks.
    #[error("{node} has clock {replica}, the acknowledged commits make {oracle}")]
    ClockDiffers {
        /// The replica.
        node: NodeId,
        /// Its clock.
        replica: VectorClock,
        /// The oracle's.
        oracle: VectorClock,
    },
    /// A cell's value differs.
    #[error("{node} reads {key} as {replica:?}, the oracle as {oracle:?}")]
    ValueDiffers {
        /// The replica.
        node: NodeId,
        /// The cell.
        key: CellKey,
        /// The replica's read.
        replica: Result<AlgebraicValue, LocalCommitError>,
        /// The oracle's.
        oracle: Result<AlgebraicValue, LocalCommitError>,
    },
    /// A replica holds a cell no acknowledged commit touched.
    #[error("{node} holds {key}, which no acknowledged commit touched")]
    UnexpectedCell {
        /// The replica.
        node: NodeId,
        /// The cell.
        key: CellKey,
    },
}

/// Checks every running replica against the oracle of the acknowledged commits.
pub fn check(
    history: &History,
    cluster: &SimulatedCluster<ReplicaNode>,
) -> Result<(), OracleViolation> {
    let Some((first, node)) = cluster.running_nodes().next() else {
        return Ok(());
    };
    let protocol = LocalCommitProtocol::new(first, node.replica().schema().clone());
    let oracle = protocol
        .merge_all(history.acknowledged_updates())
        .map_err(|e| OracleViolation::OracleRefused {
            reason: e.to_string(),
        })?;
    for (id, node) in cluster.running_nodes() {
        let replica = node.replica();
        if replica.clock() != oracle.clock() {
            return Err(OracleViolation::ClockDiffers {
                node: id,
                replica: replica.clock().clone(),
                oracle: oracle.clock().clone(),
            });
        }
        let values = replica.values();
        for (key, _) in oracle.cells() {
            let expected = oracle.get(key).expect("the oracle holds its own cells");
            let read = values
                .get(key)
                .cloned()
                .unwrap_or_else(|| replica.read_key(key));
            if read != expected {
                return Err(OracleViolation::ValueDiffers {
                    node: id,
                    key: key.clone(),
                    replica: read,
                    oracle: expected,
                });
            }
        }
        if let Some(key) = values.keys().find(|k| oracle.get(k).is_none()) {
            return Err(OracleViolation::UnexpectedCell {
                node: id,
                key: key.clone(),
            });
        }
    }
    Ok(())
}
