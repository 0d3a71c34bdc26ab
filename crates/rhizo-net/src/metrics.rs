//! What a node reports through the `metrics` facade, and the opt-in Prometheus endpoint that
//! serves it. Every metric is listed in [`METRICS`] and documented in `docs/metrics.md`; each
//! carries the label `node` (this node's id).
//!
//! Counters and gauges the transport and the engine already keep (frames, bytes, queues, drops,
//! connections, handshake failures, Raft's term and indices) are copied into the recorder every
//! `MetricsConfig::interval` by the node's loop, so the paths that count them pay nothing more.
//! Latencies and anti-entropy messages are recorded as they happen, through handles registered
//! once — and only when the node was started with metrics, so a node without them does not even
//! read the clock for them.

use std::net::SocketAddr;
use std::time::Duration;

use metrics::{Counter, Histogram, Unit, counter, gauge, histogram};
use metrics_exporter_prometheus::PrometheusBuilder;
use rhizo_clock::NodeId;
use rhizo_commit::Message;
use rhizo_txn::{EngineMessage, ReadConsistency};

use crate::client::protocol::Request;
use crate::{Lane, LaneStats, NetError, NodeStatus, Result};

/// Where and how often a node exports metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsConfig {
    /// The address of the HTTP endpoint Prometheus scrapes (any path answers).
    pub listen: SocketAddr,
    /// How often the copied counters and gauges are refreshed.
    pub interval: Duration,
}

impl MetricsConfig {
    /// An endpoint at `listen`, refreshed every second.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            interval: Duration::from_secs(1),
        }
    }
}

/// What kind of metric a name is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution (exported as a summary).
    Histogram,
}

/// Every metric a node exports: name, kind, unit and help text.
pub const METRICS: &[(&str, MetricKind, &str)] = &[
    (
        "rhizo_peer_frames_sent_total",
        MetricKind::Counter,
        "Frames written to a peer, per lane",
    ),
    (
        "rhizo_peer_frames_received_total",
        MetricKind::Counter,
        "Frames read from a peer, per lane",
    ),
    (
        "rhizo_peer_bytes_sent_total",
        MetricKind::Counter,
        "Frame bytes written to a peer, per lane",
    ),
    (
        "rhizo_peer_bytes_received_total",
        MetricKind::Counter,
        "Frame bytes read from a peer, per lane",
    ),
    (
        "rhizo_peer_messages_sent_total",
        MetricKind::Counter,
        "Messages written to a peer, per lane",
    ),
    (
        "rhizo_peer_messages_received_total",
        MetricKind::Counter,
        "Messages received whole from a peer, per lane",
    ),
    (
        "rhizo_peer_queue_messages",
        MetricKind::Gauge,
        "Messages queued towards a peer, per lane",
    ),
    (
        "rhizo_peer_queue_bytes",
        MetricKind::Gauge,
        "Bytes queued towards a peer, per lane",
    ),
    (
        "rhizo_peer_dropped_total",
        MetricKind::Counter,
        "Sends refused (peer unreachable or queue full), per lane",
    ),
    (
        "rhizo_peer_connected",
        MetricKind::Gauge,
        "1 while the outbound connection to a peer is up, per lane",
    ),
    (
        "rhizo_peer_connections_total",
        MetricKind::Counter,
        "Outbound connections established to a peer",
    ),
    (
        "rhizo_handshake_failures_total",
        MetricKind::Counter,
        "Failed peer handshakes, by peer and reason",
    ),
    (
        "rhizo_connection_closes_total",
        MetricKind::Counter,
        "Established peer connections closed, by reason",
    ),
    (
        "rhizo_anti_entropy_rounds_total",
        MetricKind::Counter,
        "Anti-entropy exchanges this node started",
    ),
    (
        "rhizo_anti_entropy_messages_total",
        MetricKind::Counter,
        "Digests, deltas and snapshots sent and received",
    ),
    (
        "rhizo_peers_behind",
        MetricKind::Gauge,
        "Members this node believes lack something it holds",
    ),
    (
        "rhizo_commit_seconds",
        MetricKind::Histogram,
        "Commit latency through this node, by path",
    ),
    (
        "rhizo_apply_seconds",
        MetricKind::Histogram,
        "Time to apply one batch of messages from peers",
    ),
    (
        "rhizo_raft_term",
        MetricKind::Gauge,
        "The current Raft term",
    ),
    (
        "rhizo_raft_is_leader",
        MetricKind::Gauge,
        "1 while this node is the Raft leader",
    ),
    (
        "rhizo_raft_leader_known",
        MetricKind::Gauge,
        "1 while this node knows a Raft leader",
    ),
    (
        "rhizo_raft_commit_index",
        MetricKind::Gauge,
        "The highest Raft index known committed",
    ),
    (
        "rhizo_raft_applied_index",
        MetricKind::Gauge,
        "The last Raft index applied here",
    ),
    (
        "rhizo_tls_certificate_expiry_seconds",
        MetricKind::Gauge,
        "When this node's certificate expires (Unix time)",
    ),
    (
        "rhizo_client_requests_total",
        MetricKind::Counter,
        "Client requests answered, by request and outcome",
    ),
    (
        "rhizo_client_refused_total",
        MetricKind::Counter,
        "Client connections refused, by reason",
    ),
];

