//! Comparing a phase's results with its baseline, and printing the comparison.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use super::{Outcome, Phase};

/// How many names of one kind a phase's details list before summing up the rest.
pub(crate) const LIST_LIMIT: usize = 20;

/// One phase: its baseline against this run.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct PhaseDiff {
    pub(crate) phase: Option<Phase>,
    /// Whether a baseline file exists for the phase.
    pub(crate) has_baseline: bool,
    pub(crate) baseline: usize,
    pub(crate) passed: usize,
    /// In the baseline (so passed then), failed or ignored now.
    pub(crate) regressions: Vec<(String, Outcome)>,
    /// Not in the baseline, failed or ignored now.
    pub(crate) new_failures: Vec<(String, Outcome)>,
    /// In the baseline, not run now.
    pub(crate) missing: Vec<String>,
    /// Not in the baseline, passed now.
    pub(crate) new_passed: Vec<String>,
    /// Packages of this phase that failed to compile.
    pub(crate) build_failed: Vec<String>,
    /// Packages of this phase left out because a package they depend on failed to compile.
    pub(crate) not_built: Vec<String>,
}

impl PhaseDiff {
    /// Tests that did not pass now (ignored ones included: the project forbids ignored tests).
    pub(crate) fn failed(&self) -> usize {
        self.regressions.len() + self.new_failures.len()
    }

    /// Tests now that the baseline does not have.
    pub(crate) fn new_count(&self) -> usize {
        self.new_passed.len() + self.new_failures.len()
    }
}

/// Compares the results of one phase (test id to outcome) with its baseline.
pub(crate) fn diff_phase(
    phase: Phase,
    baseline: Option<&BTreeSet<String>>,
    results: &BTreeMap<String, Outcome>,
) -> PhaseDiff {
    let empty = BTreeSet::new();
    let baseline_ids = baseline.unwrap_or(&empty);
    let mut diff = PhaseDiff {
        phase: Some(phase),
        has_baseline: baseline.is_some(),
        baseline: baseline_ids.len(),
        ..PhaseDiff::default()
    };
    for (id, outcome) in results {
        let known = baseline_ids.contains(id);
        match (outcome, known) {
            (Outcome::Passed, true) => diff.passed += 1,
            (Outcome::Passed, false) => {
                diff.passed += 1;
                diff.new_passed.push(id.clone());
            }
            (_, true) => diff.regressions.push((id.clone(), *outcome)),
            (_, false) => diff.new_failures.push((id.clone(), *outcome)),
        }
    }
    diff.missing = baseline_ids
        .iter()
        .filter(|id| !results.contains_key(*id))
        .cloned()
        .collect();
    diff
}

/// The table of all phases, baseline against now.
pub(crate) fn render_table(diffs: &[PhaseDiff]) -> String {
    let mut text = String::from("phase  baseline  passed  failed  new  missing\n");
    for diff in diffs {
        let phase = diff.phase.map_or("?", Phase::label);
        let baseline = if diff.has_baseline {
            diff.baseline.to_string()
        } else {
            "-".to_owned()
        };
        let _ = write!(
            text,
            "{phase:<5}  {baseline:>8}  {:>6}  {:>6}  {:>3}  {:>7}",
            diff.passed,
            diff.failed(),
            diff.new_count(),
            diff.missing.len()
        );
        if !diff.build_failed.is_empty() {
            text.push_str("  build failed");
        } else if !diff.not_built.is_empty() {
            text.push_str("  not built");
        }
        text.push('\n');
    }
    text
}

/// The names behind one phase's numbers: build failures, regressions, missing tests, failing
/// new tests and new tests, each list cut at `limit` names.
pub(crate) fn render_details(diff: &PhaseDiff, limit: usize) -> String {
    let phase = diff.phase.map_or("?", Phase::label);
    let mut text = String::new();
    if !diff.build_failed.is_empty() {
        let _ = writeln!(
            text,
            "phase {phase}: build FAILED for {}",
            diff.build_failed.join(", ")
        );
    }
    if !diff.not_built.is_empty() {
        let _ = writeln!(
            text,
            "phase {phase}: not built because a dependency failed to compile: {}",
            diff.not_built.join(", ")
        );
    }
    let with_outcome = |(id, outcome): &(String, Outcome)| match outcome {
        Outcome::Ignored => format!("{id} (ignored)"),
        _ => id.clone(),
    };
    let regressions: Vec<String> = diff.regressions.iter().map(with_outcome).collect();
    list(
        &mut text,
        &format!("phase {phase}: REGRESSED (passed in the baseline, fails now)"),
        &regressions,
        limit,
    );
    list(
        &mut text,
        &format!("phase {phase}: MISSING (in the baseline, did not run)"),
        &diff.missing,
        limit,
    );
    let new_failures: Vec<String> = diff.new_failures.iter().map(with_outcome).collect();
    list(
        &mut text,
        &format!("phase {phase}: FAILED (new tests)"),
        &new_failures,
        limit,
    );
    list(
        &mut text,
        &format!("phase {phase}: new tests, passing"),
        &diff.new_passed,
        limit,
    );
    text
}

