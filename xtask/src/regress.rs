//! `cargo xtask regress`: the project's test suite.
//!
//! Steps, each timed: `cargo metadata` (which packages exist), `cargo fmt --check`,
//! `cargo clippy -D warnings`, one `cargo test` for every selected package, `cargo bench -p
//! benches -- --test`, and the Python phase. Every test result is filed under the phase of its
//! package and compared with `xtask/baselines/phase-<P>.txt`.

mod baseline;
mod junit;
mod libtest;
mod phase;
pub(crate) mod python;
mod report;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub(crate) use phase::{Phase, phase_table};

use crate::process::{self, Captured};
use crate::workspace::Workspace;
use crate::{Error, Result};
pub(crate) use phase::PYTHON_PACKAGE_DIR;
use phase::{PACKAGE_RULES, rule_for};
use report::PhaseDiff;

/// Options of `cargo xtask regress`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Options {
    /// Rewrite the baselines of the phases that ran.
    pub(crate) save: bool,
    /// Run only this phase.
    pub(crate) phase: Option<Phase>,
    /// Run `cargo fmt --check` and `cargo clippy`.
    pub(crate) lint: bool,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Self> {
        let mut options = Options {
            save: false,
            phase: None,
            lint: true,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--save" => options.save = true,
                "--no-lint" => options.lint = false,
                "--phase" => {
                    let value = args
                        .next()
                        .ok_or_else(|| Error::new("`--phase` needs a value"))?;
                    options.phase = Some(parse_phase(value)?);
                }
                other => match other.strip_prefix("--phase=") {
                    Some(value) => options.phase = Some(parse_phase(value)?),
                    None => {
                        return Err(Error::new(format!("unknown option `{other}` for regress")));
                    }
                },
            }
        }
        Ok(options)
    }
}

fn parse_phase(text: &str) -> Result<Phase> {
    Phase::parse(text).ok_or_else(|| {
        let labels: Vec<&str> = Phase::ALL.iter().map(|phase| phase.label()).collect();
        Error::new(format!(
            "unknown phase `{text}` (expected one of {})",
            labels.join(", ")
        ))
    })
}

/// The outcome of one test. Ignored counts as not passing: the project forbids ignored tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Outcome {
    Passed,
    Failed,
    Ignored,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Passed => "ok",
            Outcome::Failed => "FAILED",
            Outcome::Ignored => "ignored",
        })
    }
}

/// One test's result: `id` is `package::target::path::to::test`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TestResult {
    pub(crate) package: String,
    pub(crate) id: String,
    pub(crate) outcome: Outcome,
}

/// How a step ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StepStatus {
    Passed,
    /// It ran, and this many tests did not pass; the phase tables name them.
    TestsFailed(usize),
    /// It could not do its job (a build error, a lint, a tool that failed), for this reason.
    Failed(String),
    /// Not run, for this reason.
    Skipped(String),
}

/// One timed step of the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StepReport {
    pub(crate) name: String,
    pub(crate) status: StepStatus,
    pub(crate) elapsed: Duration,
}

impl StepReport {
    pub(crate) fn skipped(name: &str, reason: &str) -> Self {
        Self {
            name: name.to_owned(),
            status: StepStatus::Skipped(reason.to_owned()),
            elapsed: Duration::ZERO,
        }
    }
}

/// Announces, runs and times one command; its status is `Passed` when it exits 0 and
/// `Failed("exit status …")` otherwise, for the caller to refine.
pub(crate) fn run_step(
    name: &str,
    command: Command,
    show: &dyn Fn(&str) -> bool,
) -> Result<(StepReport, Captured)> {
    println!("\n==> {name}: {}", process::describe(&command));
    let captured = process::run_merged(command, show)?;
    let status = if captured.status.success() {
        StepStatus::Passed
    } else {
        StepStatus::Failed(captured.status.to_string())
    };
    println!(
        "<== {name}: {} in {}",
        if captured.status.success() {
            "ok".to_owned()
        } else {
            format!("FAILED ({})", captured.status)
        },
        process::seconds(captured.elapsed)
    );
    let report = StepReport {
        name: name.to_owned(),
        status,
        elapsed: captured.elapsed,
    };
    Ok((report, captured))
}

