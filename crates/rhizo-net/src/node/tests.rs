//! The networked node: real sockets over TLS in one process, a node in a child process killed
//! mid-load, and the same node loop under turmoil with faults.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rhizo_algebra::{AlgebraicValue, MergeType, Schema, ValueType};
use rhizo_clock::NodeId;
use rhizo_commit::Operations;
use rhizo_txn::TransactionMode;

use super::*;
use crate::pki::CertificateAuthority;
use crate::{Backoff, TlsFiles};

mod membership;
mod process;
mod sim;
mod sockets;

/// The bound on every wait in these tests.
const PATIENCE: Duration = Duration::from_secs(20);

fn node(i: u32) -> NodeId {
    NodeId::numbered(i)
}

/// Counters, a register and an observed-remove set.
fn schema() -> Schema {
    Schema::builder()
        .table("counters")
        .column("value", MergeType::Add, ValueType::Integer)
        .table("kv")
        .column("reg", MergeType::Register, ValueType::Integer)
        .table("users")
        .column("tags", MergeType::ObservedRemoveSet, ValueType::StringSet)
        .build()
        .unwrap()
}

/// A cluster CA and each member's TLS files in a temporary directory.
struct Certificates {
    dir: tempfile::TempDir,
}

impl Certificates {
    fn new(nodes: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::generate("test").unwrap();
        ca.pem().write(dir.path(), "ca").unwrap();
        for i in 0..nodes {
            ca.issue(node(i))
                .unwrap()
                .write(dir.path(), &node(i).to_string())
                .unwrap();
        }
        Self { dir }
    }

    /// The certificates written earlier to `dir` (a child process reads the parent's).
    fn at(dir: &std::path::Path) -> CertificatesAt {
        CertificatesAt(dir.to_path_buf())
    }

    fn security(&self, of: NodeId) -> Security {
        CertificatesAt(self.dir.path().to_path_buf()).security(of)
    }
}

/// Certificates in a directory someone else made.
struct CertificatesAt(std::path::PathBuf);

impl CertificatesAt {
    fn security(&self, of: NodeId) -> Security {
        let dir = &self.0;
        Security::Tls(TlsFiles {
            ca_cert: dir.join("ca.crt"),
            node_cert: dir.join(format!("{of}.crt")),
            node_key: dir.join(format!("{of}.key")),
        })
    }
}

/// A node configuration with short timeouts for tests.
fn test_config(of: NodeId, members: &BTreeMap<NodeId, String>, security: Security) -> NodeConfig {
    let mut config =
        NodeConfig::new(of, "test-cluster", members.clone(), security).with_schema(schema());
    config.transport.backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        jitter: 0.5,
        seed: u64::from(of.to_string().len() as u8),
    };
    config.transport.handshake_timeout = Duration::from_secs(2);
    config.transport.idle_timeout = Duration::from_secs(5);
    config.transport.shutdown_grace = Duration::from_millis(200);
    config
}

/// Polls `check` until it holds or `PATIENCE` passes.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{what}: not within {PATIENCE:?}");
}

/// Nodes that shut down when the test ends, whatever it did.
struct Cluster(Vec<NodeHandle>);

impl Drop for Cluster {
    fn drop(&mut self) {
        for handle in &self.0 {
            let _ = handle.shutdown();
        }
    }
}

fn counter(handle: &NodeHandle, row: &str) -> i64 {
    match handle.read("counters", row, "value").unwrap() {
        AlgebraicValue::Integer(v) => v,
        other => panic!("a counter read {other:?}"),
    }
}
