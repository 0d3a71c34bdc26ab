//! Developer commands of the Rhizo workspace, run as `cargo xtask <command>`.
//!
//! Its one responsibility is to drive cargo (and, for the bindings, Python) the way the project's
//! checks need. Every subcommand is one variant of [`Command`] with its own module; `regress` is
//! the project's test suite.

mod bench;
mod chaos;
mod process;
mod regress;
mod workspace;

use std::fmt;
use std::process::ExitCode;

/// One subcommand and its options. A new subcommand (`bench`, say) is a new variant, a new arm in
/// [`parse_args`] and in [`main`], and a paragraph in [`usage`].
#[derive(Debug, PartialEq, Eq)]
enum Command {
    /// Print the usage text.
    Help,
    /// Run every check and diff the results against the committed baselines.
    Regress(regress::Options),
    /// Run the distributed benchmark and write results, plots and the report.
    Bench(bench::Options),
    /// Run real agents under real faults and check what the clients were told.
    Chaos(chaos::Options),
}

/// A failure of xtask itself (a command that could not start, a file that could not be written,
/// output that cannot be understood), as opposed to a check that ran and failed.
#[derive(Debug)]
pub(crate) struct Error(String);

impl Error {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

pub(crate) type Result<T> = std::result::Result<T, Error>;

/// The text of `cargo xtask help`; the phase list is generated from the package table so that it
/// cannot go stale.
fn usage() -> String {
    format!(
        "\
cargo xtask: developer commands of the Rhizo workspace

USAGE:
    cargo xtask regress [--phase P] [--save] [--no-lint]
    cargo xtask bench [--quick] [--net] [--out DIR] [--criterion]
    cargo xtask chaos [--seed S] [--duration SECS] [--nodes N] [--dev]
    cargo xtask help

bench       The main job: the distributed benchmark on the embedded simulator —
            coordination-free commits and Raft on the same simulated network —
            writing results.json, SVG plots and report.md to target/bench (or
            --out DIR) — and three real nodes over TLS beside a three-member etcd
            cluster (installed with apt-get when absent and run as root; otherwise
            its rows are skipped with the reason), driven by the same clients.
            --net runs only those networked stages. --quick is the short run (used
            by regress as a smoke test); --criterion also runs the criterion suite
            (cargo bench -p benches).

chaos       Real processes under real faults (docs/chaos.md): builds `rhizo`
            (release; --dev: the dev profile), starts N (3-5, default 3) agents
            on 127.0.0.1 with every peer link through a fault proxy, runs a mixed
            workload for SECS (default 60) while a nemesis drawn from seed S
            (default 0) kills, pauses and partitions, heals, lets the cluster
            settle and checks convergence, counters, sets and registers
            (linearizable). A failure keeps target/chaos/S with the nodes' logs
            and prints the command that replays it.

regress     The project's test suite. Runs `cargo fmt --check`, `cargo clippy
            --all-targets --all-features -- -D warnings`, every `cargo test` of the
            workspace, `cargo bench -p benches -- --test` (each bench runs once,
            untimed) and, once crates/rhizo-py/pyproject.toml exists, ruff, mypy
            stubtest and pytest in ./.venv (created when missing). Each test's id and
            outcome is recorded per phase and diffed against the committed baseline
            xtask/baselines/phase-<P>.txt; one table per phase shows baseline vs now.
            Exits non-zero, naming the tests, when a test fails or is ignored, when a
            test of the baseline is missing, or when a step (fmt, clippy, a build,
            bench, ruff, stubtest) fails. The last line is `regress: N passed, M failed`
            where M counts failed tests, missing tests and failed steps.

    --phase P   Run only phase P: fmt, clippy and tests of its packages only, and the
                diff of that phase only. Other phases' crates are not built.
    --save      Rewrite the baselines of the phases that ran with the tests that passed
                (a phase whose build failed is not saved). Missing tests are accepted;
                failures are still reported and still fail the run.
    --no-lint   Skip cargo fmt and cargo clippy (quicker while iterating).

PHASES:
{}",
        regress::phase_table()
    )
}

fn parse_args(args: &[String]) -> std::result::Result<Command, Error> {
    let Some((name, rest)) = args.split_first() else {
        return Ok(Command::Help);
    };
    match name.as_str() {
        "help" | "--help" | "-h" => Ok(Command::Help),
        "regress" => regress::Options::parse(rest).map(Command::Regress),
        "bench" => bench::Options::parse(rest).map(Command::Bench),
        "chaos" => chaos::Options::parse(rest).map(Command::Chaos),
        other => Err(Error::new(format!("unknown command `{other}`"))),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match parse_args(&args) {
        Ok(command) => command,
        Err(error) => {
            eprintln!("xtask: {error}\n\n{}", usage());
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Help => {
            print!("{}", usage());
            ExitCode::SUCCESS
        }
        Command::Bench(options) => {
            let root = workspace::Workspace::root_of_xtask();
            match bench::run(&root, &options) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(error) => {
                    eprintln!("xtask bench: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Chaos(options) => {
            let root = workspace::Workspace::root_of_xtask();
            let target = regress::target_dir(&root);
            match chaos::run(&root, &target, &options) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(error) => {
                    eprintln!("xtask chaos: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Regress(options) => match regress::run(&options) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(error) => {
                eprintln!("xtask regress: {error}");
                // The closing line CI reads must agree with the exit code.
                println!("regress: 0 passed, 1 failed");
                ExitCode::FAILURE
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regress::Phase;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn no_arguments_and_help_print_usage() {
        assert_eq!(parse_args(&[]).unwrap(), Command::Help);
        assert_eq!(parse_args(&args("help")).unwrap(), Command::Help);
        assert_eq!(parse_args(&args("--help")).unwrap(), Command::Help);
    }

    #[test]
    fn regress_options_are_parsed_in_any_order() {
        let command = parse_args(&args("regress --save --phase py --no-lint")).unwrap();
        let expected = regress::Options {
            save: true,
            phase: Some(Phase::Python),
            lint: false,
        };
        assert_eq!(command, Command::Regress(expected));
        let command = parse_args(&args("regress --phase=2")).unwrap();
        assert_eq!(
            command,
            Command::Regress(regress::Options {
                save: false,
                phase: Some(Phase::Clock),
                lint: true,
            })
        );
    }

    #[test]
    fn bad_arguments_are_rejected_with_a_reason() {
        let unknown = parse_args(&args("frobnicate")).unwrap_err();
        assert_eq!(unknown.to_string(), "unknown command `frobnicate`");
        let bad_phase = parse_args(&args("regress --phase 7")).unwrap_err();
        assert_eq!(
            bad_phase.to_string(),
            "unknown phase `7` (expected one of 2, 3, 4, 5, 6, py)"
        );
        let no_value = parse_args(&args("regress --phase")).unwrap_err();
        assert_eq!(no_value.to_string(), "`--phase` needs a value");
        let unknown_flag = parse_args(&args("regress --fast")).unwrap_err();
        assert_eq!(
            unknown_flag.to_string(),
            "unknown option `--fast` for regress"
        );
    }

    #[test]
    fn usage_lists_every_phase() {
        let text = usage();
        for phase in Phase::ALL {
            assert!(
                text.contains(&format!("\n    {:<4}", phase.label())),
                "phase {phase} missing from:\n{text}"
            );
        }
    }
}
