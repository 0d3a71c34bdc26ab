//! Real nodes on this machine: three `rhizo_net` nodes in this process, over mutual TLS on
//! 127.0.0.1, each on a data directory of its own.
//!
//! - Coordination-free throughput: one client thread per node commits one-increment transactions
//!   on keys drawn uniformly from 10,000 as fast as it can; the timer stops once every node holds
//!   every commit (equal vector clocks), then the expected total and equal fingerprints are checked.
//! - Visibility lag: an increment committed on one node, polled for on another.
//! - Bytes and frames per operation: what the transports wrote during the throughput phase.
//! - The Raft path: closed-loop clients committing coordinated register writes; each commit's
//!   latency from call to acknowledgement (durable on a quorum).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rhizo_algebra::{AlgebraicValue, MergeType, Schema, ValueType};
use rhizo_clock::NodeId;
use rhizo_commit::Operations;
use rhizo_net::pki::CertificateAuthority;
use rhizo_net::{ClientListenerConfig, Node, NodeConfig, NodeHandle, Security, TlsFiles};
use rhizo_txn::{SyncPolicy, TransactionMode};

use crate::results::NetRow;

const NODES: u32 = 3;
const KEYS: u64 = 10_000;

fn node(i: u32) -> NodeId {
    NodeId::numbered(i)
}

/// Counters (`counters.value`, ADD) and registers (`kv.reg`): what every networked row writes.
pub(crate) fn schema() -> Schema {
    Schema::builder()
        .table("counters")
        .column("value", MergeType::Add, ValueType::Integer)
        .table("kv")
        .column("reg", MergeType::Register, ValueType::Integer)
        .build()
        .expect("a valid schema")
}

/// Three nodes over TLS, shut down when dropped.
pub(crate) struct Cluster {
    pub(crate) handles: Vec<NodeHandle>,
    /// The cluster's certificate authority, for certificates issued after the start (clients').
    pub(crate) ca: CertificateAuthority,
    /// Where the CA's and the nodes' certificates are (`ca.crt`, `NODE.crt`, `NODE.key`).
    pub(crate) certs: PathBuf,
    _dirs: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for handle in &self.handles {
            let _ = handle.shutdown();
        }
    }
}

fn tls(dir: &Path, of: NodeId) -> Security {
    Security::Tls(TlsFiles {
        ca_cert: dir.join("ca.crt"),
        node_cert: dir.join(format!("{of}.crt")),
        node_key: dir.join(format!("{of}.key")),
    })
}

/// Starts the three nodes under `sync`, each on a data directory of its own; with
/// `client_listeners`, each also serves clients on a port of its own (`client_addr`).
pub(crate) fn start(sync: SyncPolicy, client_listeners: bool) -> Result<Cluster, String> {
    let dirs = tempfile::tempdir().map_err(|e| e.to_string())?;
    let certs = dirs.path().join("tls");
    let ca = CertificateAuthority::generate("bench").map_err(|e| e.to_string())?;
    ca.pem().write(&certs, "ca").map_err(|e| e.to_string())?;
    let listeners: Vec<std::net::TcpListener> = (0..NODES)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let mut members = BTreeMap::new();
    for (i, listener) in listeners.iter().enumerate() {
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        members.insert(node(i as u32), address.to_string());
        let issued = ca.issue(node(i as u32)).map_err(|e| e.to_string())?;
        issued
            .write(&certs, &node(i as u32).to_string())
            .map_err(|e| e.to_string())?;
    }
    let mut handles = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let id = node(i as u32);
        let mut config = NodeConfig::new(id, "bench", members.clone(), tls(&certs, id))
            .with_schema(schema())
            .with_sync(sync)
            .with_data_dir(dirs.path().join(id.to_string()));
        if client_listeners {
            config.client = Some(ClientListenerConfig::new("127.0.0.1:0"));
        }
        handles.push(Node::start_listening(config, listener).map_err(|e| e.to_string())?);
    }
    Ok(Cluster {
        handles,
        ca,
        certs,
        _dirs: dirs,
    })
}

/// The `q` quantile (0 to 1) of sorted values, by the nearest rank; 0 for none.
pub(crate) fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// The frames and frame bytes every node's transport has written so far.
fn wire(cluster: &Cluster) -> (u64, u64) {
    let mut frames = 0;
    let mut bytes = 0;
    for handle in &cluster.handles {
        for peer in handle.status().transport.peers.values() {
            for lane in [&peer.control, &peer.bulk] {
                frames += lane.frames_sent;
                bytes += lane.bytes_sent;
            }
        }
    }
    (frames, bytes)
}

