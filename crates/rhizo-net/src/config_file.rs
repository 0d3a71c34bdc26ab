//! The node program's configuration file: TOML, every key documented with its default in
//! `docs/config.md`. [`ConfigFile::parse`] reads it (an unknown key is an error naming it) and
//! [`ConfigFile::node_config`] turns it into the [`NodeConfig`] a node starts from; a key left
//! out keeps the default of the plain structs ([`NodeConfig::new`], [`TransportConfig::new`],
//! `RaftConfig::default`), so the file and the embedded API cannot disagree on a default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rhizo_algebra::{ColumnSpec, MergeType, Schema, ValueType};
use rhizo_clock::NodeId;
use rhizo_txn::raft::RaftConfig;
use rhizo_txn::{Backend, SyncPolicy};
use serde::Deserialize;

use crate::{
    ClientListenerConfig, MetricsConfig, NetError, NodeConfig, QueueLimits, Result, Security,
    TlsFiles,
};

/// The file as written. Optional keys are `None` when left out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// This node's id (1 to 16 bytes; under TLS a DNS name that its certificate names).
    pub node_id: String,
    /// Nodes of another cluster are refused.
    #[serde(default = "default_cluster_id")]
    pub cluster_id: String,
    /// Where the node's log lives.
    pub data_dir: PathBuf,
    /// The peer listen address; by default this node's address in `members`.
    pub listen: Option<String>,
    /// Plaintext and unauthenticated peers and clients, instead of `[tls]` (a warning is logged).
    #[serde(default)]
    pub insecure: bool,
    /// The engine's tick (Raft elections and heartbeats count in ticks), in milliseconds.
    pub tick_ms: Option<u64>,
    /// How often an anti-entropy round runs, in milliseconds.
    pub sync_interval_ms: Option<u64>,
    /// How many peers one anti-entropy round syncs with.
    pub fanout: Option<usize>,
    /// The longest a coordinated commit waits, in milliseconds.
    pub commit_timeout_ms: Option<u64>,
    /// Every member (this node included): node id → the address peers dial.
    pub members: BTreeMap<String, String>,
    /// The TLS files (required unless `insecure = true`).
    pub tls: Option<TlsSection>,
    /// The client listener (off when left out).
    pub client: Option<ClientSection>,
    /// The Prometheus endpoint (off when left out).
    pub metrics: Option<MetricsSection>,
    /// When commits are made durable.
    #[serde(default)]
    pub sync: SyncSection,
    /// The engine's log and buffers.
    #[serde(default)]
    pub engine: EngineSection,
    /// Raft, for coordinated transactions (used when there are several members).
    #[serde(default)]
    pub raft: RaftSection,
    /// The peer transport's limits and timeouts.
    #[serde(default)]
    pub transport: TransportSection,
    /// Columns declared at start: table → column → declaration. Every member must be given the
    /// same.
    #[serde(default)]
    pub schema: BTreeMap<String, BTreeMap<String, ColumnSection>>,
}

fn default_cluster_id() -> String {
    "rhizo".to_owned()
}

/// `[tls]`: PEM files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// The cluster CA's certificate.
    pub ca_cert: PathBuf,
    /// This node's certificate (naming `node_id`).
    pub cert: PathBuf,
    /// This node's private key.
    pub key: PathBuf,
}

/// `[client]`: the listener programs other than this one use.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSection {
    /// The address to listen on.
    pub listen: String,
    /// Client connections served at once; more are closed on accept.
    pub max_connections: Option<usize>,
    /// A client connection idle this long is closed, in milliseconds.
    pub idle_timeout_ms: Option<u64>,
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// The address of the HTTP scrape endpoint.
    pub listen: String,
    /// How often the node's gauges and counters are refreshed, in milliseconds.
    pub interval_ms: Option<u64>,
}

