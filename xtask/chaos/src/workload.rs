//! The clients: per node, one task committing coordination-free increments on counters, one
//! adding and removing unique elements of observed-remove sets, one writing registers through
//! consensus (put, or compare-and-set from the value it read) and reading them linearizably.
//! Each records what it was told:
//! acknowledged, refused (a typed error that says nothing changed), or unknown.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rhizo_algebra::AlgebraicValue;
use rhizo_commit::{AlgebraicTransaction, Operations};
use rhizo_engine_sim::raft::RegisterOp;
use rhizo_net::{AsyncClient, ClientSecurity, NetError};
use rhizo_txn::raft::RaftError;
use rhizo_txn::{CommitOutcome, ReadConsistency, TransactionMode, TxnError};

use crate::cluster::{COLUMN, COUNTERS, REGISTERS, SETS};

/// The longest a client waits for an answer: beyond the node's commit timeout, so a commit's
/// own answer (committed, or undecided) arrives unless the node is gone or paused.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a client waits to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Counter rows (the keys increments spread over).
pub const COUNTER_KEYS: usize = 16;
/// Set rows.
pub const SET_KEYS: usize = 4;
/// Each register's history is kept below this many operations, so the linearizability search
/// stays tractable; registers are added with the run's length instead.
pub const MAX_OPS_PER_REGISTER: usize = 120;

/// What a client was told about one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Committed (and, under `every_commit`, durable).
    Acknowledged,
    /// Refused with an error that says nothing changed anywhere.
    Refused(String),
    /// Anything else: a timeout, a lost connection, an undecided or unknown outcome.
    Unknown(String),
}

/// What an outcome's tally counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Acknowledged requests.
    pub acknowledged: u64,
    /// Refused requests.
    pub refused: u64,
    /// Requests of unknown outcome.
    pub unknown: u64,
}

impl Tally {
    fn count(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Acknowledged => self.acknowledged += 1,
            Outcome::Refused(_) => self.refused += 1,
            Outcome::Unknown(_) => self.unknown += 1,
        }
    }
}

/// One counter row's increments, summed by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CounterSums {
    /// The sum of acknowledged increments.
    pub acknowledged: i64,
    /// The sum of increments of unknown outcome.
    pub unknown: i64,
}

/// One unique set element: what its add and (if any) its remove were told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetElement {
    /// The set's row.
    pub row: String,
    /// The element (unique in the run).
    pub element: String,
    /// The add's outcome.
    pub add: Outcome,
    /// The remove's outcome, issued only after an acknowledged add, on the node that
    /// acknowledged it.
    pub remove: Option<Outcome>,
}

/// Everything the clients were told.
#[derive(Debug, Default)]
pub struct History {
    /// Per counter row.
    pub counters: BTreeMap<String, CounterSums>,
    /// Every set element added.
    pub elements: Vec<SetElement>,
    /// Every register write that was acknowledged or of unknown outcome (a refused one
    /// changed nothing), and the final reads the run adds.
    pub registers: Vec<RegisterOp>,
    /// Outcomes of the increments, set operations and register writes.
    pub tallies: BTreeMap<&'static str, Tally>,
    /// How many refusals and unknown outcomes of each kind of error, for the report.
    pub failure_kinds: BTreeMap<String, u64>,
}

impl History {
    fn tally(&mut self, kind: &'static str, outcome: &Outcome) {
        self.tallies.entry(kind).or_default().count(outcome);
        if let Outcome::Unknown(reason) | Outcome::Refused(reason) = outcome {
            *self.failure_kinds.entry(reason.clone()).or_default() += 1;
        }
    }

    fn registers_on(&self, key: &str) -> usize {
        self.registers.iter().filter(|op| op.key == key).count()
    }
}

/// Sorts a commit's result into what the client may conclude from it.
pub fn classify(result: &Result<CommitOutcome, NetError>) -> Outcome {
    match result {
        Ok(_) => Outcome::Acknowledged,
        Err(NetError::Engine(err)) if changed_nothing(err) => Outcome::Refused(kind(err)),
        Err(err) => Outcome::Unknown(kind(err)),
    }
}

/// An error's kind without its variable parts (keys, addresses, indices), so that alike ones
/// are counted together: the variants' names down to the first field.
fn kind(err: &impl std::fmt::Debug) -> String {
    let debug = format!("{err:?}");
    debug
        .split([' ', '{'])
        .next()
        .unwrap_or_default()
        .trim_end_matches('(')
        .to_owned()
}

/// Whether the engine's error says the transaction took effect nowhere.
fn changed_nothing(err: &TxnError) -> bool {
    match err {
        TxnError::NoLeader | TxnError::ConditionFailed { .. } | TxnError::ReadConflict { .. } => {
            true
        }
        TxnError::Raft(raft) => matches!(**raft, RaftError::Overtaken { .. }),
        TxnError::Undecided { .. } => false,
        other => other.is_input_error(),
    }
}

/// What the workload's tasks share.
#[derive(Debug)]
pub struct Workload {
    history: Mutex<History>,
    stop: AtomicBool,
    requests: AtomicU64,
    max_requests: u64,
    started: Instant,
    security: ClientSecurity,
    register_keys: usize,
}

