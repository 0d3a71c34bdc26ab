use super::*;

fn cas(expected: i64, new: i64, told: Told) -> CasOp {
    CasOp {
        expected,
        new,
        told,
    }
}

fn at(index: u64) -> Told {
    Told::Committed { index }
}

#[test]
fn a_chain_of_compare_and_sets_with_refusals_and_unknowns_passes() {
    let ops = [
        cas(0, 1, at(3)),
        cas(0, 2, Told::Refused),
        cas(1, 3, Told::Unknown),
        cas(1, 4, Told::Unknown),
        cas(3, 5, at(9)),
    ];
    check_compare_and_set(&ops, 0, 5).unwrap();
    // Nothing took effect: fine while nothing was acknowledged.
    check_compare_and_set(&ops[1..4], 0, 0).unwrap();
}

#[test]
fn an_acknowledged_compare_and_set_without_effect_is_caught() {
    let ops = [cas(0, 1, at(3)), cas(0, 2, at(4))];
    let err = check_compare_and_set(&ops, 0, 1).unwrap_err();
    assert!(
        err.contains("acknowledged compare-and-set took no effect"),
        "{err}"
    );
}

#[test]
fn a_refused_compare_and_set_with_effect_is_caught() {
    let ops = [cas(0, 1, Told::Refused)];
    let err = check_compare_and_set(&ops, 0, 1).unwrap_err();
    assert!(err.contains("refused compare-and-set took effect"), "{err}");
}

#[test]
fn compare_and_set_histories_against_the_log_or_the_values_are_caught() {
    // Acknowledged in the other order than they took effect.
    let ops = [cas(0, 1, at(5)), cas(1, 2, at(4))];
    assert!(
        check_compare_and_set(&ops, 0, 2)
            .unwrap_err()
            .contains("index")
    );
    // A value nobody wrote.
    assert!(
        check_compare_and_set(&ops, 0, 9)
            .unwrap_err()
            .contains("no compare-and-set")
    );
    // Two writes of one value make the history uncheckable.
    let twice = [cas(0, 1, Told::Unknown), cas(0, 1, Told::Unknown)];
    assert!(check_compare_and_set(&twice, 0, 1).is_err());
}

fn row(amount: i64, version: u64) -> Balance {
    Balance { amount, version }
}

fn transfer(
    id: u64,
    accounts: [usize; 2],
    read: [Balance; 2],
    wrote: [i64; 2],
    told: Told,
) -> Transfer {
    Transfer {
        id,
        accounts,
        read,
        wrote,
        told,
    }
}

#[test]
fn serializable_transfers_with_refusals_and_unknowns_pass() {
    let transfers = [
        transfer(1, [0, 1], [row(100, 0), row(100, 0)], [90, 110], at(2)),
        transfer(
            2,
            [1, 2],
            [row(110, 1), row(100, 0)],
            [105, 105],
            Told::Unknown,
        ),
        transfer(
            3,
            [0, 2],
            [row(100, 0), row(100, 0)],
            [50, 150],
            Told::Refused,
        ),
        transfer(
            4,
            [2, 0],
            [row(100, 0), row(90, 1)],
            [95, 95],
            Told::Unknown,
        ),
    ];
    let last = [row(90, 1), row(105, 2), row(105, 2)];
    check_transfers(&[100, 100, 100], &transfers, &last).unwrap();
}

#[test]
fn a_lost_update_is_caught() {
    // Both read account 0 at its initial version and both committed.
    let transfers = [
        transfer(1, [0, 1], [row(100, 0), row(100, 0)], [90, 110], at(2)),
        transfer(2, [0, 2], [row(100, 0), row(100, 0)], [80, 120], at(3)),
    ];
    let last = [row(80, 2), row(110, 1), row(120, 2)];
    let err = check_transfers(&[100, 100, 100], &transfers, &last).unwrap_err();
    assert!(err.contains("lost update"), "{err}");
}

#[test]
fn half_a_transfer_or_a_refused_one_taking_effect_is_caught() {
    let one = [transfer(
        1,
        [0, 1],
        [row(100, 0), row(100, 0)],
        [90, 110],
        at(2),
    )];
    let half = [row(90, 1), row(100, 0)];
    let err = check_transfers(&[100, 100], &one, &half).unwrap_err();
    assert!(err.contains("half a transfer"), "{err}");
    let none = [row(100, 0), row(100, 0)];
    let err = check_transfers(&[100, 100], &one, &none).unwrap_err();
    assert!(err.contains("acknowledged transfer 1"), "{err}");
    let refused = [transfer(
        1,
        [0, 1],
        [row(100, 0), row(100, 0)],
        [90, 110],
        Told::Refused,
    )];
    let both = [row(90, 1), row(110, 1)];
    let err = check_transfers(&[100, 100], &refused, &both).unwrap_err();
    assert!(err.contains("refused transfer 1"), "{err}");
}

#[test]
fn transfers_that_read_each_other_have_no_serial_order() {
    // Each read the other's write of one account: no order explains both.
    let transfers = [
        transfer(
            1,
            [0, 1],
            [row(100, 0), row(105, 2)],
            [90, 115],
            Told::Unknown,
        ),
        transfer(
            2,
            [0, 1],
            [row(90, 1), row(100, 0)],
            [85, 105],
            Told::Unknown,
        ),
    ];
    let last = [row(85, 2), row(115, 1)];
    let err = check_transfers(&[100, 100], &transfers, &last).unwrap_err();
    assert!(err.contains("no serial order"), "{err}");
}

#[test]
fn transfers_against_the_log_order_or_the_total_are_caught() {
    // The second read what the first wrote, but was acknowledged at an earlier index.
    let transfers = [
        transfer(1, [0, 1], [row(100, 0), row(100, 0)], [90, 110], at(5)),
        transfer(2, [0, 1], [row(90, 1), row(110, 1)], [80, 120], at(4)),
    ];
    let last = [row(80, 2), row(120, 2)];
    let err = check_transfers(&[100, 100], &transfers, &last).unwrap_err();
    assert!(err.contains("index"), "{err}");
    // Money made out of nothing is not a transfer.
    let forged = [transfer(
        1,
        [0, 1],
        [row(100, 0), row(100, 0)],
        [100, 110],
        Told::Unknown,
    )];
    assert!(check_transfers(&[100, 100], &forged, &[row(100, 1), row(110, 1)]).is_err());
}
