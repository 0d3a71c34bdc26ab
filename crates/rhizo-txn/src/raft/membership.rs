//! The Raft group's membership: which nodes are members, under which Raft ids, at which
//! addresses, and whether each votes yet.
//!
//! A node's Raft id is a function of its name ([`raft_id_of`]), not of its place in a list: every
//! member computes the same id for a newcomer without asking anyone, and an id never changes
//! when members come and go. Two names whose ids collide cannot both be members; the second is
//! refused ([`RaftError::Config`]) before anything is proposed.
//!
//! The table changes only by Raft configuration changes (`ConfChangeV2` entries whose context is
//! a [`MemberChange`]), applied in log order on every member, so every member holds the same
//! table at the same log index. It travels in snapshots and is recorded at every change
//! ([`crate::raft::RaftRecord::Membership`]), so it survives restarts.

use std::collections::BTreeMap;

use raft::eraftpb::{ConfChangeSingle, ConfChangeType, ConfChangeV2, ConfState};
use rhizo_clock::NodeId;
use serde::{Deserialize, Serialize};

use super::RaftError;
use super::node::ProposalId;

/// The Raft id of `node`: FNV-1a over its name, never 0 (raft-rs's "no node").
pub fn raft_id_of(node: NodeId) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in node.name().as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash.max(1)
}

/// One member of the group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Its Raft id ([`raft_id_of`] its name).
    pub raft_id: u64,
    /// Where its peers reach it, as the change that added it said (empty for a member of the
    /// static configuration, whose address the node's own configuration holds).
    pub address: String,
    /// Whether it votes. A member added at run time is a learner until it has caught up.
    pub voter: bool,
    /// Whether it is being removed by a draining removal: from the log index where it was
    /// retired, it takes no writes, so its own commits stop at a counter it knows; it stays a
    /// member (and keeps spreading them) until every other member holds them, then proposes
    /// its own removal. Encoded with the table, not here (see [`Membership`]'s encoding).
    #[serde(skip)]
    pub retired: bool,
}

/// The members of the group, by node.
///
/// Encoded as the members (each without its retirement mark) followed by the retired nodes, so
/// that a table written before draining removals existed — the same bytes without the trailing
/// list, always last in its record or snapshot — still decodes, with nobody retired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    members: BTreeMap<NodeId, Member>,
}

impl Serialize for Membership {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let retired: Vec<NodeId> = self
            .members
            .iter()
            .filter(|(_, m)| m.retired)
            .map(|(node, _)| *node)
            .collect();
        let mut table = serializer.serialize_struct("Membership", 2)?;
        table.serialize_field("members", &self.members)?;
        table.serialize_field("retired", &retired)?;
        table.end()
    }
}

impl<'de> Deserialize<'de> for Membership {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TableVisitor;
        impl<'de> serde::de::Visitor<'de> for TableVisitor {
            type Value = Membership;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a membership table")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Membership, A::Error> {
                let mut members: BTreeMap<NodeId, Member> = seq
                    .next_element()?
                    .ok_or_else(|| serde::de::Error::invalid_length(0, &self))?;
                // A table written before retirement existed ends here: its record ends, and
                // reading on fails (frames are checksummed, so that is the only way it can).
                let retired: Vec<NodeId> = seq.next_element().ok().flatten().unwrap_or_default();
                for node in retired {
                    match members.get_mut(&node) {
                        Some(member) => member.retired = true,
                        None => {
                            return Err(serde::de::Error::custom(format!(
                                "retired node {node} is not a member"
                            )));
                        }
                    }
                }
                Ok(Membership { members })
            }
        }
        deserializer.deserialize_struct("Membership", &["members", "retired"], TableVisitor)
    }
}

impl Membership {
    /// A static cluster: every node a voter, no address known.
    pub(crate) fn voters(nodes: &[NodeId]) -> Result<Self, RaftError> {
        let mut membership = Self::default();
        for node in nodes {
            membership.check_id_free(*node)?;
            membership.members.insert(
                *node,
                Member {
                    raft_id: raft_id_of(*node),
                    address: String::new(),
                    voter: true,
                    retired: false,
                },
            );
        }
        Ok(membership)
    }

    /// Refuses `node` if another member's Raft id is the same as its.
    pub(crate) fn check_id_free(&self, node: NodeId) -> Result<(), RaftError> {
        let id = raft_id_of(node);
        match self
            .members
            .iter()
            .find(|(other, m)| **other != node && m.raft_id == id)
        {
            Some((other, _)) => Err(RaftError::Config {
                reason: format!("{node} and {other} have the same Raft id {id}; rename one"),
            }),
            None => Ok(()),
        }
    }

    /// The members, sorted by node.
    pub fn iter(&self) -> impl Iterator<Item = (NodeId, &Member)> {
        self.members.iter().map(|(node, m)| (*node, m))
    }

    /// The member `node`, if it is one.
    pub fn get(&self, node: NodeId) -> Option<&Member> {
        self.members.get(&node)
    }

    /// The nodes, sorted.
    pub fn nodes(&self) -> Vec<NodeId> {
        self.members.keys().copied().collect()
    }

    /// How many members vote.
    pub fn voter_count(&self) -> usize {
        self.members.values().filter(|m| m.voter).count()
    }

    /// The member whose Raft id is `raft_id`.
    pub(crate) fn node_of(&self, raft_id: u64) -> Option<NodeId> {
        self.members
            .iter()
            .find(|(_, m)| m.raft_id == raft_id)
            .map(|(node, _)| *node)
    }