/// Installs the process's Prometheus recorder and starts its HTTP endpoint on the current
/// tokio runtime. The recorder is process-wide: a second install in one process is refused.
pub(crate) fn install(config: &MetricsConfig) -> Result<()> {
    PrometheusBuilder::new()
        .with_http_listener(config.listen)
        .install()
        .map_err(|err| NetError::Metrics {
            reason: err.to_string(),
        })?;
    for (name, kind, help) in METRICS {
        let unit = if name.ends_with("_seconds") {
            Unit::Seconds
        } else if name.contains("bytes") {
            Unit::Bytes
        } else {
            Unit::Count
        };
        match kind {
            MetricKind::Counter => metrics::describe_counter!(*name, unit, *help),
            MetricKind::Gauge => metrics::describe_gauge!(*name, unit, *help),
            MetricKind::Histogram => metrics::describe_histogram!(*name, unit, *help),
        }
    }
    Ok(())
}

/// The handles a node records to as things happen.
pub(crate) struct NodeMetrics {
    node: String,
    commit_local: Histogram,
    commit_consensus: Histogram,
    apply: Histogram,
    rounds: Counter,
    /// `[sent, received][digest, delta, snapshot]`.
    anti_entropy: [[Counter; 3]; 2],
    pub(crate) interval: Duration,
    pub(crate) certificate_expiry: Option<i64>,
}

/// Whether an anti-entropy message was sent or received.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Direction {
    Sent = 0,
    Received = 1,
}

impl NodeMetrics {
    pub(crate) fn new(node: NodeId, interval: Duration, certificate_expiry: Option<i64>) -> Self {
        let node = node.to_string();
        let commit = |path: &'static str| histogram!("rhizo_commit_seconds", "node" => node.clone(), "path" => path);
        let exchanged = |direction: &'static str| {
            ["digest", "delta", "snapshot"].map(|kind| {
                counter!("rhizo_anti_entropy_messages_total", "node" => node.clone(),
                    "direction" => direction, "kind" => kind)
            })
        };
        Self {
            commit_local: commit("local"),
            commit_consensus: commit("consensus"),
            apply: histogram!("rhizo_apply_seconds", "node" => node.clone()),
            rounds: counter!("rhizo_anti_entropy_rounds_total", "node" => node.clone()),
            anti_entropy: [exchanged("sent"), exchanged("received")],
            node,
            interval,
            certificate_expiry,
        }
    }

    pub(crate) fn committed(&self, path: rhizo_txn::CommitPath, elapsed: Duration) {
        match path {
            rhizo_txn::CommitPath::Local => self.commit_local.record(elapsed),
            rhizo_txn::CommitPath::Consensus => self.commit_consensus.record(elapsed),
        }
    }

    pub(crate) fn applied(&self, elapsed: Duration) {
        self.apply.record(elapsed);
    }

    pub(crate) fn round_started(&self) {
        self.rounds.increment(1);
    }

    /// Counts an anti-entropy message (Raft's messages are not counted here).
    pub(crate) fn exchanged(&self, direction: Direction, message: &EngineMessage) {
        let EngineMessage::Replica(message) = message else {
            return;
        };
        let Message::Sync(sync) = &**message;
        let kind = match sync.delta() {
            None => 0,
            Some(delta) if !delta.is_snapshot() => 1,
            Some(_) => 2,
        };
        self.anti_entropy[direction as usize][kind].increment(1);
    }

    /// Copies a status snapshot into the recorder.
    pub(crate) fn publish(&self, status: &NodeStatus) {
        let node = &self.node;
        gauge!("rhizo_peers_behind", "node" => node.clone()).set(status.peers_behind.len() as f64);
        if let Some(expiry) = self.certificate_expiry {
            gauge!("rhizo_tls_certificate_expiry_seconds", "node" => node.clone())
                .set(expiry as f64);
        }
        if let Some(raft) = &status.raft {
            let set = |name: &'static str, value: u64| {
                gauge!(name, "node" => node.clone()).set(value as f64);
            };
            set("rhizo_raft_term", raft.term);
            set("rhizo_raft_commit_index", raft.commit_index);
            set("rhizo_raft_applied_index", raft.applied);
            set(
                "rhizo_raft_is_leader",
                u64::from(raft.leader == Some(status.node)),
            );
            set("rhizo_raft_leader_known", u64::from(raft.leader.is_some()));
        }
        for (peer, stats) in &status.transport.peers {
            let peer = peer.to_string();
            for (lane, lane_stats) in [(Lane::Control, &stats.control), (Lane::Bulk, &stats.bulk)] {
                publish_lane(node, &peer, lane, lane_stats);
            }
            counter!("rhizo_peer_connections_total", "node" => node.clone(), "peer" => peer.clone())
                .absolute(stats.connections);
            for (reason, count) in &stats.handshake_failures {
                counter!("rhizo_handshake_failures_total", "node" => node.clone(),
                    "peer" => peer.clone(), "reason" => format!("{reason:?}"))
                .absolute(*count);
            }
        }
        for (reason, count) in &status.transport.unattributed_handshake_failures {
            counter!("rhizo_handshake_failures_total", "node" => node.clone(),
                "peer" => "", "reason" => format!("{reason:?}"))
            .absolute(*count);
        }
        for (reason, count) in &status.transport.connection_closes {
            counter!("rhizo_connection_closes_total", "node" => node.clone(),
                "reason" => format!("{reason:?}"))
            .absolute(*count);
        }
    }
}

