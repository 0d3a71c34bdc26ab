//! The harness's one error type: what stopped a run from being carried out, as opposed to a
//! check that ran and found a violation (those are [`crate::checkers::Violation`]s).

use std::io;
use std::path::PathBuf;

/// Why the harness could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    /// The command line does not describe a run.
    #[error("{0}")]
    Usage(String),
    /// A file or directory of the run could not be written or read.
    #[error("{what} {}: {source}", .path.display())]
    File {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The operating system's answer.
        source: io::Error,
    },
    /// A socket of the fault proxy could not be opened.
    #[error("proxy socket {address}: {source}")]
    Socket {
        /// The address.
        address: String,
        /// The operating system's answer.
        source: io::Error,
    },
    /// An agent could not be started, signalled or waited for.
    #[error("agent {node}: {what}: {source}")]
    Process {
        /// The node.
        node: String,
        /// What was being done.
        what: &'static str,
        /// The operating system's answer.
        source: io::Error,
    },
    /// The certificates could not be issued or written.
    #[error("certificates: {0}")]
    Certificates(rhizo_net::NetError),
    /// The tokio runtime could not be built.
    #[error("cannot start the harness runtime: {0}")]
    Runtime(io::Error),
    /// The cluster did not come up (no client listener, no Raft leader) within its bound.
    #[error("the cluster did not start: {0}")]
    Startup(String),
    /// The harness was sent SIGINT or SIGTERM.
    #[error("interrupted by a signal")]
    Interrupted,
}

/// The harness's result type.
pub type Result<T> = std::result::Result<T, ChaosError>;
