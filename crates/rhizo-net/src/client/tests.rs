//! The client listener over real sockets: requests answered as the node's handle answers them,
//! the engine's typed errors carried over the wire with nothing applied, and refusals of clients
//! without a certificate from the cluster CA, of malformed requests and of oversized frames.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;

use rhizo_algebra::{AlgebraicValue, MergeType, Schema, ValueType};
use rhizo_commit::Operations;
use rhizo_txn::{TransactionMode, TxnError};

use super::*;
use crate::pki::CertificateAuthority;
use crate::{Node, NodeConfig, NodeHandle, Security, TlsFiles};

fn schema() -> Schema {
    Schema::builder()
        .table("counters")
        .column("value", MergeType::Add, ValueType::Integer)
        .table("kv")
        .column("reg", MergeType::Register, ValueType::Integer)
        .build()
        .unwrap()
}

/// A cluster CA with node `n0`'s files, a client's, and another CA's client.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::generate("test").unwrap();
        ca.pem().write(dir.path(), "ca").unwrap();
        ca.issue(NodeId::new("n0").unwrap())
            .unwrap()
            .write(dir.path(), "n0")
            .unwrap();
        ca.issue_client("app")
            .unwrap()
            .write(dir.path(), "app")
            .unwrap();
        let other = CertificateAuthority::generate("other").unwrap();
        other
            .issue_client("app")
            .unwrap()
            .write(dir.path(), "stranger")
            .unwrap();
        Self { dir }
    }

    fn node_security(&self) -> Security {
        let path = |name: &str| self.dir.path().join(name);
        Security::Tls(TlsFiles {
            ca_cert: path("ca.crt"),
            node_cert: path("n0.crt"),
            node_key: path("n0.key"),
        })
    }

    fn client(&self, identity: Option<&str>) -> ClientSecurity {
        let path = |name: String| self.dir.path().join(name);
        let mut tls = ClientTls::new(path("ca.crt".into()));
        if let Some(name) = identity {
            tls = tls.with_identity(path(format!("{name}.crt")), path(format!("{name}.key")));
        }
        ClientSecurity::Tls(tls)
    }
}

/// A one-member node with a client listener on a free port.
struct Started(NodeHandle);

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.0.shutdown();
    }
}

fn start(security: Security) -> (Started, String) {
    let n0 = NodeId::new("n0").unwrap();
    let members = BTreeMap::from([(n0, "127.0.0.1:0".to_owned())]);
    let mut config = NodeConfig::new(n0, "test", members, security).with_schema(schema());
    config.client = Some(ClientListenerConfig::new("127.0.0.1:0"));
    config.transport.handshake_timeout = std::time::Duration::from_secs(1);
    let handle = Node::start(config).unwrap();
    let address = handle.client_addr().expect("a client listener").to_string();
    (Started(handle), address)
}

fn counter(value: i64) -> AlgebraicValue {
    AlgebraicValue::Integer(value)
}

#[test]
fn requests_are_answered_as_the_node_answers_them() {
    let pki = Pki::new();
    let (node, address) = start(pki.node_security());
    let client = Client::connect(&address, &pki.client(Some("app"))).unwrap();
    assert_eq!(client.node_id(), NodeId::new("n0").unwrap());

    let mut tx = AlgebraicTransaction::new();
    tx.increment("counters", "page_views", "value", 2)
        .increment("counters", "clicks", "value", 1);
    let outcome = client
        .commit(TransactionMode::CoordinationFree, tx)
        .unwrap();
    assert!(outcome.durable || outcome.dot.is_some());
    assert_eq!(
        client.read("counters", "page_views", "value").unwrap(),
        counter(2)
    );
    assert_eq!(
        node.0.read("counters", "clicks", "value").unwrap(),
        counter(1)
    );

    let mut put = AlgebraicTransaction::new();
    put.put("kv", "r", "reg", 7);
    client.commit(TransactionMode::Coordinated, put).unwrap();
    assert_eq!(node.0.read("kv", "r", "reg").unwrap(), counter(7));

    let spec = rhizo_algebra::ColumnSpec::new(MergeType::Max, ValueType::Integer).unwrap();
    client.declare_column("scores", "best", spec).unwrap();
    assert!(client.schema().unwrap().column("scores", "best").is_ok());
    let status = client.status().unwrap();
    assert_eq!(status.fingerprint, node.0.status().fingerprint);
    assert_eq!(status.members, vec![NodeId::new("n0").unwrap()]);
}

