//! No acknowledged write lost.

use rhizo_clock::NodeId;

use super::RaftHistory;

/// Checks, once the cluster has healed and caught up, that every node applied every
/// acknowledged log write (`applied_by_node`: each node's applied index) and that each node's
/// shared counter (`counters`) counts every acknowledged increment once and nothing that was
/// never submitted: `acknowledged <= value <= acknowledged + unknown`.
pub fn check_no_lost_writes(
    history: &RaftHistory,
    applied_by_node: &[(NodeId, u64)],
    counters: &[(NodeId, i64)],
) -> Result<(), String> {
    if let Some(&highest) = history.acknowledged.iter().max() {
        for (node, applied) in applied_by_node {
            if *applied < highest {
                return Err(format!(
                    "{node} applied up to {applied}, below acknowledged write at {highest}"
                ));
            }
        }
    }
    for index in &history.acknowledged {
        let holders = history
            .applied
            .values()
            .filter(|applied| applied.contains_key(index))
            .count();
        if holders == 0 {
            return Err(format!(
                "acknowledged write at index {index} applied nowhere"
            ));
        }
    }
    let low = history.counter_acknowledged;
    let high = history.counter_acknowledged + history.counter_unknown;
    for (node, value) in counters {
        if *value < low || *value > high {
            return Err(format!(
                "{node}'s counter is {value}, outside [{low}, {high}] (acknowledged, \
                 acknowledged + unknown): an increment was lost or counted twice"
            ));
        }
    }
    Ok(())
}
