//! The command line: `rhizo-chaos --rhizo PATH --run-dir DIR [--seed S] [--duration SECS]
//! [--nodes N]`, normally run through `cargo xtask chaos`.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{ChaosError, Result};
use crate::run::Options;

/// The default run length, in seconds.
pub const DEFAULT_DURATION_SECS: u64 = 60;
/// The default number of nodes.
pub const DEFAULT_NODES: usize = 3;

/// Parses the harness's arguments (the program name left out).
pub fn parse(args: &[String]) -> Result<Options> {
    let mut seed = 0;
    let mut duration = DEFAULT_DURATION_SECS;
    let mut nodes = DEFAULT_NODES;
    let mut rhizo = None;
    let mut run_dir = None;
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let mut value = || {
            rest.next()
                .cloned()
                .ok_or_else(|| ChaosError::Usage(format!("`{flag}` needs a value")))
        };
        let number = |text: String| {
            text.parse::<u64>()
                .map_err(|_| ChaosError::Usage(format!("`{flag}` takes a number, not `{text}`")))
        };
        match flag.as_str() {
            "--seed" => seed = number(value()?)?,
            "--duration" => duration = number(value()?)?,
            "--nodes" => nodes = number(value()?)? as usize,
            "--rhizo" => rhizo = Some(PathBuf::from(value()?)),
            "--run-dir" => run_dir = Some(PathBuf::from(value()?)),
            other => return Err(ChaosError::Usage(format!("unknown option `{other}`"))),
        }
    }
    if !(3..=5).contains(&nodes) {
        return Err(ChaosError::Usage(format!(
            "--nodes must be 3 to 5, not {nodes}"
        )));
    }
    if !(10..=86_400).contains(&duration) {
        return Err(ChaosError::Usage(format!(
            "--duration must be 10 to 86400 seconds, not {duration}"
        )));
    }
    let missing = |name: &str| ChaosError::Usage(format!("`{name}` is required"));
    Ok(Options {
        seed,
        duration: Duration::from_secs(duration),
        nodes,
        rhizo: rhizo.ok_or_else(|| missing("--rhizo"))?,
        run_dir: run_dir.ok_or_else(|| missing("--run-dir"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn options_are_parsed_with_defaults() {
        let options = parse(&args("--rhizo /bin/rhizo --run-dir /tmp/r --seed 9")).unwrap();
        assert_eq!(options.seed, 9);
        assert_eq!(options.nodes, DEFAULT_NODES);
        assert_eq!(options.duration, Duration::from_secs(DEFAULT_DURATION_SECS));
        let options = parse(&args("--nodes 5 --duration 30 --rhizo r --run-dir d")).unwrap();
        assert_eq!((options.nodes, options.duration.as_secs()), (5, 30));
    }

    #[test]
    fn bad_options_are_refused_with_a_reason() {
        for (line, reason) in [
            ("--nodes 2 --rhizo r --run-dir d", "--nodes must be 3 to 5"),
            ("--duration 5 --rhizo r --run-dir d", "--duration must be"),
            ("--seed x --rhizo r --run-dir d", "`--seed` takes a number"),
            ("--seed", "`--seed` needs a value"),
            ("--run-dir d", "`--rhizo` is required"),
            ("--fast", "unknown option `--fast`"),
        ] {
            let err = parse(&args(line)).unwrap_err().to_string();
            assert!(err.contains(reason), "{line}: {err}");
        }
    }
}