/// The same bad transaction through the client and through the handle: the same typed error,
/// and neither changed anything.
#[test]
fn a_bad_operation_gets_the_local_typed_error_over_the_wire_and_changes_nothing() {
    let (node, address) = start(Security::Insecure);
    let client = Client::connect(&address, &ClientSecurity::Insecure).unwrap();
    let mut seed = AlgebraicTransaction::new();
    seed.increment("counters", "page_views", "value", 5);
    client
        .commit(TransactionMode::CoordinationFree, seed)
        .unwrap();
    let before = node.0.status().fingerprint;

    let mut bad = AlgebraicTransaction::new();
    bad.increment("counters", "page_views", "value", 1)
        .increment("counters", "page_views", "value", 1.5)
        .increment("counters", "page_views", "no_such_column", 1)
        .increment("no_such_table", "x", "value", 1);
    let local = node
        .0
        .commit(TransactionMode::CoordinationFree, bad.clone())
        .unwrap_err();
    let remote = client
        .commit(TransactionMode::CoordinationFree, bad)
        .unwrap_err();
    let (
        NetError::Engine(TxnError::InvalidOperations {
            errors: local_errors,
        }),
        NetError::Engine(TxnError::InvalidOperations {
            errors: remote_errors,
        }),
    ) = (&local, &remote)
    else {
        panic!("expected invalid operations, got {local:?} and {remote:?}");
    };
    assert_eq!(remote_errors, local_errors);
    assert_eq!(remote_errors.len(), 3, "{remote}");
    assert_eq!(remote.to_string(), local.to_string());

    let mut put = AlgebraicTransaction::new();
    put.put("kv", "r", "reg", 1);
    let local = node
        .0
        .commit(TransactionMode::CoordinationFree, put.clone())
        .unwrap_err();
    let remote = client
        .commit(TransactionMode::CoordinationFree, put)
        .unwrap_err();
    assert!(
        matches!(&remote, NetError::Engine(TxnError::NotAlgebraic { operations }) if operations.len() == 1),
        "{remote:?}"
    );
    assert_eq!(remote.to_string(), local.to_string());

    let empty = client
        .commit(TransactionMode::Auto, AlgebraicTransaction::new())
        .unwrap_err();
    assert!(
        matches!(empty, NetError::Engine(TxnError::EmptyTransaction)),
        "{empty:?}"
    );
    let unknown = client.read("counters", "page_views", "nope").unwrap_err();
    let local = node.0.read("counters", "page_views", "nope").unwrap_err();
    assert_eq!(unknown.to_string(), local.to_string());
    assert!(matches!(
        unknown,
        NetError::Engine(TxnError::InvalidOperations { .. })
    ));

    assert_eq!(
        node.0.status().fingerprint,
        before,
        "a refused transaction changed the node"
    );
    assert_eq!(
        client.read("counters", "page_views", "value").unwrap(),
        counter(5)
    );
}

#[test]
fn a_client_without_a_certificate_of_the_cluster_ca_is_refused() {
    let pki = Pki::new();
    let (node, address) = start(pki.node_security());
    for (who, security) in [
        ("no certificate", pki.client(None)),
        ("another CA's certificate", pki.client(Some("stranger"))),
    ] {
        let refused = Client::connect(&address, &security).unwrap_err();
        assert!(
            matches!(refused, NetError::Connection { .. }),
            "{who}: {refused:?}"
        );
    }
    // A plaintext client gets no answer a TLS node would give.
    assert!(Client::connect(&address, &ClientSecurity::Insecure).is_err());
    // The node serves a proper client still, and nothing changed.
    let client = Client::connect(&address, &pki.client(Some("app"))).unwrap();
    assert_eq!(client.read("counters", "x", "value").unwrap(), counter(0));
    assert_eq!(node.0.status().clock.iter().count(), 0);
}

/// Reads one length-prefixed frame, `None` when the node closed the connection.
fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let mut block = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut block).ok()?;
    Some(block)
}

#[test]
fn malformed_requests_and_oversized_frames_close_the_connection() {
    let (node, address) = start(Security::Insecure);
    let timeout = Some(std::time::Duration::from_secs(10));

    let mut stream = TcpStream::connect(&address).unwrap();
    stream.set_read_timeout(timeout).unwrap();
    let ready = read_frame(&mut stream).expect("a greeting");
    assert!(matches!(
        protocol::decode::<Response>(&ready),
        Ok(Response::Ready { .. })
    ));
    stream.write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).unwrap();
    let refused = read_frame(&mut stream).expect("a refusal");
    assert!(
        matches!(
            protocol::decode::<Response>(&refused),
            Ok(Response::Refused(
                protocol::WireError::MalformedRequest { .. }
            ))
        ),
        "{refused:?}"
    );
    assert!(
        read_frame(&mut stream).is_none(),
        "the connection stays open"
    );

    let mut stream = TcpStream::connect(&address).unwrap();
    stream.set_read_timeout(timeout).unwrap();
    read_frame(&mut stream).expect("a greeting");
    // A length prefix of 4 GiB - 1: refused before anything is allocated for it.
    stream
        .write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3])
        .unwrap();
    let refused = read_frame(&mut stream).expect("a refusal");
    assert!(matches!(
        protocol::decode::<Response>(&refused),
        Ok(Response::Refused(
            protocol::WireError::MalformedRequest { .. }
        ))
    ));
    assert!(read_frame(&mut stream).is_none());
    assert_eq!(node.0.status().clock.iter().count(), 0);
}
