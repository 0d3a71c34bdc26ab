//! Checkers over a replica cluster's recorded [`History`] and final state, one module per
//! invariant. Each returns the first violation it finds, as an enum whose variants name the
//! property broken.
//!
//! The safety checkers (counter bounds, set-full, atomic visibility, causal reads) judge the
//! reads recorded while faults were active; the liveness ones (convergence, oracle) judge the
//! state after faults were healed and the cluster converged.

// A violation ends a run and is returned once; carrying it unboxed keeps the checkers plain.
#![allow(
    clippy::result_large_err,
    reason = "violations are rare, returned once per run"
)]

pub mod atomic_visibility;
pub mod causal_reads;
pub mod convergence;
pub mod counter_bounds;
pub mod metadata;
pub mod oracle;
pub mod set_full;

#[cfg(test)]
mod tests;

use rhizo_algebra::Schema;
use rhizo_clock::NodeId;

use crate::history::History;
use crate::{ReplicaNode, SimulatedCluster};

/// Any checker's violation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Violation {
    /// A replica refused something a correct peer sent it, or could not recover its own log.
    #[error("replica fault on {node}: {fault}")]
    ReplicaFault {
        /// The node.
        node: NodeId,
        /// What it reported.
        fault: String,
    },
    /// See [`convergence`].
    #[error("convergence: {0}")]
    Convergence(#[from] convergence::ConvergenceViolation),
    /// See [`metadata`].
    #[error("metadata: {0}")]
    Metadata(#[from] metadata::MetadataViolation),
    /// See [`oracle`].
    #[error("oracle: {0}")]
    Oracle(#[from] oracle::OracleViolation),
    /// See [`counter_bounds`].
    #[error("counter bounds: {0}")]
    CounterBounds(#[from] counter_bounds::CounterViolation),
    /// See [`set_full`].
    #[error("set-full: {0}")]
    SetFull(#[from] set_full::SetViolation),
    /// See [`atomic_visibility`].
    #[error("atomic visibility: {0}")]
    AtomicVisibility(#[from] atomic_visibility::AtomicViolation),
    /// See [`causal_reads`].
    #[error("causal reads: {0}")]
    CausalReads(#[from] causal_reads::CausalViolation),
}

/// Runs the safety checkers over the reads recorded so far (`schema` is the replicas').
pub fn check_safety(history: &History, schema: &Schema) -> Result<(), Violation> {
    counter_bounds::check_reads(history)?;
    set_full::check_reads(history, schema)?;
    atomic_visibility::check_reads(history)?;
    causal_reads::check(history, schema)?;
    Ok(())
}

/// Runs every checker: replica faults, the safety checkers over the history, then (for a
/// cluster whose faults were healed and which converged) convergence, oracle equality and the
/// final-state parts of counter bounds, set-full and atomic visibility.
///
/// ```
/// # use rhizo_sim::SimulationBuilder;
/// # use rhizo_sim::workload::schema;
/// # use rhizo_commit::{AlgebraicTransaction, Operations};
/// # use std::time::Duration;
/// use rhizo_sim::checkers::check_all;
/// let mut cluster = SimulationBuilder::new().nodes(3).seed(9).build_replicas(schema()).unwrap();
/// for node in 0..3 {
///     let mut tx = AlgebraicTransaction::new();
///     tx.increment("counters", "r0", "value", 1);
///     cluster.commit_on_node(node, tx).unwrap();
///     cluster.observe(); // record what every replica shows now
/// }
/// cluster.run_until_converged(Duration::from_secs(1), Duration::from_millis(10)).unwrap();
/// check_all(&cluster).unwrap();
/// ```
pub fn check_all(cluster: &SimulatedCluster<ReplicaNode>) -> Result<(), Violation> {
    if let Some((node, fault)) = cluster.node_faults().into_iter().next() {
        return Err(Violation::ReplicaFault { node, fault });
    }
    let history = cluster.history();
    if let Some((_, node)) = cluster.running_nodes().next() {
        check_safety(history, node.replica().schema())?;
    }
    convergence::check(cluster)?;
    oracle::check(history, cluster)?;
    counter_bounds::check_final(history, cluster)?;
    set_full::check_final(history, cluster)?;
    atomic_visibility::check_final(cluster)?;
    Ok(())
}
