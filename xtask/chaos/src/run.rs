//! One run: start the proxies and the agents, run the workload under the nemesis for the run's
//! duration, heal everything, let the cluster settle, read every node and check.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rhizo_algebra::AlgebraicValue;
use rhizo_net::ClientSecurity;

use crate::checkers::{self, NodeState, Violation};
use crate::cluster::{COLUMN, COUNTERS, Cluster, NodeAddresses, REGISTERS, SETS, free_address};
use crate::error::{ChaosError, Result};
use crate::nemesis::{Action, Link, Schedule, node_name};
use crate::proxy::{LinkMode, LinkProxy};
use crate::workload::{self, COUNTER_KEYS, SET_KEYS, Workload};

/// The longest the cluster may take to start (every node answering with a leader known).
const STARTUP: Duration = Duration::from_secs(120);
/// The longest the cluster may take to converge once every fault is healed. Generous: a loaded
/// machine is slow, and only a cluster that never converges is a failure.
const SETTLE: Duration = Duration::from_secs(180);
/// Requests per second of run, at most, over all clients: a bound above what the paced clients
/// send, so that it ends a run that goes wrong rather than the load of a normal one.
const REQUESTS_PER_SECOND: u64 = 1_000;

/// What a run is asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Seeds the nemesis schedule, the workload's choices and the nodes' elections.
    pub seed: u64,
    /// The workload's (and the nemesis's) length.
    pub duration: Duration,
    /// Nodes, 3 to 5.
    pub nodes: usize,
    /// The `rhizo` binary.
    pub rhizo: PathBuf,
    /// The run directory (removed on a pass, kept on a failure).
    pub run_dir: PathBuf,
}

/// What a run found.
#[derive(Debug)]
pub struct Report {
    /// The checks that failed (empty: the run passed).
    pub violations: Vec<Violation>,
    /// A summary of the run for the reader.
    pub summary: String,
}

/// Runs the whole thing in a fresh runtime; SIGINT or SIGTERM ends it (and its agents) early.
pub fn run(options: &Options) -> Result<Report> {
    if options.run_dir.exists() {
        std::fs::remove_dir_all(&options.run_dir).map_err(|source| ChaosError::File {
            what: "remove the old run directory",
            path: options.run_dir.clone(),
            source,
        })?;
    }
    std::fs::create_dir_all(&options.run_dir).map_err(|source| ChaosError::File {
        what: "create",
        path: options.run_dir.clone(),
        source,
    })?;
    // The agents run in the run directory: every path they are given is absolute.
    let absolute = |path: &PathBuf| {
        std::fs::canonicalize(path).map_err(|source| ChaosError::File {
            what: "find",
            path: path.clone(),
            source,
        })
    };
    let options = &Options {
        rhizo: absolute(&options.rhizo)?,
        run_dir: absolute(&options.run_dir)?,
        ..options.clone()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(ChaosError::Runtime)?;
    runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate()).map_err(ChaosError::Runtime)?;
        // Either signal ends the run here, and the cluster's guard ends the agents.
        tokio::select! {
            report = run_cluster(options) => report,
            _ = tokio::signal::ctrl_c() => Err(ChaosError::Interrupted),
            _ = terminate.recv() => Err(ChaosError::Interrupted),
        }
    })
}

type Proxies = BTreeMap<Link, LinkProxy>;

