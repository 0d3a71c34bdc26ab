//! Jepsen-style counter bounds: every read of a counter lies between the sum of the adds it must
//! include and the sum of all adds attempted before it; after convergence it equals the sum of
//! the acknowledged adds.
//!
//! A coordination-free replica need not show other replicas' recent adds, so the lower bound of
//! a read on replica `n` is the sum of the adds acknowledged *on `n`* before the read (its
//! clients' own writes, which must survive crashes); the upper bound is the sum of every add
//! attempted anywhere before the read. It protects against lost acknowledged adds (below) and
//! double-applied or invented ones (above). It judges only counters that only ever received
//! positive integer adds.

use std::collections::BTreeMap;

use rhizo_algebra::{AlgebraicValue, OpType};
use rhizo_clock::NodeId;
use rhizo_commit::CellKey;

use crate::history::{CellRead, History};
use crate::{ReplicaNode, SimulatedCluster};

/// How a counter read broke its bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CounterViolation {
    /// A read missed adds acknowledged on the same replica.
    #[error(
        "{node} read {key} = {read} at #{seq}, below the {acknowledged_here} acknowledged there"
    )]
    ReadBelowAcknowledged {
        /// The replica.
        node: NodeId,
        /// The read's position in the history.
        seq: u64,
        /// The counter.
        key: CellKey,
        /// The value read.
        read: i128,
        /// The sum of adds acknowledged on this replica before the read.
        acknowledged_here: i128,
    },
    /// A read exceeded every add attempted so far.
    #[error("{node} read {key} = {read} at #{seq}, above the {attempted} attempted")]
    ReadAboveAttempted {
        /// The replica.
        node: NodeId,
        /// The read's position in the history.
        seq: u64,
        /// The counter.
        key: CellKey,
        /// The value read.
        read: i128,
        /// The sum of adds attempted before the read.
        attempted: i128,
    },
    /// After convergence a counter is not the sum of the acknowledged adds.
    #[error("{node} finally reads {key} = {read}, the acknowledged adds sum to {acknowledged}")]
    FinalDiffers {
        /// The replica.
        node: NodeId,
        /// The counter.
        key: CellKey,
        /// The value read.
        read: i128,
        /// The sum of acknowledged adds.
        acknowledged: i128,
    },
    /// A counter read failed or was not an integer.
    #[error("{node} read {key} as {read}, not an integer")]
    NotAnInteger {
        /// The replica.
        node: NodeId,
        /// The counter.
        key: CellKey,
        /// What was read.
        read: String,
    },
}

/// Running sums of one counter's adds, in history order.
#[derive(Default)]
struct CounterLog {
    /// `(seq, sum of attempted adds up to and including seq)`.
    attempted: Vec<(u64, i128)>,
    /// The same for adds acknowledged on each node.
    acknowledged_by: BTreeMap<NodeId, Vec<(u64, i128)>>,
    acknowledged: i128,
    positive: bool,
}

/// The sum of the entries strictly before `seq`.
fn sum_before(prefix: &[(u64, i128)], seq: u64) -> i128 {
    match prefix.partition_point(|(s, _)| *s < seq) {
        0 => 0,
        n => prefix[n - 1].1,
    }
}

fn counters(history: &History) -> BTreeMap<CellKey, CounterLog> {
    let mut logs: BTreeMap<CellKey, CounterLog> = BTreeMap::new();
    for attempt in history.attempts() {
        for op in attempt.tx.operations() {
            let (OpType::AbelianAdd, AlgebraicValue::Integer(amount)) = (op.op_type, &op.value)
            else {
                continue;
            };
            let amount = i128::from(*amount);
            let log = logs.entry(op.key.clone()).or_insert_with(|| CounterLog {
                positive: true,
                ..CounterLog::default()
            });
            log.positive &= amount > 0;
            let total = log.attempted.last().map_or(0, |(_, t)| *t) + amount;
            log.attempted.push((attempt.seq, total));
            if attempt.acknowledged {
                let mine = log.acknowledged_by.entry(attempt.node).or_default();
                let total = mine.last().map_or(0, |(_, t)| *t) + amount;
                mine.push((attempt.seq, total));
                log.acknowledged += amount;
            }
        }
    }
    logs.retain(|_, log| log.positive);
    logs
}

fn integer(node: NodeId, key: &CellKey, read: Option<&CellRead>) -> Result<i128, CounterViolation> {
    match read {
        None => Ok(0),
        Some(Ok(AlgebraicValue::Integer(v))) => Ok(i128::from(*v)),
        Some(other) => Err(CounterViolation::NotAnInteger {
            node,
            key: key.clone(),
            read: format!("{other:?}"),
        }),
    }
}

/// Checks every recorded read of every counter against its bounds.
pub fn check_reads(history: &History) -> Result<(), CounterViolation> {
    let logs = counters(history);
    for obs in history.observations() {
        for (key, log) in &logs {
            let read = integer(obs.node, key, obs.values.get(key))?;
            let own = log
                .acknowledged_by
                .get(&obs.node)
                .map_or(0, |p| sum_before(p, obs.seq));
            if read < own {
                return Err(CounterViolation::ReadBelowAcknowledged {
                    node: obs.node,
                    seq: obs.seq,
                    key: key.clone(),
                    read,
                    acknowledged_here: own,
                });
            }
            let attempted = sum_before(&log.attempted, obs.seq);
            if read > attempted {
                return Err(CounterViolation::ReadAboveAttempted {
                    node: obs.node,
                    seq: obs.seq,
                    key: key.clone(),
                    read,
                    attempted,
                });
            }
        }
    }
    Ok(())
}

/// Checks that every running replica reads every counter as the sum of its acknowledged adds
/// (call once the cluster has converged).
pub fn check_final(
    history: &History,
    cluster: &SimulatedCluster<ReplicaNode>,
) -> Result<(), CounterViolation> {
    let logs = counters(history);
    for (id, node) in cluster.running_nodes() {
        for (key, log) in &logs {
            let read = integer(id, key, Some(&node.replica().read_key(key)))?;
            if read != log.acknowledged {
                return Err(CounterViolation::FinalDiffers {
                    node: id,
                    key: key.clone(),
                    read,
                    acknowledged: log.acknowledged,
                });
            }
        }
    }
    Ok(())
}
