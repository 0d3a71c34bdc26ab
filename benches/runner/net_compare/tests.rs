use super::*;

use std::sync::atomic::AtomicU32;

fn sample(
    path: &str,
    operation: &str,
    clients: usize,
    ops_per_sec: f64,
    p50: f64,
    p99: f64,
) -> CompareRow {
    CompareRow {
        system: "test".into(),
        path: path.into(),
        operation: operation.into(),
        durability: String::new(),
        nodes: NODES,
        clients,
        ops: 1,
        retries: 0,
        ops_per_sec,
        p50_ms: p50,
        p99_ms: p99,
        visibility_p50_ms: None,
        visibility_p99_ms: None,
        converged: None,
    }
}

#[test]
fn targets_are_judged_at_64_clients_on_the_figures_they_name() {
    let rows = vec![
        sample("raft", "put", 64, 1_000.0, 2.0, 9.0),
        sample("coordinated", "put", 64, 1_500.0, 3.0, 9.0),
        sample("coordination_free", "increment", 1, 50_000.0, 0.05, 0.1),
        sample("coordination_free", "increment", 16, 80_000.0, 0.1, 0.3),
        sample("coordination_free", "increment", 64, 100_000.0, 0.5, 0.9),
    ];
    let holds: Vec<Option<bool>> = targets(&rows).iter().map(|t| t.holds).collect();
    // p50 3 > 2: fails; 1,500 ≥ 1,000: holds; 100,000 ≥ 100 × 1,000: holds; p99 per count.
    assert_eq!(
        holds,
        vec![
            Some(false),
            Some(true),
            Some(true),
            Some(true),
            Some(false),
            Some(false)
        ]
    );
}

#[test]
fn targets_needing_a_missing_row_are_not_judged() {
    let rows = vec![sample("coordination_free", "increment", 64, 1.0, 0.1, 0.1)];
    let checks = targets(&rows);
    assert_eq!(checks[0].holds, None);
    assert_eq!(checks[1].holds, None);
    assert_eq!(checks[2].holds, None);
    assert!(checks[2].measured.contains("not measured"));
    assert_eq!(checks[3].holds, None);
    assert_eq!(checks[5].holds, Some(true));
}

/// Fails retryably `failures` times in all, then succeeds.
struct Flaky {
    failures: u32,
}

impl Worker for Flaky {
    fn attempt(&mut self, _op: u64, _previous_attempts: u32) -> Result<(), Attempt> {
        if self.failures > 0 {
            self.failures -= 1;
            return Err(Attempt::Retry("busy".into()));
        }
        Ok(())
    }
}

#[test]
fn a_retryable_failure_is_retried_and_counted() {
    let mut workers = vec![Flaky { failures: 3 }, Flaky { failures: 0 }];
    let load = closed_loop(&mut workers, Duration::from_millis(50)).expect("a load");
    assert_eq!(load.retries, 3);
    assert!(!load.latencies_ms.is_empty());
    assert!(load.latencies_ms.windows(2).all(|w| w[0] <= w[1]));
    assert!(load.ops_per_sec() > 0.0);
}

#[test]
fn a_failure_for_good_fails_the_run_with_its_reason() {
    struct Broken(AtomicU32);
    impl Worker for Broken {
        fn attempt(&mut self, _op: u64, _previous_attempts: u32) -> Result<(), Attempt> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Err(Attempt::Fail("refused".into()))
        }
    }
    let mut workers = vec![Broken(AtomicU32::new(0))];
    let outcome = closed_loop(&mut workers, Duration::from_millis(50));
    assert_eq!(outcome, Err("refused".to_owned()));
    assert_eq!(workers[0].0.load(Ordering::Relaxed), 1);
}

#[test]
fn with_retries_passes_the_count_of_failed_attempts() {
    let mut seen = Vec::new();
    let retries = load::with_retries(|previous| {
        seen.push(previous);
        if previous < 2 {
            Err(Attempt::Retry("again".into()))
        } else {
            Ok(())
        }
    });
    assert_eq!(retries, Ok(2));
    assert_eq!(seen, vec![0, 1, 2]);
}

#[test]
fn keys_stay_in_the_key_space_and_differ_between_clients() {
    assert!((0..1_000).all(|op| rhizo::key_of(63, op) < rhizo::KEYS));
    assert_ne!(rhizo::key_of(0, 0), rhizo::key_of(1, 0));
}
