//! Programs other than the one embedding a node reach it through its client listener: one
//! request per transaction, read, status or column declaration, answered in order on one
//! connection (`docs/protocol.md`, "Client protocol").
//!
//! [`AsyncClient`] is the async API; [`Client`] wraps it for blocking callers (the `rhizo`
//! command line, the Python bindings). A refused request comes back as the same typed error as
//! a local call's ([`NetError::Engine`] with the engine's `TxnError`), and changed nothing.
//!
//! ```no_run
//! use rhizo_commit::Operations;
//! use rhizo_net::{Client, ClientSecurity, ClientTls};
//! use rhizo_txn::TransactionMode;
//!
//! let tls = ClientTls::new("certs/ca.crt").with_identity("certs/client.crt", "certs/client.key");
//! let client = Client::connect("127.0.0.1:7101", &ClientSecurity::Tls(tls)).unwrap();
//! let mut tx = rhizo_commit::AlgebraicTransaction::new();
//! tx.increment("counters", "page_views", "value", 1);
//! client.commit(TransactionMode::CoordinationFree, tx).unwrap();
//! println!("{}", client.read("counters", "page_views", "value").unwrap());
//! ```

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use rhizo_algebra::{AlgebraicValue, ColumnSpec, MergeType, Schema};
use rhizo_clock::NodeId;
use rhizo_commit::wire::MAX_FRAME_LEN;
use rhizo_commit::{AlgebraicTransaction, CellKey};
use rhizo_txn::{CommitOutcome, ReadAfter, ReadConsistency, TransactionMode};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use crate::socket::Io;
use crate::{MemberInfo, MembershipChange, NetError, NodeStatus, Result};

mod listener;
pub(crate) mod protocol;
#[cfg(test)]
mod tests;
mod words;

pub use listener::ClientListenerConfig;
pub(crate) use listener::{BoundClientListener, ClientListener};
use protocol::{CLIENT_PROTOCOL_VERSION, Request, Response, decode, encode};
pub use words::{OPERATION_SEPARATOR, transaction_from_words};

/// How a client reaches a node.
#[derive(Clone, Debug)]
pub enum ClientSecurity {
    /// TLS 1.3: the node's certificate must come from the cluster's CA; the client presents its
    /// own (see [`ClientTls::with_identity`]), without which the node refuses it.
    Tls(ClientTls),
    /// Plaintext, for a node started with `Security::Insecure`.
    Insecure,
}

/// The PEM files of a client's TLS identity.
#[derive(Clone, Debug)]
pub struct ClientTls {
    /// The cluster CA's certificate: the only root a node's certificate may chain to.
    pub ca_cert: PathBuf,
    /// The client's certificate and key, issued by the cluster's CA (`rhizo tls client NAME`).
    pub identity: Option<(PathBuf, PathBuf)>,
    /// The node the client means to reach: its certificate must name it. `None` accepts any
    /// node of the cluster (the CA vouches for every certificate it issued).
    pub node: Option<NodeId>,
}

impl ClientTls {
    /// Trusting the cluster CA at `ca_cert`, with no client certificate yet.
    pub fn new(ca_cert: impl Into<PathBuf>) -> Self {
        Self {
            ca_cert: ca_cert.into(),
            identity: None,
            node: None,
        }
    }

    /// With the client certificate `cert` and its key `key`.
    #[must_use]
    pub fn with_identity(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.identity = Some((cert.into(), key.into()));
        self
    }
}

type Conn = Framed<Box<dyn Io>, LengthDelimitedCodec>;

/// A connection to one node, for async callers. Requests on one client are answered in order.
///
/// Connecting and each request are bounded by a timeout ([`AsyncClient::DEFAULT_TIMEOUT`],
/// [`AsyncClient::set_timeout`]); a request that times out is [`NetError::Connection`], and may
/// or may not have been done.
pub struct AsyncClient {
    conn: tokio::sync::Mutex<Conn>,
    node: NodeId,
    address: String,
    timeout: std::time::Duration,
    /// Set when an exchange was cut short (a timeout, a broken socket): an answer may still be
    /// on its way, and would be taken for the next request's, so the connection is not used
    /// again.
    broken: std::sync::atomic::AtomicBool,
    /// The node's schema as last fetched, for [`AsyncClient::read_into`] to tell registers from
    /// other columns. A column's merge type never changes once declared, so a cached answer
    /// stays true; a column the cache lacks makes it fetch again.
    schema: std::sync::Mutex<Option<Schema>>,
}

