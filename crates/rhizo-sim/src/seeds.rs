//! Seed sweeps for tests, with a one-line replay command on failure.
//!
//! This is the only module that reads the environment, and only tests call it:
//! `RHIZO_SIM_SEED=N` runs the single seed `N`; `RHIZO_SIM_SEEDS=N` runs seeds `0..N` instead
//! of the test's default count (for long sweeps outside CI).

use std::fmt;

/// Runs one seed.
pub const SEED_VAR: &str = "RHIZO_SIM_SEED";
/// Sets how many seeds a sweep runs.
pub const SEEDS_VAR: &str = "RHIZO_SIM_SEEDS";

/// Which test a sweep belongs to, so a failure can say how to replay it.
#[derive(Clone, Copy, Debug)]
pub struct SweepName<'a> {
    /// The cargo package holding the test (`env!("CARGO_PKG_NAME")` at the call site).
    pub package: &'a str,
    /// The test's name, as `cargo test` filters it.
    pub test: &'a str,
}

/// Why a sweep stopped.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
pub enum SweepError {
    /// One seed failed; the message ends with the command that replays it.
    #[error(
        "seed {seed} failed: {reason}; replay with: {SEED_VAR}={seed} cargo test -p {package} {test}"
    )]
    SeedFailed {
        /// The failing seed.
        seed: u64,
        /// What the seed's run reported.
        reason: String,
        /// The package of the test.
        package: String,
        /// The test name.
        test: String,
    },
    /// An environment variable held something other than a `u64`.
    #[error("{var}={value:?} is not a whole number")]
    BadEnv {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
}

// `unwrap()` on a sweep's result prints Debug; make that the replay line itself.
impl fmt::Debug for SweepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Runs `run(seed)` for each seed the environment selects (default `0..default_seeds`),
/// stopping at the first failure. Returns how many seeds ran.
///
/// ```
/// use rhizo_sim::seeds::{sweep, SweepName};
/// let name = SweepName { package: "rhizo-sim", test: "doc" };
/// let ran = sweep(name, 3, |_seed| Ok(())).unwrap();
/// assert!(ran >= 1);
/// ```
pub fn sweep(
    name: SweepName<'_>,
    default_seeds: u64,
    run: impl FnMut(u64) -> Result<(), String>,
) -> Result<u64, SweepError> {
    let seed = std::env::var(SEED_VAR).ok();
    let seeds = std::env::var(SEEDS_VAR).ok();
    sweep_with(name, seed.as_deref(), seeds.as_deref(), default_seeds, run)
}

/// [`sweep`] with the two environment values passed in (for testing the selection itself).
pub fn sweep_with(
    name: SweepName<'_>,
    seed_var: Option<&str>,
    seeds_var: Option<&str>,
    default_seeds: u64,
    mut run: impl FnMut(u64) -> Result<(), String>,
) -> Result<u64, SweepError> {
    let parse = |var: &'static str, value: &str| {
        value.trim().parse::<u64>().map_err(|_| SweepError::BadEnv {
            var,
            value: value.to_owned(),
        })
    };
    let seeds = match (seed_var, seeds_var) {
        (Some(one), _) => {
            let seed = parse(SEED_VAR, one)?;
            seed..seed + 1
        }
        (None, Some(count)) => 0..parse(SEEDS_VAR, count)?,
        (None, None) => 0..default_seeds,
    };
    let count = seeds.end - seeds.start;
    for seed in seeds {
        if let Err(reason) = run(seed) {
            return Err(seed_failed(name, seed, reason));
        }
    }
    Ok(count)
}

/// [`sweep`] run on `threads` threads (each seed is independent, so results do not depend on
/// the number of threads). On failures, reports the smallest failing seed. Returns how many
/// seeds ran.
pub fn sweep_parallel(
    name: SweepName<'_>,
    default_seeds: u64,
    threads: usize,
    run: impl Fn(u64) -> Result<(), String> + Sync,
) -> Result<u64, SweepError> {
    let seed = std::env::var(SEED_VAR).ok();
    let seeds = std::env::var(SEEDS_VAR).ok();
    sweep_parallel_with(
        name,
        seed.as_deref(),
        seeds.as_deref(),
        default_seeds,
        threads,
        run,
    )
}