fn list(text: &mut String, title: &str, names: &[String], limit: usize) {
    if names.is_empty() {
        return;
    }
    let _ = writeln!(text, "{title}: {}", names.len());
    for name in names.iter().take(limit) {
        let _ = writeln!(text, "    {name}");
    }
    if names.len() > limit {
        let _ = writeln!(text, "    ... and {} more", names.len() - limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|id| (*id).to_owned()).collect()
    }

    fn results(pairs: &[(&str, Outcome)]) -> BTreeMap<String, Outcome> {
        pairs
            .iter()
            .map(|(id, outcome)| ((*id).to_owned(), *outcome))
            .collect()
    }

    #[test]
    fn diff_sorts_every_test_into_exactly_one_list() {
        let baseline = set(&["c::kept", "c::broken", "c::gone", "c::now_ignored"]);
        let now = results(&[
            ("c::kept", Outcome::Passed),
            ("c::broken", Outcome::Failed),
            ("c::now_ignored", Outcome::Ignored),
            ("c::fresh", Outcome::Passed),
            ("c::fresh_broken", Outcome::Failed),
        ]);
        let diff = diff_phase(Phase::Clock, Some(&baseline), &now);
        assert_eq!(
            diff,
            PhaseDiff {
                phase: Some(Phase::Clock),
                has_baseline: true,
                baseline: 4,
                passed: 2,
                regressions: vec![
                    ("c::broken".to_owned(), Outcome::Failed),
                    ("c::now_ignored".to_owned(), Outcome::Ignored),
                ],
                new_failures: vec![("c::fresh_broken".to_owned(), Outcome::Failed)],
                missing: vec!["c::gone".to_owned()],
                new_passed: vec!["c::fresh".to_owned()],
                build_failed: vec![],
                not_built: vec![],
            }
        );
        assert_eq!((diff.failed(), diff.new_count()), (3, 2));
    }

    #[test]
    fn without_a_baseline_everything_is_new() {
        let now = results(&[("s::a", Outcome::Passed), ("s::b", Outcome::Ignored)]);
        let diff = diff_phase(Phase::Sim, None, &now);
        assert!(!diff.has_baseline);
        assert_eq!(
            (
                diff.passed,
                diff.failed(),
                diff.new_count(),
                diff.missing.len()
            ),
            (1, 1, 2, 0)
        );
    }

    #[test]
    fn a_vanished_phase_is_all_missing() {
        let baseline = set(&["t::a", "t::b"]);
        let diff = diff_phase(Phase::Txn, Some(&baseline), &BTreeMap::new());
        assert_eq!(diff.missing, ["t::a", "t::b"]);
        assert_eq!(diff.passed, 0);
    }

    #[test]
    fn table_shows_one_row_per_phase() {
        let clock = diff_phase(
            Phase::Clock,
            Some(&set(&["c::a", "c::b", "c::gone"])),
            &results(&[
                ("c::a", Outcome::Passed),
                ("c::b", Outcome::Failed),
                ("c::new", Outcome::Passed),
            ]),
        );
        let mut algebra = diff_phase(Phase::AlgebraCommit, None, &BTreeMap::new());
        algebra.build_failed = vec!["rhizo-algebra".to_owned()];
        let mut sim = diff_phase(Phase::Sim, Some(&set(&["s::a"])), &BTreeMap::new());
        sim.not_built = vec!["rhizo-sim".to_owned()];
        let python = diff_phase(Phase::Python, None, &results(&[("p::t", Outcome::Passed)]));
        assert_eq!(
            render_table(&[clock, algebra, sim, python]),
            "phase  baseline  passed  failed  new  missing\n\
             2             3       2       1    1        1\n\
             3             -       0       0    0        0  build failed\n\
             4             1       0       0    0        1  not built\n\
             py            -       1       0    1        0\n"
        );
    }

    #[test]
    fn details_name_the_tests_and_cut_long_lists() {
        let baseline = set(&["c::broken", "c::gone", "c::quiet"]);
        let mut now = results(&[
            ("c::broken", Outcome::Failed),
            ("c::quiet", Outcome::Ignored),
            ("c::new_failing", Outcome::Failed),
        ]);
        for index in 0..4 {
            now.insert(format!("c::new_{index}"), Outcome::Passed);
        }
        let mut diff = diff_phase(Phase::Clock, Some(&baseline), &now);
        diff.build_failed = vec!["rhizo-algebra".to_owned()];
        diff.not_built = vec!["rhizo-commit".to_owned()];
        assert_eq!(
            render_details(&diff, 3),
            "phase 2: build FAILED for rhizo-algebra\n\
             phase 2: not built because a dependency failed to compile: rhizo-commit\n\
             phase 2: REGRESSED (passed in the baseline, fails now): 2\n    \
             c::broken\n    \
             c::quiet (ignored)\n\
             phase 2: MISSING (in the baseline, did not run): 1\n    \
             c::gone\n\
             phase 2: FAILED (new tests): 1\n    \
             c::new_failing\n\
             phase 2: new tests, passing: 4\n    \
             c::new_0\n    \
             c::new_1\n    \
             c::new_2\n    \
             ... and 1 more\n"
        );
    }

    #[test]
    fn a_clean_phase_has_no_details() {
        let baseline = set(&["c::a"]);
        let diff = diff_phase(
            Phase::Clock,
            Some(&baseline),
            &results(&[("c::a", Outcome::Passed)]),
        );
        assert_eq!(render_details(&diff, LIST_LIMIT), "");
    }
}