impl Workload {
    /// A workload of at most `max_requests` requests, timed from `started`, with
    /// `register_keys` registers.
    pub fn new(
        security: ClientSecurity,
        started: Instant,
        max_requests: u64,
        register_keys: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            history: Mutex::new(History::default()),
            stop: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            max_requests,
            started,
            security,
            register_keys,
        })
    }

    /// Microseconds since the run started: the register history's clock.
    pub fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Asks every task to stop after its current request.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// The history (a task that panicked cannot leave it half-written: every record is one
    /// push under the lock).
    pub fn history(&self) -> MutexGuard<'_, History> {
        self.history
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Requests sent so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The register rows.
    pub fn register_keys(&self) -> usize {
        self.register_keys
    }

    /// Whether a task may send another request.
    fn go_on(&self) -> bool {
        !self.stop.load(Ordering::Acquire)
            && self.requests.fetch_add(1, Ordering::Relaxed) < self.max_requests
    }

    /// Spawns node `node`'s three tasks, reaching it at `client`; each draws its choices from
    /// its own seeded generator.
    pub fn spawn(
        self: &Arc<Self>,
        node: usize,
        client: SocketAddr,
        seed: u64,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let rng = |kind: u64| ChaCha8Rng::seed_from_u64(seed ^ ((node as u64) << 8 | kind));
        let mut tasks = Vec::new();
        let worker = Worker {
            workload: Arc::clone(self),
            node,
            address: client.to_string(),
            client: None,
            rng: rng(1),
        };
        tasks.push(tokio::spawn(worker.counters()));
        let worker = Worker {
            workload: Arc::clone(self),
            node,
            address: client.to_string(),
            client: None,
            rng: rng(2),
        };
        tasks.push(tokio::spawn(worker.sets()));
        let worker = Worker {
            workload: Arc::clone(self),
            node,
            address: client.to_string(),
            client: None,
            rng: rng(3),
        };
        tasks.push(tokio::spawn(worker.registers()));
        tasks
    }
}

/// Connects to a node's client listener within [`CONNECT_TIMEOUT`].
pub async fn connect(address: &str, security: &ClientSecurity) -> Option<AsyncClient> {
    let connecting = AsyncClient::connect(address, security);
    let mut client = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .ok()?
        .ok()?;
    client.set_timeout(CLIENT_TIMEOUT);
    Some(client)
}

struct Worker {
    workload: Arc<Workload>,
    node: usize,
    address: String,
    client: Option<AsyncClient>,
    rng: ChaCha8Rng,
}

