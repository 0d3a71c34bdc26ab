//! The networked node: one [`Engine`] driven by a loop that carries its messages over the
//! [`Transport`], and a [`NodeHandle`] any thread commits and reads through.
//!
//! The engine sits behind a mutex that no one holds across an `.await` or while waiting for
//! the network. A coordination-free commit takes it, commits (logging per the sync policy) and
//! returns: it crosses no channel and waits for no message. A coordinated one is proposed under
//! it, then its caller waits, outside it, for the outcome the loop hands over once Raft decided.
//! The loop takes it for each batch of inbound messages, each tick and each anti-entropy round,
//! then sends what the engine produced — always after the records those messages depend on are
//! durable ([`Engine::take_messages`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rhizo_algebra::{AlgebraicValue, ColumnSpec, Schema};
use rhizo_clock::{NodeId, VectorClock};
use rhizo_commit::{AlgebraicTransaction, CellKey, Operation, Operations};
use rhizo_txn::raft::{ProposalId, RaftConfig, RaftError};
use rhizo_txn::{
    Backend, CommitOutcome, Engine, EngineConfig, FsStorage, MemStorage, ReadAfter,
    ReadConsistency, Storage, Submission, SyncPolicy, TransactionMode, TxnError,
};
use tokio::sync::{Notify, oneshot};

use crate::client::{BoundClientListener, ClientListener};
use crate::metrics::NodeMetrics;
use crate::tls::TlsContext;
use crate::{
    ClientListenerConfig, MetricsConfig, NetError, Network, Result, Security, TokioNetwork,
    Transport, TransportConfig, TransportHandle, TransportStats,
};

mod driver;
#[cfg(test)]
mod tests;

/// How often a read waiting for commits it must see ([`NodeHandle::read_cells_after`]) looks
/// again: short against the anti-entropy interval that brings them, long enough that waiting
/// readers do not contend for the engine.
const CATCH_UP_POLL: Duration = Duration::from_millis(1);

/// How a networked node is set up: its engine, its data, its transport and its rhythm.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The engine: node id, sync policy, schema, backend. Its members are the transport's.
    pub engine: EngineConfig,
    /// Where the node's log lives; `None` keeps it in memory (lost with the process).
    pub data_dir: Option<PathBuf>,
    /// The peer transport: listen address, cluster id, members and their addresses, security.
    pub transport: TransportConfig,
    /// The engine's clock: Raft's elections and heartbeats count in ticks of this length.
    pub tick: Duration,
    /// How often the node runs an anti-entropy round with peers it believes behind.
    pub sync_interval: Duration,
    /// How many peers one anti-entropy round syncs with (at most).
    pub fanout: usize,
    /// The longest a coordinated commit waits: for a leader (retrying while none is known) and
    /// then for the log's decision.
    pub commit_timeout: Duration,
    /// The client listener, for programs other than this one (none by default).
    pub client: Option<ClientListenerConfig>,
    /// The Prometheus endpoint (none by default). It installs the process's metrics recorder,
    /// so at most one node per process can have it.
    pub metrics: Option<MetricsConfig>,
}

impl NodeConfig {
    /// Node `node` of a cluster whose members (this one included) listen at `members`, with
    /// every default: the Raft backend when there are several members, sync on every commit,
    /// a 10 ms tick and anti-entropy interval, fanout 1 (an exchange is push-pull: one peer a
    /// round already moves news both ways), a 5 s commit timeout, data in memory.
    pub fn new(
        node: NodeId,
        cluster_id: impl Into<String>,
        members: BTreeMap<NodeId, String>,
        security: Security,
    ) -> Self {
        let listen = members
            .get(&node)
            .cloned()
            .unwrap_or_else(|| "127.0.0.1:0".to_owned());
        let mut engine = EngineConfig::new(node).with_members(members.keys().copied());
        if members.len() > 1 {
            engine = engine.with_raft(RaftConfig::default());
        }
        let mut transport = TransportConfig::new(node, listen, cluster_id, members, security);
        transport.incarnation = fresh_incarnation();
        Self {
            engine,
            data_dir: None,
            transport,
            tick: Duration::from_millis(10),
            sync_interval: Duration::from_millis(10),
            fanout: 1,
            commit_timeout: Duration::from_secs(5),
            client: None,
            metrics: None,
        }
    }

    /// With the node's log in directory `dir` (which the node owns while it runs).
    #[must_use]
    pub fn with_data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// With these columns declared at open (every member is given the same).
    #[must_use]
    pub fn with_schema(mut self, schema: Schema) -> Self {
        self.engine.schema = schema;
        self
    }

    /// With this sync policy.
    #[must_use]
    pub fn with_sync(mut self, sync: SyncPolicy) -> Self {
        self.engine.sync = sync;
        self
    }

