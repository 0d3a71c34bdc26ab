use rhizo_clock::NodeId;

use super::*;

fn write(key: &str, v: i64, invoked: u64, completed: Option<u64>) -> RegisterOp {
    RegisterOp {
        key: key.to_owned(),
        write: Some(v),
        read: None,
        invoked,
        completed,
    }
}

fn read(key: &str, seen: Option<i64>, invoked: u64, completed: u64) -> RegisterOp {
    RegisterOp {
        key: key.to_owned(),
        write: None,
        read: Some(seen),
        invoked,
        completed: Some(completed),
    }
}

#[test]
fn sequential_and_overlapping_histories_are_linearizable() {
    let ops = vec![
        write("a", 1, 0, Some(10)),
        read("a", Some(1), 11, 20),
        // Overlapping write and read: the read may see either value.
        write("a", 2, 21, Some(40)),
        read("a", Some(1), 22, 30),
        read("a", Some(2), 41, 50),
        // An unknown write may take effect late...
        write("b", 7, 0, None),
        read("b", None, 5, 6),
        read("b", Some(7), 100, 110),
    ];
    check_linearizable(&ops, 64).unwrap();
}

#[test]
fn stale_reads_and_lost_writes_are_caught() {
    // A read after a completed write must see it.
    let stale = vec![write("a", 1, 0, Some(10)), read("a", None, 11, 20)];
    assert!(
        check_linearizable(&stale, 64)
            .unwrap_err()
            .contains("not linearizable")
    );
    // Once a read saw 2, a later read may not go back to 1.
    let back = vec![
        write("a", 1, 0, Some(10)),
        write("a", 2, 11, Some(20)),
        read("a", Some(2), 21, 30),
        read("a", Some(1), 31, 40),
    ];
    assert!(check_linearizable(&back, 64).is_err());
    // A value nobody wrote.
    assert!(check_linearizable(&[read("a", Some(9), 0, 1)], 64).is_err());
    // The bound is enforced rather than searched forever.
    let many: Vec<_> = (0..10)
        .map(|i| write("a", i, i as u64, Some(i as u64 + 1)))
        .collect();
    assert!(check_linearizable(&many, 5).unwrap_err().contains("bound"));
}

#[test]
fn two_leaders_in_a_term_or_diverging_entries_are_split_brain() {
    let (a, b) = (NodeId::numbered(0), NodeId::numbered(1));
    let mut history = RaftHistory::default();
    history.note_leader(3, a);
    history.note_leader(4, b);
    history.note_applied(a, 1, 3, b"x");
    history.note_applied(b, 1, 3, b"x");
    check_no_split_brain(&history).unwrap();

    let mut two = history.clone();
    two.note_leader(4, a);
    assert!(check_no_split_brain(&two).unwrap_err().contains("term 4"));

    let mut diverged = history.clone();
    diverged.note_applied(a, 2, 4, b"y");
    diverged.note_applied(b, 2, 4, b"z");
    assert!(
        check_no_split_brain(&diverged)
            .unwrap_err()
            .contains("index 2")
    );

    let mut restarted = history;
    restarted.note_applied(a, 1, 5, b"other");
    assert!(check_no_split_brain(&restarted).is_err());
}

#[test]
fn lost_or_double_counted_writes_are_caught() {
    let a = NodeId::numbered(0);
    let mut history = RaftHistory::default();
    history.note_applied(a, 5, 1, b"w");
    history.acknowledged.push(5);
    history.counter_acknowledged = 10;
    history.counter_unknown = 5;
    check_no_lost_writes(&history, &[(a, 5)], &[(a, 10)]).unwrap();
    check_no_lost_writes(&history, &[(a, 5)], &[(a, 15)]).unwrap();
    assert!(check_no_lost_writes(&history, &[(a, 4)], &[(a, 10)]).is_err());
    assert!(check_no_lost_writes(&history, &[(a, 5)], &[(a, 9)]).is_err());
    assert!(check_no_lost_writes(&history, &[(a, 5)], &[(a, 16)]).is_err());
    history.acknowledged.push(6);
    assert!(
        check_no_lost_writes(&history, &[(a, 6)], &[(a, 10)])
            .unwrap_err()
            .contains("nowhere")
    );
}

fn cas(
    key: &str,
    required: Option<i64>,
    v: i64,
    invoked: u64,
    completed: Option<u64>,
) -> RegisterOp {
    RegisterOp {
        key: key.to_owned(),
        write: Some(v),
        read: Some(required),
        invoked,
        completed,
    }
}

#[test]
fn a_compare_and_set_must_find_the_value_it_required() {
    // A chain of compare-and-sets, each finding the one before it.
    let chain = vec![
        cas("a", None, 1, 0, Some(10)),
        cas("a", Some(1), 2, 11, Some(20)),
        read("a", Some(2), 21, 30),
    ];
    check_linearizable(&chain, 64).unwrap();
    // Two overlapping compare-and-sets from the same value cannot both take effect.
    let both = vec![
        write("a", 1, 0, Some(10)),
        cas("a", Some(1), 2, 11, Some(30)),
        cas("a", Some(1), 3, 12, Some(31)),
    ];
    assert!(
        check_linearizable(&both, 64)
            .unwrap_err()
            .contains("cas 1->3")
    );
    // A compare-and-set of an unknown outcome takes effect only where it finds its value: here
    // the register never held 5, so the read of 9 names a write that cannot have happened.
    let never = vec![
        write("a", 1, 0, Some(10)),
        cas("a", Some(5), 9, 11, None),
        read("a", Some(9), 40, 50),
    ];
    assert!(check_linearizable(&never, 64).is_err());
    // ...and it may take effect late, once the value it required is there.
    let late = vec![
        cas("a", Some(1), 9, 0, None),
        write("a", 1, 5, Some(10)),
        read("a", Some(9), 40, 50),
    ];
    check_linearizable(&late, 64).unwrap();
}
