use rhizo_clock::NodeId;
use rhizo_commit::LocalCommitError;

use crate::SimTime;

/// Everything that can go wrong when building or driving a simulation.
///
/// A failed call changes nothing: the builder or cluster is left as it was.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    /// The builder asked for zero nodes.
    #[error("a simulation needs at least one node")]
    NoNodes,
    /// The builder asked for more nodes than the simulator addresses.
    #[error("{requested} nodes requested; at most {max} are supported")]
    TooManyNodes {
        /// How many were asked for.
        requested: usize,
        /// The limit.
        max: usize,
    },
    /// A probability setting was outside `0.0..=1.0` (or NaN).
    #[error("{setting} must be a probability in 0.0..=1.0, got {value}")]
    InvalidRate {
        /// Which setting.
        setting: &'static str,
        /// The value given.
        value: f64,
    },
    /// A latency setting made no sense (for example a uniform range with `min > max`).
    #[error("invalid latency: {reason}")]
    InvalidLatency {
        /// What rule was broken.
        reason: &'static str,
    },
    /// A region matrix was not square, was empty, or named no regions.
    #[error("invalid region matrix: {reason}")]
    InvalidRegionMatrix {
        /// What rule was broken.
        reason: &'static str,
    },
    /// Push-pull gossip with a fanout of zero would never spread anything.
    #[error("push-pull gossip needs a fanout of at least 1")]
    ZeroFanout,
    /// A batch size of zero would never let a node send an update.
    #[error("the batch size must be at least 1")]
    ZeroBatchSize,
    /// A sync interval of zero would fire timers forever without time passing.
    #[error("the sync interval must be at least 1 microsecond")]
    ZeroSyncInterval,
    /// A network condition name that is not one of the presets.
    #[error(
        "unknown network condition {}; valid conditions: \"perfect\", \"reordered\", \
         \"delayed\", \"partitioned\", \"lossy\", \"duplicating\", \"chaos\"",
        rhizo_clock::Quoted(.name)
    )]
    UnknownCondition {
        /// The name given.
        name: String,
    },
    /// A node index or id that is not part of this cluster.
    #[error("no node {} in this cluster", rhizo_clock::Bounded(.node))]
    UnknownNode {
        /// The index or name that was asked for.
        node: String,
    },
    /// The verb needs a running node, but this one is crashed.
    #[error("node {node} is crashed")]
    NodeCrashed {
        /// The crashed node.
        node: NodeId,
    },
    /// `restart` was called on a node that is running.
    #[error("node {node} is running; only a crashed node can be restarted")]
    NodeNotCrashed {
        /// The running node.
        node: NodeId,
    },
    /// `run_until_quiescent` reached its time limit with work still outstanding.
    #[error("not quiescent at {at}: {in_flight} messages in flight, {busy_nodes} nodes still busy")]
    NotQuiescent {
        /// Virtual time when the limit was reached.
        at: SimTime,
        /// Messages still travelling.
        in_flight: usize,
        /// Running nodes whose `is_idle` was false.
        busy_nodes: usize,
    },
    /// `run_until` reached its time limit before the condition held.
    #[error("condition still false at {at}")]
    DeadlineReached {
        /// Virtual time when the limit was reached.
        at: SimTime,
    },
    /// Two running nodes hold different states.
    #[error("nodes {left} and {right} diverge: {detail}")]
    Diverged {
        /// The first running node, whose state is the reference.
        left: NodeId,
        /// A running node whose state differs from it.
        right: NodeId,
        /// Both states, debug-printed (cut to a readable length).
        detail: String,
    },
    /// The replica on `node` refused a commit; it left no trace.
    #[error("commit on {node} refused: {source}")]
    Commit {
        /// The node asked to commit.
        node: NodeId,
        /// The replica's reason.
        source: LocalCommitError,
    },
    /// A node's durable log holds bytes that are not a record (only a log changed outside
    /// [`DurableLog`](crate::DurableLog) can).
    #[error("unreadable durable log: {reason}")]
    DurableLog {
        /// What could not be read.
        reason: String,
    },
}

/// This crate's result type.
pub type Result<T, E = SimError> = std::result::Result<T, E>;
