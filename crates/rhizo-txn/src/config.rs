//! How an engine is set up: its node, members, schema, sync policy and backend.

use rhizo_algebra::{MergeType, Schema, ValueType};
use rhizo_clock::NodeId;
use rhizo_commit::consensus_origin;

use crate::raft::RaftConfig;
use crate::{Result, TxnError};

/// Which backend orders an engine's coordinated transactions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Backend {
    /// This node's own log order (the default): serializable, for a node alone. In a cluster
    /// of several members it refuses coordinated transactions (only Raft orders them there);
    /// coordination-free ones replicate by anti-entropy as usual.
    #[default]
    SingleNode,
    /// A Raft group of every member ([`crate::raft`]): coordinated transactions are proposed
    /// to the log and applied on every node in log order.
    Raft(RaftConfig),
}

impl Backend {
    /// The backend called `name`: `"single_node"`, or `"raft"` (with [`RaftConfig::default`]).
    ///
    /// ```
    /// use rhizo_txn::Backend;
    /// assert_eq!(Backend::named("single_node").unwrap(), Backend::SingleNode);
    /// assert!(matches!(Backend::named("raft").unwrap(), Backend::Raft(_)));
    /// assert!(Backend::named("paxos").is_err()); // the error lists the valid names
    /// ```
    pub fn named(name: &str) -> Result<Self> {
        match name {
            "single_node" => Ok(Self::SingleNode),
            "raft" => Ok(Self::Raft(RaftConfig::default())),
            other => Err(TxnError::UnknownName {
                what: "backend",
                name: other.to_owned(),
                valid: "\"single_node\", \"raft\"",
            }),
        }
    }
}

/// When the log is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// `fdatasync` before every commit returns: a commit that returned is durable. The default,
    /// because an acknowledged commit must survive a crash.
    #[default]
    EveryCommit,
    /// Group commit: frames accumulate in memory and are written and synced together once
    /// `max_records` commits wait, or by the engine's background flusher once the first of
    /// them has waited `max_delay_ms` (see [`EngineConfig::background_flush`]). With the
    /// flusher, the commit that fills a group writes it to the file and hands its sync to the
    /// flusher, which syncs outside the log's lock while later commits go on (so one sync may
    /// cover several groups when the disk is slower than the commits); without it, that commit
    /// syncs the group itself and returns durable. A commit is durable only when
    /// [`crate::Engine::is_durable`] says so, which is only after a sync covering it returned;
    /// messages never leave before the records they depend on are durable.
    Group {
        /// The longest a commit waits for its sync, in milliseconds.
        max_delay_ms: u64,
        /// The most commits one sync covers.
        max_records: usize,
    },
    /// Frames are buffered and written to the file in batches of 64 KiB (and by
    /// [`crate::Engine::tick`]), and synced only by [`crate::Engine::flush`], compaction,
    /// [`crate::Engine::close`] and before any message leaves. A process crash may lose the
    /// newest commits whose frames were not yet written (at most one batch, and nothing older
    /// than the last tick); a power loss may lose every commit since the last sync. Dropping
    /// the engine writes and syncs what it holds, as `close` does.
    None,
}

impl SyncPolicy {
    /// The policy called `name`: `"every_commit"`, `"group"` (with these group settings) or
    /// `"none"`.
    ///
    /// ```
    /// use rhizo_txn::SyncPolicy;
    /// assert_eq!(SyncPolicy::named("every_commit", 0, 0).unwrap(), SyncPolicy::EveryCommit);
    /// assert_eq!(
    ///     SyncPolicy::named("group", 5, 64).unwrap(),
    ///     SyncPolicy::Group { max_delay_ms: 5, max_records: 64 }
    /// );
    /// assert!(SyncPolicy::named("sometimes", 0, 0).is_err());
    /// ```
    pub fn named(name: &str, max_delay_ms: u64, max_records: usize) -> Result<Self> {
        match name {
            "every_commit" => Ok(Self::EveryCommit),
            "group" => Ok(Self::Group {
                max_delay_ms,
                max_records,
            }),
            "none" => Ok(Self::None),
            other => Err(TxnError::UnknownName {
                what: "sync policy",
                name: other.to_owned(),
                valid: "\"every_commit\", \"group\", \"none\"",
            }),
        }
    }
}