fn publish_lane(node: &str, peer: &str, lane: Lane, stats: &LaneStats) {
    let labels = [
        ("node", node.to_owned()),
        ("peer", peer.to_owned()),
        ("lane", lane.to_string()),
    ];
    let counters = [
        ("rhizo_peer_frames_sent_total", stats.frames_sent),
        ("rhizo_peer_frames_received_total", stats.frames_received),
        ("rhizo_peer_bytes_sent_total", stats.bytes_sent),
        ("rhizo_peer_bytes_received_total", stats.bytes_received),
        ("rhizo_peer_messages_sent_total", stats.messages_sent),
        (
            "rhizo_peer_messages_received_total",
            stats.messages_received,
        ),
        ("rhizo_peer_dropped_total", stats.dropped),
    ];
    for (name, value) in counters {
        counter!(name, &labels).absolute(value);
    }
    let gauges = [
        ("rhizo_peer_queue_messages", stats.queued_messages),
        ("rhizo_peer_queue_bytes", stats.queued_bytes),
        ("rhizo_peer_connected", u64::from(stats.connected)),
    ];
    for (name, value) in gauges {
        gauge!(name, &labels).set(value as f64);
    }
}

/// The kinds of client request, as the metrics label them.
#[derive(Clone, Copy, Debug)]
pub(crate) enum RequestKind {
    Commit,
    Read,
    ReadLinearizable,
    Status,
    DeclareColumn,
    Schema,
    Members,
    ChangeMembers,
}

impl RequestKind {
    pub(crate) fn of(request: &Request) -> Self {
        match request {
            Request::Commit { .. } => Self::Commit,
            Request::Read { .. } => Self::Read,
            Request::ReadCells { consistency, .. }
            | Request::ReadCellsAfter { consistency, .. } => match consistency {
                ReadConsistency::Linearizable => Self::ReadLinearizable,
                _ => Self::Read,
            },
            Request::Status => Self::Status,
            Request::DeclareColumn { .. } => Self::DeclareColumn,
            Request::Schema => Self::Schema,
            Request::Members => Self::Members,
            Request::ChangeMembers(_) => Self::ChangeMembers,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Commit => "commit",
            Self::Read => "read",
            Self::ReadLinearizable => "read_linearizable",
            Self::Status => "status",
            Self::DeclareColumn => "declare_column",
            Self::Schema => "schema",
            Self::Members => "members",
            Self::ChangeMembers => "change_members",
        }
    }
}

/// Counts an answered client request (a no-op without a recorder).
pub(crate) fn client_request(node: NodeId, kind: RequestKind, ok: bool) {
    let outcome = if ok { "ok" } else { "refused" };
    counter!("rhizo_client_requests_total", "node" => node.to_string(),
        "request" => kind.label(), "outcome" => outcome)
    .increment(1);
}

/// Counts a refused client connection (a no-op without a recorder).
pub(crate) fn client_refused(node: NodeId, reason: &'static str) {
    counter!("rhizo_client_refused_total", "node" => node.to_string(), "reason" => reason)
        .increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The metric names docs/metrics.md lists, in order.
    fn documented() -> Vec<String> {
        include_str!("../../../docs/metrics.md")
            .lines()
            .filter_map(|line| line.strip_prefix("| `rhizo_"))
            .filter_map(|rest| rest.split('`').next())
            .map(|name| format!("rhizo_{name}"))
            .collect()
    }

    #[test]
    fn every_metric_is_documented_and_every_documented_metric_exported() {
        let exported: Vec<String> = METRICS
            .iter()
            .map(|(name, ..)| (*name).to_owned())
            .collect();
        assert_eq!(documented(), exported);
    }
}