/// `[sync]`: the sync policy.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSection {
    /// `"every_commit"`, `"group"` or `"none"`.
    pub policy: Option<String>,
    /// Under `"group"`: the longest a commit waits for its sync, in milliseconds.
    pub group_max_delay_ms: Option<u64>,
    /// Under `"group"`: the most commits one sync covers.
    pub group_max_records: Option<usize>,
}

/// `[engine]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    /// The log is compacted once the records after its checkpoint exceed this many bytes.
    pub compact_after_bytes: Option<u64>,
    /// Early deltas kept waiting for their causal base.
    pub max_buffered_deltas: Option<usize>,
}

/// `[raft]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaftSection {
    /// Base election timeout, in ticks.
    pub election_tick: Option<usize>,
    /// Heartbeat interval, in ticks.
    pub heartbeat_tick: Option<usize>,
    /// A proposal undecided after this many ticks times out.
    pub proposal_timeout_ticks: Option<u32>,
    /// Snapshot once this many applied entries follow the last one.
    pub compact_after_entries: Option<u64>,
    /// Seeds the election timeouts.
    pub seed: Option<u64>,
    /// Whether a leader cut off from a quorum steps down.
    pub check_quorum: Option<bool>,
    /// Whether candidates check they could win first.
    pub pre_vote: Option<bool>,
    /// Whether this node joins a running cluster (added with `rhizo members add`).
    pub join: Option<bool>,
}

/// `[transport]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)] // each key is `TransportConfig`'s field of the same name, in docs/config.md
pub struct TransportSection {
    pub max_frame_bytes: Option<usize>,
    pub max_message_bytes: Option<usize>,
    pub control_queue_messages: Option<usize>,
    pub control_queue_bytes: Option<usize>,
    pub bulk_queue_messages: Option<usize>,
    pub bulk_queue_bytes: Option<usize>,
    pub inbound_capacity: Option<usize>,
    pub handshake_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub max_pending_handshakes: Option<usize>,
    pub shutdown_grace_ms: Option<u64>,
    pub backoff_initial_ms: Option<u64>,
    pub backoff_max_ms: Option<u64>,
    pub backoff_jitter: Option<f64>,
    pub backoff_seed: Option<u64>,
}

