//! `rhizo-net`: a networked node running inside the Python process (`PyNode`) and a client of
//! a running node (`PyClient`), both handing out the same `PyTransaction` as an engine.
//!
//! The node's network loop runs on its own Rust threads: no Python code moves a message. Every
//! call that may wait (a commit waiting for Raft or the disk, a request on the wire, starting
//! and stopping) releases the GIL first, and no Python code runs while a Rust lock is held.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use pyo3::exceptions::PyUserWarning;
use pyo3::prelude::*;
use pyo3::types::PyType;
use rhizo_algebra::{AlgebraicValue, ColumnSpec};
use rhizo_commit::{AlgebraicTransaction, CellKey};
use rhizo_net::{
    Client, ClientSecurity, ClientTls, ConfigFile, MemberInfo, MembershipChange, NetError, Node,
    NodeConfig, NodeHandle, Security, pki,
};
use rhizo_txn::{CommitOutcome, ReadAfter, ReadConsistency, TransactionMode, default_schema};

use crate::algebra::{MergeTypeArg, PySchema, ValueTypeArg};
use crate::clock::PyNodeId;
use crate::convert::{NodeArg, value_to_py};
use crate::engine::{PyCommitOutcome, PyTransaction, Target, parse_mode};
use crate::errors::{Exc, PyResultExt, Raise, ToRaise};

impl ToRaise for NetError {
    fn to_raise(self) -> Raise {
        use NetError as E;
        let message = self.to_string();
        match self {
            E::Engine(err) => err.to_raise(),
            E::InvalidConfig { .. } => Raise::new(Exc::Config, "InvalidConfig", message),
            E::TlsFile { .. } => Raise::new(Exc::Config, "TlsFile", message),
            E::Tls(_) => Raise::new(Exc::Config, "Tls", message),
            E::ConfigFile { .. } => Raise::new(Exc::Config, "ConfigFile", message),
            E::Usage { .. } => Raise::new(Exc::Config, "Usage", message),
            E::Metrics { .. } => Raise::new(Exc::Config, "Metrics", message),
            E::Bind { .. } => Raise::new(Exc::Storage, "Bind", message),
            E::Runtime(_) => Raise::new(Exc::Storage, "Runtime", message),
            // The node stopped, like a closed engine.
            E::ShutDown => Raise::new(Exc::Storage, "ShutDown", message),
            // The node left its cluster: like a stopped one, it takes no writes.
            E::Removed { .. } => Raise::new(Exc::Storage, "Removed", message),
            // A request in flight when the connection broke may or may not have been done:
            // not retryable blindly (read first), as an undecided outcome.
            E::Connection { .. } => Raise::new(Exc::Storage, "Connection", message),
            E::MalformedRequest { .. } => Raise::new(Exc::Decode, "MalformedRequest", message),
            E::MalformedResponse { .. } => Raise::new(Exc::Decode, "MalformedResponse", message),
            E::NodeFailure { .. } => Raise::new(Exc::Rhizo, "NodeFailure", message),
            // Transport errors a node handles itself; mapped for completeness.
            E::UnknownPeer { .. } => Raise::new(Exc::Rhizo, "UnknownPeer", message),
            E::PeerUnreachable { .. } => Raise::new(Exc::Rhizo, "PeerUnreachable", message),
            E::QueueFull { .. } => Raise::new(Exc::Rhizo, "QueueFull", message),
            E::MessageTooLarge { .. } => Raise::new(Exc::Rhizo, "MessageTooLarge", message),
        }
    }
}

/// Whether a refused commit may succeed if tried again (the engine's own judgement).
pub(crate) fn is_retryable(err: &NetError) -> bool {
    matches!(err, NetError::Engine(inner) if inner.is_retryable())
}

fn closed(what: &str) -> PyErr {
    Raise::new(Exc::Storage, "Closed", format!("the {what} is closed")).into_pyerr()
}

/// A settings error: the JSON the `rhizo` package built, or a key it passed through.
fn settings_error(reason: impl std::fmt::Display) -> PyErr {
    Raise::new(
        Exc::Config,
        "ConfigFile",
        format!("node settings: {reason}"),
    )
    .into_pyerr()
}

