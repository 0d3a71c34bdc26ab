//! `cargo xtask bench`: the distributed benchmark (the project's main job).
//!
//! Builds and runs `rhizo-bench` (package `benches`) in release mode: every scenario on the
//! embedded simulator — the coordination-free path and Raft on one simulated network — writing
//! `results.json`, SVG plots and `report.md` into the output directory — and real nodes on this
//! machine beside a three-member etcd cluster driven by the same clients (`--net` runs only
//! those networked stages). With `--criterion` it then runs the criterion suite
//! (`cargo bench -p benches`), peers included.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process;
use crate::{Error, Result};

/// Options of `cargo xtask bench`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Options {
    /// The short run (≤ 2 minutes on 2 cores) that `regress` uses as a smoke test.
    pub(crate) quick: bool,
    /// Where the results go (default `target/bench`).
    pub(crate) out: Option<PathBuf>,
    /// Also run the criterion suite afterwards.
    pub(crate) criterion: bool,
    /// Only the networked stages: Rhizo nodes over TLS and etcd beside them.
    pub(crate) net: bool,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Self> {
        let mut options = Options {
            quick: false,
            out: None,
            criterion: false,
            net: false,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => options.quick = true,
                "--criterion" => options.criterion = true,
                "--net" => options.net = true,
                "--out" => {
                    let dir = args
                        .next()
                        .ok_or_else(|| Error::new("`--out` needs a directory"))?;
                    options.out = Some(PathBuf::from(dir));
                }
                other => return Err(Error::new(format!("unknown option `{other}` for bench"))),
            }
        }
        Ok(options)
    }
}

/// The `rhizo-bench` command for these options, run from the workspace root.
pub(crate) fn runner_command(root: &Path, quick: bool, out: &Path) -> Command {
    let mut command = Command::new("cargo");
    command.current_dir(root).args([
        "run",
        "--quiet",
        "--release",
        "-p",
        "benches",
        "--bin",
        "rhizo-bench",
        "--",
    ]);
    if quick {
        command.arg("--quick");
    }
    command.arg("--out").arg(out);
    command
}

/// Runs the benchmark; `Ok(true)` when every stage finished.
pub(crate) fn run(root: &Path, options: &Options) -> Result<bool> {
    let out = options
        .out
        .clone()
        .unwrap_or_else(|| root.join("target").join("bench"));
    // The runner measures the bindings in ./.venv: make them this revision's release build, so
    // the Python figures are neither stale nor a debug build. Without them the row is omitted.
    let python_dir = root.join(crate::regress::PYTHON_PACKAGE_DIR);
    let python_built = !options.quick
        && !options.net
        && python_dir.join("pyproject.toml").exists()
        && crate::regress::python::build_release_bindings(root, &python_dir)?;
    let mut command = runner_command(root, options.quick, &out);
    if !python_built {
        command.arg("--no-python");
    }
    if options.net {
        command.arg("--net");
    }
    println!("==> {}", process::describe(&command));
    let status = command
        .status()
        .map_err(|e| Error::new(format!("cannot start cargo: {e}")))?;
    if !status.success() {
        return Ok(false);
    }
    if options.criterion {
        let mut criterion = Command::new("cargo");
        criterion.current_dir(root).args(["bench", "-p", "benches"]);
        println!("==> {}", process::describe(&criterion));
        let status = criterion
            .status()
            .map_err(|e| Error::new(format!("cannot start cargo: {e}")))?;
        return Ok(status.success());
    }
    Ok(true)
}

/// What a quick run's `results.json` must hold for the smoke test to pass: every section the
/// report is built from, the 20 × 1000 throughput row converged, and both paths' latencies.
pub(crate) fn check_results(json: &str) -> std::result::Result<(), String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("results.json: {e}"))?;
    for key in [
        "git_rev",
        "machine",
        "mode",
        "latency",
        "throughput",
        "convergence",
        "success_scenario",
    ] {
        if value.get(key).is_none_or(serde_json::Value::is_null) {
            return Err(format!("results.json lacks `{key}`"));
        }
    }
    let rows = value["throughput"].as_array().cloned().unwrap_or_default();
    let row = rows
        .iter()
        .find(|r| r["nodes"] == 20 && r["ops_per_node"] == 1000)
        .ok_or("no throughput row for 20 nodes x 1000 ops")?;
    if row["converged"] != true {
        return Err("the 20 x 1000 run did not converge".into());
    }
    let latency = value["latency"].as_array().cloned().unwrap_or_default();
    for path in ["coordination_free", "raft"] {
        if !latency.iter().any(|r| r["path"] == path) {
            return Err(format!("no latency rows for {path}"));
        }
    }
    if value["success_scenario"]["converged"] != true {
        return Err("the success scenario did not converge".into());
    }
    check_versus_etcd(&value["net_compare"])
}

/// The networked comparison holds Rhizo's rows on both paths, and etcd's rows or the reason
/// they were skipped (a machine without etcd, or without the right to install it, skips them).
fn check_versus_etcd(comparison: &serde_json::Value) -> std::result::Result<(), String> {
    let rows = comparison["rows"].as_array().cloned().unwrap_or_default();
    for path in ["coordinated", "coordination_free"] {
        if !rows.iter().any(|r| r["path"] == path) {
            return Err(format!("no networked rows for rhizo's {path} path"));
        }
    }
    let etcd_measured = rows.iter().any(|r| r["path"] == "raft");
    let etcd_skipped = comparison["skipped"]
        .as_array()
        .is_some_and(|s| s.iter().any(|s| s["system"] == "etcd"));
    if !etcd_measured && !etcd_skipped {
        return Err("no etcd rows and no reason for their absence".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse() {
        let args: Vec<String> = ["--quick", "--out", "x", "--criterion", "--net"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            Options::parse(&args).unwrap(),
            Options {
                quick: true,
                out: Some(PathBuf::from("x")),
                criterion: true,
                net: true,
            }
        );
        assert!(Options::parse(&["--nope".to_string()]).is_err());
    }

    #[test]
    fn results_check_names_what_is_missing() {
        assert!(check_results("{}").unwrap_err().contains("git_rev"));
        let good = r#"{"git_rev":"a","machine":"m","mode":"quick",
            "latency":[{"path":"coordination_free"},{"path":"raft"}],
            "throughput":[{"nodes":20,"ops_per_node":1000,"converged":true}],
            "convergence":[],"success_scenario":{"converged":true},
            "net_compare":{"rows":[{"path":"coordinated"},{"path":"coordination_free"}],
                "skipped":[{"system":"etcd","reason":"not installed"}]}}"#;
        assert_eq!(check_results(good), Ok(()));
        let diverged = good.replace(
            r#""ops_per_node":1000,"converged":true"#,
            r#""ops_per_node":1000,"converged":false"#,
        );
        assert!(check_results(&diverged).unwrap_err().contains("converge"));
        let unexplained = good.replace(r#""system":"etcd""#, r#""system":"redis""#);
        assert!(check_results(&unexplained).unwrap_err().contains("etcd"));
        let no_free = good.replace(r#"{"path":"coordination_free"}"#, r#"{"path":"x"}"#);
        assert!(
            check_results(&no_free)
                .unwrap_err()
                .contains("coordination_free")
        );
    }
}