/// How an [`crate::Engine`] is set up.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// This node's id; a data directory belongs to one node.
    pub node_id: NodeId,
    /// Every member of the cluster (this node is added if missing).
    pub members: Vec<NodeId>,
    /// When commits are made durable.
    pub sync: SyncPolicy,
    /// Columns declared at open: missing ones are added (a versioned, logged schema change);
    /// existing ones must match. Under Raft every member must be given the same columns here;
    /// later changes go through the log ([`crate::Engine::declare_column`]).
    pub schema: Schema,
    /// The log is compacted into a fresh segment once the records after its checkpoint exceed
    /// this many bytes (and the checkpoint's own size, so a large state is not rewritten at
    /// every commit).
    pub compact_after_bytes: u64,
    /// Early deltas that wait for their causal base (see `ReplicaConfig::max_buffered_deltas`).
    pub max_buffered_deltas: usize,
    /// Which backend orders coordinated transactions.
    pub backend: Backend,
    /// Whether a background thread syncs a waiting group commit once its `max_delay_ms` passed
    /// or once it is full (the default). Without it, a waiting group is synced only by the next commit that fills
    /// it, `tick`, `poll`, `flush` or `take_messages` — for engines in virtual time (the
    /// simulator), whose runs must not depend on the wall clock.
    pub background_flush: bool,
}

impl EngineConfig {
    /// Node `node_id` alone, an empty schema, sync on every commit, compaction at 64 MiB.
    ///
    /// ```
    /// use rhizo_clock::NodeId;
    /// use rhizo_txn::{default_schema, EngineConfig, SyncPolicy};
    /// let (a, b) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
    /// let config = EngineConfig::new(a)
    ///     .with_members([b])
    ///     .with_schema(default_schema())
    ///     .with_sync(SyncPolicy::None);
    /// assert_eq!(config.all_members(), [a, b]); // this node is always a member
    /// ```
    pub fn new(node_id: NodeId) -> Self {
        Self {
            node_id,
            members: vec![node_id],
            sync: SyncPolicy::default(),
            schema: Schema::new(),
            compact_after_bytes: 64 << 20,
            max_buffered_deltas: 64,
            backend: Backend::SingleNode,
            background_flush: true,
        }
    }

    /// Ordering coordinated transactions with Raft across every member.
    ///
    /// ```
    /// use rhizo_clock::NodeId;
    /// use rhizo_txn::raft::RaftConfig;
    /// use rhizo_txn::{Backend, EngineConfig};
    /// let members = [NodeId::new("a").unwrap(), NodeId::new("b").unwrap(), NodeId::new("c").unwrap()];
    /// let config = EngineConfig::new(members[0])
    ///     .with_members(members)
    ///     .with_raft(RaftConfig::default());
    /// assert!(matches!(config.backend, Backend::Raft(_)));
    /// ```
    #[must_use]
    pub fn with_raft(mut self, raft: RaftConfig) -> Self {
        self.backend = Backend::Raft(raft);
        self
    }

    /// Every member, this node included, sorted and without repeats.
    pub fn all_members(&self) -> Vec<NodeId> {
        let mut members = self.members.clone();
        members.push(self.node_id);
        members.sort_unstable();
        members.dedup();
        members
    }

    /// With these cluster members.
    #[must_use]
    pub fn with_members(mut self, members: impl IntoIterator<Item = NodeId>) -> Self {
        self.members = members.into_iter().collect();
        self
    }

    /// With this sync policy.
    #[must_use]
    pub fn with_sync(mut self, sync: SyncPolicy) -> Self {
        self.sync = sync;
        self
    }

    /// With these columns declared at open.
    #[must_use]
    pub fn with_schema(mut self, schema: Schema) -> Self {
        self.schema = schema;
        self
    }

    /// Compacting once a segment exceeds `bytes`.
    #[must_use]
    pub fn with_compaction_after(mut self, bytes: u64) -> Self {
        self.compact_after_bytes = bytes;
        self
    }

    /// Refuses a configuration no engine can run: zero-sized limits, or a node named like the
    /// consensus log's origin (its dots would collide with the log's).
    pub(crate) fn check(&self) -> Result<()> {
        let reason = if self.max_buffered_deltas == 0 {
            Some("max_buffered_deltas must be at least 1".to_owned())
        } else if let SyncPolicy::Group { max_records: 0, .. } = self.sync {
            Some("a group commit needs max_records >= 1".to_owned())
        } else if self.all_members().contains(&consensus_origin()) {
            Some(format!(
                "{:?} is reserved for the consensus log's entries; name the node otherwise",
                consensus_origin().to_string()
            ))
        } else {
            None
        };
        match reason {
            Some(reason) => Err(TxnError::Config { reason }),
            None => Ok(()),
        }
    }
}

/// The column the roadmap's `increment(table, row, amount)` addresses: `(table, row, "value")`.
pub const DEFAULT_COLUMN: &str = "value";

/// A schema of two tables, for trying the engine out: `counters.value` (integer ADD) and
/// `users.tags` (observed-remove string set), so that
/// `tx.increment("counters", "page_views", "value", 1)` and
/// `tx.add_to_set("users", "user_123", "tags", "premium")` work at once.
pub fn default_schema() -> Schema {
    Schema::builder()
        .table("counters")
        .column(DEFAULT_COLUMN, MergeType::Add, ValueType::Integer)
        .table("users")
        .column("tags", MergeType::ObservedRemoveSet, ValueType::StringSet)
        .build()
        .expect("the default schema is valid")
}
