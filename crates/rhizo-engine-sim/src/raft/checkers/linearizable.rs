//! Register histories are linearizable: a Wing–Gong search with memoisation (as in Knossos),
//! one register at a time.

use std::collections::{BTreeMap, HashSet};

use super::RegisterOp;

/// Checks every register's history: there is a total order of its operations, consistent with
/// real time (an operation that completed before another was invoked comes first), in which
/// every read returns the latest write before it, and every compare-and-set (a write with a
/// `read`) finds the value it required. A write whose outcome is unknown may take effect at any
/// point after its invocation (a compare-and-set only where it finds its value), or never; a
/// read whose outcome is unknown is ignored. `max_ops` bounds each register's history (the
/// search is exponential in the worst case).
pub fn check_linearizable(ops: &[RegisterOp], max_ops: usize) -> Result<(), String> {
    let mut by_key: BTreeMap<&str, Vec<&RegisterOp>> = BTreeMap::new();
    for op in ops {
        if op.write.is_none() && op.completed.is_none() {
            continue;
        }
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    for (key, mut history) in by_key {
        if history.len() > max_ops {
            return Err(format!(
                "register {key}: {} operations exceed the checker's bound {max_ops}",
                history.len()
            ));
        }
        history.sort_by_key(|op| op.invoked);
        let mut search = Search {
            ops: &history,
            done: vec![false; history.len()],
            seen: HashSet::new(),
        };
        if !search.run(None) {
            return Err(format!(
                "register {key}: history is not linearizable: {}",
                describe(&history)
            ));
        }
    }
    Ok(())
}

struct Search<'a> {
    ops: &'a [&'a RegisterOp],
    done: Vec<bool>,
    seen: HashSet<(Vec<u64>, Option<i64>)>,
}

impl Search<'_> {
    fn run(&mut self, value: Option<i64>) -> bool {
        // The earliest completion among operations not yet placed: nothing invoked after it
        // may be placed before it.
        let horizon = self
            .ops
            .iter()
            .zip(&self.done)
            .filter(|(_, done)| !**done)
            .filter_map(|(op, _)| op.completed)
            .min();
        let Some(horizon) = horizon else {
            return true; // only unknown-outcome writes remain: they may never take effect
        };
        for j in 0..self.ops.len() {
            if self.done[j] {
                continue;
            }
            let op = self.ops[j];
            if op.invoked >= horizon && op.completed != Some(horizon) {
                continue;
            }
            let next = match (op.write, op.read) {
                (Some(v), None) => Some(v),
                (Some(v), Some(required)) if required == value => Some(v),
                (None, Some(seen)) if seen == value => value,
                _ => continue,
            };
            self.done[j] = true;
            if self.seen.insert((self.bits(), next)) && self.run(next) {
                return true;
            }
            self.done[j] = false;
        }
        false
    }

    fn bits(&self) -> Vec<u64> {
        let mut bits = vec![0u64; self.done.len().div_ceil(64)];
        for (i, done) in self.done.iter().enumerate() {
            if *done {
                bits[i / 64] |= 1 << (i % 64);
            }
        }
        bits
    }
}

fn describe(history: &[&RegisterOp]) -> String {
    history
        .iter()
        .map(|op| {
            let what = match (op.write, op.read) {
                (Some(v), None) => format!("write {v}"),
                (Some(v), Some(Some(required))) => format!("cas {required}->{v}"),
                (Some(v), Some(None)) => format!("cas nil->{v}"),
                (None, Some(Some(v))) => format!("read {v}"),
                (None, _) => "read nil".to_owned(),
            };
            match op.completed {
                Some(done) => format!("[{}..{}] {what}", op.invoked, done),
                None => format!("[{}..?] {what}", op.invoked),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}
