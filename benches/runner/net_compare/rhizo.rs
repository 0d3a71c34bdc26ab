//! Three Rhizo nodes over mutual TLS on 127.0.0.1, each serving clients on a listener of its
//! own, and the clients that drive them: `rhizo_net::Client` connections over the network, as
//! etcd's clients reach etcd.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rhizo_algebra::AlgebraicValue;
use rhizo_commit::{AlgebraicTransaction, Operations};
use rhizo_net::{Client, ClientSecurity, ClientTls, NetError};
use rhizo_txn::{ReadConsistency, SyncPolicy, TransactionMode, TxnError};

use super::load::{Attempt, Worker, with_retries};

/// Nodes of the cluster.
pub(crate) const NODES: usize = 3;
/// Keys that puts and increments are spread over.
pub(crate) const KEYS: u64 = 10_000;
/// The table and column of counters (ADD) and of registers.
const COUNTERS: (&str, &str) = ("counters", "value");
const REGISTERS: (&str, &str) = ("kv", "reg");
/// The longest a probe's increment may take to become visible on the other nodes before the
/// run fails: far beyond any anti-entropy delay, so only a node that stopped exchanging fails it,
/// never a slow moment of a loaded machine.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Three nodes with client listeners (shut down when dropped, with their cluster).
pub(crate) struct ServingCluster {
    nodes: crate::net::Cluster,
    client_addrs: Vec<String>,
    client_security: ClientSecurity,
}

impl ServingCluster {
    /// Starts the nodes under `sync`, each on a data directory of its own, with a client
    /// certificate from the cluster's CA for the bench's clients.
    pub(crate) fn start(sync: SyncPolicy) -> Result<Self, String> {
        let nodes = crate::net::start(sync, true)?;
        let (client_cert, client_key) = nodes
            .ca
            .issue_client("bench-client")
            .and_then(|issued| issued.write(&nodes.certs, "bench-client"))
            .map_err(|e| e.to_string())?;
        let client_addrs = nodes
            .handles
            .iter()
            .map(|handle| {
                handle
                    .client_addr()
                    .map(|address| address.to_string())
                    .ok_or_else(|| "a node started without its client listener".to_owned())
            })
            .collect::<Result<_, _>>()?;
        let client_security = ClientSecurity::Tls(
            ClientTls::new(nodes.certs.join("ca.crt")).with_identity(client_cert, client_key),
        );
        Ok(Self {
            nodes,
            client_addrs,
            client_security,
        })
    }

    /// A connection to node `node`'s client listener (connected on first use).
    pub(crate) fn connection(&self, node: usize) -> Connection {
        Connection {
            address: self.client_addrs[node % NODES].clone(),
            security: self.client_security.clone(),
            client: None,
        }
    }