/// The node configuration from `start_node`'s keyword settings, as JSON in the configuration
/// file's shape (so that its keys, checks and defaults are the file's, documented in
/// `docs/config.md`). A `null` data directory keeps the log in memory.
fn config_from_settings(settings: &str) -> PyResult<NodeConfig> {
    let mut value: serde_json::Value = serde_json::from_str(settings).map_err(settings_error)?;
    let in_memory = value
        .get("data_dir")
        .is_some_and(serde_json::Value::is_null);
    if in_memory && let Some(object) = value.as_object_mut() {
        object.insert("data_dir".to_owned(), serde_json::Value::from("."));
    }
    let file: ConfigFile = serde_json::from_value(value).map_err(settings_error)?;
    let mut config = file.node_config(Path::new("")).py()?;
    if in_memory {
        config.data_dir = None;
    }
    if file.schema.is_empty() {
        config = config.with_schema(default_schema());
    }
    Ok(config)
}

/// A networked node in this process: its engine, its peers over TCP (mutual TLS unless started
/// insecure) and, if asked, a client listener.
///
/// Shared by any number of Python threads; every call releases the GIL while it waits.
#[pyclass(module = "_rhizo", name = "PyNode", frozen)]
pub(crate) struct PyNode {
    handle: Mutex<Option<NodeHandle>>,
}

impl PyNode {
    fn slot(&self) -> MutexGuard<'_, Option<NodeHandle>> {
        self.handle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The running node (a cheap clone: the slot's lock is not held while it is used).
    pub(crate) fn handle(&self) -> PyResult<NodeHandle> {
        self.slot().clone().ok_or_else(|| closed("node"))
    }

    /// Runs `f` on the node with the GIL released.
    fn with<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&NodeHandle) -> Result<R, NetError> + Send,
    ) -> PyResult<R> {
        let handle = self.handle()?;
        py.detach(|| f(&handle)).py()
    }

    pub(crate) fn read_into(
        &self,
        py: Python<'_>,
        mode: TransactionMode,
        tx: &mut AlgebraicTransaction,
        cell: (&str, &str, &str),
    ) -> PyResult<AlgebraicValue> {
        let (table, row, column) = cell;
        self.with(py, |node| {
            Ok(node.with_engine(|e| e.read_into(mode, tx, table, row, column))?)
        })
    }

    pub(crate) fn commit(
        &self,
        py: Python<'_>,
        mode: TransactionMode,
        tx: AlgebraicTransaction,
    ) -> PyResult<Result<CommitOutcome, NetError>> {
        let handle = self.handle()?;
        Ok(py.detach(|| handle.commit(mode, tx)))
    }
}

impl Drop for PyNode {
    /// A node dropped without `close()` stops gracefully (its threads would otherwise outlive
    /// every reference to it).
    fn drop(&mut self) {
        if let Some(handle) = self.slot().take() {
            let _ = handle.shutdown();
        }
    }
}

#[pymethods]
impl PyNode {
    /// Starts a node: from `settings`, JSON in the configuration file's shape (what
    /// `rhizo.start_node` builds from its arguments), or from the configuration file at
    /// `config`. `schema` replaces the columns declared at start.
    #[new]
    #[pyo3(signature = (settings = None, *, config = None, schema = None))]
    fn new(
        py: Python<'_>,
        settings: Option<&str>,
        config: Option<PathBuf>,
        schema: Option<&PySchema>,
    ) -> PyResult<Self> {
        let mut config = match (settings, config) {
            (Some(settings), None) => config_from_settings(settings)?,
            (None, Some(path)) => {
                let file = ConfigFile::load(&path).py()?;
                let base = path.parent().unwrap_or_else(|| Path::new(""));
                file.node_config(base).py()?
            }
            _ => {
                return Err(settings_error(
                    "give either the settings or a configuration file, not both",
                ));
            }
        };
        if let Some(schema) = schema {
            config = config.with_schema(schema.0.clone());
        }
        if matches!(config.transport.security, Security::Insecure) {
            let category = py.get_type::<PyUserWarning>();
            PyErr::warn(
                py,
                &category,
                c"rhizo node started insecure: peers and clients are neither encrypted nor \
                  authenticated",
                1,
            )?;
        }
        // Opening replays the log and binding may wait: other threads run meanwhile.
        let handle = py.detach(|| Node::start(config)).py()?;
        Ok(Self {
            handle: Mutex::new(Some(handle)),
        })
    }