/// [`sweep_parallel`] with the two environment values passed in.
pub fn sweep_parallel_with(
    name: SweepName<'_>,
    seed_var: Option<&str>,
    seeds_var: Option<&str>,
    default_seeds: u64,
    threads: usize,
    run: impl Fn(u64) -> Result<(), String> + Sync,
) -> Result<u64, SweepError> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    // Collect the selected seeds with the sequential sweep (it parses the environment).
    let mut selected = Vec::new();
    sweep_with(name, seed_var, seeds_var, default_seeds, |s| {
        selected.push(s);
        Ok(())
    })?;
    let next = AtomicU64::new(0);
    let first_failure: Mutex<Option<(u64, String)>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(&seed) = selected.get(i) else { break };
                    if first_failure
                        .lock()
                        .expect("no thread panics holding the lock")
                        .as_ref()
                        .is_some_and(|(failed, _)| *failed < seed)
                    {
                        break; // a smaller seed already failed
                    }
                    if let Err(reason) = run(seed) {
                        let mut failure = first_failure.lock().expect("no panic holding it");
                        if failure.as_ref().is_none_or(|(failed, _)| seed < *failed) {
                            *failure = Some((seed, reason));
                        }
                    }
                }
            });
        }
    });
    match first_failure.into_inner().expect("threads have ended") {
        None => Ok(selected.len() as u64),
        Some((seed, reason)) => Err(seed_failed(name, seed, reason)),
    }
}

/// The failure of `seed`, printed as it is made: the line ends with the command that replays
/// the seed, and a test harness that captures the error would otherwise hide it.
fn seed_failed(name: SweepName<'_>, seed: u64, reason: String) -> SweepError {
    let failure = SweepError::SeedFailed {
        seed,
        reason,
        package: name.package.to_owned(),
        test: name.test.to_owned(),
    };
    eprintln!("{failure}");
    failure
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: SweepName<'static> = SweepName {
        package: "rhizo-sim",
        test: "some_test",
    };

    #[test]
    fn default_range_then_env_overrides() {
        let mut seen = Vec::new();
        assert_eq!(
            sweep_with(NAME, None, None, 4, |s| {
                seen.push(s);
                Ok(())
            }),
            Ok(4)
        );
        assert_eq!(seen, [0, 1, 2, 3]);
        seen.clear();
        sweep_with(NAME, Some("17"), Some("100"), 4, |s| {
            seen.push(s);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [17]);
        seen.clear();
        sweep_with(NAME, None, Some(" 6 "), 4, |s| {
            seen.push(s);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn failure_names_seed_and_replay_command() {
        let mut ran = Vec::new();
        let err = sweep_with(NAME, None, None, 10, |s| {
            ran.push(s);
            if s == 3 {
                Err("diverged".into())
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert_eq!(ran, [0, 1, 2, 3], "the sweep stops at the first failure");
        assert_eq!(
            err.to_string(),
            "seed 3 failed: diverged; replay with: RHIZO_SIM_SEED=3 cargo test -p rhizo-sim some_test"
        );
        assert_eq!(format!("{err:?}"), err.to_string());
    }

    #[test]
    fn parallel_sweep_reports_the_smallest_failing_seed() {
        for threads in [1, 2, 4] {
            let err = sweep_parallel_with(NAME, None, None, 40, threads, |s| {
                if s % 7 == 5 {
                    Err(format!("bad {s}"))
                } else {
                    Ok(())
                }
            })
            .unwrap_err();
            assert_eq!(
                err.to_string(),
                "seed 5 failed: bad 5; replay with: RHIZO_SIM_SEED=5 cargo test -p rhizo-sim some_test"
            );
        }
        let ran = std::sync::atomic::AtomicU64::new(0);
        let count = sweep_parallel_with(NAME, None, Some("9"), 3, 2, |_| {
            ran.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        });
        assert_eq!(count, Ok(9));
        assert_eq!(ran.into_inner(), 9);
    }

    #[test]
    fn bad_env_is_an_error_and_runs_nothing() {
        let mut ran = 0;
        let err = sweep_with(NAME, Some("x1"), None, 10, |_| {
            ran += 1;
            Ok(())
        })
        .unwrap_err();
        assert_eq!(
            err,
            SweepError::BadEnv {
                var: SEED_VAR,
                value: "x1".into()
            }
        );
        assert_eq!(ran, 0);
    }
}
