//! Closed-loop clients: each does one operation, and the next as soon as the last was
//! acknowledged, for a fixed time. A retryable failure is tried again as a client would — after
//! a short pause, for a bounded time — and its latency counts every attempt.

use std::sync::Barrier;
use std::time::{Duration, Instant};

/// How long one operation may keep retrying before the run fails: many leader elections and
/// Raft proposal timeouts on a loaded machine, so a slow moment is waited out, not reported as a
/// failure; an operation that fails this long means the cluster is broken.
pub(crate) const RETRY_WINDOW: Duration = Duration::from_secs(60);

/// How one attempt at an operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// A client would try again (no leader, a timeout, an unknown outcome).
    Retry(String),
    /// A client would give up: the run fails with this.
    Fail(String),
}

/// One closed-loop client.
pub(crate) trait Worker: Send {
    /// Does operation number `op` (counted from 0 for each run) once; `previous_attempts`
    /// says how many attempts at the same operation failed before this one.
    fn attempt(&mut self, op: u64, previous_attempts: u32) -> Result<(), Attempt>;
}

/// Does operation `op` until it is acknowledged or fails for good; returns the retries.
fn until_acknowledged(worker: &mut impl Worker, op: u64) -> Result<u32, String> {
    with_retries(|previous_attempts| worker.attempt(op, previous_attempts))
}

/// Calls `attempt` (with the number of failed attempts before it) until it succeeds, fails for
/// good, or has kept failing retryably for [`RETRY_WINDOW`]; returns the retries.
pub(crate) fn with_retries(
    mut attempt: impl FnMut(u32) -> Result<(), Attempt>,
) -> Result<u32, String> {
    let started = Instant::now();
    let mut attempts = 0u32;
    loop {
        match attempt(attempts) {
            Ok(()) => return Ok(attempts),
            Err(Attempt::Fail(reason)) => return Err(reason),
            Err(Attempt::Retry(reason)) if started.elapsed() >= RETRY_WINDOW => {
                return Err(format!(
                    "still failing after {RETRY_WINDOW:?} of retries ({} attempts): {reason}",
                    attempts + 1
                ));
            }
            Err(Attempt::Retry(_)) => {
                attempts += 1;
                // Doubling pauses, a few milliseconds at first: enough for an election to
                // finish without turning a slow moment into a burst of requests.
                let pause = Duration::from_millis(2u64 << attempts.min(6));
                std::thread::sleep(pause);
            }
        }
    }
}

/// What a closed-loop run measured.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Load {
    /// Every acknowledged operation's latency, milliseconds, sorted.
    pub(crate) latencies_ms: Vec<f64>,
    /// Attempts beyond the first, over all operations.
    pub(crate) retries: u64,
    /// From the common start until the last client's last acknowledgement, seconds.
    pub(crate) seconds: f64,
}

impl Load {
    /// Acknowledged operations per second.
    pub(crate) fn ops_per_sec(&self) -> f64 {
        self.latencies_ms.len() as f64 / self.seconds.max(f64::MIN_POSITIVE)
    }
}

/// Runs `workers` together, each on a thread of its own, starting at once and starting no new
/// operation after `duration`. The first failure (after retries) fails the run.
pub(crate) fn closed_loop<W: Worker>(
    workers: &mut [W],
    duration: Duration,
) -> Result<Load, String> {
    let start = Barrier::new(workers.len() + 1);
    std::thread::scope(|scope| {
        let threads: Vec<_> = workers
            .iter_mut()
            .map(|worker| {
                let start = &start;
                scope.spawn(move || -> Result<(Vec<f64>, u64, Instant), String> {
                    start.wait();
                    let deadline = Instant::now() + duration;
                    let mut latencies = Vec::new();
                    let mut retries = 0u64;
                    let mut op = 0u64;
                    while Instant::now() < deadline {
                        let at = Instant::now();
                        retries += u64::from(until_acknowledged(worker, op)?);
                        latencies.push(at.elapsed().as_secs_f64() * 1e3);
                        op += 1;
                    }
                    Ok((latencies, retries, Instant::now()))
                })
            })
            .collect();
        start.wait();
        let started = Instant::now();
        let mut load = Load {
            latencies_ms: Vec::new(),
            retries: 0,
            seconds: 0.0,
        };
        let mut first_failure = None;
        for thread in threads {
            match thread.join() {
                Ok(Ok((latencies, retries, ended))) => {
                    load.latencies_ms.extend(latencies);
                    load.retries += retries;
                    load.seconds = load.seconds.max((ended - started).as_secs_f64());
                }
                Ok(Err(reason)) => {
                    first_failure.get_or_insert(reason);
                }
                Err(_) => {
                    first_failure.get_or_insert_with(|| "a client thread panicked".to_owned());
                }
            }
        }
        match first_failure {
            Some(reason) => Err(reason),
            None => {
                load.latencies_ms.sort_by(f64::total_cmp);
                Ok(load)
            }
        }
    })
}
