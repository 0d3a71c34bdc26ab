use super::*;
use crate::workspace::tests::sample;

fn artifact(package: &str, kind: &str, name: &str, executable: &str) -> String {
    format!(
        r#"{{"reason":"compiler-artifact","package_id":"path+file:///w/crates/{package}#0.1.0","manifest_path":"/w/crates/{package}/Cargo.toml","target":{{"kind":["{kind}"],"crate_types":["{kind}"],"name":"{name}","src_path":"/w/crates/{package}/src/lib.rs","edition":"2024","doc":true,"doctest":true,"test":true}},"profile":{{"test":true}},"features":[],"filenames":["{executable}"],"executable":"{executable}","fresh":true}}"#
    )
}

fn ids(parsed: &Parsed) -> Vec<(String, Outcome)> {
    let mut ids: Vec<(String, Outcome)> = parsed
        .tests
        .iter()
        .map(|test| (test.id.clone(), test.outcome))
        .collect();
    ids.sort();
    ids
}

fn pairs(expected: &[(&str, Outcome)]) -> Vec<(String, Outcome)> {
    let mut pairs: Vec<(String, Outcome)> = expected
        .iter()
        .map(|(id, outcome)| ((*id).to_owned(), *outcome))
        .collect();
    pairs.sort();
    pairs
}

/// Output shaped like a real `cargo test --workspace --no-fail-fast` run: a unit test binary
/// with a failure, an ignored test, a should-panic test and a test whose stray stderr lands in
/// the middle; an integration test binary; and merged doc tests with a compile-fail example in a
/// second block and a crate-level example.
fn workspace_run() -> String {
    [
        r#"{"reason":"compiler-artifact","package_id":"registry+https://github.com/rust-lang/crates.io-index#smallvec@1.15.0","target":{"kind":["lib"],"name":"smallvec"},"executable":null,"fresh":true}"#.to_owned(),
        "   Compiling rhizo-clock v0.1.0 (/w/crates/rhizo-clock)".to_owned(),
        artifact("rhizo-clock", "lib", "rhizo_clock", "/t/debug/deps/rhizo_clock-3110576fc3c3c96d"),
        artifact("rhizo-algebra", "lib", "rhizo_algebra", "/t/debug/deps/rhizo_algebra-aa10576fc3c3c96d"),
        artifact("rhizo-algebra", "test", "laws", "/t/debug/deps/laws-05f4a0fbb8ee5538"),
        r#"{"reason":"build-finished","success":true}"#.to_owned(),
        "    Finished `test` profile [optimized + debuginfo] target(s) in 0.51s".to_owned(),
        "     Running unittests src/lib.rs (/t/debug/deps/rhizo_clock-3110576fc3c3c96d)".to_owned(),
        String::new(),
        "running 5 tests".to_owned(),
        "test clock::tests::ign ... ignored, forbidden here".to_owned(),
        "proptest: FileFailurePersistence::SourceParallel set, but failed to find lib.rs".to_owned(),
        "test clock::tests::test_merge_takes_max ... FAILED".to_owned(),
        "test clock::tests::panics - should panic ... ok".to_owned(),
        "test clock::tests::test_tick_increments_local_clock ... ok".to_owned(),
        "test node::tests::names_round_trip ... ok".to_owned(),
        String::new(),
        "failures:".to_owned(),
        String::new(),
        "---- clock::tests::test_merge_takes_max stdout ----".to_owned(),
        "test fake::line::printed::by::the::test ... ok".to_owned(),
        "thread 'clock::tests::test_merge_takes_max' panicked at crates/rhizo-clock/src/clock/tests.rs:23:38:".to_owned(),
        "assertion `left == right` failed".to_owned(),
        String::new(),
        "failures:".to_owned(),
        "    clock::tests::test_merge_takes_max".to_owned(),
        String::new(),
        "test result: FAILED. 3 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.13s".to_owned(),
        String::new(),
        "error: test failed, to rerun pass `-p rhizo-clock --lib`".to_owned(),
        "     Running unittests src/lib.rs (/t/debug/deps/rhizo_algebra-aa10576fc3c3c96d)".to_owned(),
        String::new(),
        "running 0 tests".to_owned(),
        String::new(),
        "test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s".to_owned(),
        "     Running tests/laws.rs (/t/debug/deps/laws-05f4a0fbb8ee5538)".to_owned(),
        String::new(),
        "running 1 test".to_owned(),
        "test merge_is_commutative ... ok".to_owned(),
        String::new(),
        "test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s".to_owned(),
        String::new(),
        "   Doc-tests rhizo_clock".to_owned(),
        String::new(),
        "running 3 tests".to_owned(),
        "test crates/rhizo-clock/src/clock.rs - clock::VectorClock::merge (line 120) ... ok".to_owned(),
        "test crates/rhizo-clock/src/clock.rs - clock::VectorClock::merge (line 98) ... ok".to_owned(),
        "test crates/rhizo-clock/src/lib.rs - (line 3) ... ok".to_owned(),
        String::new(),
        "test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s".to_owned(),
        String::new(),
        String::new(),
        "running 1 test".to_owned(),
        "test crates/rhizo-clock/src/node.rs - node::NodeId::new (line 13) - compile fail ... ok".to_owned(),
        String::new(),
        "test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.04s".to_owned(),
        String::new(),
        "all doctests ran in 0.28s; merged doctests compilation took 0.23s".to_owned(),
        "error: 1 target failed:".to_owned(),
        "    `-p rhizo-clock --lib`".to_owned(),
    ]
    .join("\n")
}