    fn check(&mut self) -> Result<()> {
        let invalid = |field, reason: &str| NetError::InvalidConfig {
            field,
            reason: reason.to_owned(),
        };
        if self.engine.node_id != self.transport.node {
            return Err(invalid("engine.node_id", "must be the transport's node"));
        }
        if self.tick.is_zero() || self.sync_interval.is_zero() {
            return Err(invalid(
                "tick",
                "the tick and the sync interval must be positive",
            ));
        }
        if self.metrics.as_ref().is_some_and(|m| m.interval.is_zero()) {
            return Err(invalid("metrics.interval", "must be positive"));
        }
        if self.fanout == 0 {
            return Err(invalid(
                "fanout",
                "an anti-entropy round needs at least one peer",
            ));
        }
        // One membership: the transport's, which names every member with its address.
        self.engine.members = self.transport.members.keys().copied().collect();
        // The engine must not give up on a proposal before the node's caller does: a loaded
        // machine delays ticks, and a Raft timeout would answer "unknown" to a commit that the
        // caller was still willing to wait for.
        if let Backend::Raft(raft) = &mut self.engine.backend {
            let ticks = self.commit_timeout.as_nanos() / self.tick.as_nanos().max(1);
            let ticks = u32::try_from(ticks.saturating_add(1)).unwrap_or(u32::MAX);
            raft.proposal_timeout_ticks = raft.proposal_timeout_ticks.max(ticks);
        }
        self.transport.validate()
    }
}

/// Warns when the Raft log's membership is not the configuration's: membership changes at run
/// time are the log's, which wins (the transport follows it once the node runs).
fn warn_if_membership_moved(config: &NodeConfig, engine: &Engine) {
    let Some(raft) = engine.raft() else { return };
    let configured: Vec<NodeId> = config.transport.members.keys().copied().collect();
    let joining = matches!(&config.engine.backend, Backend::Raft(r) if r.join);
    if raft.members() != configured && !(joining && raft.members().len() + 1 == configured.len()) {
        tracing::warn!(
            node = %config.transport.node,
            configured = ?configured,
            logged = ?raft.members(),
            "the members in the configuration differ from those the Raft log holds; the log's \
             are used (membership changed at run time)"
        );
    }
}

/// A node's incarnation: larger at every start of the same node (the wall clock, in
/// nanoseconds), so that peers tell a restart from a reconnection.
fn fresh_incarnation() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |since| since.as_nanos() as u64)
}

/// A decided coordinated commit, for the caller waiting for it.
pub(crate) type Decided = rhizo_txn::Result<CommitOutcome>;

/// Who waits for a coordinated commit's outcome: a thread, or an async task.
pub(crate) enum Waiter {
    Thread(std::sync::mpsc::SyncSender<Decided>),
    Task(oneshot::Sender<Decided>),
}

impl Waiter {
    /// Hands the outcome over (a waiter that gave up is simply gone).
    pub(crate) fn send(self, decided: Decided) {
        match self {
            Self::Thread(sender) => {
                let _ = sender.try_send(decided);
            }
            Self::Task(sender) => {
                let _ = sender.send(decided);
            }
        }
    }
}

/// A change of the cluster's membership ([`NodeHandle::change_members_async`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MembershipChange {
    /// Add `node`, which its peers reach at `address`.
    Add {
        /// The node.
        node: NodeId,
        /// Where it listens for peers.
        address: String,
    },
    /// Remove `node` without losing any commit it acknowledged: it is retired through the log
    /// (from then on it refuses writes), and removed once every other member holds its
    /// commits. Answered when the removal applies, or with [`RaftError::NotDrained`] (in
    /// [`NetError::Engine`]) if `node` does not drain within the commit timeout; retrying is
    /// safe.
    Remove {
        /// The node.
        node: NodeId,
    },
    /// Remove `node` at once, without waiting for it to drain: for a node that is gone for
    /// good. Coordination-free commits it acknowledged that no other member holds yet are lost.
    ForceRemove {
        /// The node.
        node: NodeId,
    },
}

/// One member, as [`NodeHandle::members`] lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberInfo {
    /// The member.
    pub node: NodeId,
    /// The address its addition named (empty for a member of the static configuration).
    pub address: String,
    /// Whether it votes (a newcomer is a learner until it has caught up).
    pub voter: bool,
    /// Whether a draining removal retired it: it takes no writes and leaves once every other
    /// member holds its commits.
    pub retired: bool,
}

/// Where outcomes of coordinated commits go: to the caller waiting for each.
type Waiters = BTreeMap<ProposalId, Waiter>;

/// What the handles and the loop share.
pub(crate) struct Shared {
    pub(crate) engine: Mutex<Engine>,
    pub(crate) transport: TransportHandle,
    /// Wakes the loop: a commit left messages to send.
    pub(crate) wake: Notify,
    pub(crate) waiters: Mutex<Waiters>,
    pub(crate) stopping: AtomicBool,
    /// Set once, when this node learns a membership change removed it: writes are refused
    /// from then on ([`NetError::Removed`]); the member named told it (or this node's own log).
    pub(crate) removed: OnceLock<NodeId>,
    /// The loop's task, until shutdown takes it.
    pub(crate) driver: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The runtime a blocking start made (none when started on the caller's runtime).
    pub(crate) runtime: Mutex<Option<tokio::runtime::Runtime>>,
    pub(crate) config: NodeConfig,
    /// Recording handles, when the node was started with metrics.
    pub(crate) metrics: Option<NodeMetrics>,
    /// The client listener, when configured, until shutdown stops it.
    pub(crate) client_listener: Mutex<Option<ClientListener>>,
}

impl Shared {
    pub(crate) fn engine(&self) -> MutexGuard<'_, Engine> {
        // A panic while the engine was held leaves it as the last completed call left it.
        self.engine.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this node takes writes: not while it stops, nor once it was removed.
    pub(crate) fn writable(&self) -> Result<()> {
        if self.stopping.load(Ordering::Acquire) {
            return Err(NetError::ShutDown);
        }
        match self.removed.get() {
            Some(by) => Err(NetError::Removed { by: *by }),
            None => Ok(()),
        }
    }

