//! The mixed scenario: three Raft engines on the simulated network serving coordinated and
//! coordination-free transactions at once, through power-loss crashes and restarts,
//! partitions, log compaction and the snapshots it forces (a few entries per snapshot), and a
//! schema change ordered by the log — then judged by what their clients were told.
//!
//! The workload mixes bank transfers (coordinated read-modify-writes of two account rows,
//! their reads validated in log order), compare-and-sets of one register, coordination-free
//! and coordinated increments of a counter, and, once the log has ordered the new column,
//! increments of it. After healing and settling, the checkers require: one state everywhere;
//! every acknowledged increment counted once, and nothing never submitted
//! (`acknowledged <= counter <= acknowledged + unknown`); every acknowledged compare-and-set
//! took effect and no refused one ([`check_compare_and_set`]); the transfers that took effect
//! are serializable, conserve the total, and include every acknowledged one
//! ([`check_transfers`]); and no engine met an error.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::Rng;
use rhizo_algebra::{AlgebraicValue, MergeType, Schema, ValueType};
use rhizo_commit::{AlgebraicTransaction, Operations};
use rhizo_sim::{LatencyModel, SimulationBuilder};
use rhizo_txn::raft::{ProposalId, RaftConfig};
use rhizo_txn::{Backend, CommitOutcome, Submission, TransactionMode, TxnError};

use crate::ClusterError;
use crate::checkers::{Balance, CasOp, Told, Transfer, check_compare_and_set, check_transfers};
use crate::cluster::{ClusterConfig, EngineCluster};

#[cfg(test)]
mod tests;

const NODES: usize = 3;
const ACCOUNTS: usize = 4;
const INITIAL_BALANCE: i64 = 100;
/// The compare-and-set register's value before the run; every CAS writes a larger one.
const CAS_INITIAL: i64 = 0;
const ROUNDS: u32 = 100;
const COUNTER_ROW: &str = "total";
/// The column the run declares through the log.
const NEW_COLUMN: &str = "extra";

