use proptest::prelude::*;

use super::*;
use crate::workload::{CounterSums, SetElement};

fn state(node: &str) -> NodeState {
    NodeState {
        node: node.to_owned(),
        ..NodeState::default()
    }
}

fn counted(acknowledged: i64, unknown: i64) -> History {
    let mut history = History::default();
    history.counters.insert(
        "c0".into(),
        CounterSums {
            acknowledged,
            unknown,
        },
    );
    history
}

proptest! {
    /// A counter passes exactly when its value is within [acknowledged, acknowledged + unknown].
    #[test]
    fn a_counter_passes_exactly_within_its_range(
        acknowledged in 0i64..1_000,
        unknown in 0i64..100,
        value in -10i64..1_200,
    ) {
        let mut node = state("n1");
        node.counters.insert("c0".into(), value);
        let found = check_counters(&counted(acknowledged, unknown), &[node]);
        let within = (acknowledged..=acknowledged + unknown).contains(&value);
        prop_assert_eq!(found.is_empty(), within);
    }
}

#[test]
fn a_counter_nobody_incremented_must_be_absent() {
    let mut node = state("n1");
    node.counters.insert("c9".into(), 1);
    let found = check_counters(&History::default(), &[node]);
    assert_eq!(found.len(), 1);
    assert!(found[0].detail.contains("c9"), "{}", found[0]);
}

fn element(name: &str, add: Outcome, remove: Option<Outcome>) -> SetElement {
    SetElement {
        row: "s0".into(),
        element: name.into(),
        add,
        remove,
    }
}

#[test]
fn sets_keep_acknowledged_adds_and_drop_refused_and_removed_ones() {
    let unknown = || Outcome::Unknown("timeout".into());
    let refused = || Outcome::Refused("no leader".into());
    let history = History {
        elements: vec![
            element("kept", Outcome::Acknowledged, None),
            element("kept-too", Outcome::Acknowledged, Some(refused())),
            element(
                "removed",
                Outcome::Acknowledged,
                Some(Outcome::Acknowledged),
            ),
            element("maybe", unknown(), None),
            element("maybe-removed", Outcome::Acknowledged, Some(unknown())),
            element("refused", refused(), None),
        ],
        ..History::default()
    };
    let holding = |names: &[&str]| {
        let mut node = state("n1");
        node.sets
            .insert("s0".into(), names.iter().map(|n| n.to_string()).collect());
        node
    };
    let good = holding(&["kept", "kept-too", "maybe-removed"]);
    assert_eq!(check_sets(&history, &[good]), Vec::new());
    let also_good = holding(&["kept", "kept-too", "maybe"]);
    assert_eq!(check_sets(&history, &[also_good]), Vec::new());
    for (bad, culprit) in [
        (holding(&["kept-too"]), "kept"),
        (holding(&["kept", "kept-too", "removed"]), "removed"),
        (holding(&["kept", "kept-too", "refused"]), "refused"),
        (holding(&["kept", "kept-too", "stranger"]), "stranger"),
    ] {
        let found = check_sets(&history, &[bad]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].detail.contains(culprit), "{}", found[0]);
    }
}

#[test]
fn registers_must_end_on_a_value_some_write_could_leave() {
    let history = History {
        registers: vec![
            RegisterOp {
                key: "r0".into(),
                write: Some(1),
                read: None,
                invoked: 0,
                completed: Some(10),
            },
            RegisterOp {
                key: "r0".into(),
                write: Some(2),
                read: Some(Some(1)),
                invoked: 20,
                completed: None,
            },
        ],
        ..History::default()
    };
    let ending = |value: Option<i64>| {
        let mut node = state("n1");
        node.registers.insert("r0".into(), value);
        node
    };
    // The compare-and-set of unknown outcome may or may not have taken effect.
    assert_eq!(
        check_registers(&history, &[ending(Some(1))], 100),
        Vec::new()
    );
    assert_eq!(
        check_registers(&history, &[ending(Some(2))], 100),
        Vec::new()
    );
    // The acknowledged write cannot be lost, and nobody wrote 3.
    for bad in [None, Some(3)] {
        let found = check_registers(&history, &[ending(bad)], 100);
        assert_eq!(found.len(), 1, "{bad:?}");
        assert_eq!(found[0].checker, "register");
    }
}

#[test]
fn nodes_that_differ_are_named() {
    let mut a = state("n1");
    a.fingerprint = 7;
    let mut b = state("n2");
    b.fingerprint = 7;
    let mut c = state("n3");
    c.fingerprint = 7;
    c.counters.insert("c0".into(), 1);
    assert_eq!(check_converged(&[a.clone(), b.clone()]), Vec::new());
    let found = check_converged(&[a, b, c]);
    assert_eq!(found.len(), 1);
    assert!(found[0].detail.starts_with("n3"), "{}", found[0]);
}