    pub(crate) fn waiters(&self) -> MutexGuard<'_, Waiters> {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn client_listener(&self) -> MutexGuard<'_, Option<ClientListener>> {
        self.client_listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

/// A running node, embedded in this process; cheap to clone, usable from any thread.
///
/// ```no_run
/// use std::collections::BTreeMap;
/// use rhizo_clock::NodeId;
/// use rhizo_commit::Operations;
/// use rhizo_net::{Node, NodeConfig, Security};
/// use rhizo_txn::{TransactionMode, default_schema};
///
/// let a = NodeId::new("a").unwrap();
/// let members = BTreeMap::from([(a, "127.0.0.1:7000".to_owned())]);
/// let config = NodeConfig::new(a, "demo", members, Security::Insecure)
///     .with_schema(default_schema());
/// let node = Node::start(config).unwrap();
/// let mut tx = node.transaction(TransactionMode::CoordinationFree);
/// tx.increment("counters", "page_views", "value", 1);
/// tx.commit().unwrap();
/// node.shutdown().unwrap();
/// ```
#[derive(Clone)]
pub struct NodeHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle")
            .field("node", &self.node_id())
            .finish_non_exhaustive()
    }
}

/// Starts networked nodes.
#[derive(Debug)]
pub struct Node;

impl Node {
    /// Opens the engine and starts the node on a runtime of its own (two worker threads):
    /// the blocking entry point, for applications that run no tokio runtime themselves.
    pub fn start(config: NodeConfig) -> Result<NodeHandle> {
        Self::start_blocking(config, None)
    }

    /// [`Node::start`] on a socket bound beforehand (`config.transport.listen` is not used): a
    /// supervisor hands over an inherited socket, a test learns every member's port first.
    pub fn start_listening(
        config: NodeConfig,
        listener: std::net::TcpListener,
    ) -> Result<NodeHandle> {
        Self::start_blocking(config, Some(listener))
    }

    fn start_blocking(
        mut config: NodeConfig,
        listener: Option<std::net::TcpListener>,
    ) -> Result<NodeHandle> {
        config.check()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("rhizo-node")
            .enable_all()
            .build()
            .map_err(NetError::Runtime)?;
        let engine = open_engine(&config)?;
        let handle = runtime.block_on(async move {
            match listener {
                Some(listener) => {
                    let bound = |source| NetError::Bind {
                        address: config.transport.listen.clone(),
                        source,
                    };
                    listener.set_nonblocking(true).map_err(bound)?;
                    let listener = tokio::net::TcpListener::from_std(listener).map_err(bound)?;
                    Self::start_engine_on(config, engine, TokioNetwork, listener)
                }
                None => Self::start_engine(config, engine, TokioNetwork).await,
            }
        })?;
        *handle
            .shared
            .runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(runtime);
        Ok(handle)
    }

    /// Opens the engine and starts the node on the current tokio runtime, over `network`.
    pub async fn start_on<N: Network>(mut config: NodeConfig, network: N) -> Result<NodeHandle> {
        config.check()?;
        let engine = open_engine(&config)?;
        Self::start_engine(config, engine, network).await
    }

    /// Starts the node around an engine opened elsewhere (a test's memory log, say), on the
    /// current tokio runtime. `config.engine` must describe `engine`.
    pub async fn start_engine<N: Network>(
        config: NodeConfig,
        engine: Engine,
        network: N,
    ) -> Result<NodeHandle> {
        let listener = network
            .bind(&config.transport.listen)
            .await
            .map_err(|source| NetError::Bind {
                address: config.transport.listen.clone(),
                source,
            })?;
        Self::start_engine_on(config, engine, network, listener)
    }