/// Whether the nodes' clocks are equal: once every client has finished, each node's clock
/// covers all of its own commits, so equal clocks mean that every node holds every commit (and,
/// by convergence, the same state). Cheap to ask while the nodes run.
fn clocks_agree(cluster: &Cluster) -> bool {
    let clocks: Vec<rhizo_clock::VectorClock> = cluster
        .handles
        .iter()
        .map(|h| h.with_engine(|e| e.clock().clone()))
        .collect();
    clocks.windows(2).all(|w| w[0] == w[1])
}

/// Whether the nodes that agree on their clocks hold what that promises: the expected total on
/// the keys `<prefix>0..<prefix>keys` and equal fingerprints. Checked once the timer has stopped:
/// it reads every key and hashes every node's whole state, which is verification, not
/// convergence.
fn holds_everything(cluster: &Cluster, prefix: &str, total: i64, keys: u64) -> bool {
    let sum: i64 = (0..keys)
        .map(
            |k| match cluster.handles[0].read("counters", &format!("{prefix}{k}"), "value") {
                Ok(AlgebraicValue::Integer(v)) => v,
                _ => 0,
            },
        )
        .sum();
    let prints: Vec<u64> = cluster
        .handles
        .iter()
        .map(|h| h.with_engine(rhizo_txn::Engine::fingerprint))
        .collect();
    clocks_agree(cluster) && sum == total && prints.windows(2).all(|w| w[0] == w[1])
}

