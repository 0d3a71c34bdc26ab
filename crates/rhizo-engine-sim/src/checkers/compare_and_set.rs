//! Every acknowledged compare-and-set took effect, and no refused one did.

use std::collections::BTreeMap;

use super::Told;

/// One compare-and-set of a register that only compare-and-sets write, each with a value no
/// other writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CasOp {
    /// The value it required.
    pub expected: i64,
    /// The value it wrote if the register held `expected`.
    pub new: i64,
    /// What its client was told.
    pub told: Told,
}

/// Checks a register's compare-and-sets against its value `last` once every member applied the
/// whole log (`initial`: its value before them).
///
/// The value `last` was written by the one operation writing it, which required the value
/// before, written by another, and so on back to `initial`: that chain is what took effect.
/// Every acknowledged operation must be on it, at increasing log indices, and no refused one.
pub fn check_compare_and_set(ops: &[CasOp], initial: i64, last: i64) -> Result<(), String> {
    let mut writer: BTreeMap<i64, usize> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        if op.new == initial || writer.insert(op.new, i).is_some() {
            return Err(format!(
                "the history is not checkable: {} is written twice",
                op.new
            ));
        }
    }
    let mut chain = Vec::new();
    let mut value = last;
    while value != initial {
        let Some(&i) = writer.get(&value) else {
            return Err(format!(
                "the register holds {value}, which no compare-and-set wrote"
            ));
        };
        if chain.len() == ops.len() {
            return Err(format!("the writes of {value} go round in a circle"));
        }
        if ops[i].told == Told::Refused {
            return Err(format!(
                "a refused compare-and-set took effect: {} -> {}",
                ops[i].expected, ops[i].new
            ));
        }
        chain.push(i);
        value = ops[i].expected;
    }
    chain.reverse();
    let mut on_chain = vec![false; ops.len()];
    let mut last_index = 0;
    for &i in &chain {
        on_chain[i] = true;
        if let Some(index) = ops[i].told.index() {
            if index <= last_index {
                return Err(format!(
                    "compare-and-set {} -> {} took effect after one at index {last_index}, but \
                     was acknowledged at index {index}",
                    ops[i].expected, ops[i].new
                ));
            }
            last_index = index;
        }
    }
    match ops
        .iter()
        .zip(&on_chain)
        .find(|(op, on)| !**on && matches!(op.told, Told::Committed { .. }))
    {
        Some((op, _)) => Err(format!(
            "an acknowledged compare-and-set took no effect: {} -> {} ({:?})",
            op.expected, op.new, op.told
        )),
        None => Ok(()),
    }
}