    /// [`Node::start_engine`] on a listener bound beforehand (`config.transport.listen` is not
    /// used): a test learns every member's port before any starts.
    pub fn start_engine_on<N: Network>(
        mut config: NodeConfig,
        engine: Engine,
        network: N,
        listener: N::Listener,
    ) -> Result<NodeHandle> {
        config.check()?;
        warn_if_membership_moved(&config, &engine);
        let client = bind_client_listener(&config)?;
        let metrics = start_metrics(&config)?;
        let (transport, inbound) =
            Transport::start_on(config.transport.clone(), network, listener)?;
        let shared = Arc::new(Shared {
            engine: Mutex::new(engine),
            transport,
            wake: Notify::new(),
            waiters: Mutex::new(BTreeMap::new()),
            stopping: AtomicBool::new(false),
            removed: OnceLock::new(),
            driver: Mutex::new(None),
            runtime: Mutex::new(None),
            config,
            metrics,
            client_listener: Mutex::new(None),
        });
        let task = tokio::spawn(driver::run(Arc::clone(&shared), inbound));
        *shared.driver.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        let handle = NodeHandle { shared };
        if let Some(bound) = client {
            *handle.shared.client_listener() = Some(bound.serve(handle.clone()));
        }
        Ok(handle)
    }
}

/// Binds the client listener, when the configuration asks for one.
fn bind_client_listener(config: &NodeConfig) -> Result<Option<BoundClientListener>> {
    let Some(client) = &config.client else {
        return Ok(None);
    };
    let transport = &config.transport;
    let tls = match &transport.security {
        Security::Tls(files) => Some(TlsContext::load(files)?),
        Security::Insecure => None,
    };
    BoundClientListener::bind(client, tls, transport.handshake_timeout).map(Some)
}

/// Installs the Prometheus endpoint and registers the node's recording handles, when the
/// configuration asks for metrics.
fn start_metrics(config: &NodeConfig) -> Result<Option<NodeMetrics>> {
    let Some(metrics) = &config.metrics else {
        return Ok(None);
    };
    let expiry = match &config.transport.security {
        Security::Tls(files) => Some(crate::tls::certificate_expiry(&files.node_cert)?),
        Security::Insecure => None,
    };
    crate::metrics::install(metrics)?;
    Ok(Some(NodeMetrics::new(
        config.engine.node_id,
        metrics.interval,
        expiry,
    )))
}

/// The engine a node's configuration describes, on its data directory (or in memory).
fn open_engine(config: &NodeConfig) -> Result<Engine> {
    let storage: Box<dyn Storage> = match &config.data_dir {
        Some(dir) => Box::new(FsStorage::open(dir)?),
        None => Box::new(MemStorage::new()),
    };
    Ok(Engine::open_with_storage(storage, config.engine.clone())?)
}

/// What a node reports about itself.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NodeStatus {
    /// This node.
    pub node: NodeId,
    /// Every member.
    pub members: Vec<NodeId>,
    /// Everything this node holds.
    pub clock: VectorClock,
    /// The members this node believes lack something it holds.
    pub peers_behind: Vec<NodeId>,
    /// The Raft leader this node knows of, its term, and the commit and applied indices.
    pub raft: Option<RaftStatus>,
    /// The transport's counters (queues, drops, connections).
    pub transport: TransportStats,
    /// A digest of the replicated state: equal on nodes holding the same updates.
    pub fingerprint: u64,
    /// When a membership change removed this node: the member that told it (this node itself
    /// when its own log did). A removed node takes no writes.
    pub removed_by: Option<NodeId>,
}

/// What `rhizo status` prints: members, who is behind, Raft's view, queue depths per peer.
impl std::fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |ids: &[NodeId]| {
            if ids.is_empty() {
                "none".to_owned()
            } else {
                ids.iter()
                    .map(NodeId::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        writeln!(f, "node      {}", self.node)?;
        writeln!(f, "members   {}", list(&self.members))?;
        writeln!(f, "behind    {}", list(&self.peers_behind))?;
        match &self.raft {
            Some(raft) => writeln!(
                f,
                "raft      leader {}, term {}, commit index {}, applied {}",
                raft.leader
                    .map_or("unknown".to_owned(), |id| id.to_string()),
                raft.term,
                raft.commit_index,
                raft.applied
            )?,
            None => writeln!(f, "raft      none (a single node orders its own log)")?,
        }
        for (peer, stats) in &self.transport.peers {
            for (lane, lane_stats) in [("control", &stats.control), ("bulk", &stats.bulk)] {
                writeln!(
                    f,
                    "peer      {peer} {lane}: {}, queue {} messages / {} bytes, {} sent, {} received, {} dropped",
                    if lane_stats.connected { "up" } else { "down" },
                    lane_stats.queued_messages,
                    lane_stats.queued_bytes,
                    lane_stats.messages_sent,
                    lane_stats.messages_received,
                    lane_stats.dropped
                )?;
            }
        }
        if let Some(by) = self.removed_by {
            writeln!(
                f,
                "removed   from the cluster (learned from {by}): no writes taken"
            )?;
        }
        write!(f, "state     {:016x}", self.fingerprint)
    }
}

/// A Raft member's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RaftStatus {
    /// The leader, if known.
    pub leader: Option<NodeId>,
    /// The current term.
    pub term: u64,
    /// The highest index known committed.
    pub commit_index: u64,
    /// The last index applied to the replica.
    pub applied: u64,
}

impl NodeHandle {
    /// This node.
    pub fn node_id(&self) -> NodeId {
        self.shared.config.engine.node_id
    }