impl Worker {
    /// The connected client, connecting first; `None` (after a pause) if the node does not
    /// answer.
    async fn client(&mut self) -> Option<&AsyncClient> {
        if self.client.is_none() {
            self.client = connect(&self.address, &self.workload.security).await;
            if self.client.is_none() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        self.client.as_ref()
    }

    /// Commits `tx` in `mode`; a failure that is not the engine's answer drops the connection
    /// (the client refuses to reuse one whose exchange was cut short).
    async fn commit(&mut self, mode: TransactionMode, tx: AlgebraicTransaction) -> Option<Outcome> {
        let client = self.client().await?;
        let result = client.commit(mode, tx).await;
        if matches!(result, Err(ref err) if !matches!(err, NetError::Engine(_))) {
            self.client = None;
        }
        Some(classify(&result))
    }

    async fn pace(&mut self, low: u64, high: u64) {
        let millis = self.rng.random_range(low..=high);
        tokio::time::sleep(Duration::from_millis(millis)).await;
    }

    async fn counters(mut self) {
        while self.workload.go_on() {
            let row = format!("c{}", self.rng.random_range(0..COUNTER_KEYS));
            let amount: i64 = self.rng.random_range(1..=5);
            let mut tx = AlgebraicTransaction::new();
            tx.increment(COUNTERS, &row, COLUMN, amount);
            if let Some(outcome) = self.commit(TransactionMode::CoordinationFree, tx).await {
                let mut history = self.workload.history();
                history.tally("increment", &outcome);
                let sums = history.counters.entry(row).or_default();
                match outcome {
                    Outcome::Acknowledged => sums.acknowledged += amount,
                    Outcome::Unknown(_) => sums.unknown += amount,
                    Outcome::Refused(_) => {}
                }
            }
            self.pace(10, 30).await;
        }
    }

    async fn sets(mut self) {
        // Indices (into the history's elements) of this task's acknowledged, unremoved adds.
        let mut present: Vec<usize> = Vec::new();
        let mut sequence = 0u64;
        while self.workload.go_on() {
            if !present.is_empty() && self.rng.random_bool(0.3) {
                let index = present.swap_remove(self.rng.random_range(0..present.len()));
                let (row, element) = {
                    let history = self.workload.history();
                    let entry = &history.elements[index];
                    (entry.row.clone(), entry.element.clone())
                };
                let mut tx = AlgebraicTransaction::new();
                tx.remove_from_set(SETS, &row, COLUMN, [element.as_str()]);
                let Some(outcome) = self.commit(TransactionMode::CoordinationFree, tx).await else {
                    // Not sent: it may be tried again.
                    present.push(index);
                    continue;
                };
                let mut history = self.workload.history();
                history.tally("set remove", &outcome);
                history.elements[index].remove = Some(outcome);
            } else {
                sequence += 1;
                let row = format!("s{}", self.rng.random_range(0..SET_KEYS));
                let element = format!("n{}-{sequence}", self.node + 1);
                let mut tx = AlgebraicTransaction::new();
                tx.add_to_set(SETS, &row, COLUMN, [element.as_str()]);
                let Some(add) = self.commit(TransactionMode::CoordinationFree, tx).await else {
                    continue;
                };
                let mut history = self.workload.history();
                history.tally("set add", &add);
                if add == Outcome::Acknowledged {
                    present.push(history.elements.len());
                }
                history.elements.push(SetElement {
                    row,
                    element,
                    add,
                    remove: None,
                });
            }
            self.pace(10, 30).await;
        }
    }

    async fn registers(mut self) {
        let mut sequence = 0i64;
        while self.workload.go_on() {
            self.pace(5, 25).await;
            let key = format!("r{}", self.rng.random_range(0..self.workload.register_keys));
            if self.workload.history().registers_on(&key) >= MAX_OPS_PER_REGISTER {
                continue;
            }
            if self.rng.random_bool(0.3) {
                self.read_register(key).await;
                continue;
            }
            let Some(client) = self.client().await else {
                continue;
            };
            let current = match client.read(REGISTERS, &key, COLUMN).await {
                Ok(AlgebraicValue::Integer(value)) => Some(value),
                Ok(_) => None,
                Err(_) => {
                    self.client = None;
                    continue;
                }
            };
            sequence += 1;
            // Unique in the run: the node in the high digits, this task's count below.
            let value = (self.node as i64 + 1) * 1_000_000_000 + sequence;
            let mut tx = AlgebraicTransaction::new();
            let required = match current {
                Some(found) if self.rng.random_bool(0.6) => {
                    tx.compare_and_set(REGISTERS, &key, COLUMN, found, value);
                    Some(Some(found))
                }
                _ => {
                    tx.put(REGISTERS, &key, COLUMN, value);
                    None
                }
            };
            let invoked = self.workload.now();
            let Some(outcome) = self.commit(TransactionMode::Coordinated, tx).await else {
                continue;
            };
            let completed = self.workload.now();
            let mut history = self.workload.history();
            history.tally("register write", &outcome);
            let completed = match outcome {
                Outcome::Acknowledged => Some(completed),
                Outcome::Unknown(_) => None,
                Outcome::Refused(_) => continue,
            };
            history.registers.push(RegisterOp {
                key,
                write: Some(value),
                read: required,
                invoked,
                completed,
            });
        }
    }
}

impl Worker {
    /// A linearizable read of register `key`: recorded with the value it saw when the node
    /// answered, for the checker to place between its invocation and its answer.
    async fn read_register(&mut self, key: String) {
        let workload = Arc::clone(&self.workload);
        let Some(client) = self.client().await else {
            return;
        };
        let invoked = workload.now();
        let read = client
            .read_with(ReadConsistency::Linearizable, REGISTERS, &key, COLUMN)
            .await;
        let completed = workload.now();
        let seen = match read {
            Ok(AlgebraicValue::Integer(value)) => Some(value),
            Ok(_) => None,
            Err(err) => {
                // A read changes nothing: a failed one is left out of the history.
                if !matches!(err, NetError::Engine(_)) {
                    self.client = None;
                }
                self.workload
                    .history()
                    .tally("register read", &Outcome::Unknown(kind(&err)));
                return;
            }
        };
        let mut history = self.workload.history();
        history.tally("register read", &Outcome::Acknowledged);
        history.registers.push(RegisterOp {
            key,
            write: None,
            read: Some(seen),
            invoked,
            completed: Some(completed),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_that_say_nothing_changed_are_refusals() {
        let refused = [
            TxnError::NoLeader,
            TxnError::EmptyTransaction,
            TxnError::Raft(Box::new(RaftError::Overtaken { index: 3 })),
        ];
        for err in refused {
            assert!(
                matches!(classify(&Err(NetError::Engine(err))), Outcome::Refused(_)),
                "refused"
            );
        }
        let unknown = [
            NetError::Engine(TxnError::Raft(Box::new(RaftError::Timeout { ticks: 5 }))),
            NetError::Engine(TxnError::Raft(Box::new(RaftError::OutcomeUnknown {
                index: 9,
            }))),
            NetError::Engine(TxnError::Raft(Box::new(RaftError::Interrupted))),
            NetError::ShutDown,
            NetError::Connection {
                address: "127.0.0.1:1".into(),
                reason: "no answer".into(),
            },
        ];
        for err in unknown {
            let described = err.to_string();
            assert!(
                matches!(classify(&Err(err)), Outcome::Unknown(_)),
                "{described} must be unknown"
            );
        }
    }
}
