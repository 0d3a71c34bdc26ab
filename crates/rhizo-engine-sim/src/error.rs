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

impl ClusterError {
    /// Whether a new transaction doing the same work may succeed: the engine's answer
    /// ([`TxnError::is_retryable`]); the simulator's refusals (an unknown or crashed node, a
    /// deadline) need the caller to change something first.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Txn(err) => err.is_retryable(),
            Self::Simulation(_) => false,
        }
    }
}

/// This crate's result type.
pub type Result<T, E = ClusterError> = std::result::Result<T, E>;