impl std::fmt::Debug for AsyncClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncClient")
            .field("node", &self.node)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl AsyncClient {
    /// Connects to the client listener at `address` (`host:port`) and reads the node's greeting.
    /// A node that refuses this client's certificate (or its lack of one) is
    /// [`NetError::Connection`].
    pub async fn connect(address: &str, security: &ClientSecurity) -> Result<Self> {
        Self::connect_with_timeout(address, security, Self::DEFAULT_TIMEOUT).await
    }

    /// [`AsyncClient::connect`], with `timeout` bounding the connection and each later request
    /// (instead of [`AsyncClient::DEFAULT_TIMEOUT`]).
    pub async fn connect_with_timeout(
        address: &str,
        security: &ClientSecurity,
        timeout: std::time::Duration,
    ) -> Result<Self> {
        match tokio::time::timeout(timeout, Self::open(address, security)).await {
            Ok(opened) => opened.map(|(conn, node)| Self {
                conn: tokio::sync::Mutex::new(conn),
                node,
                address: address.to_owned(),
                timeout,
                broken: std::sync::atomic::AtomicBool::new(false),
                schema: std::sync::Mutex::new(None),
            }),
            Err(_) => Err(NetError::Connection {
                address: address.to_owned(),
                reason: format!("no greeting within {timeout:?}"),
            }),
        }
    }

    /// The longest a connection or a request waits by default: longer than a node's default
    /// commit timeout, so a coordinated commit's own answer (committed, or undecided) arrives.
    pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

    /// Bounds each later request by `timeout`.
    pub fn set_timeout(&mut self, timeout: std::time::Duration) {
        self.timeout = timeout;
    }

    async fn open(address: &str, security: &ClientSecurity) -> Result<(Conn, NodeId)> {
        let connection = |reason: String| NetError::Connection {
            address: address.to_owned(),
            reason,
        };
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|err| connection(err.to_string()))?;
        let _ = stream.set_nodelay(true);
        let stream: Box<dyn Io> = match security {
            ClientSecurity::Tls(tls) => {
                let (connector, name) = crate::tls::client_connector(tls)?;
                let stream = connector
                    .connect(name, stream)
                    .await
                    .map_err(|err| connection(format!("TLS: {err}")))?;
                Box::new(stream)
            }
            ClientSecurity::Insecure => Box::new(stream),
        };
        let codec = LengthDelimitedCodec::builder()
            .length_field_type::<u32>()
            .max_frame_length(MAX_FRAME_LEN)
            .new_codec();
        let mut conn = Framed::new(stream, codec);
        let node = match receive(&mut conn, address).await? {
            Response::Ready {
                protocol_version: CLIENT_PROTOCOL_VERSION,
                node,
            } => node,
            Response::Ready {
                protocol_version, ..
            } => {
                return Err(connection(format!(
                    "the node speaks client protocol {protocol_version}, this client \
                     {CLIENT_PROTOCOL_VERSION}"
                )));
            }
            other => return Err(unexpected(&other)),
        };
        Ok((conn, node))
    }

    /// The node this client is connected to.
    pub fn node_id(&self) -> NodeId {
        self.node
    }

    async fn call(&self, request: &Request) -> Result<Response> {
        let bytes = encode(request).map_err(|err| NetError::MalformedRequest {
            reason: err.to_string(),
        })?;
        if bytes.len() > MAX_FRAME_LEN {
            return Err(NetError::MessageTooLarge {
                len: bytes.len(),
                max: MAX_FRAME_LEN,
            });
        }
        use std::sync::atomic::Ordering;
        let mut conn = self.conn.lock().await;
        if self.broken.load(Ordering::Acquire) {
            return Err(NetError::Connection {
                address: self.address.clone(),
                reason: "an earlier request was cut short; connect again".into(),
            });
        }
        // Marked broken until the exchange completes: a cancelled or failed one leaves it so.
        self.broken.store(true, Ordering::Release);
        let exchange = async {
            conn.send(Bytes::from(bytes))
                .await
                .map_err(|err| NetError::Connection {
                    address: self.address.clone(),
                    reason: err.to_string(),
                })?;
            receive(&mut conn, &self.address).await
        };
        let answered = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| NetError::Connection {
                address: self.address.clone(),
                reason: format!("no answer within {:?}", self.timeout),
            })?;
        let answered = answered?;
        self.broken.store(false, Ordering::Release);
        match answered {
            Response::Refused(refusal) => Err(refusal.into_net()),
            response => Ok(response),
        }
    }

    /// Commits `tx` on the node in `mode` (see `NodeHandle::commit`).
    pub async fn commit(
        &self,
        mode: TransactionMode,
        tx: AlgebraicTransaction,
    ) -> Result<CommitOutcome> {
        match self.call(&Request::Commit { mode, tx }).await? {
            Response::Committed(outcome) => Ok(outcome),
            other => Err(unexpected(&other)),
        }
    }

    /// Reads one cell on the node.
    pub async fn read(&self, table: &str, row: &str, column: &str) -> Result<AlgebraicValue> {
        let request = Request::Read {
            table: table.to_owned(),
            row: row.to_owned(),
            column: column.to_owned(),
        };
        match self.call(&request).await? {
            Response::Value(value) => Ok(value),
            other => Err(unexpected(&other)),
        }
    }

    /// Reads `keys` on the node from one state, with `consistency` (see
    /// `NodeHandle::read_cells`): the values in the order of `keys`.
    pub async fn read_cells(
        &self,
        consistency: ReadConsistency,
        keys: &[CellKey],
    ) -> Result<Vec<AlgebraicValue>> {
        self.read_cells_after(consistency, keys, &ReadAfter::new())
            .await
    }

    /// Reads `keys` on the node once it holds every commit `after` names, wherever they were
    /// made (see `NodeHandle::read_cells_after`): the values in the order of `keys`.
    pub async fn read_cells_after(
        &self,
        consistency: ReadConsistency,
        keys: &[CellKey],
        after: &ReadAfter,
    ) -> Result<Vec<AlgebraicValue>> {
        let wanted = keys.len();
        let keys = keys.to_vec();
        let request = if after.is_empty() {
            Request::ReadCells { consistency, keys }
        } else {
            Request::ReadCellsAfter {
                consistency,
                keys,
                after: after.clone(),
            }
        };
        match self.call(&request).await? {
            Response::Values(values) if values.len() == wanted => Ok(values),
            other => Err(unexpected(&other)),
        }
    }

    /// Reads one cell on the node with `consistency` (see [`AsyncClient::read_cells`]).
    pub async fn read_with(
        &self,
        consistency: ReadConsistency,
        table: &str,
        row: &str,
        column: &str,
    ) -> Result<AlgebraicValue> {
        let key = CellKey::new(table, row, column);
        let mut values = self
            .read_cells(consistency, std::slice::from_ref(&key))
            .await?;
        Ok(values.remove(0))
    }

    /// The node's status.
    pub async fn status(&self) -> Result<NodeStatus> {
        match self.call(&Request::Status).await? {
            Response::Status(status) => Ok(*status),
            other => Err(unexpected(&other)),
        }
    }

    /// Reads one cell on the node for transaction `tx`, as `NodeTransaction::read` does on an
    /// embedded node: in a coordinated transaction a register's value joins `tx`'s read set,
    /// which the log validates (the commit is refused with `ReadConflict` if the register
    /// changed in between); other reads leave `tx` as it was.
    pub async fn read_into(
        &self,
        mode: TransactionMode,
        tx: &mut AlgebraicTransaction,
        table: &str,
        row: &str,
        column: &str,
    ) -> Result<AlgebraicValue> {
        let value = self.read(table, row, column).await?;
        if mode == TransactionMode::Coordinated && self.is_register(table, column).await? {
            tx.expect(table, row, column, value.clone());
        }
        Ok(value)
    }

    /// Whether `table.column` is a register on the node, from the cached schema or, when it
    /// lacks the column, a fresh one.
    async fn is_register(&self, table: &str, column: &str) -> Result<bool> {
        let merge_in = |schema: &Schema| schema.column(table, column).ok().map(ColumnSpec::merge);
        let cache = || self.schema.lock().unwrap_or_else(|e| e.into_inner());
        let cached = cache().as_ref().and_then(merge_in);
        let merge = match cached {
            Some(merge) => Some(merge),
            None => {
                let schema = self.schema().await?;
                let merge = merge_in(&schema);
                *cache() = Some(schema);
                merge
            }
        };
        Ok(merge == Some(MergeType::Register))
    }

    /// Declares a column on the node (ordered through Raft on a cluster).
    pub async fn declare_column(&self, table: &str, column: &str, spec: ColumnSpec) -> Result<()> {
        let request = Request::DeclareColumn {
            table: table.to_owned(),
            column: column.to_owned(),
            spec,
        };
        match self.call(&request).await? {
            Response::Declared => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// The schema in force on the node.
    pub async fn schema(&self) -> Result<Schema> {
        match self.call(&Request::Schema).await? {
            Response::Schema(schema) => Ok(schema),
            other => Err(unexpected(&other)),
        }
    }

    /// The cluster's members as the node has applied them.
    pub async fn members(&self) -> Result<Vec<MemberInfo>> {
        match self.call(&Request::Members).await? {
            Response::Members(members) => Ok(members),
            other => Err(unexpected(&other)),
        }
    }

    /// Changes the cluster's membership through the node (see
    /// [`crate::NodeHandle::change_members_async`]); returns once the node applied it. The
    /// node's refusals arrive typed: an unknown member, one already a member, the last voter.
    pub async fn change_members(&self, change: MembershipChange) -> Result<()> {
        match self.call(&Request::ChangeMembers(change)).await? {
            Response::MembersChanged => Ok(()),
            other => Err(unexpected(&other)),
        }
    }
}

async fn receive(conn: &mut Conn, address: &str) -> Result<Response> {
    let lost = |reason: String| NetError::Connection {
        address: address.to_owned(),
        reason,
    };
    match conn.next().await {
        None => Err(lost("the node closed the connection".into())),
        Some(Err(err)) => Err(lost(err.to_string())),
        Some(Ok(block)) => {
            decode::<Response>(&block).map_err(|reason| NetError::MalformedResponse { reason })
        }
    }
}

fn unexpected(response: &Response) -> NetError {
    NetError::MalformedResponse {
        reason: format!("an answer that does not fit the request: {response:?}"),
    }
}

/// A connection to one node, for blocking callers: an [`AsyncClient`] on a runtime of its own.
/// Cheap to clone; calls from several threads are answered one at a time, in order.
#[derive(Clone)]
pub struct Client {
    inner: Arc<AsyncClient>,
    runtime: Arc<Mutex<tokio::runtime::Runtime>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl Client {
    /// Connects (see [`AsyncClient::connect`]). Must not be called from within an async runtime.
    pub fn connect(address: &str, security: &ClientSecurity) -> Result<Self> {
        Self::connect_with_timeout(address, security, AsyncClient::DEFAULT_TIMEOUT)
    }

    /// See [`AsyncClient::connect_with_timeout`]. Must not be called from within an async
    /// runtime.
    pub fn connect_with_timeout(
        address: &str,
        security: &ClientSecurity,
        timeout: std::time::Duration,
    ) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(NetError::Runtime)?;
        let inner = runtime.block_on(AsyncClient::connect_with_timeout(
            address, security, timeout,
        ))?;
        Ok(Self {
            inner: Arc::new(inner),
            runtime: Arc::new(Mutex::new(runtime)),
        })
    }

    fn block_on<T>(&self, call: impl std::future::Future<Output = T>) -> T {
        let runtime = self.runtime.lock().unwrap_or_else(|e| e.into_inner());
        runtime.block_on(call)
    }

    /// The node this client is connected to.
    pub fn node_id(&self) -> NodeId {
        self.inner.node_id()
    }

    /// See [`AsyncClient::commit`].
    pub fn commit(&self, mode: TransactionMode, tx: AlgebraicTransaction) -> Result<CommitOutcome> {
        self.block_on(self.inner.commit(mode, tx))
    }

    /// See [`AsyncClient::read`].
    pub fn read(&self, table: &str, row: &str, column: &str) -> Result<AlgebraicValue> {
        self.block_on(self.inner.read(table, row, column))
    }

    /// See [`AsyncClient::read_cells`].
    pub fn read_cells(
        &self,
        consistency: ReadConsistency,
        keys: &[CellKey],
    ) -> Result<Vec<AlgebraicValue>> {
        self.block_on(self.inner.read_cells(consistency, keys))
    }

    /// See [`AsyncClient::read_cells_after`].
    pub fn read_cells_after(
        &self,
        consistency: ReadConsistency,
        keys: &[CellKey],
        after: &ReadAfter,
    ) -> Result<Vec<AlgebraicValue>> {
        self.block_on(self.inner.read_cells_after(consistency, keys, after))
    }

    /// See [`AsyncClient::read_with`].
    pub fn read_with(
        &self,
        consistency: ReadConsistency,
        table: &str,
        row: &str,
        column: &str,
    ) -> Result<AlgebraicValue> {
        self.block_on(self.inner.read_with(consistency, table, row, column))
    }

    /// See [`AsyncClient::read_into`].
    pub fn read_into(
        &self,
        mode: TransactionMode,
        tx: &mut AlgebraicTransaction,
        table: &str,
        row: &str,
        column: &str,
    ) -> Result<AlgebraicValue> {
        self.block_on(self.inner.read_into(mode, tx, table, row, column))
    }

    /// See [`AsyncClient::status`].
    pub fn status(&self) -> Result<NodeStatus> {
        self.block_on(self.inner.status())
    }

    /// See [`AsyncClient::declare_column`].
    pub fn declare_column(&self, table: &str, column: &str, spec: ColumnSpec) -> Result<()> {
        self.block_on(self.inner.declare_column(table, column, spec))
    }

    /// See [`AsyncClient::schema`].
    pub fn schema(&self) -> Result<Schema> {
        self.block_on(self.inner.schema())
    }

    /// See [`AsyncClient::members`].
    pub fn members(&self) -> Result<Vec<MemberInfo>> {
        self.block_on(self.inner.members())
    }

    /// See [`AsyncClient::change_members`].
    pub fn change_members(&self, change: MembershipChange) -> Result<()> {
        self.block_on(self.inner.change_members(change))
    }
}