async fn run_cluster(options: &Options) -> Result<Report> {
    let begun = Instant::now();
    let n = options.nodes;
    let addresses = (0..n)
        .map(|_| {
            Ok(NodeAddresses {
                peer: free_address()?,
                client: free_address()?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let (proxies, peers) = start_proxies(&addresses).await?;
    let cluster = Cluster::prepare(
        &options.rhizo,
        &options.run_dir,
        &addresses,
        &peers,
        options.seed,
    )?;
    let security = cluster.security().clone();
    let cluster = Arc::new(Mutex::new(cluster));
    for index in 0..n {
        lock(&cluster).start(index)?;
    }
    wait_until_ready(&cluster, &addresses, &security).await?;
    let started = Instant::now();
    let startup = started - begun;
    let register_keys = 8 + options.duration.as_secs() as usize / 5;
    let max_requests = REQUESTS_PER_SECOND * options.duration.as_secs().max(1);
    let load = Workload::new(security.clone(), started, max_requests, register_keys);
    let mut tasks = Vec::new();
    for (index, node) in addresses.iter().enumerate() {
        tasks.extend(load.spawn(index, node.client, options.seed));
    }
    let schedule = Schedule::generate(options.seed, options.duration, n);
    let nemesis_log = carry_out(&schedule, &cluster, &proxies, started).await;
    tokio::time::sleep_until((started + options.duration).into()).await;
    load.stop();
    for task in tasks {
        // Each task ends after its current request, which its client bounds.
        let _ = task.await;
    }
    for proxy in proxies.values() {
        proxy.set_mode(LinkMode::HEALED);
    }
    let crashed = lock(&cluster).exited();
    lock(&cluster).restore()?;
    let healed = Instant::now();
    let states = settle(&addresses, &security, &load).await;
    let settled = healed.elapsed();
    let read_at = load.now();
    let history = load.history();
    let mut violations: Vec<Violation> = crashed
        .into_iter()
        .map(|detail| Violation {
            checker: "crash",
            detail,
        })
        .collect();
    violations.extend(nemesis_log.errors.iter().cloned().map(|detail| Violation {
        checker: "nemesis",
        detail,
    }));
    match &states {
        Ok(states) => {
            violations.extend(checkers::check_converged(states));
            violations.extend(checkers::check_counters(&history, states));
            violations.extend(checkers::check_sets(&history, states));
            violations.extend(checkers::check_registers(&history, states, read_at));
        }
        Err(detail) => violations.push(Violation {
            checker: "convergence",
            detail: detail.clone(),
        }),
    }
    let mut summary = format!(
        "startup {:.1} s, workload {:.1} s, settle {:.1} s\n",
        startup.as_secs_f64(),
        (healed - started).as_secs_f64(),
        settled.as_secs_f64()
    );
    summary += &summarize(&history, load.requests(), &nemesis_log, &proxies);
    drop(history);
    drop(proxies);
    // The agents end here (by pid) whatever the checks found.
    drop(cluster);
    Ok(Report {
        violations,
        summary,
    })
}

/// One proxy per directed link; `peers[a][b]` is the address node `a` dials to reach `b`.
async fn start_proxies(addresses: &[NodeAddresses]) -> Result<(Proxies, Vec<Vec<SocketAddr>>)> {
    let n = addresses.len();
    let mut proxies = Proxies::new();
    let mut peers = vec![vec![SocketAddr::from(([127, 0, 0, 1], 0)); n]; n];
    for (from, dials) in peers.iter_mut().enumerate() {
        for (to, target) in addresses.iter().enumerate().filter(|(to, _)| *to != from) {
            let proxy = LinkProxy::start(target.peer).await?;
            dials[to] = proxy.address();
            proxies.insert(Link { from, to }, proxy);
        }
    }
    Ok((proxies, peers))
}

fn lock(cluster: &Mutex<Cluster>) -> std::sync::MutexGuard<'_, Cluster> {
    cluster
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Waits until every node answers `status` with a Raft leader known.
async fn wait_until_ready(
    cluster: &Mutex<Cluster>,
    addresses: &[NodeAddresses],
    security: &ClientSecurity,
) -> Result<()> {
    let deadline = Instant::now() + STARTUP;
    for (index, node) in addresses.iter().enumerate() {
        loop {
            let crashed = lock(cluster).exited();
            if !crashed.is_empty() {
                return Err(ChaosError::Startup(crashed.join("; ")));
            }
            let address = node.client.to_string();
            if let Some(client) = workload::connect(&address, security).await
                && let Ok(status) = client.status().await
                && status.raft.is_some_and(|raft| raft.leader.is_some())
            {
                break;
            }
            if Instant::now() > deadline {
                return Err(ChaosError::Startup(format!(
                    "{} had no leader within {STARTUP:?}",
                    node_name(index)
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// What the nemesis did.
#[derive(Debug, Default)]
struct NemesisLog {
    /// Each step carried out, with its wall-clock offset.
    steps: Vec<String>,
    /// Steps that could not be carried out.
    errors: Vec<String>,
}

/// Carries out the schedule, each step at its offset from `started`.
async fn carry_out(
    schedule: &Schedule,
    cluster: &Mutex<Cluster>,
    proxies: &Proxies,
    started: Instant,
) -> NemesisLog {
    let mut log = NemesisLog::default();
    for step in &schedule.steps {
        tokio::time::sleep_until((started + step.at).into()).await;
        let done = match &step.action {
            Action::Kill(node) => lock(cluster).kill(*node),
            Action::Restart(node) => lock(cluster).start(*node),
            Action::Pause(node) => lock(cluster).set_paused(*node, true),
            Action::Resume(node) => lock(cluster).set_paused(*node, false),
            Action::SetLinks { links, mode } => {
                links.iter().for_each(|link| proxies[link].set_mode(*mode));
                Ok(())
            }
            Action::CutLinks { links, how } => {
                links.iter().for_each(|link| proxies[link].cut(*how));
                Ok(())
            }
        };
        let late = started.elapsed().saturating_sub(step.at);
        log.steps.push(format!(
            "{:>8.3}s (+{} ms) {}",
            step.at.as_secs_f64(),
            late.as_millis(),
            step.action
        ));
        if let Err(err) = done {
            log.errors.push(format!("{}: {err}", step.action));
        }
    }
    log
}

/// Waits until every node answers with the same fingerprint twice in a row, then reads every
/// row the workload used on every node. `Err` names what did not converge within [`SETTLE`].
async fn settle(
    addresses: &[NodeAddresses],
    security: &ClientSecurity,
    load: &Workload,
) -> std::result::Result<Vec<NodeState>, String> {
    let deadline = Instant::now() + SETTLE;
    let mut last: Option<Vec<u64>> = None;
    let mut seen = String::new();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut prints = Vec::new();
        for node in addresses {
            let address = node.client.to_string();
            let Some(client) = workload::connect(&address, security).await else {
                break;
            };
            let Ok(status) = client.status().await else {
                break;
            };
            prints.push(status.fingerprint);
        }
        seen = format!("{prints:x?}");
        let agreed = prints.len() == addresses.len() && prints.iter().all(|p| *p == prints[0]);
        if agreed && last.as_ref() == Some(&prints) {
            return read_states(addresses, security, load).await;
        }
        last = agreed.then_some(prints);
    }
    Err(format!(
        "the nodes did not agree within {SETTLE:?} of the final heal; last fingerprints {seen}"
    ))
}

async fn read_states(
    addresses: &[NodeAddresses],
    security: &ClientSecurity,
    load: &Workload,
) -> std::result::Result<Vec<NodeState>, String> {
    let mut states = Vec::new();
    for (index, node) in addresses.iter().enumerate() {
        let name = node_name(index);
        let address = node.client.to_string();
        let failed = |what: &str| format!("cannot read {name} after the settle: {what}");
        let client = workload::connect(&address, security)
            .await
            .ok_or_else(|| failed("no connection"))?;
        let status = client.status().await.map_err(|e| failed(&e.to_string()))?;
        let mut state = NodeState {
            node: name.clone(),
            fingerprint: status.fingerprint,
            ..NodeState::default()
        };
        let read = |table: &'static str, row: String| {
            let client = &client;
            async move {
                let value = client.read(table, &row, COLUMN).await;
                value.map(|value| (row, value)).map_err(|e| e.to_string())
            }
        };
        for row in (0..COUNTER_KEYS).map(|k| format!("c{k}")) {
            let (row, value) = read(COUNTERS, row).await.map_err(|e| failed(&e))?;
            if let AlgebraicValue::Integer(value) = value {
                state.counters.insert(row, value);
            }
        }
        for row in (0..SET_KEYS).map(|k| format!("s{k}")) {
            let (row, value) = read(SETS, row).await.map_err(|e| failed(&e))?;
            let elements = match value {
                AlgebraicValue::StringSet(set) => set.iter().cloned().collect(),
                _ => Default::default(),
            };
            state.sets.insert(row, elements);
        }
        for row in (0..load.register_keys()).map(|k| format!("r{k}")) {
            let (row, value) = read(REGISTERS, row).await.map_err(|e| failed(&e))?;
            let value = match value {
                AlgebraicValue::Integer(value) => Some(value),
                _ => None,
            };
            state.registers.insert(row, value);
        }
        states.push(state);
    }
    Ok(states)
}

fn summarize(
    history: &workload::History,
    requests: u64,
    nemesis: &NemesisLog,
    proxies: &Proxies,
) -> String {
    use std::fmt::Write;
    use std::sync::atomic::Ordering;
    let mut text = String::new();
    let _ = writeln!(text, "requests sent: {requests}");
    for (kind, tally) in &history.tallies {
        let _ = writeln!(
            text,
            "  {kind:<15} acknowledged {:>6}  refused {:>5}  unknown {:>5}",
            tally.acknowledged, tally.refused, tally.unknown
        );
    }
    let _ = writeln!(text, "refusals and unknown outcomes, by reason:");
    for (reason, count) in &history.failure_kinds {
        let _ = writeln!(text, "  {count:>6}  {reason}");
    }
    let _ = writeln!(text, "nemesis ({} steps):", nemesis.steps.len());
    for step in &nemesis.steps {
        let _ = writeln!(text, "  {step}");
    }
    let bytes: u64 = proxies
        .values()
        .map(|proxy| proxy.counters().bytes.load(Ordering::Relaxed))
        .sum();
    let accepted: u64 = proxies
        .values()
        .map(|proxy| proxy.counters().accepted.load(Ordering::Relaxed))
        .sum();
    let _ = writeln!(
        text,
        "proxies: {accepted} connections accepted, {bytes} bytes forwarded"
    );
    text
}