    /// Starts a transaction (see `PyEngine.transaction`); committed through this node.
    #[pyo3(signature = (mode = "coordinated"))]
    fn transaction(slf: Bound<'_, Self>, mode: &str) -> PyResult<PyTransaction> {
        let mode = parse_mode(mode)?;
        slf.get().handle()?;
        Ok(PyTransaction::new(Target::Net(slf.unbind()), mode))
    }

    /// The same transaction, for `async with`: its commit runs on a worker thread and the
    /// event loop keeps running while it waits.
    #[pyo3(signature = (mode = "coordinated"))]
    fn atransaction(slf: Bound<'_, Self>, mode: &str) -> PyResult<PyTransaction> {
        Self::transaction(slf, mode)
    }

    /// Reads one cell on this node (`column` defaults to `"value"`): `consistency="local"`
    /// answers from this node at once; `"linearizable"` first waits until this node holds
    /// every coordinated transaction acknowledged anywhere before the call.
    /// With `after` (outcomes of commits made on this node or any other), it first waits until
    /// this node holds them all (read-your-writes across nodes), up to the commit timeout.
    #[pyo3(signature = (table, row, column = "value", *, consistency = "local", after = None))]
    fn read<'py>(
        &self,
        py: Python<'py>,
        table: &str,
        row: &str,
        column: &str,
        consistency: &str,
        after: Option<Vec<PyRef<'py, PyCommitOutcome>>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let consistency = parse_consistency(consistency)?;
        let after = read_after(after);
        let key = [CellKey::new(table, row, column)];
        let values = self.with(py, |n| n.read_cells_after(consistency, &key, &after))?;
        value_to_py(py, &values[0])
    }

    /// Reads several `(table, row, column)` cells from one state of this node (a transaction
    /// that wrote some of them is seen whole or not at all), with `consistency` and `after` as
    /// in `read`.
    #[pyo3(signature = (cells, *, consistency = "local", after = None))]
    fn read_many<'py>(
        &self,
        py: Python<'py>,
        cells: Vec<(String, String, String)>,
        consistency: &str,
        after: Option<Vec<PyRef<'py, PyCommitOutcome>>>,
    ) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let consistency = parse_consistency(consistency)?;
        let after = read_after(after);
        let keys = cell_keys(cells);
        let values = self.with(py, |n| n.read_cells_after(consistency, &keys, &after))?;
        values.iter().map(|value| value_to_py(py, value)).collect()
    }

    /// Declares `table.column` on the cluster (ordered through Raft when there are several
    /// members); returns the schema version then in force here.
    fn declare_column(
        &self,
        py: Python<'_>,
        table: &str,
        column: &str,
        merge: MergeTypeArg,
        value_type: ValueTypeArg,
    ) -> PyResult<u64> {
        let spec = ColumnSpec::new(merge.0, value_type.0).py()?;
        self.with(py, |n| {
            n.declare_column(table, column, spec)?;
            Ok(n.with_engine(|e| e.schema().version()))
        })
    }

    /// What this node knows of itself and the cluster, as a dict: `node`, `members`, `clock`,
    /// `peers_behind`, `raft` (`None` for a single node), `transport` and `fingerprint`.
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let status = self.with(py, |n| Ok(n.status()))?;
        status_to_py(py, &status)
    }

    /// The cluster's members as this node has applied them: a list of dicts, as `status()`
    /// returns its data, each `{"node": "n1", "address": "127.0.0.1:7001", "voter": True,
    /// "retired": False}` (`address` is empty for a member of the static configuration).
    fn members<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let members = self.with(py, |n| Ok(n.members()))?;
        members_to_py(py, &members)
    }

    /// Adds `node`, which its peers reach at `address` (`"host:port"`), to the cluster; returns
    /// once this node has applied the change. The newcomer joins as a learner (start it with
    /// every member as a peer and `raft={"join": True}`) and votes once it has caught up.
    fn add_member(&self, py: Python<'_>, node: NodeArg, address: String) -> PyResult<()> {
        let change = MembershipChange::Add {
            node: node.0,
            address,
        };
        self.with(py, |n| n.change_members(change))
    }

    /// Removes `node` from the cluster. By default it drains first: it stops taking writes,
    /// its commits reach the other members, then it is removed; `NotDrained` (retryable)
    /// if that takes longer than the commit timeout. `force=True` removes it at once, losing
    /// what only it held (for a node that is gone for good).
    #[pyo3(signature = (node, *, force = false))]
    fn remove_member(&self, py: Python<'_>, node: NodeArg, force: bool) -> PyResult<()> {
        let change = removal(node, force);
        self.with(py, |n| n.change_members(change))
    }

    /// A digest of the replicated state: equal on nodes holding the same updates.
    fn fingerprint(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, |n| Ok(n.with_engine(rhizo_txn::Engine::fingerprint)))
    }

    /// This node.
    #[getter]
    fn node_id(&self) -> PyResult<PyNodeId> {
        Ok(PyNodeId(self.handle()?.node_id()))
    }

    /// The address peers reach this node at, `"host:port"` (the port the OS chose for `:0`).
    #[getter]
    fn address(&self) -> PyResult<String> {
        Ok(self.handle()?.local_addr().to_string())
    }

    /// The client listener's address, `"host:port"`, or `None` without one.
    #[getter]
    fn client_address(&self) -> PyResult<Option<String>> {
        Ok(self.handle()?.client_addr().map(|a| a.to_string()))
    }

    /// The schema in force.
    #[getter]
    fn schema(&self) -> PyResult<PySchema> {
        Ok(PySchema(self.handle()?.with_engine(|e| e.schema().clone())))
    }

    /// Stops the node gracefully: the log made durable, queued messages written, connections
    /// closed. Later calls raise `StorageError`; closing twice is a no-op.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let Some(handle) = self.slot().take() else {
            return Ok(());
        };
        py.detach(|| handle.shutdown()).py()
    }

    /// Whether the node is closed.
    #[getter]
    fn closed(&self) -> bool {
        self.slot().is_none()
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (_exc_type = None, _exc = None, _tb = None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyType>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        match self.slot().as_ref() {
            Some(node) => format!(
                "PyNode({:?}, address='{}')",
                node.node_id().name().as_str(),
                node.local_addr()
            ),
            None => "PyNode(closed)".to_owned(),
        }
    }
}

