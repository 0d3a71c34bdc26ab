//! Set-full (after Jepsen's checker of that name) for grow-only UNION columns: no acknowledged
//! element is ever lost, and no element appears that nobody added.
//!
//! While faults are active, a read on replica `n` must contain every element acknowledged on
//! `n` before it, and every element an earlier read on `n` showed (a grow-only set never
//! shrinks, not even across a crash); it may contain only elements attempted before it. After
//! convergence every acknowledged element is present on every replica.

use std::collections::{BTreeMap, BTreeSet};

use rhizo_algebra::{AlgebraicValue, MergeType, OpType, Schema};
use rhizo_clock::NodeId;
use rhizo_commit::CellKey;

use crate::history::{CellRead, History};
use crate::{ReplicaNode, SimulatedCluster};

/// How an element went missing or appeared from nowhere.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetViolation {
    /// After convergence, an acknowledged element is missing on a replica.
    #[error("{node} lost acknowledged element {element:?} of {key}")]
    Lost {
        /// The replica.
        node: NodeId,
        /// The set.
        key: CellKey,
        /// The element.
        element: String,
    },
    /// A read missed an element acknowledged on the same replica before it.
    #[error("{node} read {key} at #{seq} without {element:?}, acknowledged there before")]
    NotVisibleToWriter {
        /// The replica.
        node: NodeId,
        /// The read's position in the history.
        seq: u64,
        /// The set.
        key: CellKey,
        /// The element.
        element: String,
    },
    /// A read missed an element an earlier read on the same replica showed.
    #[error("{node} read {key} at #{seq} without {element:?}, which it showed before")]
    Vanished {
        /// The replica.
        node: NodeId,
        /// The read's position in the history.
        seq: u64,
        /// The set.
        key: CellKey,
        /// The element.
        element: String,
    },
    /// A read showed an element nobody had tried to add.
    #[error("{node} read {key} at #{seq} with {element:?}, never added before")]
    Phantom {
        /// The replica.
        node: NodeId,
        /// The read's position in the history.
        seq: u64,
        /// The set.
        key: CellKey,
        /// The element.
        element: String,
    },
    /// A set read failed or was not a set.
    #[error("{node} read {key} as {read}, not a set")]
    NotASet {
        /// The replica.
        node: NodeId,
        /// The set.
        key: CellKey,
        /// What was read.
        read: String,
    },
}

#[derive(Default)]
struct SetLog {
    /// Element -> position of its first attempted add.
    attempted: BTreeMap<String, u64>,
    /// `(seq, node, element)` for every acknowledged add.
    acknowledged: Vec<(u64, NodeId, String)>,
}

fn elements(value: &AlgebraicValue) -> Option<Vec<String>> {
    match value {
        AlgebraicValue::StringSet(s) => Some(s.iter().cloned().collect()),
        AlgebraicValue::IntSet(s) => Some(s.iter().map(i64::to_string).collect()),
        _ => None,
    }
}

fn grow_only_sets(history: &History, schema: &Schema) -> BTreeMap<CellKey, SetLog> {
    let mut logs: BTreeMap<CellKey, SetLog> = BTreeMap::new();
    for attempt in history.attempts() {
        for op in attempt.tx.operations() {
            let adds = matches!(op.op_type, OpType::OrSetAdd | OpType::SemilatticeUnion);
            let grow_only = schema
                .column(op.key.table(), op.key.column())
                .is_ok_and(|spec| spec.merge() == MergeType::Union);
            let (true, true, Some(added)) = (adds, grow_only, elements(&op.value)) else {
                continue;
            };
            let log = logs.entry(op.key.clone()).or_default();
            for element in added {
                log.attempted.entry(element.clone()).or_insert(attempt.seq);
                if attempt.acknowledged {
                    log.acknowledged.push((attempt.seq, attempt.node, element));
                }
            }
        }
    }
    logs
}

fn read_set(
    node: NodeId,
    key: &CellKey,
    read: Option<&CellRead>,
) -> Result<BTreeSet<String>, SetViolation> {
    match read {
        None => Ok(BTreeSet::new()),
        Some(Ok(value)) => {
            elements(value)
                .map(BTreeSet::from_iter)
                .ok_or_else(|| SetViolation::NotASet {
                    node,
                    key: key.clone(),
                    read: format!("{value:?}"),
                })
        }
        Some(Err(e)) => Err(SetViolation::NotASet {
            node,
            key: key.clone(),
            read: e.to_string(),
        }),
    }
}

/// Checks every recorded read of every grow-only set column of `schema`.
pub fn check_reads(history: &History, schema: &Schema) -> Result<(), SetViolation> {
    let logs = grow_only_sets(history, schema);
    let mut last_seen: BTreeMap<(NodeId, &CellKey), BTreeSet<String>> = BTreeMap::new();
    for obs in history.observations() {
        for (key, log) in &logs {
            let read = read_set(obs.node, key, obs.values.get(key))?;
            let at = |element: &String| SetViolation::Phantom {
                node: obs.node,
                seq: obs.seq,
                key: key.clone(),
                element: element.clone(),
            };
            for element in &read {
                if log.attempted.get(element).is_none_or(|&s| s > obs.seq) {
                    return Err(at(element));
                }
            }
            for (seq, node, element) in &log.acknowledged {
                if *seq < obs.seq && *node == obs.node && !read.contains(element) {
                    return Err(SetViolation::NotVisibleToWriter {
                        node: obs.node,
                        seq: obs.seq,
                        key: key.clone(),
                        element: element.clone(),
                    });
                }
            }
            let seen = last_seen.entry((obs.node, key)).or_default();
            if let Some(element) = seen.iter().find(|e| !read.contains(*e)) {
                return Err(SetViolation::Vanished {
                    node: obs.node,
                    seq: obs.seq,
                    key: key.clone(),
                    element: element.clone(),
                });
            }
            *seen = read;
        }
    }
    Ok(())
}

/// Checks that every acknowledged element is present on every running replica (call once
/// the cluster has converged).
pub fn check_final(
    history: &History,
    cluster: &SimulatedCluster<ReplicaNode>,
) -> Result<(), SetViolation> {
    let Some((_, first)) = cluster.running_nodes().next() else {
        return Ok(());
    };
    let logs = grow_only_sets(history, first.replica().schema());
    for (id, node) in cluster.running_nodes() {
        for (key, log) in &logs {
            let read = read_set(id, key, Some(&node.replica().read_key(key)))?;
            if let Some((_, _, element)) =
                log.acknowledged.iter().find(|(_, _, e)| !read.contains(e))
            {
                return Err(SetViolation::Lost {
                    node: id,
                    key: key.clone(),
                    element: element.clone(),
                });
            }
        }
    }
    Ok(())
}