    /// The address the node listens on.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.shared.transport.local_addr()
    }

    /// The address the client listener listens on, if the node has one.
    pub fn client_addr(&self) -> Option<std::net::SocketAddr> {
        self.shared
            .client_listener()
            .as_ref()
            .map(|listener| listener.local_addr)
    }

    /// Starts a transaction: the [`Operations`] verbs, reads, and a commit through this node.
    pub fn transaction(&self, mode: TransactionMode) -> NodeTransaction {
        NodeTransaction {
            node: self.clone(),
            mode,
            tx: AlgebraicTransaction::new(),
        }
    }

    /// Commits `tx` (see [`Engine::submit`]) and returns its outcome. A coordination-free one is
    /// committed here at once; a coordinated one returns when the Raft log decided it (while no
    /// leader is known it retries, up to the commit timeout). Must not be called on the node's
    /// own runtime (it blocks); async callers use [`NodeHandle::commit_async`].
    pub fn commit(&self, mode: TransactionMode, tx: AlgebraicTransaction) -> Result<CommitOutcome> {
        match &self.shared.metrics {
            None => self.commit_blocking(mode, tx),
            Some(metrics) => {
                let started = std::time::Instant::now();
                let committed = self.commit_blocking(mode, tx);
                if let Ok(outcome) = &committed {
                    metrics.committed(outcome.path, started.elapsed());
                }
                committed
            }
        }
    }

    fn commit_blocking(
        &self,
        mode: TransactionMode,
        tx: AlgebraicTransaction,
    ) -> Result<CommitOutcome> {
        if mode == TransactionMode::CoordinationFree {
            // The fast path: decided under the lock, nothing to wait for, nothing to retry.
            return match self.submit(Wait::Thread, |engine| engine.submit(mode, tx))? {
                Decision::Now(outcome) => Ok(outcome),
                _ => unreachable!("a coordination-free commit is decided at once"),
            };
        }
        self.decide_blocking(|engine| engine.submit(mode, tx.clone()))
    }

    /// [`NodeHandle::commit`] for async callers (on any runtime, the node's own included).
    pub async fn commit_async(
        &self,
        mode: TransactionMode,
        tx: AlgebraicTransaction,
    ) -> Result<CommitOutcome> {
        let started = std::time::Instant::now();
        let committed = self
            .decide_async(|engine| engine.submit(mode, tx.clone()))
            .await;
        if let (Some(metrics), Ok(outcome)) = (&self.shared.metrics, &committed) {
            metrics.committed(outcome.path, started.elapsed());
        }
        committed
    }

    /// Submits through `submit` and waits, blocking this thread, for the decision: while no
    /// leader is known it submits again, up to the commit timeout.
    fn decide_blocking(
        &self,
        mut submit: impl FnMut(&mut Engine) -> rhizo_txn::Result<Submission>,
    ) -> Result<CommitOutcome> {
        let deadline = std::time::Instant::now() + self.shared.config.commit_timeout;
        loop {
            match self.submit(Wait::Thread, &mut submit)? {
                Decision::Now(outcome) => return Ok(outcome),
                Decision::Later(id, Waiting::Thread(receiver)) => {
                    return wait_blocking(id, &receiver, self.shared.config.commit_timeout);
                }
                Decision::Later(_, Waiting::Task(_)) => unreachable!("asked for a thread's wait"),
                Decision::NoLeader if std::time::Instant::now() < deadline => {
                    std::thread::sleep(self.shared.config.tick);
                }
                Decision::NoLeader => return Err(TxnError::NoLeader.into()),
            }
        }
    }

    /// [`NodeHandle::decide_blocking`] for async callers.
    async fn decide_async(
        &self,
        mut submit: impl FnMut(&mut Engine) -> rhizo_txn::Result<Submission>,
    ) -> Result<CommitOutcome> {
        let timeout = self.shared.config.commit_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.submit(Wait::Task, &mut submit)? {
                Decision::Now(outcome) => return Ok(outcome),
                Decision::Later(_, Waiting::Thread(_)) => unreachable!("asked for a task's wait"),
                Decision::Later(id, Waiting::Task(receiver)) => {
                    return match tokio::time::timeout(timeout, receiver).await {
                        Ok(Ok(outcome)) => outcome.map_err(NetError::from),
                        Ok(Err(_)) => Err(NetError::ShutDown),
                        Err(_) => Err(TxnError::Undecided { proposal: id }.into()),
                    };
                }
                Decision::NoLeader if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(self.shared.config.tick).await;
                }
                Decision::NoLeader => return Err(TxnError::NoLeader.into()),
            }
        }
    }

    /// Submits under the engine lock (a removed or stopping node refuses); a pending
    /// proposal's waiter is registered before the lock is released, so the loop cannot decide
    /// it unseen.
    fn submit(
        &self,
        wait: Wait,
        submit: impl FnOnce(&mut Engine) -> rhizo_txn::Result<Submission>,
    ) -> Result<Decision> {
        self.shared.writable()?;
        let mut engine = self.shared.engine();
        let decision = match submit(&mut engine) {
            Ok(Submission::Committed(outcome)) => Decision::Now(outcome),
            Ok(Submission::Pending(id)) => {
                let (waiter, waiting) = wait.channel();
                self.shared.waiters().insert(id, waiter);
                Decision::Later(id, waiting)
            }
            Err(TxnError::NoLeader) => Decision::NoLeader,
            Err(err) => return Err(err.into()),
        };
        let wake = engine.has_messages();
        drop(engine);
        if wake {
            self.shared.wake.notify_one();
        }
        Ok(decision)
    }

    /// Reads one cell on this node: causal and atomic (see [`Engine::read`]), answered at
    /// once; it may not yet hold a coordinated write another node acknowledged
    /// ([`NodeHandle::read_cells`] with [`ReadConsistency::Linearizable`] waits for those).
    pub fn read(&self, table: &str, row: &str, column: &str) -> Result<AlgebraicValue> {
        Ok(self.shared.engine().read(table, row, column)?)
    }

    /// Reads `keys` from one state of this node (atomic across them; see
    /// [`Engine::read_cells`]). With [`ReadConsistency::Linearizable`] that state holds every
    /// coordinated transaction acknowledged anywhere in the cluster before this call: the read
    /// is confirmed with the Raft leader first (see [`Engine::start_linearizable_read`]), and
    /// this returns once this node has applied the log up to it, or fails as a coordinated
    /// commit does (no leader within the commit timeout, undecided, removed). Must not be
    /// called on the node's own runtime when linearizable (it blocks); async callers use
    /// [`NodeHandle::read_cells_async`].
    ///
    /// ```no_run
    /// # fn example(node: &rhizo_net::NodeHandle) -> rhizo_net::Result<()> {
    /// use rhizo_commit::CellKey;
    /// use rhizo_txn::ReadConsistency;
    /// let keys = [CellKey::new("accounts", "ada", "owner"), CellKey::new("accounts", "bob", "owner")];
    /// let owners = node.read_cells(ReadConsistency::Linearizable, &keys)?;
    /// # Ok(()) }
    /// ```
    pub fn read_cells(
        &self,
        consistency: ReadConsistency,
        keys: &[CellKey],
    ) -> Result<Vec<AlgebraicValue>> {
        self.read_cells_after(consistency, keys, &ReadAfter::new())
    }

    /// [`NodeHandle::read_cells`] once this node also holds every commit `after` names, made
    /// on this node or any other (read-your-writes and monotonic reads across nodes; see
    /// [`ReadAfter`]). Commits it lacks reach it by anti-entropy or the log: the read waits for
    /// them up to the commit timeout, then fails with [`TxnError::NotCaughtUp`] naming what is
    /// missing (retryable; nothing was read). Must not be called on the node's own runtime
    /// (it blocks); async callers use [`NodeHandle::read_cells_after_async`].
    ///
    /// ```no_run
    /// # fn example(a: &rhizo_net::NodeHandle, b: &rhizo_net::NodeHandle) -> rhizo_net::Result<()> {
    /// use rhizo_commit::{AlgebraicTransaction, CellKey, Operations};
    /// use rhizo_txn::{ReadAfter, ReadConsistency, TransactionMode};
    /// let mut tx = AlgebraicTransaction::new();
    /// tx.increment("counters", "hits", "value", 1);
    /// let outcome = a.commit(TransactionMode::CoordinationFree, tx)?;
    /// // On another node: served once that node holds the increment.
    /// let after = ReadAfter::new().with(&outcome);
    /// let keys = [CellKey::new("counters", "hits", "value")];
    /// let hits = b.read_cells_after(ReadConsistency::Local, &keys, &after)?;
    /// # Ok(()) }
    /// ```
    pub fn read_cells_after(
        &self,
        consistency: ReadConsistency,
        keys: &[CellKey],
        after: &ReadAfter,
    ) -> Result<Vec<AlgebraicValue>> {
        let deadline = std::time::Instant::now() + self.shared.config.commit_timeout;
        if consistency == ReadConsistency::Linearizable {
            // A read changes nothing: one the leader never answered (it lost leadership) is
            // asked again, up to the commit timeout.
            while let Err(err) = self.decide_blocking(|engine| engine.start_linearizable_read(keys))
            {
                if !is_retryable(&err) || std::time::Instant::now() >= deadline {
                    return Err(err);
                }
                std::thread::sleep(self.shared.config.tick);
            }
        }
        loop {
            // Bound first, so that the engine's lock is released before any wait.
            let read = self.shared.engine().read_cells_after(keys, after);
            match read {
                Err(TxnError::NotCaughtUp { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(CATCH_UP_POLL);
                }
                read => return Ok(read?),
            }
        }
    }

    /// [`NodeHandle::read_cells`] for async callers (on any runtime, the node's own included).
    pub async fn read_cells_async(
        &self,
        consistency: ReadConsistency,
        keys: &[CellKey],
    ) -> Result<Vec<AlgebraicValue>> {
        self.read_cells_after_async(consistency, keys, &ReadAfter::new())
            .await
    }

    /// [`NodeHandle::read_cells_after`] for async callers (on any runtime, the node's own
    /// included).
    pub async fn read_cells_after_async(
        &self,
        consistency: ReadConsistency,
        keys: &[CellKey],
        after: &ReadAfter,
    ) -> Result<Vec<AlgebraicValue>> {
        let deadline = tokio::time::Instant::now() + self.shared.config.commit_timeout;
        if consistency == ReadConsistency::Linearizable {
            while let Err(err) = self
                .decide_async(|engine| engine.start_linearizable_read(keys))
                .await
            {
                if !is_retryable(&err) || tokio::time::Instant::now() >= deadline {
                    return Err(err);
                }
                tokio::time::sleep(self.shared.config.tick).await;
            }
        }
        loop {
            let read = self.shared.engine().read_cells_after(keys, after);
            match read {
                Err(TxnError::NotCaughtUp { .. }) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(CATCH_UP_POLL).await;
                }
                read => return Ok(read?),
            }
        }
    }

    /// Declares a column. On the Raft backend the change is ordered through the log and this
    /// returns once the log decided it (while no leader is known it retries, up to the commit
    /// timeout). Must not be called on the node's own runtime (it blocks); async callers use
    /// [`NodeHandle::declare_column_async`].
    pub fn declare_column(&self, table: &str, column: &str, spec: ColumnSpec) -> Result<()> {
        self.decide_blocking(|engine| engine.declare_column_spec(table, column, spec))
            .map(drop)
    }

    /// [`NodeHandle::declare_column`] for async callers (on any runtime, the node's own
    /// included).
    pub async fn declare_column_async(
        &self,
        table: &str,
        column: &str,
        spec: ColumnSpec,
    ) -> Result<()> {
        self.decide_async(|engine| engine.declare_column_spec(table, column, spec))
            .await
            .map(drop)
    }

    /// The cluster's members as this node has applied them: each with the address the change
    /// that added it named (empty for a member of the static configuration) and whether it
    /// votes. A node without Raft (a cluster of one) lists itself.
    pub fn members(&self) -> Vec<MemberInfo> {
        let engine = self.shared.engine();
        match engine.raft() {
            Some(raft) => raft
                .membership()
                .iter()
                .map(|(node, member)| MemberInfo {
                    node,
                    address: member.address.clone(),
                    voter: member.voter,
                    retired: member.retired,
                })
                .collect(),
            None => vec![MemberInfo {
                node: engine.node_id(),
                address: String::new(),
                voter: true,
                retired: false,
            }],
        }
    }

    /// Changes the cluster's membership through the Raft log and returns once this node has
    /// applied the change: an added node joins as a learner and the leader makes it a voter once
    /// it has caught up; a removed node is refused by every member from the index where they
    /// apply it. A [`MembershipChange::Remove`] first drains the node (see there) and fails
    /// with [`RaftError::NotDrained`] if that takes longer than the commit timeout; a
    /// [`MembershipChange::ForceRemove`] does not wait. While no leader is known, or another
    /// change is in flight, it retries until the commit timeout. Refusals (an unknown member,
    /// one already a member, the last voter) change nothing.
    pub async fn change_members_async(&self, change: MembershipChange) -> Result<()> {
        let timeout = self.shared.config.commit_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let (sender, receiver) = oneshot::channel();
            let proposed = {
                self.shared.writable()?;
                let mut engine = self.shared.engine();
                let proposed = match &change {
                    MembershipChange::Add { node, address } => {
                        engine.add_member(*node, address.clone())
                    }
                    MembershipChange::Remove { node } => engine.remove_member(*node),
                    MembershipChange::ForceRemove { node } => engine.force_remove_member(*node),
                };
                if let Ok(Submission::Pending(id)) = &proposed {
                    self.shared.waiters().insert(*id, Waiter::Task(sender));
                }
                proposed
            };
            self.shared.wake.notify_one();
            match proposed {
                Ok(Submission::Committed(_)) => return Ok(()),
                Ok(Submission::Pending(id)) => {
                    return match tokio::time::timeout(timeout, receiver).await {
                        Ok(Ok(outcome)) => outcome.map(drop).map_err(NetError::from),
                        Ok(Err(_)) => Err(NetError::ShutDown),
                        Err(_) => Err(match &change {
                            MembershipChange::Remove { node } => {
                                TxnError::Raft(Box::new(RaftError::NotDrained { node: *node }))
                            }
                            _ => TxnError::Undecided { proposal: id },
                        }
                        .into()),
                    };
                }
                Err(err) if err.is_retryable() && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(self.shared.config.tick).await;
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// [`NodeHandle::change_members_async`] for callers outside any tokio runtime (it blocks
    /// this thread; must not be called on a runtime). A membership change is rare: a small
    /// runtime on this thread drives the wait while the node's own threads propose, apply and
    /// answer it.
    pub fn change_members(&self, change: MembershipChange) -> Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(NetError::Runtime)?;
        runtime.block_on(self.change_members_async(change))
    }

    /// What this node knows of itself and the cluster.
    pub fn status(&self) -> NodeStatus {
        Self::status_of(&self.shared)
    }

    pub(crate) fn status_of(shared: &Shared) -> NodeStatus {
        let transport = shared.transport.stats();
        let engine = shared.engine();
        NodeStatus {
            node: engine.node_id(),
            members: engine.raft().map_or_else(
                || engine.config().all_members(),
                |raft| raft.members().to_vec(),
            ),
            clock: engine.clock().clone(),
            peers_behind: engine.peers_behind(),
            raft: engine.raft().map(|raft| RaftStatus {
                leader: raft.leader(),
                term: raft.term(),
                commit_index: raft.commit_index(),
                applied: raft.applied(),
            }),
            transport,
            fingerprint: engine.fingerprint(),
            removed_by: shared.removed.get().copied(),
        }
    }

    /// Runs `f` on the engine (under its lock; keep it short): for what this handle does not
    /// offer, such as a fingerprint or the schema.
    pub fn with_engine<R>(&self, f: impl FnOnce(&Engine) -> R) -> R {
        f(&self.shared.engine())
    }

    /// Stops the node gracefully: no new commit is accepted, the loop ends, the log is made
    /// durable, the transport writes what it queued and closes. Coordinated commits still
    /// waiting get [`NetError::ShutDown`] (their outcome is unknown). Idempotent. Must not be
    /// called on the node's own runtime (it blocks); see [`NodeHandle::shutdown_async`].
    pub fn shutdown(&self) -> Result<()> {
        let runtime = self
            .shared
            .runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        match runtime {
            Some(runtime) => {
                let stopped = runtime.block_on(self.shutdown_async());
                runtime.shutdown_timeout(Duration::from_secs(5));
                stopped
            }
            None => Err(NetError::InvalidConfig {
                field: "runtime",
                reason: "a node started on the caller's runtime stops with shutdown_async".into(),
            }),
        }
    }

    /// [`NodeHandle::shutdown`] for a node started on the caller's runtime.
    pub async fn shutdown_async(&self) -> Result<()> {
        if self.shared.stopping.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let client_listener = self.shared.client_listener().take();
        if let Some(listener) = client_listener {
            listener.stop().await;
        }
        self.shared.wake.notify_one();
        let task = self
            .shared
            .driver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
        let flushed = self.shared.engine().flush();
        self.shared.waiters().clear();
        self.shared.transport.shutdown().await;
        Ok(flushed?)
    }
}