/// A node's status as a Python dict (through its serialized form: one conversion to keep in
/// step with `NodeStatus`).
fn status_to_py<'py>(
    py: Python<'py>,
    status: &rhizo_net::NodeStatus,
) -> PyResult<Bound<'py, PyAny>> {
    let json = serde_json::to_string(status).map_err(settings_error)?;
    py.import("json")?.call_method1("loads", (json,))
}

/// The members as a list of dicts (through their serialized form, as `status_to_py`).
fn members_to_py<'py>(py: Python<'py>, members: &[MemberInfo]) -> PyResult<Bound<'py, PyAny>> {
    let json = serde_json::to_string(members).map_err(settings_error)?;
    py.import("json")?.call_method1("loads", (json,))
}

fn removal(node: NodeArg, force: bool) -> MembershipChange {
    if force {
        MembershipChange::ForceRemove { node: node.0 }
    } else {
        MembershipChange::Remove { node: node.0 }
    }
}

/// A connection to a running node's client listener (`rhizo agent`, or a `rhizo.Node` started
/// with `client_listen`). Each transaction's operations travel in one request.
///
/// Shared by any number of Python threads (their requests take turns on the one connection);
/// every request releases the GIL while it waits.
#[pyclass(module = "_rhizo", name = "PyClient", frozen)]
pub(crate) struct PyClient {
    client: Mutex<Option<Client>>,
    address: String,
}

impl PyClient {
    fn slot(&self) -> MutexGuard<'_, Option<Client>> {
        self.client.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn client(&self) -> PyResult<Client> {
        self.slot().clone().ok_or_else(|| closed("client"))
    }

    fn with<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&Client) -> Result<R, NetError> + Send,
    ) -> PyResult<R> {
        let client = self.client()?;
        py.detach(|| f(&client)).py()
    }

    pub(crate) fn read_into(
        &self,
        py: Python<'_>,
        mode: TransactionMode,
        tx: &mut AlgebraicTransaction,
        cell: (&str, &str, &str),
    ) -> PyResult<AlgebraicValue> {
        let (table, row, column) = cell;
        self.with(py, |c| c.read_into(mode, tx, table, row, column))
    }

    pub(crate) fn commit(
        &self,
        py: Python<'_>,
        mode: TransactionMode,
        tx: AlgebraicTransaction,
    ) -> PyResult<Result<CommitOutcome, NetError>> {
        let client = self.client()?;
        Ok(py.detach(|| client.commit(mode, tx)))
    }
}