/// One client per node commits `per_node` increments on the keys `<prefix>0..`; returns
/// (seconds to converge, whether it did, frames and bytes written per operation).
fn cf_throughput(
    cluster: &Cluster,
    prefix: &str,
    per_node: u64,
) -> Result<(f64, bool, f64, f64), String> {
    let (frames_before, bytes_before) = wire(cluster);
    let started = Instant::now();
    std::thread::scope(|scope| -> Result<(), String> {
        let clients: Vec<_> = cluster
            .handles
            .iter()
            .enumerate()
            .map(|(n, handle)| {
                scope.spawn(move || -> Result<(), String> {
                    // A fixed stride walks the key space uniformly without a generator.
                    let mut key = (n as u64 * 3_301) % KEYS;
                    for _ in 0..per_node {
                        let mut tx = handle.transaction(TransactionMode::CoordinationFree);
                        tx.increment("counters", &format!("{prefix}{key}"), "value", 1);
                        tx.commit().map_err(|e| e.to_string())?;
                        key = (key + 7_919) % KEYS;
                    }
                    Ok(())
                })
            })
            .collect();
        for client in clients {
            client
                .join()
                .map_err(|_| "a client panicked".to_owned())??;
        }
        Ok(())
    })?;
    let total = (per_node * u64::from(NODES)) as i64;
    let deadline = started + Duration::from_secs(120);
    let mut agreed = false;
    while Instant::now() < deadline {
        if clocks_agree(cluster) {
            agreed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let seconds = started.elapsed().as_secs_f64();
    let done = agreed && holds_everything(cluster, prefix, total, KEYS);
    let (frames, bytes) = wire(cluster);
    let ops = total as f64;
    Ok((
        seconds,
        done,
        (frames - frames_before) as f64 / ops,
        (bytes - bytes_before) as f64 / ops,
    ))
}

/// Milliseconds from a commit on one node until another reads it, `samples` times.
fn visibility_lag(cluster: &Cluster, samples: usize) -> Result<Vec<f64>, String> {
    let mut lags = Vec::with_capacity(samples);
    for i in 0..samples {
        let (from, to) = (&cluster.handles[i % 3], &cluster.handles[(i + 1) % 3]);
        let mut tx = from.transaction(TransactionMode::CoordinationFree);
        tx.increment("counters", "probe", "value", 1);
        let started = Instant::now();
        tx.commit().map_err(|e| e.to_string())?;
        let wanted = AlgebraicValue::Integer(i as i64 + 1);
        loop {
            if to
                .read("counters", "probe", "value")
                .map_err(|e| e.to_string())?
                == wanted
            {
                break;
            }
            if started.elapsed() > Duration::from_secs(10) {
                return Err("a probe never became visible".to_owned());
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        lags.push(started.elapsed().as_secs_f64() * 1e3);
        // Spread the probes over the anti-entropy period.
        std::thread::sleep(Duration::from_micros(2_000 + (i as u64 * 1_337) % 9_000));
    }
    lags.sort_by(f64::total_cmp);
    Ok(lags)
}

/// Commits one coordinated register write as a client would: a retryable failure (no leader
/// during an election, an outcome a leader change left unknown — rewriting the same value is
/// harmless) is tried again, a few times; the latency counts every attempt.
fn commit_with_retries(handle: &NodeHandle, register: &str, value: i64) -> Result<(), String> {
    const ATTEMPTS: usize = 5;
    let mut last = String::new();
    for _ in 0..ATTEMPTS {
        let mut tx = handle.transaction(TransactionMode::Coordinated);
        tx.put("kv", register, "reg", value);
        match tx.commit() {
            Ok(_) => return Ok(()),
            Err(rhizo_net::NetError::Engine(err)) if err.is_retryable() => last = err.to_string(),
            Err(err) => return Err(err.to_string()),
        }
    }
    Err(format!("{ATTEMPTS} attempts failed; the last: {last}"))
}

/// `clients` closed-loop clients (spread over the nodes) commit `per_client` coordinated register
/// writes each; returns each commit's latency in milliseconds and the wall seconds.
fn raft_path(
    cluster: &Cluster,
    clients: usize,
    per_client: usize,
) -> Result<(Vec<f64>, f64), String> {
    // The first coordinated commit waits for the election: not part of the measurement.
    let mut tx = cluster.handles[0].transaction(TransactionMode::Coordinated);
    tx.put("kv", "warm", "reg", 0);
    tx.commit().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let latencies = std::thread::scope(|scope| -> Result<Vec<f64>, String> {
        let workers: Vec<_> = (0..clients)
            .map(|c| {
                let handle = &cluster.handles[c % cluster.handles.len()];
                scope.spawn(move || -> Result<Vec<f64>, String> {
                    let mut latencies = Vec::with_capacity(per_client);
                    for i in 0..per_client {
                        let at = Instant::now();
                        commit_with_retries(handle, &format!("r{c}"), i as i64)?;
                        latencies.push(at.elapsed().as_secs_f64() * 1e3);
                    }
                    Ok(latencies)
                })
            })
            .collect();
        let mut all = Vec::new();
        for worker in workers {
            all.extend(
                worker
                    .join()
                    .map_err(|_| "a client panicked".to_owned())??,
            );
        }
        Ok(all)
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let mut latencies = latencies;
    latencies.sort_by(f64::total_cmp);
    Ok((latencies, seconds))
}

/// The networked rows: throughput, visibility, wire cost and the Raft path, on three TLS nodes.
pub(crate) fn net_rows(quick: bool) -> Result<Vec<NetRow>, String> {
    let sync = SyncPolicy::Group {
        max_delay_ms: 2,
        max_records: 1024,
    };
    let cluster = start(sync, false)?;
    let per_node = if quick { 50_000 } else { 500_000 };
    // A first, shorter pass warms the page cache and allocator, as criterion's warm-up does.
    cf_throughput(&cluster, "warm", per_node / 10)?;
    let (seconds, converged, frames_per_op, bytes_per_op) = cf_throughput(&cluster, "k", per_node)?;
    let lags = visibility_lag(&cluster, if quick { 60 } else { 400 })?;
    let mut rows = vec![NetRow {
        path: "coordination_free".into(),
        sync: "group(2 ms, 1024)".into(),
        nodes: NODES as usize,
        clients: NODES as usize,
        keys: KEYS,
        ops: per_node as usize * NODES as usize,
        ops_per_sec: (per_node * u64::from(NODES)) as f64 / seconds,
        converged,
        p50_ms: percentile(&lags, 0.5),
        p99_ms: percentile(&lags, 0.99),
        latency: "visibility lag: commit on one node to read on another".into(),
        bytes_per_op,
        frames_per_op,
    }];
    drop(cluster);
    // The Raft path under the default policy: every commit durable on a quorum before its
    // acknowledgement.
    let cluster = start(SyncPolicy::EveryCommit, false)?;
    for clients in [1usize, 16, 64] {
        let per_client = if quick {
            200 / clients.min(4)
        } else {
            2_000 / clients.min(8)
        };
        let (latencies, seconds) = raft_path(&cluster, clients, per_client)?;
        rows.push(NetRow {
            path: "raft".into(),
            sync: "every_commit".into(),
            nodes: NODES as usize,
            clients,
            keys: clients as u64,
            ops: latencies.len(),
            ops_per_sec: latencies.len() as f64 / seconds,
            converged: true,
            p50_ms: percentile(&latencies, 0.5),
            p99_ms: percentile(&latencies, 0.99),
            latency: "commit latency: call to acknowledgement".into(),
            bytes_per_op: 0.0,
            frames_per_op: 0.0,
        });
    }
    Ok(rows)
}
