//! etcd beside Rhizo over the network, in one run: three etcd members and three Rhizo nodes on
//! 127.0.0.1, driven by the same closed-loop clients (1, 16 and 64 of them, each with one
//! connection, spread over the members in turn) doing the same operations.
//!
//! - etcd (`peers::etcd`): puts and compare-and-set transactions through its v3 HTTP/JSON
//!   gateway; each entry fsynced on a quorum before the answer, etcd's default.
//! - Rhizo coordinated: the same puts and compare-and-sets on registers through the nodes'
//!   client listeners (mutual TLS), through Raft, durable on a quorum before the answer
//!   (`SyncPolicy::EveryCommit`).
//! - Rhizo coordination-free: increments through the same listeners under group commit, and the
//!   lag until another node's client reads an increment, measured while the load runs.
//!
//! Each client count runs for a fixed time after a warm-up that is not counted, so a run's
//! length does not depend on how fast the machine is that day.

mod load;
pub(crate) mod plot;
pub(crate) mod report;
mod rhizo;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rhizo_txn::SyncPolicy;

use crate::net::percentile;
use crate::peers::etcd::{self, EtcdClient, Swap};
use crate::results::{CompareRow, NetComparison, SkippedSystem, TargetCheck};
use load::{Attempt, Load, Worker, closed_loop};
use rhizo::{NODES, ServingCluster};

/// The client counts every operation runs at.
pub(crate) const CLIENTS: [usize; 3] = [1, 16, 64];
/// The client counts of a quick run (regress's smoke test): 64 clients of a coordinated path
/// on a loaded two-core machine make a smoke test slow for no more coverage.
const QUICK_CLIENTS: [usize; 2] = [1, 16];

/// The longest one etcd request waits for its answer before a client tries again.
const ETCD_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long each client count runs.
#[derive(Debug, Clone, Copy)]
struct Plan {
    warmup: Duration,
    measured: Duration,
    /// The longest installing etcd may take when it is missing.
    install: Duration,
    /// The client counts each operation runs at.
    clients: &'static [usize],
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                warmup: Duration::from_millis(200),
                measured: Duration::from_millis(800),
                install: Duration::from_secs(90),
                clients: &QUICK_CLIENTS,
            }
        } else {
            Self {
                warmup: Duration::from_millis(1_500),
                measured: Duration::from_secs(8),
                install: Duration::from_secs(300),
                clients: &CLIENTS,
            }
        }
    }

    /// A warm-up run (connections opened, caches and allocators warm), then the measured one.
    fn measure<W: Worker>(&self, workers: &mut [W]) -> Result<Load, String> {
        closed_loop(workers, self.warmup)?;
        closed_loop(workers, self.measured)
    }
}

/// The comparison: etcd's rows (or why they are missing), Rhizo's, and the targets judged on
/// them. A failure of etcd skips its rows with the reason; a failure of Rhizo fails the stage.
pub(crate) fn comparison(quick: bool) -> Result<NetComparison, String> {
    let plan = Plan::new(quick);
    let mut comparison = NetComparison {
        seconds_per_row: plan.measured.as_secs_f64(),
        ..NetComparison::default()
    };
    match etcd::locate_or_install(plan.install).and_then(|binary| etcd_rows(&binary, plan)) {
        Ok(rows) => comparison.rows.extend(rows),
        Err(reason) => {
            eprintln!("rhizo-bench: the etcd rows are skipped: {reason}");
            comparison.skipped.push(SkippedSystem {
                system: "etcd".into(),
                reason,
            });
        }
    }
    comparison.rows.extend(coordinated_rows(plan)?);
    comparison.rows.extend(coordination_free_rows(plan)?);
    comparison.targets = targets(&comparison.rows);
    Ok(comparison)
}

