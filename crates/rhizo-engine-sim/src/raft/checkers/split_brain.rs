//! No split brain: at most one leader per term, and the same entry at each index everywhere.

use std::collections::BTreeMap;

use super::RaftHistory;

/// Checks that no term had two leaders, that no node applied two entries at one index, and
/// that every node that applied an index applied the same entry there.
pub fn check_no_split_brain(history: &RaftHistory) -> Result<(), String> {
    for (term, leaders) in &history.leaders {
        if leaders.len() > 1 {
            return Err(format!(
                "term {term} had {} leaders: {leaders:?}",
                leaders.len()
            ));
        }
    }
    if let Some(conflict) = history.conflicts.first() {
        return Err(conflict.clone());
    }
    let mut agreed: BTreeMap<u64, (u64, u64, rhizo_clock::NodeId)> = BTreeMap::new();
    for (node, applied) in &history.applied {
        for (index, entry) in applied {
            match agreed.get(index) {
                Some((term, hash, first)) if (*term, *hash) != *entry => {
                    return Err(format!(
                        "index {index}: {first} applied (term {term}, {hash:x}) but {node} applied \
                         (term {}, {:x})",
                        entry.0, entry.1
                    ));
                }
                Some(_) => {}
                None => {
                    agreed.insert(*index, (entry.0, entry.1, *node));
                }
            }
        }
    }
    Ok(())
}