    /// Whether every node holds the same updates and state, and the counters `keys` add up to
    /// `total`, within `timeout` (asked of the nodes in this process, not over the network).
    pub(crate) fn converged(
        &self,
        keys: &[String],
        total: i64,
        timeout: Duration,
    ) -> Result<bool, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let clocks: Vec<_> = self
                .nodes
                .handles
                .iter()
                .map(|h| h.with_engine(|e| e.clock().clone()))
                .collect();
            if clocks.windows(2).all(|w| w[0] == w[1]) {
                let mut sum = 0i64;
                for key in keys {
                    if let AlgebraicValue::Integer(v) = self.nodes.handles[0]
                        .read(COUNTERS.0, key, COUNTERS.1)
                        .map_err(|e| e.to_string())?
                    {
                        sum += v;
                    }
                }
                let prints: Vec<u64> = self
                    .nodes
                    .handles
                    .iter()
                    .map(|h| h.with_engine(rhizo_txn::Engine::fingerprint))
                    .collect();
                if sum == total && prints.windows(2).all(|w| w[0] == w[1]) {
                    return Ok(true);
                }
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// A client connection to one node. A request cut short (a timeout, a broken socket) leaves a
/// `rhizo_net::Client` unusable, so the next request connects again, as a client would.
pub(crate) struct Connection {
    address: String,
    security: ClientSecurity,
    client: Option<Client>,
}

impl Connection {
    fn client(&mut self) -> Result<&Client, NetError> {
        if self.client.is_none() {
            self.client = Some(Client::connect(&self.address, &self.security)?);
        }
        Ok(self.client.as_ref().expect("connected above"))
    }

    /// Drops the connection after a connection failure, for the next call to connect again.
    fn after<T>(&mut self, result: Result<T, NetError>) -> Result<T, NetError> {
        if matches!(result, Err(NetError::Connection { .. })) {
            self.client = None;
        }
        result
    }

    /// Commits `tx` in `mode`.
    fn commit(&mut self, mode: TransactionMode, tx: AlgebraicTransaction) -> Result<(), NetError> {
        let committed = self.client().and_then(|c| c.commit(mode, tx).map(drop));
        self.after(committed)
    }

    /// Reads one cell.
    fn read(&mut self, table: &str, row: &str, column: &str) -> Result<AlgebraicValue, NetError> {
        let read = self.client().and_then(|c| c.read(table, row, column));
        self.after(read)
    }
}

/// What a client does with a failure: try again when the node says so (no leader, an outcome
/// left unknown by a leader change, a timeout) or the connection failed; give up otherwise.
fn classify(err: NetError) -> Attempt {
    match &err {
        NetError::Engine(engine) if engine.is_retryable() => Attempt::Retry(err.to_string()),
        NetError::Connection { .. } => Attempt::Retry(err.to_string()),
        _ => Attempt::Fail(err.to_string()),
    }
}

/// The key operation `op` of client `client` touches: a fixed stride walks the key space
/// uniformly without a generator, each client from its own place.
pub(crate) fn key_of(client: usize, op: u64) -> u64 {
    (client as u64 * 3_301 + op * 7_919) % KEYS
}

/// Coordinated register writes over [`KEYS`] keys.
pub(crate) struct Put {
    connection: Connection,
    client: usize,
}

impl Put {
    /// Client number `client`, through `connection`.
    pub(crate) fn new(connection: Connection, client: usize) -> Self {
        Self { connection, client }
    }
}

impl Worker for Put {
    fn attempt(&mut self, op: u64, _previous_attempts: u32) -> Result<(), Attempt> {
        let mut tx = AlgebraicTransaction::new();
        let key = format!("k{}", key_of(self.client, op));
        tx.put(REGISTERS.0, &key, REGISTERS.1, op as i64);
        // Rewriting the same value is harmless, so any retryable failure is simply retried.
        self.connection
            .commit(TransactionMode::Coordinated, tx)
            .map_err(classify)
    }
}

/// Linearizable reads of the registers the puts wrote, over [`KEYS`] keys.
pub(crate) struct LinearizableRead {
    connection: Connection,
    client: usize,
}

impl LinearizableRead {
    /// Client number `client`, through `connection`.
    pub(crate) fn new(connection: Connection, client: usize) -> Self {
        Self { connection, client }
    }
}

impl Worker for LinearizableRead {
    fn attempt(&mut self, op: u64, _previous_attempts: u32) -> Result<(), Attempt> {
        let key = format!("k{}", key_of(self.client, op));
        // A read changes nothing: any retryable failure is simply retried.
        let read = self.connection.client().and_then(|c| {
            c.read_with(
                ReadConsistency::Linearizable,
                REGISTERS.0,
                &key,
                REGISTERS.1,
            )
        });
        self.connection.after(read).map(drop).map_err(classify)
    }
}

/// Compare-and-sets on a register of the client's own, each from the value it holds to the
/// next; the register is written first (not measured).
pub(crate) struct CompareAndSet {
    connection: Connection,
    register: String,
    current: i64,
}

impl CompareAndSet {
    /// A client swapping `register` (set to 0 here) through `connection`.
    pub(crate) fn new(mut connection: Connection, register: String) -> Result<Self, String> {
        with_retries(|_| {
            let mut tx = AlgebraicTransaction::new();
            tx.put(REGISTERS.0, &register, REGISTERS.1, 0);
            connection
                .commit(TransactionMode::Coordinated, tx)
                .map_err(classify)
        })?;
        Ok(Self {
            connection,
            register,
            current: 0,
        })
    }
}

impl Worker for CompareAndSet {
    fn attempt(&mut self, _op: u64, previous_attempts: u32) -> Result<(), Attempt> {
        let (expected, new) = (self.current, self.current + 1);
        let mut tx = AlgebraicTransaction::new();
        tx.compare_and_set(REGISTERS.0, &self.register, REGISTERS.1, expected, new);
        match self.connection.commit(TransactionMode::Coordinated, tx) {
            Ok(()) => {}
            // An earlier attempt whose outcome was unknown may have swapped it: then the
            // register holds the new value and this operation is done.
            Err(NetError::Engine(TxnError::ConditionFailed { .. })) if previous_attempts > 0 => {
                let held = self
                    .connection
                    .read(REGISTERS.0, &self.register, REGISTERS.1)
                    .map_err(classify)?;
                if held != AlgebraicValue::Integer(new) {
                    return Err(Attempt::Fail(format!(
                        "{}: expected {expected} or {new} after a retry, found {held}",
                        self.register
                    )));
                }
            }
            Err(err) => return Err(classify(err)),
        }
        self.current = new;
        Ok(())
    }
}

/// Coordination-free increments of counters over [`KEYS`] keys. An increment whose outcome is
/// unknown is not retried (it would count twice): it fails the run.
pub(crate) struct Increment {
    connection: Connection,
    client: usize,
}

impl Increment {
    /// Client number `client`, through `connection`.
    pub(crate) fn new(connection: Connection, client: usize) -> Self {
        Self { connection, client }
    }

    /// The counters increments touch.
    pub(crate) fn keys() -> Vec<String> {
        (0..KEYS).map(|k| format!("k{k}")).collect()
    }
}

impl Worker for Increment {
    fn attempt(&mut self, op: u64, _previous_attempts: u32) -> Result<(), Attempt> {
        let mut tx = AlgebraicTransaction::new();
        let key = format!("k{}", key_of(self.client, op));
        tx.increment(COUNTERS.0, &key, COUNTERS.1, 1);
        self.connection
            .commit(TransactionMode::CoordinationFree, tx)
            .map_err(|err| Attempt::Fail(err.to_string()))
    }
}

/// While `stop` is unset: an increment of counter `key` committed through one node's client
/// and read through the other nodes' clients (in turn, each read a round trip) until both return
/// it; the origin moves from node to node. Returns each (probe, other node) lag from the commit's
/// acknowledgement to the first read that returned it, milliseconds, sorted; and the increments
/// committed.
pub(crate) fn visibility_probe(
    cluster: &ServingCluster,
    key: &str,
    stop: &AtomicBool,
) -> Result<(Vec<f64>, i64), String> {
    let mut connections: Vec<Connection> = (0..NODES).map(|n| cluster.connection(n)).collect();
    let mut lags = Vec::new();
    let mut committed = 0i64;
    while !stop.load(Ordering::Acquire) {
        let origin = committed as usize % NODES;
        let mut tx = AlgebraicTransaction::new();
        tx.increment(COUNTERS.0, key, COUNTERS.1, 1);
        connections[origin]
            .commit(TransactionMode::CoordinationFree, tx)
            .map_err(|e| format!("a visibility probe: {e}"))?;
        let acknowledged = Instant::now();
        committed += 1;
        let mut waiting: Vec<usize> = (0..NODES).filter(|&n| n != origin).collect();
        while !waiting.is_empty() {
            if acknowledged.elapsed() > PROBE_TIMEOUT {
                return Err(format!(
                    "a probe of {key} was not visible on nodes {waiting:?} after {PROBE_TIMEOUT:?}"
                ));
            }
            let mut still = Vec::with_capacity(waiting.len());
            for node in waiting {
                match connections[node].read(COUNTERS.0, key, COUNTERS.1) {
                    Ok(AlgebraicValue::Integer(v)) if v >= committed => {
                        lags.push(acknowledged.elapsed().as_secs_f64() * 1e3);
                    }
                    Ok(_) => still.push(node),
                    Err(err) => match classify(err) {
                        Attempt::Retry(_) => still.push(node),
                        Attempt::Fail(reason) => return Err(reason),
                    },
                }
            }
            waiting = still;
            std::thread::sleep(Duration::from_micros(100));
        }
        // Spread the probes over the anti-entropy period rather than in step with it.
        std::thread::sleep(Duration::from_micros(
            2_000 + (committed as u64 * 1_337) % 9_000,
        ));
    }
    lags.sort_by(f64::total_cmp);
    Ok((lags, committed))
}