/// A row of `load`, for the columns every path has.
fn row(
    system: &str,
    path: &str,
    operation: &str,
    durability: &str,
    clients: usize,
    load: &Load,
) -> CompareRow {
    let row = CompareRow {
        system: system.to_owned(),
        path: path.to_owned(),
        operation: operation.to_owned(),
        durability: durability.to_owned(),
        nodes: NODES,
        clients,
        ops: load.latencies_ms.len(),
        retries: load.retries,
        ops_per_sec: load.ops_per_sec(),
        p50_ms: percentile(&load.latencies_ms, 0.5),
        p99_ms: percentile(&load.latencies_ms, 0.99),
        visibility_p50_ms: None,
        visibility_p99_ms: None,
        converged: None,
    };
    eprintln!(
        "rhizo-bench: {system} {operation} x{clients}: {:.0} ops/s, p50 {:.3} ms, p99 {:.3} ms, {} retries",
        row.ops_per_sec, row.p50_ms, row.p99_ms, row.retries
    );
    row
}

/// Puts over [`rhizo::KEYS`] keys, through one member.
struct EtcdPut {
    client: EtcdClient,
    index: usize,
}

impl Worker for EtcdPut {
    fn attempt(&mut self, op: u64, _previous_attempts: u32) -> Result<(), Attempt> {
        let key = format!("k{}", rhizo::key_of(self.index, op));
        // Rewriting the same value is harmless, so any retryable failure is simply retried.
        self.client
            .put(key.as_bytes(), &op.to_be_bytes())
            .map_err(etcd_attempt)
    }
}

/// Compare-and-sets on a key of the client's own, from the value it holds to the next.
struct EtcdCompareAndSet {
    client: EtcdClient,
    register: Vec<u8>,
    current: u64,
}

impl EtcdCompareAndSet {
    /// A client swapping `register` (set to 0 here, not measured) through `client`.
    fn new(client: EtcdClient, register: String) -> Result<Self, String> {
        let register = register.into_bytes();
        load::with_retries(|_| {
            client
                .put(&register, &0u64.to_be_bytes())
                .map_err(etcd_attempt)
        })?;
        Ok(Self {
            client,
            register,
            current: 0,
        })
    }
}

impl Worker for EtcdCompareAndSet {
    fn attempt(&mut self, _op: u64, previous_attempts: u32) -> Result<(), Attempt> {
        let (expected, new) = (self.current.to_be_bytes(), (self.current + 1).to_be_bytes());
        match self
            .client
            .compare_and_set(&self.register, &expected, &new)
            .map_err(etcd_attempt)?
        {
            Swap::Swapped => {}
            // An earlier attempt whose answer was lost may have swapped it.
            Swap::Held(Some(held)) if previous_attempts > 0 && held == new => {}
            Swap::Held(held) => {
                return Err(Attempt::Fail(format!(
                    "etcd compare-and-set on {}: expected {expected:?}, found {held:?}",
                    String::from_utf8_lossy(&self.register)
                )));
            }
        }
        self.current += 1;
        Ok(())
    }
}

/// Linearizable gets over the keys the puts wrote, through one member.
struct EtcdGet {
    client: EtcdClient,
    index: usize,
}

impl Worker for EtcdGet {
    fn attempt(&mut self, op: u64, _previous_attempts: u32) -> Result<(), Attempt> {
        let key = format!("k{}", rhizo::key_of(self.index, op));
        self.client
            .get(key.as_bytes())
            .map(drop)
            .map_err(etcd_attempt)
    }
}

fn etcd_attempt(failure: etcd::Failure) -> Attempt {
    if failure.retryable {
        Attempt::Retry(failure.reason)
    } else {
        Attempt::Fail(failure.reason)
    }
}

/// What one kind of row measures: who, on which path, doing what, kept how durable.
struct RowKind<'a> {
    system: &'a str,
    path: &'a str,
    operation: &'a str,
    durability: &'a str,
}

impl Plan {
    /// One row of `kind` per client count, each with the workers `workers(clients)` builds.
    fn rows<W: Worker>(
        &self,
        kind: &RowKind<'_>,
        mut workers: impl FnMut(usize) -> Result<Vec<W>, String>,
    ) -> Result<Vec<CompareRow>, String> {
        let mut rows = Vec::new();
        for &clients in self.clients {
            let load = self.measure(&mut workers(clients)?)?;
            rows.push(row(
                kind.system,
                kind.path,
                kind.operation,
                kind.durability,
                clients,
                &load,
            ));
        }
        Ok(rows)
    }
}