#[test]
fn every_result_is_attributed_to_its_package_and_target() {
    let parsed = parse(&workspace_run(), &sample());
    assert_eq!(
        ids(&parsed),
        pairs(&[
            ("rhizo-clock::lib::clock::tests::ign", Outcome::Ignored),
            (
                "rhizo-clock::lib::clock::tests::test_merge_takes_max",
                Outcome::Failed
            ),
            ("rhizo-clock::lib::clock::tests::panics", Outcome::Passed),
            (
                "rhizo-clock::lib::clock::tests::test_tick_increments_local_clock",
                Outcome::Passed
            ),
            (
                "rhizo-clock::lib::node::tests::names_round_trip",
                Outcome::Passed
            ),
            ("rhizo-algebra::laws::merge_is_commutative", Outcome::Passed),
            (
                "rhizo-clock::doc::clock::VectorClock::merge",
                Outcome::Passed
            ),
            (
                "rhizo-clock::doc::clock::VectorClock::merge#2",
                Outcome::Passed
            ),
            (
                "rhizo-clock::doc::crates/rhizo-clock/src/lib.rs",
                Outcome::Passed
            ),
            (
                "rhizo-clock::doc::node::NodeId::new - compile fail",
                Outcome::Passed
            ),
        ])
    );
    assert_eq!(parsed.problems, Vec::<String>::new());
    assert!(parsed.build_failures.is_empty());
    assert!(
        parsed
            .tests
            .iter()
            .all(|test| test.id.starts_with(&test.package))
    );
}

#[test]
fn ansi_colours_do_not_change_the_results() {
    let coloured = workspace_run()
        .replace("ok\n", "\u{1b}[32mok\u{1b}[0m\n")
        .replace("Running", "\u{1b}[1m\u{1b}[92mRunning\u{1b}[0m");
    assert_eq!(
        ids(&parse(&coloured, &sample())),
        ids(&parse(&workspace_run(), &sample()))
    );
}

#[test]
fn compile_errors_name_the_crate() {
    let output = "   Compiling rhizo-algebra v0.1.0 (/w/crates/rhizo-algebra)\n\
                  error[E0308]: mismatched types\n\
                  --> crates/rhizo-algebra/src/lib.rs:1:20\n\
                  error: could not compile `rhizo-algebra` (lib test) due to 1 previous error\n\
                  warning: build failed, waiting for other jobs to finish...\n\
                  error: failed to run custom build command for `pyo3-ffi v0.23.0 (/r/pyo3-ffi)`\n\
                  {\"reason\":\"build-finished\",\"success\":false}\n";
    let parsed = parse(output, &sample());
    assert!(parsed.tests.is_empty());
    assert_eq!(
        parsed.build_failures.into_iter().collect::<Vec<_>>(),
        ["pyo3-ffi", "rhizo-algebra"]
    );
}

#[test]
fn single_threaded_results_split_by_noise_are_joined() {
    let output = [
        artifact(
            "rhizo-clock",
            "lib",
            "rhizo_clock",
            "/t/debug/deps/rhizo_clock-31",
        ),
        "     Running unittests src/lib.rs (/t/debug/deps/rhizo_clock-31)".to_owned(),
        "running 2 tests".to_owned(),
        "test a::slow ... ".to_owned(),
        "stray line from a child process".to_owned(),
        "ok".to_owned(),
        "test a::fast ... ok".to_owned(),
        "test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out".to_owned(),
    ]
    .join("\n");
    let parsed = parse(&output, &sample());
    assert_eq!(
        ids(&parsed),
        pairs(&[
            ("rhizo-clock::lib::a::fast", Outcome::Passed),
            ("rhizo-clock::lib::a::slow", Outcome::Passed),
        ])
    );
    assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
}

#[test]
fn a_crashed_binary_fails_its_running_test_and_is_reported() {
    let output = [
        artifact("rhizo-clock", "lib", "rhizo_clock", "/t/debug/deps/rhizo_clock-31"),
        "     Running unittests src/lib.rs (/t/debug/deps/rhizo_clock-31)".to_owned(),
        "running 2 tests".to_owned(),
        "test a::first ... ok".to_owned(),
        "test a::overflows ... ".to_owned(),
        "thread 'a::overflows' has overflowed its stack".to_owned(),
        "error: test failed, to rerun pass `-p rhizo-clock --lib`".to_owned(),
        String::new(),
        "Caused by:".to_owned(),
        "  process didn't exit successfully: `/t/debug/deps/rhizo_clock-31` (signal: 6, SIGABRT: process abort signal)".to_owned(),
    ]
    .join("\n");
    let parsed = parse(&output, &sample());
    assert_eq!(
        ids(&parsed),
        pairs(&[
            ("rhizo-clock::lib::a::first", Outcome::Passed),
            ("rhizo-clock::lib::a::overflows", Outcome::Failed),
        ])
    );
    assert_eq!(
        parsed.problems,
        [
            "process didn't exit successfully: `/t/debug/deps/rhizo_clock-31` (signal: 6, SIGABRT: process abort signal)",
            "rhizo-clock::lib: `a::overflows` started but never finished",
            "rhizo-clock::lib: the test binary ended without libtest's summary (did it crash?)",
        ]
    );
}