/// `[schema.TABLE.COLUMN]`: one column.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSection {
    /// The merge type's name: `ADD`, `MULTIPLY`, `MAX`, `MIN`, `UNION`, `INTERSECT`, `OR_SET`,
    /// `REGISTER`.
    pub merge: String,
    /// The value type: `integer`, `float`, `decimal(N)`, `boolean`, `string_set`, `int_set`.
    #[serde(rename = "type")]
    pub value_type: String,
    /// At most this many elements per set operand.
    pub max_set_len: Option<u32>,
    /// At most this many bytes per string element.
    pub max_element_len: Option<u32>,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> NetError {
    NetError::InvalidConfig {
        field,
        reason: reason.into(),
    }
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

fn socket_address(field: &'static str, text: &str) -> Result<SocketAddr> {
    text.parse().map_err(|err| {
        invalid(
            field,
            format!("{text:?} is not an IP address and port: {err}"),
        )
    })
}

impl ConfigFile {
    /// Parses the text of a configuration file. An unknown key, a missing required one or a
    /// value of the wrong type is [`NetError::ConfigFile`], naming the key and its line.
    pub fn parse(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|err| NetError::ConfigFile {
            path: None,
            reason: err.to_string(),
        })
    }

    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|err| NetError::ConfigFile {
            path: Some(path.display().to_string()),
            reason: err.to_string(),
        })?;
        Self::parse(&text).map_err(|err| match err {
            NetError::ConfigFile { reason, .. } => NetError::ConfigFile {
                path: Some(path.display().to_string()),
                reason,
            },
            other => other,
        })
    }

    /// The node configuration this file describes. Relative paths (`data_dir`, the TLS files)
    /// are taken relative to `base_dir`, the directory of the file.
    pub fn node_config(&self, base_dir: &Path) -> Result<NodeConfig> {
        let node = NodeId::new(&self.node_id).map_err(|err| invalid("node_id", err.to_string()))?;
        let members = self.member_addresses()?;
        if !members.contains_key(&node) {
            return Err(invalid("members", format!("must list this node, {node}")));
        }
        let security = self.security(base_dir)?;
        let mut config = NodeConfig::new(node, self.cluster_id.clone(), members, security)
            .with_data_dir(base_dir.join(&self.data_dir))
            .with_schema(self.schema()?)
            .with_sync(self.sync.policy()?);
        if let Some(listen) = &self.listen {
            config.transport.listen = listen.clone();
        }
        self.set_timing(&mut config);
        self.engine.apply(&mut config);
        if let Backend::Raft(raft) = &mut config.engine.backend {
            self.raft.apply(raft);
        }
        self.transport.apply(&mut config);
        config.client = self
            .client
            .as_ref()
            .map(ClientSection::config)
            .transpose()?;
        config.metrics = self
            .metrics
            .as_ref()
            .map(MetricsSection::config)
            .transpose()?;
        Ok(config)
    }

    fn member_addresses(&self) -> Result<BTreeMap<NodeId, String>> {
        self.members
            .iter()
            .map(|(id, address)| {
                let id = NodeId::new(id).map_err(|err| invalid("members", err.to_string()))?;
                Ok((id, address.clone()))
            })
            .collect()
    }

    fn security(&self, base_dir: &Path) -> Result<Security> {
        match (&self.tls, self.insecure) {
            (Some(_), true) => Err(invalid("tls", "give [tls] or insecure = true, not both")),
            (None, false) => Err(invalid(
                "tls",
                "a [tls] section is required (or insecure = true, for a trusted network)",
            )),
            (None, true) => Ok(Security::Insecure),
            (Some(tls), false) => Ok(Security::Tls(TlsFiles {
                ca_cert: base_dir.join(&tls.ca_cert),
                node_cert: base_dir.join(&tls.cert),
                node_key: base_dir.join(&tls.key),
            })),
        }
    }

    fn set_timing(&self, config: &mut NodeConfig) {
        if let Some(ms) = self.tick_ms {
            config.tick = millis(ms);
        }
        if let Some(ms) = self.sync_interval_ms {
            config.sync_interval = millis(ms);
        }
        if let Some(fanout) = self.fanout {
            config.fanout = fanout;
        }
        if let Some(ms) = self.commit_timeout_ms {
            config.commit_timeout = millis(ms);
        }
    }

    fn schema(&self) -> Result<Schema> {
        let mut schema = Schema::new();
        for (table, columns) in &self.schema {
            for (column, section) in columns {
                schema = schema
                    .with_column(table, column, section.spec()?)
                    .map_err(|err| invalid("schema", err.to_string()))?;
            }
        }
        Ok(schema)
    }
}

impl SyncSection {
    /// The default group settings: a commit waits at most 2 ms, a sync covers at most 256.
    const GROUP_MAX_DELAY_MS: u64 = 2;
    const GROUP_MAX_RECORDS: usize = 256;

    fn policy(&self) -> Result<SyncPolicy> {
        let name = self.policy.as_deref().unwrap_or("every_commit");
        SyncPolicy::named(
            name,
            self.group_max_delay_ms.unwrap_or(Self::GROUP_MAX_DELAY_MS),
            self.group_max_records.unwrap_or(Self::GROUP_MAX_RECORDS),
        )
        .map_err(|err| invalid("sync.policy", err.to_string()))
    }
}

impl EngineSection {
    fn apply(&self, config: &mut NodeConfig) {
        if let Some(bytes) = self.compact_after_bytes {
            config.engine.compact_after_bytes = bytes;
        }
        if let Some(deltas) = self.max_buffered_deltas {
            config.engine.max_buffered_deltas = deltas;
        }
    }
}