/// etcd's rows: puts, compare-and-sets, then linearizable reads, at each client count, on one
/// cluster.
fn etcd_rows(binary: &etcd::Binary, plan: Plan) -> Result<Vec<CompareRow>, String> {
    let cluster = etcd::Cluster::start(binary)?;
    let urls = cluster.client_urls();
    let client = |c: usize| EtcdClient::new(&urls[c % urls.len()], ETCD_REQUEST_TIMEOUT);
    let kind = |operation, durability| RowKind {
        system: &binary.version,
        path: "raft",
        operation,
        durability,
    };
    let durability = "each log entry fsynced on a quorum before the answer (etcd's default)";
    let mut rows = plan.rows(&kind("put", durability), |clients| {
        Ok((0..clients)
            .map(|index| EtcdPut {
                client: client(index),
                index,
            })
            .collect())
    })?;
    rows.extend(plan.rows(&kind("compare_and_set", durability), |clients| {
        (0..clients)
            .map(|c| EtcdCompareAndSet::new(client(c), format!("r{clients}-{c}")))
            .collect()
    })?);
    let linearizable =
        "linearizable: the member confirms its leader's commit index (etcd's default range)";
    rows.extend(
        plan.rows(&kind(LINEARIZABLE_READ, linearizable), |clients| {
            Ok((0..clients)
                .map(|index| EtcdGet {
                    client: client(index),
                    index,
                })
                .collect())
        })?,
    );
    Ok(rows)
}

/// The read rows' operation: a read that sees every write acknowledged before it started.
const LINEARIZABLE_READ: &str = "linearizable_read";

/// Rhizo's coordinated rows: the same puts and compare-and-sets, through Raft, every commit
/// durable on a quorum before its acknowledgement, then linearizable reads.
fn coordinated_rows(plan: Plan) -> Result<Vec<CompareRow>, String> {
    let cluster = ServingCluster::start(SyncPolicy::EveryCommit)?;
    let kind = |operation, durability| RowKind {
        system: "rhizo",
        path: "coordinated",
        operation,
        durability,
    };
    let durability = "durable on a quorum before the answer (every_commit)";
    let mut rows = plan.rows(&kind("put", durability), |clients| {
        Ok((0..clients)
            .map(|c| rhizo::Put::new(cluster.connection(c), c))
            .collect())
    })?;
    rows.extend(plan.rows(&kind("compare_and_set", durability), |clients| {
        (0..clients)
            .map(|c| rhizo::CompareAndSet::new(cluster.connection(c), format!("r{clients}-{c}")))
            .collect()
    })?);
    let linearizable = "linearizable: the leader's commit index confirmed by a quorum (Raft's \
                        read index), answered once applied here";
    rows.extend(
        plan.rows(&kind(LINEARIZABLE_READ, linearizable), |clients| {
            Ok((0..clients)
                .map(|c| rhizo::LinearizableRead::new(cluster.connection(c), c))
                .collect())
        })?,
    );
    Ok(rows)
}