/// Whether a submission was decided under the lock.
enum Decision {
    Now(CommitOutcome),
    /// Proposed: the outcome comes to the waiter registered for this id.
    Later(ProposalId, Waiting),
    NoLeader,
}

/// How the caller will wait for a proposal's outcome (its channel is made only if it must).
#[derive(Clone, Copy)]
enum Wait {
    Thread,
    Task,
}

/// The receiving end of a [`Waiter`].
enum Waiting {
    Thread(std::sync::mpsc::Receiver<Decided>),
    Task(oneshot::Receiver<Decided>),
}

impl Wait {
    fn channel(self) -> (Waiter, Waiting) {
        match self {
            Self::Thread => {
                let (sender, receiver) = std::sync::mpsc::sync_channel(1);
                (Waiter::Thread(sender), Waiting::Thread(receiver))
            }
            Self::Task => {
                let (sender, receiver) = oneshot::channel();
                (Waiter::Task(sender), Waiting::Task(receiver))
            }
        }
    }
}

/// Whether asking again may succeed where `err` failed (the engine's retryable errors).
fn is_retryable(err: &NetError) -> bool {
    matches!(err, NetError::Engine(engine) if engine.is_retryable())
}

/// Waits (blocking this thread) for a pending proposal's outcome.
fn wait_blocking(
    id: ProposalId,
    receiver: &std::sync::mpsc::Receiver<Decided>,
    timeout: Duration,
) -> Result<CommitOutcome> {
    match receiver.recv_timeout(timeout) {
        Ok(outcome) => outcome.map_err(NetError::from),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(NetError::ShutDown),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            Err(TxnError::Undecided { proposal: id }.into())
        }
    }
}

