//! The client listener over real sockets: requests answered as the node's handle answers them,
//! the engine's typed errors carried over the wire with nothing applied, and refusals of clients
//! without a certificate from the cluster CA, of malformed requests and of oversized frames.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;

use rhizo_algebra::{AlgebraicValue, MergeType, Schema, ValueType};
use rhizo_commit::Operations;
use rhizo_txn::{ReadAfter, ReadConsistency, TransactionMode, TxnError};

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
    start_with(security, |_| {})
}

/// [`start`], with `adjust` applied to the node's configuration first.
fn start_with(security: Security, adjust: impl FnOnce(&mut NodeConfig)) -> (Started, String) {
    let n0 = NodeId::new("n0").unwrap();
    let members = BTreeMap::from([(n0, "127.0.0.1:0".to_owned())]);
    let mut config = NodeConfig::new(n0, "test", members, security).with_schema(schema());
    config.client = Some(ClientListenerConfig::new("127.0.0.1:0"));
    config.transport.handshake_timeout = std::time::Duration::from_secs(1);
    adjust(&mut config);
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

    let cells = [
        CellKey::new("counters", "page_views", "value"),
        CellKey::new("kv", "r", "reg"),
        CellKey::new("counters", "never", "value"),
    ];
    for consistency in [ReadConsistency::Local, ReadConsistency::Linearizable] {
        assert_eq!(
            client.read_cells(consistency, &cells).unwrap(),
            [counter(2), counter(7), counter(0)],
            "{consistency}"
        );
        assert_eq!(
            client
                .read_with(consistency, "counters", "clicks", "value")
                .unwrap(),
            counter(1)
        );
    }
    let unknown = [
        CellKey::new("counters", "page_views", "value"),
        CellKey::new("nope", "r", "value"),
    ];
    let refused = client
        .read_cells(ReadConsistency::Linearizable, &unknown)
        .unwrap_err();
    assert!(
        matches!(&refused, NetError::Engine(TxnError::InvalidOperations { errors }) if errors.len() == 1),
        "{refused}"
    );

    let spec = rhizo_algebra::ColumnSpec::new(MergeType::Max, ValueType::Integer).unwrap();
    client.declare_column("scores", "best", spec).unwrap();
    assert!(client.schema().unwrap().column("scores", "best").is_ok());
    let status = client.status().unwrap();
    assert_eq!(status.fingerprint, node.0.status().fingerprint);
    assert_eq!(status.members, vec![NodeId::new("n0").unwrap()]);
}