/// Rhizo's coordination-free rows: increments under group commit, with the visibility lag
/// probed while they run; then every node must hold every acknowledged increment.
fn coordination_free_rows(plan: Plan) -> Result<Vec<CompareRow>, String> {
    let sync = SyncPolicy::Group {
        max_delay_ms: 2,
        max_records: 1024,
    };
    let durability = "acknowledged at commit; fsynced within 2 ms or 1,024 records (group)";
    let cluster = ServingCluster::start(sync)?;
    let mut rows = Vec::new();
    let mut increments = 0i64;
    let mut probe_keys = Vec::new();
    let mut probed = 0i64;
    for &clients in plan.clients {
        let mut workers: Vec<rhizo::Increment> = (0..clients)
            .map(|c| rhizo::Increment::new(cluster.connection(c), c))
            .collect();
        // The warm-up's increments count towards the totals every node must end with.
        increments += closed_loop(&mut workers, plan.warmup)?.latencies_ms.len() as i64;
        let probe_key = format!("probe-{clients}");
        let stop = AtomicBool::new(false);
        let (load, probe) = std::thread::scope(|scope| {
            let probe = scope.spawn(|| rhizo::visibility_probe(&cluster, &probe_key, &stop));
            let load = closed_loop(&mut workers, plan.measured);
            stop.store(true, Ordering::Release);
            let probe = probe
                .join()
                .unwrap_or_else(|_| Err("the visibility probe panicked".to_owned()));
            (load, probe)
        });
        let (load, (lags, probes)) = (load?, probe?);
        increments += load.latencies_ms.len() as i64;
        probed += probes;
        probe_keys.push(probe_key);
        let mut row = row(
            "rhizo",
            "coordination_free",
            "increment",
            durability,
            clients,
            &load,
        );
        row.visibility_p50_ms = Some(percentile(&lags, 0.5));
        row.visibility_p99_ms = Some(percentile(&lags, 0.99));
        rows.push(row);
    }
    let counters = rhizo::Increment::keys();
    let converged = cluster.converged(&counters, increments, Duration::from_secs(30))?
        && cluster.converged(&probe_keys, probed, Duration::from_secs(5))?;
    for row in &mut rows {
        row.converged = Some(converged);
    }
    Ok(rows)
}

/// The row of `path`'s `operation` at `clients` clients.
fn find<'a>(
    rows: &'a [CompareRow],
    path: &str,
    operation: &str,
    clients: usize,
) -> Option<&'a CompareRow> {
    rows.iter()
        .find(|r| r.path == path && r.operation == operation && r.clients == clients)
}

/// The targets for the networked comparison, judged at 64 clients (the commit p99 at
/// every client count).
pub(crate) fn targets(rows: &[CompareRow]) -> Vec<TargetCheck> {
    let most = CLIENTS[CLIENTS.len() - 1];
    let etcd_put = find(rows, "raft", "put", most);
    let coordinated_put = find(rows, "coordinated", "put", most);
    let free = find(rows, "coordination_free", "increment", most);
    let mut checks = vec![
        compare(
            format!("coordinated put p50 ≤ etcd put p50 ({most} clients)"),
            coordinated_put.zip(etcd_put),
            |(ours, etcd)| {
                let measured = format!("{:.3} ms against {:.3} ms", ours.p50_ms, etcd.p50_ms);
                (measured, ours.p50_ms <= etcd.p50_ms)
            },
        ),
        compare(
            format!("coordinated put throughput ≥ etcd put throughput ({most} clients)"),
            coordinated_put.zip(etcd_put),
            |(ours, etcd)| {
                let measured = format!(
                    "{:.0} against {:.0} ops/s",
                    ours.ops_per_sec, etcd.ops_per_sec
                );
                (measured, ours.ops_per_sec >= etcd.ops_per_sec)
            },
        ),
        compare(
            format!("coordination-free throughput ≥ 100 × etcd put throughput ({most} clients)"),
            free.zip(etcd_put),
            |(ours, etcd)| {
                let ratio = ours.ops_per_sec / etcd.ops_per_sec.max(f64::MIN_POSITIVE);
                let measured = format!(
                    "{:.0} against {:.0} ops/s: {ratio:.1} ×",
                    ours.ops_per_sec, etcd.ops_per_sec
                );
                (measured, ratio >= 100.0)
            },
        ),
    ];
    for clients in CLIENTS {
        checks.push(compare(
            format!("coordination-free commit p99 ≤ 0.2 ms (clients: {clients})"),
            find(rows, "coordination_free", "increment", clients),
            |ours| (format!("{:.3} ms", ours.p99_ms), ours.p99_ms <= 0.2),
        ));
    }
    checks
}

/// A target judged by `judge` on the rows it needs, or not judged when one is missing.
fn compare<T>(
    target: String,
    rows: Option<T>,
    judge: impl FnOnce(T) -> (String, bool),
) -> TargetCheck {
    match rows {
        Some(rows) => {
            let (measured, holds) = judge(rows);
            TargetCheck {
                target,
                measured,
                holds: Some(holds),
            }
        }
        None => TargetCheck {
            target,
            measured: "not measured in this run (a row it needs is missing)".into(),
            holds: None,
        },
    }
}
