use rhizo_sim::SimError;
use rhizo_txn::TxnError;

/// What a simulated cluster of engines refuses: an engine's error, or the simulator's (an
/// unknown or crashed node, a deadline).
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// An engine refused the call.
    #[error(transparent)]
    Txn(#[from] TxnError),
    /// The simulator refused the verb.
    #[error(transparent)]
    Simulation(#[from] SimError),
}

/// This crate's result type.
pub type Result<T, E = ClusterError> = std::result::Result<T, E>;