#[pymethods]
impl PyClient {
    /// Connects to the client listener at `address` (`"host:port"`). With `ca`, over TLS: the
    /// node's certificate must come from that CA, and `cert`/`key` are this client's identity
    /// (a node under TLS refuses a client without one); without it, plaintext (a node started
    /// insecure). `timeout` (seconds) bounds connecting and each request.
    #[new]
    #[pyo3(signature = (address, *, ca = None, cert = None, key = None, timeout = 10.0))]
    fn new(
        py: Python<'_>,
        address: String,
        ca: Option<PathBuf>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        timeout: f64,
    ) -> PyResult<Self> {
        let security = match (ca, cert, key) {
            (None, None, None) => ClientSecurity::Insecure,
            (Some(ca), None, None) => ClientSecurity::Tls(ClientTls::new(ca)),
            (Some(ca), Some(cert), Some(key)) => {
                ClientSecurity::Tls(ClientTls::new(ca).with_identity(cert, key))
            }
            _ => {
                return Err(Raise::new(
                    Exc::Config,
                    "InvalidConfig",
                    "a client's TLS needs the CA, and its certificate and key together",
                )
                .into_pyerr());
            }
        };
        let timeout = Duration::try_from_secs_f64(timeout)
            .ok()
            .filter(|t| !t.is_zero())
            .ok_or_else(|| {
                Raise::new(
                    Exc::Config,
                    "InvalidConfig",
                    format!("timeout must be a positive number of seconds, not {timeout}"),
                )
                .into_pyerr()
            })?;
        let client = py
            .detach(|| Client::connect_with_timeout(&address, &security, timeout))
            .py()?;
        Ok(Self {
            client: Mutex::new(Some(client)),
            address,
        })
    }

    /// Starts a transaction (see `PyEngine.transaction`); its operations are sent to the node
    /// in one request when it commits.
    #[pyo3(signature = (mode = "coordinated"))]
    fn transaction(slf: Bound<'_, Self>, mode: &str) -> PyResult<PyTransaction> {
        let mode = parse_mode(mode)?;
        slf.get().client()?;
        Ok(PyTransaction::new(Target::Remote(slf.unbind()), mode))
    }

    /// The same transaction, for `async with` (see `PyNode.atransaction`).
    #[pyo3(signature = (mode = "coordinated"))]
    fn atransaction(slf: Bound<'_, Self>, mode: &str) -> PyResult<PyTransaction> {
        Self::transaction(slf, mode)
    }

