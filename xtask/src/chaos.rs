//! `cargo xtask chaos`: real `rhizo agent` processes under real faults.
//!
//! Builds the `rhizo` binary (release, or the dev profile with `--dev`) and runs the harness,
//! package `rhizo-chaos` (xtask/chaos, see docs/chaos.md), on it with the run directory
//! `target/chaos/<seed>`: kept with the nodes' logs when a check fails, removed on a pass.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process;
use crate::{Error, Result};

/// Options of `cargo xtask chaos`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Options {
    /// Seeds the nemesis schedule, the workload and the nodes' elections.
    pub(crate) seed: u64,
    /// The workload's length, in seconds.
    pub(crate) duration_secs: u64,
    /// Nodes, 3 to 5.
    pub(crate) nodes: usize,
    /// Run the dev-profile `rhizo` (regress has built it for the tests) instead of building
    /// the release one.
    pub(crate) dev: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            seed: 0,
            duration_secs: 60,
            nodes: 3,
            dev: false,
        }
    }
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Self> {
        let mut options = Options::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut number = |name: &str| -> Result<u64> {
                let text = args
                    .next()
                    .ok_or_else(|| Error::new(format!("`{name}` needs a value")))?;
                text.parse()
                    .map_err(|_| Error::new(format!("`{name}` takes a number, not `{text}`")))
            };
            match arg.as_str() {
                "--seed" => options.seed = number("--seed")?,
                "--duration" => options.duration_secs = number("--duration")?,
                "--nodes" => {
                    let nodes = number("--nodes")?;
                    if !(3..=5).contains(&nodes) {
                        return Err(Error::new(format!("--nodes must be 3 to 5, not {nodes}")));
                    }
                    options.nodes = nodes as usize;
                }
                "--dev" => options.dev = true,
                other => return Err(Error::new(format!("unknown option `{other}` for chaos"))),
            }
        }
        Ok(options)
    }

    /// The command that replays this run.
    pub(crate) fn replay(&self) -> String {
        format!(
            "cargo xtask chaos --seed {} --duration {} --nodes {}{}",
            self.seed,
            self.duration_secs,
            self.nodes,
            if self.dev { " --dev" } else { "" }
        )
    }
}

/// `cargo build` of the `rhizo` binary in the options' profile, from the workspace root.
pub(crate) fn build_command(root: &Path, options: &Options) -> Command {
    let mut command = Command::new("cargo");
    command
        .current_dir(root)
        .args(["build", "--quiet", "-p", "rhizo-cli", "--bin", "rhizo"]);
    if !options.dev {
        command.arg("--release");
    }
    command
}

/// The harness's command (built in the dev profile: it is a driver, not what is measured).
pub(crate) fn runner_command(root: &Path, target: &Path, options: &Options) -> Command {
    let profile = if options.dev { "debug" } else { "release" };
    let rhizo = target.join(profile).join("rhizo");
    let run_dir = run_dir(target, options.seed);
    let mut command = Command::new("cargo");
    command
        .current_dir(root)
        .args(["run", "--quiet", "-p", "rhizo-chaos", "--"])
        .arg("--rhizo")
        .arg(rhizo)
        .arg("--run-dir")
        .arg(run_dir)
        .args(["--seed", &options.seed.to_string()])
        .args(["--duration", &options.duration_secs.to_string()])
        .args(["--nodes", &options.nodes.to_string()]);
    command
}

/// Where a seed's run keeps its files.
pub(crate) fn run_dir(target: &Path, seed: u64) -> PathBuf {
    target.join("chaos").join(seed.to_string())
}

/// Builds and runs; `Ok(true)` when every check passed.
pub(crate) fn run(root: &Path, target: &Path, options: &Options) -> Result<bool> {
    for mut command in [
        build_command(root, options),
        runner_command(root, target, options),
    ] {
        println!("==> {}", process::describe(&command));
        let status = command
            .status()
            .map_err(|e| Error::new(format!("cannot start cargo: {e}")))?;
        if !status.success() {
            println!("chaos failed; replay with: {}", options.replay());
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn options_are_parsed_and_replayed() {
        let options = Options::parse(&args("--seed 7 --duration 120 --nodes 5")).unwrap();
        assert_eq!(
            options,
            Options {
                seed: 7,
                duration_secs: 120,
                nodes: 5,
                dev: false,
            }
        );
        assert_eq!(
            options.replay(),
            "cargo xtask chaos --seed 7 --duration 120 --nodes 5"
        );
        assert_eq!(Options::parse(&[]).unwrap(), Options::default());
    }

    #[test]
    fn bad_options_are_refused_with_a_reason() {
        for (line, reason) in [
            ("--nodes 6", "--nodes must be 3 to 5, not 6"),
            ("--seed", "`--seed` needs a value"),
            ("--duration soon", "`--duration` takes a number, not `soon`"),
            ("--fast", "unknown option `--fast` for chaos"),
        ] {
            assert_eq!(Options::parse(&args(line)).unwrap_err().to_string(), reason);
        }
    }

    #[test]
    fn the_runner_is_given_the_binary_and_the_seed_directory() {
        let options = Options {
            seed: 3,
            dev: true,
            ..Options::default()
        };
        let command = runner_command(Path::new("/w"), Path::new("/w/target"), &options);
        let text = process::describe(&command);
        assert!(text.contains("--rhizo /w/target/debug/rhizo"), "{text}");
        assert!(text.contains("--run-dir /w/target/chaos/3"), "{text}");
        assert!(text.contains("--seed 3 --duration 60 --nodes 3"), "{text}");
    }
}