/// Accounts (`accounts.balance` and `accounts.version`, registers), the compare-and-set
/// register `registers.value` and the counter `counters.value`.
pub fn mixed_schema() -> Schema {
    Schema::builder()
        .table("accounts")
        .column("balance", MergeType::Register, ValueType::Integer)
        .column("version", MergeType::Register, ValueType::Integer)
        .table("registers")
        .column("value", MergeType::Register, ValueType::Integer)
        .table("counters")
        .column("value", MergeType::Add, ValueType::Integer)
        .build()
        .expect("a valid schema")
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MixedReport {
    /// Transfers acknowledged, refused (a read no longer held) and of unknown outcome.
    pub transfers: [usize; 3],
    /// Compare-and-sets acknowledged, refused and of unknown outcome.
    pub compare_and_sets: [usize; 3],
    /// Coordination-free commits acknowledged.
    pub local_commits: usize,
    /// Power losses injected.
    pub crashes: u64,
    /// The highest Raft snapshot index any engine reached.
    pub max_snapshot_index: u64,
    /// Whether the column declared through the log reached every engine.
    pub column_declared: bool,
    /// The simulation's trace hash (equal runs, equal hashes).
    pub trace_hash: u64,
}

/// The sums a counter cell must lie between.
#[derive(Debug, Clone, Copy, Default)]
struct Bounds {
    acknowledged: i64,
    unknown: i64,
}

/// A proposal whose outcome has not arrived.
#[derive(Debug, Clone, Copy)]
enum Awaited {
    Transfer(usize),
    CompareAndSet(usize),
    Increment { column: &'static str, amount: i64 },
    Schema,
}

/// What the clients were told.
#[derive(Debug, Default)]
struct Clients {
    transfers: Vec<Transfer>,
    cas: Vec<CasOp>,
    counters: BTreeMap<&'static str, Bounds>,
    awaited: BTreeMap<ProposalId, Awaited>,
    local_commits: usize,
    /// Whether the log ordered the new column on every engine.
    column_declared: bool,
    errors: Vec<String>,
}

fn told(result: &rhizo_txn::Result<CommitOutcome>) -> Option<Told> {
    match result {
        Ok(outcome) => outcome.sequence.map(|index| Told::Committed { index }),
        Err(TxnError::ReadConflict { .. } | TxnError::ConditionFailed { .. }) => {
            Some(Told::Refused)
        }
        Err(TxnError::Raft(_) | TxnError::Undecided { .. }) => Some(Told::Unknown),
        Err(_) => None,
    }
}

impl Clients {
    /// Records the outcome of proposal `id`.
    fn settle(&mut self, id: ProposalId, result: rhizo_txn::Result<CommitOutcome>) {
        let Some(awaited) = self.awaited.remove(&id) else {
            return;
        };
        let Some(told) = told(&result) else {
            self.errors
                .push(format!("{awaited:?} was answered {result:?}"));
            return;
        };
        match awaited {
            Awaited::Transfer(i) => self.transfers[i].told = told,
            Awaited::CompareAndSet(i) => self.cas[i].told = told,
            Awaited::Increment { column, amount } => {
                let bounds = self.counters.entry(column).or_default();
                bounds.unknown -= amount;
                match told {
                    Told::Committed { .. } => bounds.acknowledged += amount,
                    Told::Unknown => bounds.unknown += amount,
                    Told::Refused => self
                        .errors
                        .push(format!("an increment was refused: {result:?}")),
                }
            }
            Awaited::Schema => {}
        }
    }

    fn settle_all(&mut self, cluster: &mut EngineCluster) {
        for (id, result) in cluster.take_outcomes() {
            self.settle(id, result);
        }
    }

    /// Records what `submitted` says of a just-submitted proposal; `Refused` if nothing was
    /// proposed (no leader), so that it must not take effect.
    fn submitted(&mut self, submitted: crate::Result<Submission>, awaited: Awaited) -> Told {
        match submitted {
            Ok(Submission::Pending(id)) => {
                self.awaited.insert(id, awaited);
                Told::Unknown
            }
            Ok(Submission::Committed(outcome)) => {
                self.errors.push(format!(
                    "three members decided {awaited:?} at once: {outcome:?}"
                ));
                Told::Unknown
            }
            Err(ClusterError::Txn(TxnError::NoLeader)) => Told::Refused,
            Err(other) => {
                self.errors.push(format!("submitting {awaited:?}: {other}"));
                Told::Refused
            }
        }
    }
}

fn integer(value: AlgebraicValue) -> Option<i64> {
    match value {
        AlgebraicValue::Integer(v) => Some(v),
        _ => None,
    }
}

/// One coordinated transfer on `node` from account `from` to `to`: reads both rows (recorded
/// in the transaction's read set), writes both.
fn issue_transfer(
    cluster: &mut EngineCluster,
    clients: &mut Clients,
    node: usize,
    pick: [usize; 2],
    amount: i64,
) {
    let mut tx = AlgebraicTransaction::new();
    let mut read = [Balance {
        amount: 0,
        version: 0,
    }; 2];
    for (slot, account) in pick.iter().enumerate() {
        let row = format!("a{account}");
        let mode = TransactionMode::Coordinated;
        let balance = cluster.read_into(node, mode, &mut tx, "accounts", &row, "balance");
        let version = cluster.read_into(node, mode, &mut tx, "accounts", &row, "version");
        match (balance.map(integer), version.map(integer)) {
            (Ok(Some(amount)), Ok(Some(version))) => {
                read[slot] = Balance {
                    amount,
                    version: version as u64,
                };
            }
            // Not written here yet (the node lags behind the initial balances): no transfer.
            _ => return,
        }
    }
    let id = clients.transfers.len() as u64 + 1;
    let moved = amount.min(read[0].amount);
    let wrote = [read[0].amount - moved, read[1].amount + moved];
    for slot in 0..2 {
        let row = format!("a{}", pick[slot]);
        tx.put("accounts", &row, "balance", wrote[slot])
            .put("accounts", &row, "version", id as i64);
    }
    let at = clients.transfers.len();
    let submitted = cluster.submit_tx(node, TransactionMode::Coordinated, tx);
    let told = clients.submitted(submitted, Awaited::Transfer(at));
    clients.transfers.push(Transfer {
        id,
        accounts: pick,
        read,
        wrote,
        told,
    });
}

/// One compare-and-set on `node`: from the value it reads there (possibly stale), or, with
/// `stale`, from the register's initial value.
fn issue_cas(cluster: &mut EngineCluster, clients: &mut Clients, node: usize, stale: bool) {
    let Ok(Some(held)) = cluster.read(node, "registers", "cas", "value").map(integer) else {
        return;
    };
    let expected = if stale { CAS_INITIAL } else { held };
    let new = CAS_INITIAL + clients.cas.len() as i64 + 1;
    let at = clients.cas.len();
    let submitted = cluster.submit(node, TransactionMode::Coordinated, |tx| {
        tx.compare_and_set("registers", "cas", "value", expected, new);
    });
    let told = clients.submitted(submitted, Awaited::CompareAndSet(at));
    clients.cas.push(CasOp {
        expected,
        new,
        told,
    });
}

/// One increment of the counter (and of the new column, once declared) on `node`.
fn issue_increment(
    cluster: &mut EngineCluster,
    clients: &mut Clients,
    node: usize,
    mode: TransactionMode,
    amount: i64,
) {
    let column = if clients.column_declared && amount % 2 == 0 {
        NEW_COLUMN
    } else {
        "value"
    };
    let submitted = cluster.submit(node, mode, |tx| {
        tx.increment("counters", COUNTER_ROW, column, amount);
    });
    match submitted {
        Ok(Submission::Committed(outcome)) => {
            clients.local_commits += 1;
            if !outcome.durable {
                clients
                    .errors
                    .push(format!("a local commit was not durable: {outcome:?}"));
            }
            clients.counters.entry(column).or_default().acknowledged += amount;
        }
        Ok(Submission::Pending(id)) => {
            clients.counters.entry(column).or_default().unknown += amount;
            clients
                .awaited
                .insert(id, Awaited::Increment { column, amount });
        }
        Err(ClusterError::Txn(TxnError::NoLeader)) => {}
        Err(other) => clients.errors.push(format!("increment: {other}")),
    }
}

/// The network and the engines' settings a seed draws: the network loses, duplicates, delays
/// and reorders messages (a duplicated forwarded proposal is appended to the log twice and must
/// still take effect once).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixedSettings {
    /// Probability that a message is lost.
    pub loss_rate: f64,
    /// Probability that a message is delivered twice.
    pub duplication_rate: f64,
    /// Probability that a message waits up to `reorder_max` more (overtaking others).
    pub reorder_probability: f64,
    /// The longest extra wait of a reordered message.
    pub reorder_max: Duration,
    /// Anti-entropy every this many ticks.
    pub anti_entropy_every: u32,
    /// A Raft snapshot once this many entries follow the last one.
    pub compact_after_entries: u64,
}

impl MixedSettings {
    /// The settings of `seed`: a few choices each, picked by the seed's bits (scrambled so that
    /// neighbouring seeds differ everywhere).
    pub fn draw(seed: u64) -> Self {
        let mut bits = (seed ^ 0x5851_f42d_4c95_7f2d).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        bits ^= bits >> 29;
        let mut pick = |choices: u64| {
            let choice = bits % choices;
            bits /= choices;
            choice
        };
        Self {
            loss_rate: [0.0, 0.02, 0.05][pick(3) as usize],
            duplication_rate: [0.0, 0.02, 0.05][pick(3) as usize],
            reorder_probability: [0.0, 0.1, 0.3][pick(3) as usize],
            reorder_max: Duration::from_millis([2, 10, 30][pick(3) as usize]),
            anti_entropy_every: 1 + pick(4) as u32,
            compact_after_entries: 2 + pick(5),
        }
    }
}

/// The simulation and its engines for `seed`: three engines on a LAN with the seed's faults,
/// 1 ms ticks, a Raft snapshot every few entries.
fn build(seed: u64, settings: &MixedSettings) -> Result<EngineCluster, String> {
    let mut builder = SimulationBuilder::new();
    builder
        .nodes(NODES)
        .seed(seed)
        .latency(LatencyModel::Lan)
        .loss_rate(settings.loss_rate)
        .duplication_rate(settings.duplication_rate)
        .reordering(settings.reorder_probability, settings.reorder_max)
        .sync_interval(Some(Duration::from_millis(1)));
    let raft = RaftConfig {
        compact_after_entries: settings.compact_after_entries,
        proposal_timeout_ticks: 40,
        ..RaftConfig::default()
    };
    let config = ClusterConfig {
        anti_entropy_every: settings.anti_entropy_every,
        commit_timeout: Duration::from_secs(2),
        ..ClusterConfig::new(mixed_schema()).with_backend(Backend::Raft(raft))
    };
    EngineCluster::new(&builder, config).map_err(|e| format!("building the cluster: {e}"))
}

/// Commits every account's initial balance and the register's initial value, before any
/// fault. Writing them twice changes nothing, so an attempt whose outcome is unknown (a lost
/// message) is simply made again.
fn set_up(cluster: &mut EngineCluster) -> Result<(), String> {
    let mut last = String::new();
    for _ in 0..5 {
        let committed = cluster.commit(0, TransactionMode::Coordinated, |tx| {
            for account in 0..ACCOUNTS {
                let row = format!("a{account}");
                tx.put("accounts", &row, "balance", INITIAL_BALANCE)
                    .put("accounts", &row, "version", 0);
            }
            tx.put("registers", "cas", "value", CAS_INITIAL);
        });
        match committed {
            Ok(_) => return Ok(()),
            Err(err) => last = err.to_string(),
        }
    }
    Err(format!("the initial balances were not committed: {last}"))
}

/// Brings the drawn network faults back after a calm spell.
fn stir(cluster: &mut EngineCluster, settings: &MixedSettings) -> Result<(), String> {
    let sim = cluster.simulation_mut();
    sim.set_loss_rate(settings.loss_rate)
        .and_then(|()| sim.set_duplication_rate(settings.duplication_rate))
        .and_then(|()| sim.set_reordering(settings.reorder_probability, settings.reorder_max))
        .map_err(|e| format!("network settings: {e}"))
}

/// Heals the network, calms it (no loss, duplication or reordering) and restarts whoever is
/// down.
fn heal_all(cluster: &mut EngineCluster, crashed: &mut Option<(usize, u32)>) -> Result<(), String> {
    cluster.simulation_mut().calm();
    if let Some((node, _)) = crashed.take() {
        cluster.restart(node).map_err(|e| format!("restart: {e}"))?;
    }
    Ok(())
}

/// Declares the new column through the log once every engine is up, connected and caught up,
/// and runs until every engine holds it.
///
/// The clients use the column on every node from then on, so every node must hold it first (a
/// member that learns a schema change from a snapshot instead of the entry is covered by the
/// hand-driven Raft tests).
fn declare_everywhere(cluster: &mut EngineCluster, clients: &mut Clients) -> Result<(), String> {
    settle(cluster)?;
    let deadline = cluster.now().saturating_add(Duration::from_secs(2));
    let has_column = |cluster: &EngineCluster, n: usize| {
        cluster
            .engine(n)
            .is_ok_and(|e| e.schema().column("counters", NEW_COLUMN).is_ok())
    };
    while cluster.now() < deadline {
        if (0..NODES).all(|n| has_column(cluster, n)) {
            clients.column_declared = true;
            return Ok(());
        }
        let awaited = clients
            .awaited
            .values()
            .any(|a| matches!(a, Awaited::Schema));
        // Declared again while the last attempt's outcome is unknown (a proposal forwarded to
        // the leader can be lost): declaring a column the schema has changes nothing.
        if let Some(node) = (0..NODES).find(|n| !has_column(cluster, *n))
            && !awaited
        {
            let declared = cluster.declare_column(
                node,
                "counters",
                NEW_COLUMN,
                MergeType::Add,
                ValueType::Integer,
            );
            if let Ok(Submission::Pending(id)) = declared {
                clients.awaited.insert(id, Awaited::Schema);
            }
        }
        cluster.run_for(Duration::from_millis(1));
        clients.settle_all(cluster);
    }
    Err("the column declared through the log did not reach every engine".to_owned())
}

/// One round's fault, drawn from the workload stream: a power loss (one node down at a time,
/// restarted a few rounds later), an isolated leader, a cut link, or a heal.
fn inject_fault(
    cluster: &mut EngineCluster,
    round: u32,
    crashed: &mut Option<(usize, u32)>,
) -> Result<(), String> {
    if let Some((node, until)) = *crashed
        && round >= until
    {
        cluster.restart(node).map_err(|e| format!("restart: {e}"))?;
        *crashed = None;
    }
    let rng = cluster.simulation_mut().workload_rng();
    let (roll, node, other, down_for) = (
        rng.random_range(0..100u32),
        rng.random_range(0..NODES),
        rng.random_range(1..NODES),
        rng.random_range(3..12u32),
    );
    match roll {
        0..=5 if crashed.is_none() => {
            cluster.crash(node).map_err(|e| format!("crash: {e}"))?;
            *crashed = Some((node, round + down_for));
        }
        6..=8 => {
            if let Some(leader) = cluster.leader() {
                cluster
                    .isolate(leader)
                    .map_err(|e| format!("isolate: {e}"))?;
            }
        }
        9..=11 => {
            let peer = (node + other) % NODES;
            cluster
                .partition(node, peer)
                .map_err(|e| format!("partition: {e}"))?;
        }
        12..=19 => cluster.heal(),
        _ => {}
    }
    Ok(())
}

/// One client operation on a running node, drawn from the workload stream.
fn issue_one(cluster: &mut EngineCluster, clients: &mut Clients, crashed: Option<usize>) {
    let rng = cluster.simulation_mut().workload_rng();
    let (node, roll, from, step, amount) = (
        rng.random_range(0..NODES),
        rng.random_range(0..10u32),
        rng.random_range(0..ACCOUNTS),
        rng.random_range(1..ACCOUNTS),
        rng.random_range(1..40i64),
    );
    if crashed == Some(node) {
        return;
    }
    match roll {
        0..=3 => {
            let pick = [from, (from + step) % ACCOUNTS];
            issue_transfer(cluster, clients, node, pick, amount);
        }
        4 | 5 => issue_cas(cluster, clients, node, amount % 5 == 0),
        6 | 7 => issue_increment(
            cluster,
            clients,
            node,
            TransactionMode::CoordinationFree,
            amount,
        ),
        _ => issue_increment(cluster, clients, node, TransactionMode::Coordinated, amount),
    }
}

/// Runs the mixed scenario for `seed` and checks every invariant. `Err` says which failed.
pub fn run_mixed_scenario(seed: u64) -> Result<MixedReport, String> {
    let settings = MixedSettings::draw(seed);
    let mut cluster = build(seed, &settings)?;
    set_up(&mut cluster)?;
    let mut clients = Clients::default();
    let mut crashed: Option<(usize, u32)> = None;
    let schema_round = cluster
        .simulation_mut()
        .workload_rng()
        .random_range(5..ROUNDS - 10);
    for round in 0..ROUNDS {
        if round == schema_round {
            heal_all(&mut cluster, &mut crashed)?;
            declare_everywhere(&mut cluster, &mut clients)?;
            stir(&mut cluster, &settings)?;
        }
        inject_fault(&mut cluster, round, &mut crashed)?;
        for _ in 0..2 {
            issue_one(&mut cluster, &mut clients, crashed.map(|(n, _)| n));
        }
        cluster.run_for(Duration::from_millis(3));
        clients.settle_all(&mut cluster);
    }
    heal_all(&mut cluster, &mut crashed)?;
    settle(&mut cluster)?;
    clients.settle_all(&mut cluster);
    for awaited in std::mem::take(&mut clients.awaited).into_values() {
        match awaited {
            Awaited::Transfer(i) => clients.transfers[i].told = Told::Unknown,
            Awaited::CompareAndSet(i) => clients.cas[i].told = Told::Unknown,
            Awaited::Increment { .. } | Awaited::Schema => {}
        }
    }
    check(&cluster, &clients)?;
    Ok(report(&cluster, &clients))
}

/// Runs the healed cluster until every engine applied everything and anti-entropy is done.
fn settle(cluster: &mut EngineCluster) -> Result<(), String> {
    for _ in 0..2 {
        cluster
            .run_until_quiescent(Duration::from_secs(10))
            .map_err(|e| format!("the healed cluster did not settle: {e}"))?;
        // Let the last anti-entropy rounds and heartbeats land.
        cluster.run_for(Duration::from_millis(50));
    }
    Ok(())
}

fn read_integer(
    cluster: &EngineCluster,
    node: usize,
    table: &str,
    row: &str,
    column: &str,
) -> Result<i64, String> {
    let value = cluster
        .read(node, table, row, column)
        .map_err(|e| format!("{table}.{column}[{row}] on n{node}: {e}"))?;
    integer(value.clone())
        .ok_or_else(|| format!("{table}.{column}[{row}] on n{node} holds {value}"))
}

/// Every invariant, on the settled cluster.
fn check(cluster: &EngineCluster, clients: &Clients) -> Result<(), String> {
    if let Some(error) = clients.errors.first() {
        return Err(format!("a client met an error: {error}"));
    }
    if let Some((node, fault)) = cluster.faults().first() {
        return Err(format!("{node} met an error: {fault}"));
    }
    cluster
        .verify_convergence()
        .map_err(|e| format!("the settled engines differ: {e}"))?;
    let sequence = |n| cluster.engine(n).map(|e| e.last_sequence()).unwrap_or(0);
    if (1..NODES).any(|n| sequence(n) != sequence(0)) {
        return Err("the settled engines applied different log prefixes".to_owned());
    }
    for node in 0..NODES {
        let has_column = cluster
            .engine(node)
            .is_ok_and(|e| e.schema().column("counters", NEW_COLUMN).is_ok());
        if clients.column_declared && !has_column {
            return Err(format!("n{node} lost the column the log ordered"));
        }
        for (column, bounds) in &clients.counters {
            let value = read_integer(cluster, node, "counters", COUNTER_ROW, column)?;
            let (low, high) = (bounds.acknowledged, bounds.acknowledged + bounds.unknown);
            if value < low || value > high {
                return Err(format!(
                    "counters.{column} is {value} on n{node}, outside [{low}, {high}]: an \
                     acknowledged increment was lost, or one was counted twice"
                ));
            }
        }
    }
    let last_cas = read_integer(cluster, 0, "registers", "cas", "value")?;
    check_compare_and_set(&clients.cas, CAS_INITIAL, last_cas)?;
    let mut last = Vec::with_capacity(ACCOUNTS);
    for account in 0..ACCOUNTS {
        let row = format!("a{account}");
        last.push(Balance {
            amount: read_integer(cluster, 0, "accounts", &row, "balance")?,
            version: read_integer(cluster, 0, "accounts", &row, "version")? as u64,
        });
    }
    check_transfers(&[INITIAL_BALANCE; ACCOUNTS], &clients.transfers, &last)
}

fn tally(told: impl Iterator<Item = Told>) -> [usize; 3] {
    let mut counts = [0; 3];
    for t in told {
        counts[match t {
            Told::Committed { .. } => 0,
            Told::Refused => 1,
            Told::Unknown => 2,
        }] += 1;
    }
    counts
}

fn report(cluster: &EngineCluster, clients: &Clients) -> MixedReport {
    MixedReport {
        transfers: tally(clients.transfers.iter().map(|t| t.told)),
        compare_and_sets: tally(clients.cas.iter().map(|c| c.told)),
        local_commits: clients.local_commits,
        crashes: cluster.stats().crashes,
        max_snapshot_index: (0..NODES)
            .filter_map(|n| cluster.engine(n).ok()?.raft().map(|r| r.snapshot_index()))
            .max()
            .unwrap_or(0),
        column_declared: clients.column_declared,
        trace_hash: cluster.simulation().trace_hash(),
    }
}