    /// Reads one cell on the node (`column` defaults to `"value"`), with `consistency` as in
    /// `PyNode.read`, and `after` as there.
    #[pyo3(signature = (table, row, column = "value", *, consistency = "local", after = None))]
    fn read<'py>(
        &self,
        py: Python<'py>,
        table: &str,
        row: &str,
        column: &str,
        consistency: &str,
        after: Option<Vec<PyRef<'py, PyCommitOutcome>>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let consistency = parse_consistency(consistency)?;
        let after = read_after(after);
        let key = [CellKey::new(table, row, column)];
        let values = self.with(py, |c| c.read_cells_after(consistency, &key, &after))?;
        value_to_py(py, &values[0])
    }

    /// Reads several cells from one state of the node (see `PyNode.read_many`).
    #[pyo3(signature = (cells, *, consistency = "local", after = None))]
    fn read_many<'py>(
        &self,
        py: Python<'py>,
        cells: Vec<(String, String, String)>,
        consistency: &str,
        after: Option<Vec<PyRef<'py, PyCommitOutcome>>>,
    ) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let consistency = parse_consistency(consistency)?;
        let after = read_after(after);
        let keys = cell_keys(cells);
        let values = self.with(py, |c| c.read_cells_after(consistency, &keys, &after))?;
        values.iter().map(|value| value_to_py(py, value)).collect()
    }

    /// Declares `table.column` on the node; returns the node's schema version then.
    fn declare_column(
        &self,
        py: Python<'_>,
        table: &str,
        column: &str,
        merge: MergeTypeArg,
        value_type: ValueTypeArg,
    ) -> PyResult<u64> {
        let spec = ColumnSpec::new(merge.0, value_type.0).py()?;
        self.with(py, |c| {
            c.declare_column(table, column, spec)?;
            Ok(c.schema()?.version())
        })
    }

    /// The node's status (see `PyNode.status`).
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let status = self.with(py, Client::status)?;
        status_to_py(py, &status)
    }

    /// The cluster's members as the node has applied them (see `PyNode.members`).
    fn members<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let members = self.with(py, Client::members)?;
        members_to_py(py, &members)
    }

    /// Adds `node`, reached by its peers at `address`, through the node (see
    /// `PyNode.add_member`).
    fn add_member(&self, py: Python<'_>, node: NodeArg, address: String) -> PyResult<()> {
        let change = MembershipChange::Add {
            node: node.0,
            address,
        };
        self.with(py, |c| c.change_members(change))
    }

    /// Removes `node` through the node, draining it unless `force` (see
    /// `PyNode.remove_member`).
    #[pyo3(signature = (node, *, force = false))]
    fn remove_member(&self, py: Python<'_>, node: NodeArg, force: bool) -> PyResult<()> {
        let change = removal(node, force);
        self.with(py, |c| c.change_members(change))
    }

    /// The node's state digest (see `PyNode.fingerprint`).
    fn fingerprint(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, |c| Ok(c.status()?.fingerprint))
    }

    /// The node's schema.
    #[getter]
    fn schema(&self, py: Python<'_>) -> PyResult<PySchema> {
        self.with(py, Client::schema).map(PySchema)
    }

    /// The node this client is connected to.
    #[getter]
    fn node_id(&self) -> PyResult<PyNodeId> {
        Ok(PyNodeId(self.client()?.node_id()))
    }

    /// The address connected to.
    #[getter]
    fn address(&self) -> &str {
        &self.address
    }

    /// Closes the connection; later calls raise `StorageError`. Closing twice is a no-op.
    fn close(&self) {
        drop(self.slot().take());
    }

    /// Whether the client is closed.
    #[getter]
    fn closed(&self) -> bool {
        self.slot().is_none()
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (_exc_type = None, _exc = None, _tb = None))]
    fn __exit__(
        &self,
        _exc_type: Option<&Bound<'_, PyType>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> bool {
        self.close();
        false
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { ", closed" } else { "" };
        format!("PyClient('{}'{state})", self.address)
    }
}

/// `rhizo.tls_ca(directory, cluster="rhizo")`: what `rhizo tls ca` writes (`ca.crt`, `ca.key`).
#[pyfunction]
#[pyo3(signature = (directory, cluster = "rhizo"))]
pub(crate) fn tls_ca(directory: PathBuf, cluster: &str) -> PyResult<(PathBuf, PathBuf)> {
    let issue = pki::Issue::Ca {
        cluster: cluster.to_owned(),
    };
    pki::issue_into(&directory, &issue).py()
}

/// `rhizo.tls_node(directory, name)`: what `rhizo tls node NAME` writes, signed by the CA in
/// `directory`.
#[pyfunction]
pub(crate) fn tls_node(directory: PathBuf, name: String) -> PyResult<(PathBuf, PathBuf)> {
    pki::issue_into(&directory, &pki::Issue::Node { name }).py()
}

/// `rhizo.tls_client(directory, name)`: what `rhizo tls client NAME` writes, signed by the CA
/// in `directory`.
#[pyfunction]
pub(crate) fn tls_client(directory: PathBuf, name: String) -> PyResult<(PathBuf, PathBuf)> {
    pki::issue_into(&directory, &pki::Issue::Client { name }).py()
}

/// A read consistency argument, by the name `rhizo_txn::ReadConsistency` parses.
fn parse_consistency(name: &str) -> PyResult<ReadConsistency> {
    name.parse::<ReadConsistency>().py()
}

/// The commits named by `after`'s outcomes (none when not given).
fn read_after(after: Option<Vec<PyRef<'_, PyCommitOutcome>>>) -> ReadAfter {
    let mut token = ReadAfter::new();
    for outcome in after.iter().flatten() {
        token.include(&outcome.0);
    }
    token
}

fn cell_keys(cells: Vec<(String, String, String)>) -> Vec<CellKey> {
    cells
        .into_iter()
        .map(|(table, row, column)| CellKey::new(&table, &row, &column))
        .collect()
}