/// A transaction on a [`NodeHandle`]: the [`Operations`] verbs, reads on the node, and a
/// commit through it.
#[derive(Debug)]
pub struct NodeTransaction {
    node: NodeHandle,
    mode: TransactionMode,
    tx: AlgebraicTransaction,
}

impl Operations for NodeTransaction {
    fn operation(
        &mut self,
        table: &str,
        row: &str,
        column: &str,
        operation: Operation,
    ) -> &mut Self {
        self.tx.operation(table, row, column, operation);
        self
    }
}

impl NodeTransaction {
    /// Reads one cell on the node; in a coordinated transaction a register read joins the read
    /// set the log validates (see `rhizo_txn::Transaction`).
    pub fn read(&mut self, table: &str, row: &str, column: &str) -> Result<AlgebraicValue> {
        let engine = self.node.shared.engine();
        Ok(engine.read_into(self.mode, &mut self.tx, table, row, column)?)
    }

    /// Commits through the node (see [`NodeHandle::commit`]).
    pub fn commit(self) -> Result<CommitOutcome> {
        self.node.commit(self.mode, self.tx)
    }

    /// Commits through the node (see [`NodeHandle::commit_async`]).
    pub async fn commit_async(self) -> Result<CommitOutcome> {
        self.node.commit_async(self.mode, self.tx).await
    }
}
