//! The committed baselines: `xtask/baselines/phase-<P>.txt`, one id per line of every test that
//! passed when the baseline was saved, sorted, after one `#` comment line.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::Phase;
use crate::{Error, Result};

pub(crate) fn path(root: &Path, phase: Phase) -> PathBuf {
    root.join("xtask")
        .join("baselines")
        .join(format!("phase-{}.txt", phase.label()))
}

/// The baseline of `phase`, or `None` when none was ever saved.
pub(crate) fn read(root: &Path, phase: Phase) -> Result<Option<BTreeSet<String>>> {
    let path = path(root, phase);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(Some(parse(&text))),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(Error::new(format!(
            "cannot read {}: {error}",
            path.display()
        ))),
    }
}

/// Writes the baseline of `phase`.
pub(crate) fn write(root: &Path, phase: Phase, passed: &BTreeSet<String>) -> Result<()> {
    let path = path(root, phase);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)
            .map_err(|e| Error::new(format!("cannot create {}: {e}", dir.display())))?;
    }
    fs::write(&path, render(phase, passed))
        .map_err(|e| Error::new(format!("cannot write {}: {e}", path.display())))
}

/// Removes the baseline of a phase that no longer has anything to test.
pub(crate) fn remove(root: &Path, phase: Phase) -> Result<()> {
    let path = path(root, phase);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(Error::new(format!(
            "cannot remove {}: {error}",
            path.display()
        ))),
    }
}

pub(crate) fn parse(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim_end)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(String::from)
        .collect()
}

pub(crate) fn render(phase: Phase, passed: &BTreeSet<String>) -> String {
    let mut text = format!(
        "# Tests of phase {phase} that passed at the last `cargo xtask regress --save`; one id a \
         line, sorted. Regenerate, do not edit.\n"
    );
    for id in passed {
        text.push_str(id);
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|id| (*id).to_owned()).collect()
    }

    #[test]
    fn render_then_parse_round_trips_and_sorts() {
        let ids = set(&[
            "rhizo-clock::lib::b",
            "rhizo-clock::doc::a",
            "benches::bench-clock::x y/3",
        ]);
        let text = render(Phase::Clock, &ids);
        assert_eq!(
            text,
            "# Tests of phase 2 that passed at the last `cargo xtask regress --save`; one id a \
             line, sorted. Regenerate, do not edit.\n\
             benches::bench-clock::x y/3\nrhizo-clock::doc::a\nrhizo-clock::lib::b\n"
        );
        assert_eq!(parse(&text), ids);
    }

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        assert_eq!(
            parse("# header\n\na::b\r\n# more\nc::d\n"),
            set(&["a::b", "c::d"])
        );
    }

    #[test]
    fn write_read_and_remove_in_a_scratch_root() {
        let root = std::env::temp_dir().join(format!("xtask-baseline-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        assert_eq!(read(&root, Phase::Sim).unwrap(), None);
        let ids = set(&["rhizo-sim::lib::t"]);
        write(&root, Phase::Sim, &ids).unwrap();
        assert_eq!(read(&root, Phase::Sim).unwrap(), Some(ids));
        write(&root, Phase::Sim, &BTreeSet::new()).unwrap();
        assert_eq!(read(&root, Phase::Sim).unwrap(), Some(BTreeSet::new()));
        remove(&root, Phase::Sim).unwrap();
        assert_eq!(read(&root, Phase::Sim).unwrap(), None);
        remove(&root, Phase::Sim).unwrap();
        fs::remove_dir_all(&root).unwrap();
    }
}