#[test]
fn a_summary_that_disagrees_with_the_lines_read_is_a_problem() {
    let output = [
        artifact(
            "rhizo-clock",
            "lib",
            "rhizo_clock",
            "/t/debug/deps/rhizo_clock-31",
        ),
        "     Running unittests src/lib.rs (/t/debug/deps/rhizo_clock-31)".to_owned(),
        "running 2 tests".to_owned(),
        "test a::one ... ok".to_owned(),
        "test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out".to_owned(),
    ]
    .join("\n");
    let parsed = parse(&output, &sample());
    assert_eq!(
        parsed.problems,
        [
            "rhizo-clock::lib: libtest reports 2 passed, 0 failed, 0 ignored, but 1 passed, 0 failed, 0 ignored were read"
        ]
    );
}

#[test]
fn an_unknown_binary_is_reported_and_its_results_are_not_counted() {
    let output = "     Running tests/ghost.rs (/t/debug/deps/ghost-99)\n\
                  running 1 test\n\
                  test haunt ... ok\n\
                  test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n";
    let parsed = parse(output, &sample());
    assert!(parsed.tests.is_empty());
    assert_eq!(
        parsed.problems,
        [
            "cannot tell which package `ghost-99` belongs to (no compiler-artifact message for it); its results are not counted",
            "result `haunt` (ok) outside any known test binary; not counted",
        ]
    );
}

#[test]
fn criterion_test_mode_records_each_benchmark() {
    let output = [
        r#"{"reason":"compiler-artifact","package_id":"path+file:///w/crates/rhizo-clock#0.1.0","target":{"kind":["bench"],"name":"clock"},"executable":"/t/release/deps/clock-77","fresh":false}"#.to_owned(),
        "     Running benches/clock.rs (/t/release/deps/clock-77)".to_owned(),
        "Testing tick/rhizo/3".to_owned(),
        "Success".to_owned(),
        "Testing compare/crdts VClock/20".to_owned(),
        "Success".to_owned(),
        "Testing merge/rhizo/100".to_owned(),
        "thread 'main' panicked at benches/clock.rs:40:5:".to_owned(),
        "error: bench failed, to rerun pass `-p rhizo-clock --bench clock`".to_owned(),
    ]
    .join("\n");
    let parsed = parse(&output, &sample());
    assert_eq!(
        ids(&parsed),
        pairs(&[
            (
                "rhizo-clock::bench-clock::compare/crdts VClock/20",
                Outcome::Passed
            ),
            ("rhizo-clock::bench-clock::merge/rhizo/100", Outcome::Failed),
            ("rhizo-clock::bench-clock::tick/rhizo/3", Outcome::Passed),
        ])
    );
    assert_eq!(
        parsed.problems,
        ["rhizo-clock::bench-clock: `merge/rhizo/100` started but never finished"]
    );
}

#[test]
fn testing_lines_outside_bench_binaries_are_not_benchmarks() {
    let output = [
        artifact(
            "rhizo-clock",
            "lib",
            "rhizo_clock",
            "/t/debug/deps/rhizo_clock-31",
        ),
        "     Running unittests src/lib.rs (/t/debug/deps/rhizo_clock-31)".to_owned(),
        "Testing something".to_owned(),
        "Success".to_owned(),
    ]
    .join("\n");
    assert!(parse(&output, &sample()).tests.is_empty());
}

#[test]
fn doc_test_names_drop_the_line_and_keep_the_kind() {
    assert_eq!(
        doc_test_name("crates/x/src/lib.rs - a::B::c (line 12)"),
        ("a::B::c".to_owned(), 12)
    );
    assert_eq!(
        doc_test_name("src/lib.rs - (line 3)"),
        ("src/lib.rs".to_owned(), 3)
    );
    assert_eq!(
        doc_test_name("src/lib.rs - f (line 9) - compile fail"),
        ("f - compile fail".to_owned(), 9)
    );
    assert_eq!(doc_test_name("odd name"), ("odd name".to_owned(), 0));
}

#[test]
fn helpers_read_cargo_lines() {
    assert_eq!(
        build_failure("error: could not compile `rhizo-sim` (lib) due to 2 previous errors"),
        Some("rhizo-sim")
    );
    assert_eq!(
        build_failure("error: test failed, to rerun pass `-p a --lib`"),
        None
    );
    assert_eq!(
        count_before(
            "FAILED. 3 passed; 1 failed; 2 ignored; 0 measured",
            " ignored"
        ),
        2
    );
    assert_eq!(strip_ansi("\u{1b}[1m\u{1b}[32mok\u{1b}[0m done"), "ok done");
}
