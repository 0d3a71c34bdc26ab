//! The roadmap's phases and which packages' tests belong to each.

use std::fmt;

/// A phase of the roadmap; every test is recorded under the phase of its package.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Phase {
    /// 2: vector clocks.
    Clock,
    /// 3: the merge algebra and the commit protocol.
    AlgebraCommit,
    /// 4: the simulator.
    Sim,
    /// 5: transactions.
    Txn,
    /// 6: benches and tooling.
    Bench,
    /// py: the Python bindings' tests.
    Python,
}

impl Phase {
    pub(crate) const ALL: [Phase; 6] = [
        Phase::Clock,
        Phase::AlgebraCommit,
        Phase::Sim,
        Phase::Txn,
        Phase::Bench,
        Phase::Python,
    ];

    /// The name used on the command line and in baseline file names.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Phase::Clock => "2",
            Phase::AlgebraCommit => "3",
            Phase::Sim => "4",
            Phase::Txn => "5",
            Phase::Bench => "6",
            Phase::Python => "py",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|phase| phase.label() == text)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// How regress treats one workspace package.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PackageRule {
    pub(crate) package: &'static str,
    pub(crate) phase: Phase,
    /// Whether `cargo test` runs its tests. The Python bindings are an extension module that
    /// links against libpython only when loaded by an interpreter, so pytest tests them instead.
    pub(crate) cargo_test: bool,
    /// Whether clippy checks it. Set to false only for a package that cannot even be checked
    /// without something the machine lacks; today every package can.
    pub(crate) clippy: bool,
}

/// The package directory of the Python bindings, relative to the workspace root.
pub(crate) const PYTHON_PACKAGE_DIR: &str = "crates/rhizo-py";

/// Every package regress knows. A workspace member missing here stops regress with a message
/// naming it, so that each new crate is given its phase on purpose.
pub(crate) const PACKAGE_RULES: &[PackageRule] = &[
    rule("rhizo-clock", Phase::Clock),
    rule("rhizo-algebra", Phase::AlgebraCommit),
    rule("rhizo-commit", Phase::AlgebraCommit),
    rule("rhizo-sim", Phase::Sim),
    rule("rhizo-txn", Phase::Txn),
    rule("rhizo-engine-sim", Phase::Txn),
    // The network floor is the embedded node's transport: its tests join the transactions phase.
    rule("rhizo-net", Phase::Txn),
    // The node program runs the networked node: its tests join the same phase.
    rule("rhizo-cli", Phase::Txn),
    // The chaos harness drives the networked node (rhizo-net, rhizo-cli): its unit tests and
    // its short run join their phase.
    rule("rhizo-chaos", Phase::Txn),
    rule("benches", Phase::Bench),
    rule("xtask", Phase::Bench),
    PackageRule {
        package: "rhizo-py",
        phase: Phase::Python,
        cargo_test: false,
        clippy: true,
    },
];

const fn rule(package: &'static str, phase: Phase) -> PackageRule {
    PackageRule {
        package,
        phase,
        cargo_test: true,
        clippy: true,
    }
}

pub(crate) fn rule_for(package: &str) -> Option<&'static PackageRule> {
    PACKAGE_RULES.iter().find(|rule| rule.package == package)
}

/// One line per phase with its packages, for the usage text.
pub(crate) fn phase_table() -> String {
    let mut text = String::new();
    for phase in Phase::ALL {
        let packages: Vec<&str> = PACKAGE_RULES
            .iter()
            .filter(|rule| rule.phase == phase)
            .map(|rule| {
                if phase == Phase::Python {
                    "rhizo-py (pytest, ruff, stubtest)"
                } else {
                    rule.package
                }
            })
            .collect();
        text.push_str(&format!(
            "    {:<4}{}\n",
            phase.label(),
            packages.join(", ")
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_and_unknown_labels_are_rejected() {
        for phase in Phase::ALL {
            assert_eq!(Phase::parse(phase.label()), Some(phase));
        }
        assert_eq!(Phase::parse("1"), None);
        assert_eq!(Phase::parse("PY"), None);
    }

    #[test]
    fn packages_map_to_the_roadmap_phases() {
        let phase_of = |name| rule_for(name).map(|rule| rule.phase);
        assert_eq!(phase_of("rhizo-clock"), Some(Phase::Clock));
        assert_eq!(phase_of("rhizo-commit"), Some(Phase::AlgebraCommit));
        assert_eq!(phase_of("rhizo-sim"), Some(Phase::Sim));
        assert_eq!(phase_of("rhizo-cli"), Some(Phase::Txn));
        assert_eq!(phase_of("xtask"), Some(Phase::Bench));
        assert_eq!(phase_of("rhizo-py"), Some(Phase::Python));
        assert_eq!(phase_of("rhizo-unknown"), None);
        assert!(!rule_for("rhizo-py").unwrap().cargo_test);
    }

    #[test]
    fn each_package_has_one_rule() {
        for (index, rule) in PACKAGE_RULES.iter().enumerate() {
            assert!(
                PACKAGE_RULES[index + 1..]
                    .iter()
                    .all(|other| other.package != rule.package),
                "{} listed twice",
                rule.package
            );
        }
    }

    #[test]
    fn phase_table_lists_packages_by_phase() {
        assert_eq!(
            phase_table(),
            "    2   rhizo-clock\n    3   rhizo-algebra, rhizo-commit\n    4   rhizo-sim\n    \
             5   rhizo-txn, rhizo-engine-sim, rhizo-net, rhizo-cli, rhizo-chaos\n    6   benches, \
             xtask\n    \
             py  rhizo-py (pytest, ruff, stubtest)\n"
        );
    }
}
