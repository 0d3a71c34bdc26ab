//! Helpers the transport's tests share: certificates made with rcgen, configurations with
//! short timeouts, clusters on 127.0.0.1, and bounded waits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rhizo_clock::NodeId;

use crate::{
    Backoff, Inbound, InboundReceiver, Security, TlsFiles, TokioNetwork, Transport,
    TransportConfig, TransportHandle,
};

/// The bound on every wait in these tests.
pub(super) const PATIENCE: Duration = Duration::from_secs(10);

/// A certificate authority whose files live in a temporary directory.
pub(super) struct Pki {
    pub(super) dir: tempfile::TempDir,
    name: String,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    /// A new CA; `name` tells its files apart from another CA's in the same test.
    pub(super) fn new(name: &str) -> Self {
        let ca_key = KeyPair::generate().expect("key generation");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("rhizo test CA {name}"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = params.self_signed(&ca_key).expect("CA certificate");
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write CA");
        Self {
            dir,
            name: name.to_owned(),
            ca,
            ca_key,
        }
    }

    pub(super) fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A certificate for `dns_name` signed by this CA, written as `<file>.crt`/`<file>.key`.
    pub(super) fn issue(&self, dns_name: &str, file: &str) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().expect("key generation");
        let mut params = CertificateParams::new(vec![dns_name.to_owned()]).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{dns_name} ({})", self.name));
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params
            .signed_by(&key, &self.ca, &self.ca_key)
            .expect("certificate");
        let cert_path = self.dir.path().join(format!("{file}.crt"));
        let key_path = self.dir.path().join(format!("{file}.key"));
        std::fs::write(&cert_path, cert.pem()).expect("write certificate");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        (cert_path, key_path)
    }

    /// TLS files for a node whose certificate names `dns_name`, trusting `ca`.
    pub(super) fn files(&self, dns_name: &str, file: &str, ca: &Path) -> TlsFiles {
        let (node_cert, node_key) = self.issue(dns_name, file);
        TlsFiles {
            ca_cert: ca.to_path_buf(),
            node_cert,
            node_key,
        }
    }

    /// TLS files for `node`, honestly named and trusting this CA.
    pub(super) fn node(&self, node: NodeId) -> Security {
        let name = node.to_string();
        Security::Tls(self.files(&name, &name, &self.ca_path()))
    }
}

/// A configuration with short timeouts, for tests.
pub(super) fn config(
    node: NodeId,
    members: &BTreeMap<NodeId, String>,
    security: Security,
) -> TransportConfig {
    let mut config = TransportConfig::new(
        node,
        "127.0.0.1:0",
        "test-cluster",
        members.clone(),
        security,
    );
    config.backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        jitter: 0.5,
        seed: 1,
    };
    config.handshake_timeout = Duration::from_secs(2);
    config.idle_timeout = Duration::from_secs(5);
    config.incarnation = 1;
    config
}

/// Binds one listener per node on 127.0.0.1 and returns the membership with their addresses.
pub(super) async fn bind_all(
    nodes: &[NodeId],
) -> (BTreeMap<NodeId, String>, Vec<tokio::net::TcpListener>) {
    let mut members = BTreeMap::new();
    let mut listeners = Vec::new();
    for node in nodes {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let address = listener.local_addr().expect("local address").to_string();
        members.insert(*node, address);
        listeners.push(listener);
    }
    (members, listeners)
}

/// Starts a transport on a listener bound beforehand.
pub(super) fn start(
    config: TransportConfig,
    listener: tokio::net::TcpListener,
) -> (TransportHandle, InboundReceiver) {
    Transport::start_on(config, TokioNetwork, listener).expect("the transport starts")
}

/// Receives until `wanted` returns true for an item, or `PATIENCE` runs out; returns whether it
/// did, and everything else received on the way.
pub(super) async fn receive_until(
    receiver: &mut InboundReceiver,
    mut wanted: impl FnMut(&Inbound) -> bool,
) -> (bool, Vec<Inbound>) {
    let mut others = Vec::new();
    let found = tokio::time::timeout(PATIENCE, async {
        while let Some(inbound) = receiver.recv().await {
            if wanted(&inbound) {
                return true;
            }
            others.push(inbound);
        }
        false
    })
    .await
    .unwrap_or(false);
    (found, others)
}

/// Waits until `peer` is up on both lanes of `handle`, or `PATIENCE` runs out.
pub(super) async fn wait_connected(handle: &TransportHandle, peer: NodeId) -> bool {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if crate::Lane::ALL
            .iter()
            .all(|lane| handle.is_connected(peer, *lane))
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// Polls `condition` every 10 ms until it holds or `limit` passes; returns whether it held.
pub(super) async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