    /// Whether `node` is a member retired by a draining removal.
    pub fn is_retired(&self, node: NodeId) -> bool {
        self.members.get(&node).is_some_and(|m| m.retired)
    }

    /// Marks the member `node` retired; returns whether that changed the table (a node that is
    /// no member, or already retired, leaves it as it was).
    pub(crate) fn retire(&mut self, node: NodeId) -> bool {
        match self.members.get_mut(&node) {
            Some(member) if !member.retired => {
                member.retired = true;
                true
            }
            _ => false,
        }
    }

    /// Refuses a draining removal of `node` that could never finish: `node` is no member, or
    /// it is the last voter (its removal would be refused when proposed).
    pub(crate) fn check_retire(&self, node: NodeId) -> Result<(), RaftError> {
        match self.members.get(&node) {
            None => Err(RaftError::UnknownMember { node }),
            Some(member) if member.voter && self.voter_count() == 1 => {
                Err(RaftError::LastVoter { node })
            }
            Some(_) => Ok(()),
        }
    }

    /// Raft's configuration for this table.
    pub(crate) fn conf_state(&self) -> ConfState {
        let mut conf = ConfState::default();
        for member in self.members.values() {
            if member.voter {
                conf.voters.push(member.raft_id);
            } else {
                conf.learners.push(member.raft_id);
            }
        }
        conf.voters.sort_unstable();
        conf.learners.sort_unstable();
        conf
    }

    /// The table after `change` (which the caller has checked with [`Membership::check`]).
    pub(crate) fn apply(&mut self, change: &MemberChange) {
        match change.kind {
            ChangeKind::AddLearner => {
                self.members.insert(
                    change.node,
                    Member {
                        raft_id: raft_id_of(change.node),
                        address: change.address.clone(),
                        voter: false,
                        retired: false,
                    },
                );
            }
            ChangeKind::Promote => {
                if let Some(member) = self.members.get_mut(&change.node) {
                    member.voter = true;
                }
            }
            ChangeKind::Remove => {
                self.members.remove(&change.node);
            }
        }
    }

    /// Whether `change` may apply to this table: the same check on every member at the same
    /// log index, so every member takes or skips it alike.
    pub(crate) fn check(&self, change: &MemberChange) -> Result<(), RaftError> {
        let node = change.node;
        match (change.kind, self.members.get(&node)) {
            (ChangeKind::AddLearner, Some(_)) => Err(RaftError::AlreadyMember { node }),
            (ChangeKind::AddLearner, None) => self.check_id_free(node),
            (ChangeKind::Promote, Some(member)) if !member.voter => Ok(()),
            (ChangeKind::Promote, Some(_)) => Err(RaftError::AlreadyMember { node }),
            (ChangeKind::Promote | ChangeKind::Remove, None) => {
                Err(RaftError::UnknownMember { node })
            }
            (ChangeKind::Remove, Some(member)) if member.voter && self.voter_count() == 1 => {
                Err(RaftError::LastVoter { node })
            }
            (ChangeKind::Remove, Some(_)) => Ok(()),
        }
    }
}

/// What a membership change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    /// Adds a node as a learner: it receives the log but does not vote.
    AddLearner,
    /// Makes a learner a voter (the leader proposes it once the learner has caught up).
    Promote,
    /// Removes a member.
    Remove,
}

/// A membership change: the context of its `ConfChangeV2` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MemberChange {
    /// The proposal (its proposer answers its client when the entry applies).
    pub(crate) id: ProposalId,
    /// What it does.
    pub(crate) kind: ChangeKind,
    /// The node it changes.
    pub(crate) node: NodeId,
    /// Where the node listens (for an addition; empty otherwise).
    pub(crate) address: String,
}

impl MemberChange {
    /// The Raft change it makes, and its context bytes.
    pub(crate) fn to_raft(&self) -> (ConfChangeV2, Vec<u8>) {
        let mut single = ConfChangeSingle {
            node_id: raft_id_of(self.node),
            ..ConfChangeSingle::default()
        };
        single.set_change_type(match self.kind {
            ChangeKind::AddLearner => ConfChangeType::AddLearnerNode,
            ChangeKind::Promote => ConfChangeType::AddNode,
            ChangeKind::Remove => ConfChangeType::RemoveNode,
        });
        let mut change = ConfChangeV2::default();
        change.set_changes(vec![single].into());
        let context = postcard::to_allocvec(self).expect("encoding to a Vec cannot fail");
        (change, context)
    }

    /// Decodes a `ConfChangeV2` entry at `index` (its data and context); malformed bytes, or a
    /// change whose Raft part disagrees with its context, are [`RaftError::Corrupt`].
    pub(crate) fn decode(
        index: u64,
        data: &[u8],
        context: &[u8],
    ) -> Result<(ConfChangeV2, Self), RaftError> {
        let corrupt = |reason: String| RaftError::Corrupt { index, reason };
        let change: ConfChangeV2 = protobuf::Message::parse_from_bytes(data)
            .map_err(|e| corrupt(format!("configuration change: {e}")))?;
        let member: Self = postcard::from_bytes(context)
            .map_err(|e| corrupt(format!("membership context: {e}")))?;
        let (expected, _) = member.to_raft();
        if expected.changes != change.changes {
            return Err(corrupt(format!(
                "configuration change does not match its context ({:?} of {})",
                member.kind, member.node
            )));
        }
        Ok((change, member))
    }
}

#[cfg(test)]
mod tests;