fn cargo(root: &Path) -> Command {
    let mut command = Command::new("cargo");
    command.current_dir(root);
    command
}

/// Runs the suite; `Ok(true)` when everything passed and nothing of the baselines is missing.
pub(crate) fn run(options: &Options) -> Result<bool> {
    let started = Instant::now();
    let root = Workspace::root_of_xtask();
    let mut steps = Vec::new();
    let workspace = load_workspace(&root, &mut steps)?;
    let wanted = |phase: Phase| options.phase.is_none_or(|only| only == phase);
    let selected: Vec<&'static phase::PackageRule> = PACKAGE_RULES
        .iter()
        .filter(|rule| wanted(rule.phase) && workspace.package(rule.package).is_some())
        .collect();
    let python_dir = root.join(PYTHON_PACKAGE_DIR);
    let python_enabled = wanted(Phase::Python) && python_dir.join("pyproject.toml").exists();

    if options.lint {
        steps.extend(lint(&root, options.phase.is_none(), &selected)?);
    } else {
        steps.push(StepReport::skipped("lint", "--no-lint"));
    }
    let mut collected = Collected {
        steps,
        ..Collected::default()
    };
    collected.run_tests(&workspace, &selected)?;
    if wanted(CHAOS_PHASE) && workspace.package("rhizo-chaos").is_some() {
        collected.run_chaos(&workspace)?;
    }
    if wanted(Phase::Bench) && workspace.package("benches").is_some() {
        collected.run_benches(&workspace)?;
    }
    if python_enabled {
        collected.run_python(&root, &python_dir)?;
    }

    let Collected {
        steps,
        results,
        mut problems,
        unsaveable,
        build_failed,
        not_built,
    } = collected;
    let by_phase = file_by_phase(results, &mut problems);
    let phases = phases_to_report(&root, &selected, python_enabled, options.phase);
    let diffs = diff_phases(&root, &phases, &by_phase, &build_failed, &not_built)?;
    print_report(&steps, &problems, &diffs);
    if options.save {
        println!();
        save(
            &root,
            &diffs,
            &by_phase,
            &selected,
            python_enabled,
            &unsaveable,
        )?;
    }
    Ok(print_summary(
        options.save,
        &diffs,
        &steps,
        &problems,
        started,
    ))
}

/// Reads the workspace's packages (a timed step) and refuses a package no phase claims, so a
/// new crate cannot slip out of the suite unnoticed.
fn load_workspace(root: &Path, steps: &mut Vec<StepReport>) -> Result<Workspace> {
    let metadata_started = Instant::now();
    let workspace = Workspace::load(root)?;
    steps.push(StepReport {
        name: "cargo metadata".to_owned(),
        status: StepStatus::Passed,
        elapsed: metadata_started.elapsed(),
    });
    let unmapped: Vec<&str> = workspace
        .packages
        .iter()
        .filter(|package| rule_for(&package.name).is_none())
        .map(|package| package.name.as_str())
        .collect();
    if !unmapped.is_empty() {
        return Err(Error::new(format!(
            "workspace package(s) {} have no phase: add them to PACKAGE_RULES in \
             xtask/src/regress/phase.rs",
            unmapped.join(", ")
        )));
    }
    Ok(workspace)
}

/// What the suite's steps produced, gathered before it is filed by phase and diffed.
#[derive(Default)]
struct Collected {
    steps: Vec<StepReport>,
    results: Vec<TestResult>,
    problems: Vec<String>,
    /// Phases whose results are incomplete for a reason other than failing tests.
    unsaveable: BTreeSet<Phase>,
    /// Selected packages that failed to compile.
    build_failed: BTreeSet<String>,
    /// Selected packages left out because something they depend on failed to compile.
    not_built: BTreeSet<String>,
}