/// A read after commits the node holds is served; one after a commit it never gets waits the
/// commit timeout and is refused, over the wire as through the handle, naming what it lacks.
#[test]
fn a_read_after_commits_is_served_once_held_and_names_what_never_came() {
    let (node, address) = start_with(Security::Insecure, |config| {
        config.commit_timeout = std::time::Duration::from_millis(200);
    });
    let client = Client::connect(&address, &ClientSecurity::Insecure).unwrap();
    let mut tx = AlgebraicTransaction::new();
    tx.increment("counters", "page_views", "value", 3);
    let mut after = ReadAfter::new().with(
        &client
            .commit(TransactionMode::CoordinationFree, tx)
            .unwrap(),
    );
    let mut put = AlgebraicTransaction::new();
    put.put("kv", "r", "reg", 4);
    after.include(&client.commit(TransactionMode::Coordinated, put).unwrap());
    let cells = [
        CellKey::new("counters", "page_views", "value"),
        CellKey::new("kv", "r", "reg"),
    ];
    for consistency in [ReadConsistency::Local, ReadConsistency::Linearizable] {
        assert_eq!(
            client
                .read_cells_after(consistency, &cells, &after)
                .unwrap(),
            [counter(3), counter(4)]
        );
    }
    let elsewhere = rhizo_clock::Dot::new(NodeId::new("elsewhere").unwrap(), 5).unwrap();
    after.include_dot(elsewhere);
    let missing = rhizo_clock::VectorClock::new().with_node(elsewhere.node(), 5);
    let refused = client
        .read_cells_after(ReadConsistency::Local, &cells, &after)
        .unwrap_err();
    assert!(
        matches!(&refused, NetError::Engine(TxnError::NotCaughtUp { missing: m }) if *m == missing),
        "{refused}"
    );
    let refused = node
        .0
        .read_cells_after(ReadConsistency::Local, &cells, &after)
        .unwrap_err();
    assert!(
        matches!(&refused, NetError::Engine(TxnError::NotCaughtUp { missing: m }) if *m == missing),
        "{refused}"
    );
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

/// A read through the client leaves a transaction's read set as the same read on the node does:
/// a coordinated transaction's register read is validated by the log, other reads are not; a
/// register declared after the client cached the schema is known as one.
#[test]
fn a_read_into_a_transaction_through_the_client_joins_the_read_set_as_a_local_read_does() {
    let (node, address) = start(Security::Insecure);
    let client = Client::connect(&address, &ClientSecurity::Insecure).unwrap();
    let mut put = AlgebraicTransaction::new();
    put.put("kv", "r", "reg", 1);
    client.commit(TransactionMode::Coordinated, put).unwrap();
    let cells = [("kv", "r", "reg"), ("counters", "c", "value")];
    for mode in [
        TransactionMode::Coordinated,
        TransactionMode::CoordinationFree,
        TransactionMode::Auto,
    ] {
        let (mut remote, mut local) = (AlgebraicTransaction::new(), AlgebraicTransaction::new());
        for (table, row, column) in cells {
            let read = client
                .read_into(mode, &mut remote, table, row, column)
                .unwrap();
            let expected = node
                .0
                .with_engine(|e| e.read_into(mode, &mut local, table, row, column))
                .unwrap();
            assert_eq!(read, expected);
        }
        assert_eq!(remote.reads(), local.reads(), "{mode:?}");
    }

    let mut tx = AlgebraicTransaction::new();
    let read = client
        .read_into(TransactionMode::Coordinated, &mut tx, "kv", "r", "reg")
        .unwrap();
    assert_eq!(read, counter(1));
    tx.put("kv", "r", "reg", 2);
    let mut other = AlgebraicTransaction::new();
    other.put("kv", "r", "reg", 5);
    client.commit(TransactionMode::Coordinated, other).unwrap();
    let refused = client.commit(TransactionMode::Coordinated, tx).unwrap_err();
    assert!(
        matches!(refused, NetError::Engine(TxnError::ReadConflict { .. })),
        "{refused:?}"
    );
    assert_eq!(node.0.read("kv", "r", "reg").unwrap(), counter(5));

    let spec = rhizo_algebra::ColumnSpec::new(MergeType::Register, ValueType::Integer).unwrap();
    node.0.declare_column("kv", "late", spec).unwrap();
    let mut tx = AlgebraicTransaction::new();
    client
        .read_into(TransactionMode::Coordinated, &mut tx, "kv", "r", "late")
        .unwrap();
    assert_eq!(tx.reads().len(), 1, "the new register joined the read set");
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

/// Every error a request can meet, typed, as the node's engine would return it.
fn typed_errors() -> Vec<TxnError> {
    use rhizo_algebra::{AlgebraError, OpType};
    use rhizo_commit::{CellKey, LocalCommitError};
    use rhizo_txn::raft::{ProposalId, RaftError};
    use rhizo_txn::{CoordinationFreeError, Finished};
    let key = || CellKey::new("counters", "page_views", "value");
    let n1 = NodeId::new("n1").unwrap();
    let replica = |err: LocalCommitError| TxnError::from(CoordinationFreeError::from(err));
    vec![
        TxnError::EmptyTransaction,
        TxnError::TransactionFinished(Finished::Aborted),
        TxnError::InvalidOperations {
            errors: vec![
                (
                    key(),
                    AlgebraError::TypeMismatch {
                        expected: ValueType::Integer,
                        found: "float".into(),
                    },
                ),
                (
                    CellKey::new("t", "r", "c"),
                    AlgebraError::UnknownTable { table: "t".into() },
                ),
                (
                    key(),
                    AlgebraError::NonFiniteFloat {
                        bits: f64::NAN.to_bits(),
                    },
                ),
            ],
        },
        TxnError::NotAlgebraic {
            operations: vec![(key(), OpType::GenericOverwrite)],
        },
        TxnError::Overflow {
            key: key(),
            value_type: ValueType::Integer,
        },
        TxnError::ConditionFailed {
            key: key(),
            expected: "1".into(),
            found: "2".into(),
        },
        TxnError::ReadConflict {
            key: key(),
            expected: "1".into(),
            found: "3".into(),
        },
        TxnError::UnknownMode {
            name: "fast".into(),
        },
        TxnError::Schema(AlgebraError::InvalidColumn {
            merge: MergeType::Add,
            value_type: ValueType::StringSet,
            reason: "only numbers can be added or multiplied".into(),
        }),
        TxnError::Config {
            reason: "bad".into(),
        },
        CoordinationFreeError::NonAlgebraic {
            operations: vec![(key(), OpType::GenericConditional)],
        }
        .into(),
        replica(LocalCommitError::Read {
            key: Box::new(key()),
            source: Box::new(AlgebraError::Overflow {
                value_type: ValueType::Integer,
            }),
        }),
        replica(LocalCommitError::UnknownCell {
            key: Box::new(key()),
            source: Box::new(AlgebraError::UnknownColumn {
                table: "counters".into(),
                column: "nope".into(),
            }),
        }),
        replica(LocalCommitError::RowKeyTooLong {
            key: Box::new(key()),
            len: 5000,
            max: 4096,
        }),
        replica(LocalCommitError::TransactionTooLarge { len: 9, max: 8 }),
        replica(LocalCommitError::SchemaBehind { needed: 3, held: 2 }),
        TxnError::Poisoned {
            reason: "disk full".into(),
        },
        TxnError::Corrupt {
            segment: "00000001.log".into(),
            offset: 12,
            reason: "checksum".into(),
        },
        TxnError::NoLeader,
        TxnError::Undecided {
            proposal: ProposalId {
                node: n1,
                incarnation: 4,
                seq: 7,
            },
        },
        TxnError::Raft(Box::new(RaftError::Timeout { ticks: 50 })),
        TxnError::Raft(Box::new(RaftError::OutcomeUnknown { index: 9 })),
        TxnError::Raft(Box::new(RaftError::Interrupted)),
        TxnError::Raft(Box::new(RaftError::Overtaken { index: 12 })),
        TxnError::DirectoryLocked {
            dir: "/data".into(),
        },
        TxnError::WrongNode {
            expected: n1,
            found: NodeId::new("n2").unwrap(),
        },
    ]
}

/// Through the wire form and its bytes, each typed error comes back as the same value.
#[test]
fn every_input_and_outcome_error_keeps_its_type_across_the_wire() {
    let errors = typed_errors();
    assert_eq!(errors.len(), 26);
    for err in errors {
        let original = NetError::Engine(err);
        let wire = protocol::WireError::of(&original);
        assert!(
            !matches!(wire, protocol::WireError::NodeFailure { .. }),
            "{original:?} has no typed wire form"
        );
        let bytes = protocol::encode(&Response::Refused(wire)).unwrap();
        let Ok(Response::Refused(back)) = protocol::decode::<Response>(&bytes) else {
            panic!("{original:?} did not decode");
        };
        let back = back.into_net();
        assert_eq!(format!("{back:?}"), format!("{original:?}"));
        assert_eq!(back.to_string(), original.to_string());
    }
    // A failure without a typed form still reaches the client, as its message.
    let io = NetError::Engine(TxnError::Io {
        op: "sync",
        name: "log".into(),
        source: std::io::Error::other("disk on fire"),
    });
    let back = protocol::WireError::of(&io).into_net();
    assert!(
        matches!(&back, NetError::NodeFailure { reason } if reason.contains("disk on fire")),
        "{back:?}"
    );
}