impl RaftSection {
    fn apply(&self, raft: &mut RaftConfig) {
        let Self {
            election_tick,
            heartbeat_tick,
            proposal_timeout_ticks,
            compact_after_entries,
            seed,
            check_quorum,
            pre_vote,
            join,
        } = self.clone();
        raft.election_tick = election_tick.unwrap_or(raft.election_tick);
        raft.heartbeat_tick = heartbeat_tick.unwrap_or(raft.heartbeat_tick);
        raft.proposal_timeout_ticks = proposal_timeout_ticks.unwrap_or(raft.proposal_timeout_ticks);
        raft.compact_after_entries = compact_after_entries.unwrap_or(raft.compact_after_entries);
        raft.seed = seed.unwrap_or(raft.seed);
        raft.check_quorum = check_quorum.unwrap_or(raft.check_quorum);
        raft.pre_vote = pre_vote.unwrap_or(raft.pre_vote);
        raft.join = join.unwrap_or(raft.join);
    }
}

impl TransportSection {
    fn apply(&self, config: &mut NodeConfig) {
        let t = &mut config.transport;
        let set = |target: &mut usize, value: Option<usize>| *target = value.unwrap_or(*target);
        let set_ms = |target: &mut Duration, value: Option<u64>| {
            *target = value.map_or(*target, millis);
        };
        set(&mut t.max_frame_bytes, self.max_frame_bytes);
        set(&mut t.max_message_bytes, self.max_message_bytes);
        let queue = |limits: &mut QueueLimits, messages, bytes| {
            set(&mut limits.max_messages, messages);
            set(&mut limits.max_bytes, bytes);
        };
        queue(
            &mut t.control_queue,
            self.control_queue_messages,
            self.control_queue_bytes,
        );
        queue(
            &mut t.bulk_queue,
            self.bulk_queue_messages,
            self.bulk_queue_bytes,
        );
        set(&mut t.inbound_capacity, self.inbound_capacity);
        set_ms(&mut t.handshake_timeout, self.handshake_timeout_ms);
        set_ms(&mut t.idle_timeout, self.idle_timeout_ms);
        set(&mut t.max_pending_handshakes, self.max_pending_handshakes);
        set_ms(&mut t.shutdown_grace, self.shutdown_grace_ms);
        set_ms(&mut t.backoff.initial, self.backoff_initial_ms);
        set_ms(&mut t.backoff.max, self.backoff_max_ms);
        t.backoff.jitter = self.backoff_jitter.unwrap_or(t.backoff.jitter);
        t.backoff.seed = self.backoff_seed.unwrap_or(t.backoff.seed);
    }
}

impl ClientSection {
    fn config(&self) -> Result<ClientListenerConfig> {
        let mut config = ClientListenerConfig::new(self.listen.clone());
        if let Some(max) = self.max_connections {
            config.max_connections = max;
        }
        if let Some(ms) = self.idle_timeout_ms {
            config.idle_timeout = millis(ms);
        }
        Ok(config)
    }
}

impl MetricsSection {
    fn config(&self) -> Result<MetricsConfig> {
        let mut config = MetricsConfig::new(socket_address("metrics.listen", &self.listen)?);
        if let Some(ms) = self.interval_ms {
            config.interval = millis(ms);
        }
        Ok(config)
    }
}

impl ColumnSection {
    fn spec(&self) -> Result<ColumnSpec> {
        let merge: MergeType = self
            .merge
            .parse()
            .map_err(|err: rhizo_algebra::AlgebraError| invalid("schema", err.to_string()))?;
        let value_type: ValueType = self
            .value_type
            .parse()
            .map_err(|err: rhizo_algebra::AlgebraError| invalid("schema", err.to_string()))?;
        let mut spec =
            ColumnSpec::new(merge, value_type).map_err(|err| invalid("schema", err.to_string()))?;
        if let Some(max) = self.max_set_len {
            spec = spec.with_max_set_len(max);
        }
        if let Some(max) = self.max_element_len {
            spec = spec.with_max_element_len(max);
        }
        Ok(spec)
    }
}

#[cfg(test)]
mod tests;