impl Collected {
    /// One `cargo test` over the selected packages that have Rust tests.
    fn run_tests(
        &mut self,
        workspace: &Workspace,
        selected: &[&'static phase::PackageRule],
    ) -> Result<()> {
        let test_packages: BTreeSet<String> = selected
            .iter()
            .filter(|rule| rule.cargo_test)
            .map(|rule| rule.package.to_owned())
            .collect();
        if test_packages.is_empty() {
            return Ok(());
        }
        let mut tests = cargo_test(workspace, &test_packages)?;
        if matches!(tests.report.status, StepStatus::Failed(_))
            && tests.build_failed.is_empty()
            && tests.not_built.is_empty()
        {
            self.unsaveable
                .extend(test_packages.iter().filter_map(|p| phase_of(p)));
        }
        for package in tests.build_failed.iter().chain(&tests.not_built) {
            self.unsaveable.extend(phase_of(package));
        }
        self.results.append(&mut tests.tests);
        self.problems.append(&mut tests.problems);
        self.steps.push(tests.report);
        self.build_failed.append(&mut tests.build_failed);
        self.not_built.append(&mut tests.not_built);
        Ok(())
    }

    /// The criterion benches once in test mode, then `cargo xtask bench --quick` as a smoke
    /// test.
    fn run_benches(&mut self, workspace: &Workspace) -> Result<()> {
        let bench = bench_test(workspace)?;
        if matches!(bench.report.status, StepStatus::Failed(_)) {
            self.unsaveable.insert(Phase::Bench);
        }
        self.build_failed.extend(bench.build_failed);
        self.results.extend(bench.tests);
        self.problems.extend(bench.problems);
        self.steps.push(bench.report);

        let (report, result) = bench_smoke(workspace)?;
        if matches!(report.status, StepStatus::Failed(_)) {
            self.unsaveable.insert(Phase::Bench);
        }
        self.results.push(result);
        self.steps.push(report);
        Ok(())
    }

    /// The short chaos run: real agents under real faults, checked.
    fn run_chaos(&mut self, workspace: &Workspace) -> Result<()> {
        let (report, result) = chaos_smoke(workspace)?;
        if matches!(report.status, StepStatus::Failed(_)) {
            self.unsaveable.insert(CHAOS_PHASE);
        }
        self.results.push(result);
        self.steps.push(report);
        Ok(())
    }

    /// The Python phase (venv, bindings, ruff, stubtest, pytest).
    fn run_python(&mut self, root: &Path, python_dir: &Path) -> Result<()> {
        let scratch = target_dir(root).join("xtask");
        let python = python::run(root, python_dir, &scratch)?;
        if python
            .steps
            .iter()
            .any(|step| matches!(step.status, StepStatus::Failed(_)))
        {
            self.unsaveable.insert(Phase::Python);
        }
        self.results.extend(python.tests);
        self.steps.extend(python.steps);
        Ok(())
    }
}

/// Files every result under its phase; a test reported twice keeps its worse outcome. A result
/// of a package that belongs to no phase is a problem.
fn file_by_phase(
    results: Vec<TestResult>,
    problems: &mut Vec<String>,
) -> BTreeMap<Phase, BTreeMap<String, Outcome>> {
    let mut by_phase: BTreeMap<Phase, BTreeMap<String, Outcome>> = BTreeMap::new();
    for result in results {
        let Some(phase) = phase_of(&result.package) else {
            problems.push(format!("`{}` belongs to no phase", result.id));
            continue;
        };
        let outcomes = by_phase.entry(phase).or_default();
        let outcome = outcomes.entry(result.id).or_insert(result.outcome);
        if *outcome == Outcome::Passed {
            *outcome = result.outcome;
        }
    }
    by_phase
}

/// The phases that ran, plus every wanted phase with a baseline (a whole phase can go missing).
fn phases_to_report(
    root: &Path,
    selected: &[&'static phase::PackageRule],
    python_enabled: bool,
    only: Option<Phase>,
) -> BTreeSet<Phase> {
    let mut phases: BTreeSet<Phase> = selected.iter().map(|rule| rule.phase).collect();
    if python_enabled {
        phases.insert(Phase::Python);
    }
    for phase in Phase::ALL {
        if only.is_none_or(|only| only == phase) && baseline::path(root, phase).exists() {
            phases.insert(phase);
        }
    }
    phases
}

/// Each phase's results against its baseline.
fn diff_phases(
    root: &Path,
    phases: &BTreeSet<Phase>,
    by_phase: &BTreeMap<Phase, BTreeMap<String, Outcome>>,
    build_failed: &BTreeSet<String>,
    not_built: &BTreeSet<String>,
) -> Result<Vec<PhaseDiff>> {
    let empty = BTreeMap::new();
    let mut diffs = Vec::new();
    for &phase in phases {
        let saved = baseline::read(root, phase)?;
        let mut diff = report::diff_phase(
            phase,
            saved.as_ref(),
            by_phase.get(&phase).unwrap_or(&empty),
        );
        diff.build_failed = in_phase(build_failed, phase);
        diff.not_built = in_phase(not_built, phase);
        diffs.push(diff);
    }
    Ok(diffs)
}

/// The steps, the results that could not be read, and each phase against its baseline.
fn print_report(steps: &[StepReport], problems: &[String], diffs: &[PhaseDiff]) {
    println!("\n== regress: steps ==");
    print!("{}", render_steps(steps));
    if !problems.is_empty() {
        println!("\n== regress: results that could not be read reliably ==");
        for problem in problems {
            println!("    {problem}");
        }
    }
    println!("\n== regress: tests by phase, baseline vs now ==");
    print!("{}", report::render_table(diffs));
    for diff in diffs {
        print!("{}", report::render_details(diff, report::LIST_LIMIT));
    }
}

/// Prints the last two lines and says whether everything passed. Saving accepts the missing
/// tests into the new baseline, so they count only when not saving.
fn print_summary(
    saved: bool,
    diffs: &[PhaseDiff],
    steps: &[StepReport],
    problems: &[String],
    started: Instant,
) -> bool {
    let passed: usize = diffs.iter().map(|diff| diff.passed).sum();
    let failed_tests: usize = diffs.iter().map(PhaseDiff::failed).sum();
    let missing: usize = if saved {
        0
    } else {
        diffs.iter().map(|diff| diff.missing.len()).sum()
    };
    let failed_steps = steps
        .iter()
        .filter(|step| matches!(step.status, StepStatus::Failed(_)))
        .count();
    let problem_count = usize::from(!problems.is_empty());
    let failed = failed_tests + missing + failed_steps + problem_count;
    println!(
        "\nregress: {failed_tests} failed tests, {missing} missing tests, {failed_steps} failed \
         steps{} in {}",
        if problems.is_empty() {
            ""
        } else {
            ", unreadable results"
        },
        process::seconds(started.elapsed())
    );
    println!("regress: {passed} passed, {failed} failed");
    failed == 0
}

fn phase_of(package: &str) -> Option<Phase> {
    rule_for(package).map(|rule| rule.phase)
}

fn in_phase(packages: &BTreeSet<String>, phase: Phase) -> Vec<String> {
    packages
        .iter()
        .filter(|package| phase_of(package) == Some(phase))
        .cloned()
        .collect()
}

/// The directory cargo builds into, for xtask's own scratch files.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// `cargo fmt --check` and `cargo clippy`, over the workspace or the selected packages.
fn lint(
    root: &Path,
    whole_workspace: bool,
    selected: &[&phase::PackageRule],
) -> Result<Vec<StepReport>> {
    if selected.is_empty() {
        return Ok(vec![StepReport::skipped(
            "lint",
            "no package in this phase",
        )]);
    }
    let mut steps = Vec::new();

    let mut fmt = cargo(root);
    fmt.arg("fmt");
    if whole_workspace {
        fmt.arg("--all");
    } else {
        for rule in selected {
            fmt.args(["-p", rule.package]);
        }
    }
    fmt.arg("--check");
    let (mut report, captured) = run_step("cargo fmt --check", fmt, &|_| true)?;
    if !captured.status.success() {
        let files = unformatted_files(&captured.output, root);
        if !files.is_empty() {
            let mut reason = format!("not formatted: {}", files[..files.len().min(5)].join(", "));
            if files.len() > 5 {
                reason.push_str(&format!(" and {} more files", files.len() - 5));
            }
            report.status = StepStatus::Failed(reason);
        }
    }
    steps.push(report);

    let mut clippy = cargo(root);
    clippy.arg("clippy");
    let checked: Vec<&str> = selected
        .iter()
        .filter(|rule| rule.clippy)
        .map(|rule| rule.package)
        .collect();
    if whole_workspace {
        clippy.arg("--workspace");
        for rule in selected.iter().filter(|rule| !rule.clippy) {
            clippy.args(["--exclude", rule.package]);
        }
    } else {
        for package in &checked {
            clippy.args(["-p", package]);
        }
    }
    clippy.args(["--all-targets", "--all-features", "--", "-D", "warnings"]);
    if checked.is_empty() {
        steps.push(StepReport::skipped("cargo clippy", "no package to check"));
        return Ok(steps);
    }
    let (mut report, captured) = run_step("cargo clippy", clippy, &|_| true)?;
    if !captured.status.success() {
        let broken = crates_that_failed(&captured.output);
        if !broken.is_empty() {
            report.status = StepStatus::Failed(format!(
                "errors in {}",
                broken.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    steps.push(report);
    Ok(steps)
}

/// Files named by `cargo fmt --check`'s "Diff in /path/file.rs:12:" lines, relative to `root`.
fn unformatted_files(output: &str, root: &Path) -> Vec<String> {
    let mut files = BTreeSet::new();
    for line in output.lines() {
        let Some(rest) = line.trim().strip_prefix("Diff in ") else {
            continue;
        };
        let rest = rest.trim_end_matches(':');
        // Strip the ":<line>" cargo fmt appends to the path.
        let path = match rest.rsplit_once(':') {
            Some((path, line)) if line.chars().all(|c| c.is_ascii_digit()) => path,
            _ => rest,
        };
        let path = Path::new(path);
        files.insert(
            path.strip_prefix(root)
                .unwrap_or(path)
                .display()
                .to_string(),
        );
    }
    files.into_iter().collect()
}

/// Crates that cargo reported it "could not compile".
fn crates_that_failed(output: &str) -> BTreeSet<String> {
    output
        .lines()
        .filter_map(|line| {
            libtest::build_failure(libtest::strip_ansi(line).trim()).map(String::from)
        })
        .collect()
}

/// Results of the `cargo test` step.
#[derive(Debug, Default)]
struct TestRun {
    tests: Vec<TestResult>,
    /// Selected packages that failed to compile.
    build_failed: BTreeSet<String>,
    /// Selected packages left out because something they depend on failed to compile.
    not_built: BTreeSet<String>,
    problems: Vec<String>,
    report: StepReport,
}

impl Default for StepReport {
    fn default() -> Self {
        Self::skipped("", "")
    }
}

/// Hides what would drown the interesting lines: cargo's JSON messages and passing tests.
fn show_test_output(line: &str) -> bool {
    let line = line.trim_end();
    !(line.starts_with('{') || line.starts_with("test ") && line.ends_with(" ... ok"))
}

/// One `cargo test` for `packages`. cargo runs no test at all when any selected package fails to
/// compile, so a package that does not compile is reported, left out, and the rest retried.
fn cargo_test(workspace: &Workspace, packages: &BTreeSet<String>) -> Result<TestRun> {
    let mut run = TestRun::default();
    let mut remaining = packages.clone();
    let mut elapsed = Duration::ZERO;
    let mut failure = None;
    loop {
        let mut command = cargo(&workspace.root);
        command.args([
            "test",
            "--all-features",
            "--no-fail-fast",
            "--message-format=json-render-diagnostics",
        ]);
        for package in &remaining {
            command.args(["-p", package]);
        }
        let (report, captured) = run_step("cargo test", command, &show_test_output)?;
        elapsed += report.elapsed;
        let parsed = libtest::parse(&captured.output, workspace);
        run.tests.extend(parsed.tests);
        run.problems.extend(parsed.problems);
        if captured.status.success() {
            break;
        }
        if parsed.build_failures.is_empty() {
            failure = Some(captured.status.to_string());
            break;
        }
        let broken: BTreeSet<String> = parsed
            .build_failures
            .intersection(&remaining)
            .cloned()
            .collect();
        let left_out = if broken.is_empty() {
            // A dependency (a workspace library or a third-party crate) failed: leave out
            // whatever depends on it.
            let affected: BTreeSet<String> = workspace
                .with_dependants(&parsed.build_failures)
                .intersection(&remaining)
                .cloned()
                .collect();
            run.not_built.extend(affected.iter().cloned());
            affected
        } else {
            run.build_failed.extend(broken.iter().cloned());
            broken
        };
        if left_out.is_empty() {
            failure = Some(format!(
                "could not compile {}",
                join(&parsed.build_failures)
            ));
            break;
        }
        remaining = remaining.difference(&left_out).cloned().collect();
        if remaining.is_empty() {
            break;
        }
        println!(
            "\nxtask: {} did not build; running the tests of the other packages",
            join(&left_out)
        );
    }
    let failed_tests = run
        .tests
        .iter()
        .filter(|test| test.outcome != Outcome::Passed)
        .count();
    run.report = StepReport {
        name: "cargo test".to_owned(),
        status: if !run.build_failed.is_empty() || !run.not_built.is_empty() {
            let mut reason = format!("build failed: {}", join(&run.build_failed));
            if !run.not_built.is_empty() {
                reason.push_str(&format!("; not built: {}", join(&run.not_built)));
            }
            StepStatus::Failed(reason)
        } else if let Some(status) = failure.filter(|_| failed_tests == 0) {
            StepStatus::Failed(format!(
                "cargo test failed ({status}) without a failing test"
            ))
        } else if !run.problems.is_empty() {
            StepStatus::Failed("results could not be read reliably".to_owned())
        } else if failed_tests > 0 {
            StepStatus::TestsFailed(failed_tests)
        } else {
            StepStatus::Passed
        },
        elapsed,
    };
    Ok(run)
}

/// `cargo bench -p benches -- --test`: each criterion benchmark runs once, untimed.
fn bench_test(workspace: &Workspace) -> Result<TestRun> {
    let mut command = cargo(&workspace.root);
    command.args([
        "bench",
        "-p",
        "benches",
        "--message-format=json-render-diagnostics",
        "--",
        "--test",
    ]);
    // criterion prints "Testing <id>" then "Success"; the ids alone show the progress.
    let show = |line: &str| show_test_output(line) && line.trim_end() != "Success";
    let (mut report, captured) = run_step("cargo bench -- --test", command, &show)?;
    let parsed = libtest::parse(&captured.output, workspace);
    // Only criterion's benchmarks: the library's unit tests already ran under `cargo test`.
    let tests: Vec<TestResult> = parsed
        .tests
        .into_iter()
        .filter(|test| test.id.starts_with(&format!("{}::bench-", test.package)))
        .collect();
    let failed_tests = tests
        .iter()
        .filter(|test| test.outcome != Outcome::Passed)
        .count();
    report.status = if !parsed.build_failures.is_empty() {
        StepStatus::Failed(format!("build failed: {}", join(&parsed.build_failures)))
    } else if !parsed.problems.is_empty() && captured.status.success() {
        StepStatus::Failed("results could not be read reliably".to_owned())
    } else if failed_tests > 0 {
        StepStatus::TestsFailed(failed_tests)
    } else {
        report.status
    };
    let build_failed = parsed
        .build_failures
        .iter()
        .filter(|name| workspace.package(name).is_some())
        .cloned()
        .collect();
    Ok(TestRun {
        tests,
        build_failed,
        problems: parsed.problems,
        report,
        ..TestRun::default()
    })
}

/// `cargo xtask bench --quick` as a smoke test: the distributed benchmark runs end to end and its
/// `results.json` holds every section. Recorded as the test `benches::xtask-bench::quick`.
fn bench_smoke(workspace: &Workspace) -> Result<(StepReport, TestResult)> {
    let out = target_dir(&workspace.root).join("bench-quick");
    let command = crate::bench::runner_command(&workspace.root, true, &out);
    let show = |_: &str| true;
    let (mut report, _) = run_step("cargo xtask bench --quick", command, &show)?;
    if matches!(report.status, StepStatus::Passed) {
        let checked = std::fs::read_to_string(out.join("results.json"))
            .map_err(|e| e.to_string())
            .and_then(|json| crate::bench::check_results(&json));
        if let Err(reason) = checked {
            println!("bench smoke: {reason}");
            report.status = StepStatus::Failed(reason);
        }
    }
    let outcome = if matches!(report.status, StepStatus::Passed) {
        Outcome::Passed
    } else {
        Outcome::Failed
    };
    let result = TestResult {
        package: "benches".to_owned(),
        id: "benches::xtask-bench::quick".to_owned(),
        outcome,
    };
    Ok((report, result))
}

/// The phase of the chaos run: it tests the networked node (rhizo-net, rhizo-cli), whose tests
/// are the transactions phase's.
const CHAOS_PHASE: Phase = Phase::Txn;

/// The chaos run regress makes: a fixed seed, a minute, three nodes, the dev-profile `rhizo`
/// that the tests built (no release build). Its bounds are on waiting, not on throughput, so a
/// slow machine makes it do less, not fail.
fn chaos_options() -> crate::chaos::Options {
    crate::chaos::Options {
        seed: 1,
        duration_secs: 60,
        nodes: 3,
        dev: true,
    }
}

/// `cargo xtask chaos --seed 1 --duration 60 --dev`, recorded as the test
/// `rhizo-chaos::xtask-chaos::seed-1`.
fn chaos_smoke(workspace: &Workspace) -> Result<(StepReport, TestResult)> {
    let options = chaos_options();
    let target = target_dir(&workspace.root);
    let show = |_: &str| true;
    let build = crate::chaos::build_command(&workspace.root, &options);
    let (mut report, _) = run_step("cargo build rhizo (chaos)", build, &show)?;
    if matches!(report.status, StepStatus::Passed) {
        let runner = crate::chaos::runner_command(&workspace.root, &target, &options);
        let built = report.elapsed;
        (report, _) = run_step(&options.replay(), runner, &show)?;
        report.elapsed += built;
    }
    let outcome = if matches!(report.status, StepStatus::Passed) {
        Outcome::Passed
    } else {
        Outcome::Failed
    };
    let result = TestResult {
        package: "rhizo-chaos".to_owned(),
        id: format!("rhizo-chaos::xtask-chaos::seed-{}", options.seed),
        outcome,
    };
    Ok((report, result))
}

/// Rewrites the baselines of the phases that ran.
fn save(
    root: &Path,
    diffs: &[PhaseDiff],
    by_phase: &BTreeMap<Phase, BTreeMap<String, Outcome>>,
    selected: &[&phase::PackageRule],
    python_enabled: bool,
    unsaveable: &BTreeSet<Phase>,
) -> Result<()> {
    for diff in diffs {
        let Some(phase) = diff.phase else { continue };
        let file = baseline::path(root, phase);
        let shown = file
            .strip_prefix(root)
            .unwrap_or(&file)
            .display()
            .to_string();
        if unsaveable.contains(&phase) {
            println!("save: {shown} NOT rewritten: phase {phase} did not build or run completely");
            continue;
        }
        let ran = if phase == Phase::Python {
            python_enabled
        } else {
            selected.iter().any(|rule| rule.phase == phase)
        };
        if !ran {
            baseline::remove(root, phase)?;
            println!("save: {shown} removed: phase {phase} has nothing to run");
            continue;
        }
        let passed: BTreeSet<String> = by_phase
            .get(&phase)
            .into_iter()
            .flatten()
            .filter(|(_, outcome)| **outcome == Outcome::Passed)
            .map(|(id, _)| id.clone())
            .collect();
        baseline::write(root, phase, &passed)?;
        let left_out = diff.failed();
        if left_out == 0 {
            println!("save: {shown}: {} tests", passed.len());
        } else {
            println!(
                "save: {shown}: {} tests; {left_out} failing tests left out (listed above)",
                passed.len()
            );
        }
    }
    Ok(())
}

/// The steps table: name, result and time.
fn render_steps(steps: &[StepReport]) -> String {
    let width = steps
        .iter()
        .map(|step| step.name.len())
        .max()
        .unwrap_or(0)
        .max("step".len());
    let mut text = format!("{:<width$}  {:>7}  result\n", "step", "time");
    for step in steps {
        let result = match &step.status {
            StepStatus::Passed => "ok".to_owned(),
            StepStatus::TestsFailed(count) => format!("tests not passing: {count}"),
            StepStatus::Failed(reason) => format!("FAILED: {reason}"),
            StepStatus::Skipped(reason) => format!("skipped: {reason}"),
        };
        text.push_str(&format!(
            "{:<width$}  {:>7}  {result}\n",
            step.name,
            process::seconds(step.elapsed)
        ));
    }
    text
}

fn join(names: &BTreeSet<String>) -> String {
    names.iter().cloned().collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_table_aligns_names_and_states_results() {
        let steps = [
            StepReport {
                name: "cargo metadata".to_owned(),
                status: StepStatus::Passed,
                elapsed: Duration::from_millis(240),
            },
            StepReport {
                name: "cargo test".to_owned(),
                status: StepStatus::TestsFailed(2),
                elapsed: Duration::from_millis(61_060),
            },
            StepReport {
                name: "cargo clippy".to_owned(),
                status: StepStatus::Failed("errors in rhizo-sim".to_owned()),
                elapsed: Duration::from_millis(3_000),
            },
            StepReport::skipped("lint", "--no-lint"),
        ];
        assert_eq!(
            render_steps(&steps),
            "step               time  result\n\
             cargo metadata    0.2 s  ok\n\
             cargo test       61.1 s  tests not passing: 2\n\
             cargo clippy      3.0 s  FAILED: errors in rhizo-sim\n\
             lint              0.0 s  skipped: --no-lint\n"
        );
    }

    #[test]
    fn unformatted_files_are_named_relative_to_the_root() {
        let output = "Diff in /w/crates/rhizo-sim/src/lib.rs:12:\n\
                      -    let x=1;\n\
                      +    let x = 1;\n\
                      Diff in /w/crates/rhizo-sim/src/lib.rs:40:\n\
                      Diff in /w/xtask/src/main.rs:3:\n";
        assert_eq!(
            unformatted_files(output, Path::new("/w")),
            ["crates/rhizo-sim/src/lib.rs", "xtask/src/main.rs"]
        );
    }

    #[test]
    fn compile_failures_are_collected_by_crate() {
        let output = "error[E0425]: cannot find value `x`\n\
                      error: could not compile `rhizo-sim` (lib) due to 1 previous error\n\
                      error: could not compile `rhizo-sim` (lib test) due to 1 previous error\n\
                      error: could not compile `rhizo-algebra` (lib)\n";
        let crates: Vec<String> = crates_that_failed(output).into_iter().collect();
        assert_eq!(crates, ["rhizo-algebra", "rhizo-sim"]);
    }

    #[test]
    fn passing_tests_and_json_are_hidden_and_the_rest_shown() {
        assert!(!show_test_output("test a::b ... ok"));
        assert!(!show_test_output("{\"reason\":\"compiler-artifact\"}"));
        assert!(show_test_output("test a::b ... FAILED"));
        assert!(show_test_output("error: could not compile `x`"));
        assert!(show_test_output("     Running unittests src/lib.rs (x)"));
    }

    #[test]
    fn every_package_phase_is_reachable_from_the_command_line() {
        for rule in PACKAGE_RULES {
            let options = Options::parse(&["--phase".to_owned(), rule.phase.label().to_owned()]);
            assert_eq!(options.unwrap().phase, Some(rule.phase));
        }
    }
}
