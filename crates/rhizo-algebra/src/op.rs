use std::fmt;
use std::str::FromStr;

use crate::{AlgebraError, Result};

/// The kind of an operation, named as in the project roadmap.
///
/// Whether an operation may commit without coordination is decided by the column it writes
/// ([`MergeType`]), not by its kind alone: `ADD` commutes with `ADD` but not with `MULTIPLY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum OpType {
    /// Keep the larger value (`MAX`).
    SemilatticeMax,
    /// Keep the smaller value (`MIN`).
    SemilatticeMin,
    /// Grow a set by union (`UNION`).
    SemilatticeUnion,
    /// Shrink a set by intersection (`INTERSECT`).
    SemilatticeIntersect,
    /// Add to a number (`ADD`).
    AbelianAdd,
    /// Multiply a number (`MULTIPLY`).
    AbelianMultiply,
    /// Replace the value (`OVERWRITE`); needs coordination.
    GenericOverwrite,
    /// Replace the value if it equals an expected one (`CONDITIONAL`); needs coordination.
    GenericConditional,
    /// An operation whose algebra is not known (`UNKNOWN`); needs coordination.
    Unknown,
    /// Add elements to an observed-remove set, each tagged by the update's dot (`OR_ADD`).
    OrSetAdd,
    /// Remove the element tags the writer observed from an observed-remove set (`OR_REMOVE`).
    OrSetRemove,
}

impl OpType {
    /// Every operation kind, in declaration order.
    pub const ALL: [OpType; 11] = [
        OpType::SemilatticeMax,
        OpType::SemilatticeMin,
        OpType::SemilatticeUnion,
        OpType::SemilatticeIntersect,
        OpType::AbelianAdd,
        OpType::AbelianMultiply,
        OpType::GenericOverwrite,
        OpType::GenericConditional,
        OpType::Unknown,
        OpType::OrSetAdd,
        OpType::OrSetRemove,
    ];

    /// Whether operations of this kind on a column of the matching [`MergeType`] commute with
    /// each other, so they may commit locally and merge later.
    ///
    /// ```
    /// use rhizo_algebra::OpType;
    /// assert!(OpType::AbelianAdd.is_conflict_free());
    /// assert!(!OpType::GenericOverwrite.is_conflict_free());
    /// assert_eq!("ADD".parse::<OpType>().unwrap(), OpType::AbelianAdd);
    /// ```
    pub fn is_conflict_free(self) -> bool {
        self.is_semilattice() || self.is_abelian() || self.is_observed_remove()
    }

    /// Whether the kind is a join (or meet) of a semilattice: commutative, associative and
    /// idempotent, so duplicates do no harm.
    pub fn is_semilattice(self) -> bool {
        matches!(
            self,
            OpType::SemilatticeMax
                | OpType::SemilatticeMin
                | OpType::SemilatticeUnion
                | OpType::SemilatticeIntersect
        )
    }

    /// Whether the kind is the operation of a commutative group or monoid: order does not
    /// matter, but every update must be applied exactly once.
    pub fn is_abelian(self) -> bool {
        matches!(self, OpType::AbelianAdd | OpType::AbelianMultiply)
    }

    /// Whether the kind belongs to the observed-remove set.
    pub fn is_observed_remove(self) -> bool {
        matches!(self, OpType::OrSetAdd | OpType::OrSetRemove)
    }

    /// The roadmap's display name, e.g. `"ADD"`.
    pub fn name(self) -> &'static str {
        match self {
            OpType::SemilatticeMax => "MAX",
            OpType::SemilatticeMin => "MIN",
            OpType::SemilatticeUnion => "UNION",
            OpType::SemilatticeIntersect => "INTERSECT",
            OpType::AbelianAdd => "ADD",
            OpType::AbelianMultiply => "MULTIPLY",
            OpType::GenericOverwrite => "OVERWRITE",
            OpType::GenericConditional => "CONDITIONAL",
            OpType::Unknown => "UNKNOWN",
            OpType::OrSetAdd => "OR_ADD",
            OpType::OrSetRemove => "OR_REMOVE",
        }
    }

    /// One sentence saying what the operation does and why it may (or may not) skip coordination.
    pub fn description(self) -> &'static str {
        match self {
            OpType::SemilatticeMax => {
                "keeps the largest value seen; commutative, associative and idempotent"
            }
            OpType::SemilatticeMin => {
                "keeps the smallest value seen; commutative, associative and idempotent"
            }
            OpType::SemilatticeUnion => {
                "adds elements to a grow-only set; commutative, associative and idempotent"
            }
            OpType::SemilatticeIntersect => {
                "keeps only elements present in every operand; commutative, associative and idempotent"
            }
            OpType::AbelianAdd => {
                "adds to a number; commutative and associative, applied exactly once per update"
            }
            OpType::AbelianMultiply => {
                "multiplies a number; commutative and associative, applied exactly once per update"
            }
            OpType::GenericOverwrite => {
                "replaces the value; concurrent overwrites conflict, so it needs coordination"
            }
            OpType::GenericConditional => {
                "replaces the value if it still equals an expected one; needs coordination"
            }
            OpType::Unknown => "an operation of unknown algebra; needs coordination",
            OpType::OrSetAdd => {
                "adds elements to an observed-remove set; an add concurrent with a remove wins"
            }
            OpType::OrSetRemove => {
                "removes the element tags the writer observed; later or concurrent adds survive"
            }
        }
    }
}

impl fmt::Display for OpType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Every operation kind's name, for error messages (a test checks it against [`OpType::ALL`]).
const OP_NAMES: &str =
    "MAX, MIN, UNION, INTERSECT, ADD, MULTIPLY, OVERWRITE, CONDITIONAL, UNKNOWN, OR_ADD, OR_REMOVE";

/// Every merge type's name, for error messages (a test checks it against [`MergeType::ALL`]).
const MERGE_NAMES: &str = "MAX, MIN, UNION, INTERSECT, ADD, MULTIPLY, OR_SET, REGISTER";

impl FromStr for OpType {
    type Err = AlgebraError;
    /// Parses a display name such as `"ADD"` (case-sensitive).
    fn from_str(s: &str) -> Result<Self> {
        OpType::ALL
            .into_iter()
            .find(|op| op.name() == s)
            .ok_or_else(|| AlgebraError::UnknownName {
                what: "operation kind".into(),
                name: s.to_owned(),
                valid: OP_NAMES.into(),
            })
    }
}

/// How a column merges concurrent writes; fixed by the schema for the column's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum MergeType {
    /// Join by maximum.
    Max,
    /// Join by minimum.
    Min,
    /// Grow-only set union.
    Union,
    /// Set intersection (the state starts as "every element").
    Intersect,
    /// Sum of all updates, each counted exactly once.
    Add,
    /// Product of all updates, each counted exactly once.
    Multiply,
    /// Add-wins observed-remove set.
    ObservedRemoveSet,
    /// A plain register: overwrite or compare-and-set. Not conflict-free: only consensus changes it.
    Register,
}

impl MergeType {
    /// Every merge type, in declaration order.
    pub const ALL: [MergeType; 8] = [
        MergeType::Max,
        MergeType::Min,
        MergeType::Union,
        MergeType::Intersect,
        MergeType::Add,
        MergeType::Multiply,
        MergeType::ObservedRemoveSet,
        MergeType::Register,
    ];

    /// Whether a column of this type may take writes without coordination.
    pub fn is_conflict_free(self) -> bool {
        self != MergeType::Register
    }

    /// Whether an operation of kind `op` may be applied to a column of this type.
    ///
    /// Each conflict-free type accepts exactly the operations that commute with one another on it.
    ///
    /// ```
    /// use rhizo_algebra::{MergeType, OpType};
    /// assert!(MergeType::Add.accepts(OpType::AbelianAdd));
    /// assert!(!MergeType::Add.accepts(OpType::AbelianMultiply));
    /// assert!(MergeType::ObservedRemoveSet.accepts(OpType::OrSetRemove));
    /// ```
    pub fn accepts(self, op: OpType) -> bool {
        matches!(
            (self, op),
            (MergeType::Max, OpType::SemilatticeMax)
                | (MergeType::Min, OpType::SemilatticeMin)
                | (MergeType::Union, OpType::SemilatticeUnion)
                | (MergeType::Intersect, OpType::SemilatticeIntersect)
                | (MergeType::Add, OpType::AbelianAdd)
                | (MergeType::Multiply, OpType::AbelianMultiply)
                | (MergeType::ObservedRemoveSet, OpType::OrSetAdd)
                | (MergeType::ObservedRemoveSet, OpType::OrSetRemove)
                | (MergeType::Register, OpType::GenericOverwrite)
                | (MergeType::Register, OpType::GenericConditional)
        )
    }

    /// The display name, e.g. `"ADD"` or `"OR_SET"`.
    pub fn name(self) -> &'static str {
        match self {
            MergeType::Max => "MAX",
            MergeType::Min => "MIN",
            MergeType::Union => "UNION",
            MergeType::Intersect => "INTERSECT",
            MergeType::Add => "ADD",
            MergeType::Multiply => "MULTIPLY",
            MergeType::ObservedRemoveSet => "OR_SET",
            MergeType::Register => "REGISTER",
        }
    }
}

impl fmt::Display for MergeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for MergeType {
    type Err = AlgebraError;
    /// Parses a display name such as `"OR_SET"` (case-sensitive).
    fn from_str(s: &str) -> Result<Self> {
        MergeType::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| AlgebraError::UnknownName {
                what: "merge type".into(),
                name: s.to_owned(),
                valid: MERGE_NAMES.into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_matches_the_roadmap() {
        let conflict_free: Vec<&str> = OpType::ALL
            .into_iter()
            .filter(|op| op.is_conflict_free())
            .map(OpType::name)
            .collect();
        assert_eq!(
            conflict_free,
            [
                "MAX",
                "MIN",
                "UNION",
                "INTERSECT",
                "ADD",
                "MULTIPLY",
                "OR_ADD",
                "OR_REMOVE"
            ]
        );
        assert!(OpType::SemilatticeUnion.is_semilattice());
        assert!(!OpType::AbelianAdd.is_semilattice());
        assert!(OpType::AbelianMultiply.is_abelian());
        assert!(!OpType::GenericOverwrite.is_conflict_free());
        assert!(!OpType::Unknown.is_conflict_free());
        assert_eq!(OpType::AbelianAdd.to_string(), "ADD");
        assert!(
            OpType::GenericConditional
                .description()
                .contains("coordination")
        );
    }

    #[test]
    fn names_round_trip() {
        for op in OpType::ALL {
            assert_eq!(op.name().parse::<OpType>().unwrap(), op);
        }
        for merge in MergeType::ALL {
            assert_eq!(merge.name().parse::<MergeType>().unwrap(), merge);
        }
        assert_eq!(
            "add".parse::<OpType>(),
            Err(AlgebraError::UnknownName {
                what: "operation kind".into(),
                name: "add".into(),
                valid: OP_NAMES.into(),
            })
        );
        // The names an error lists are exactly the ones that parse.
        let listed = |names: &str| names.split(", ").map(str::to_owned).collect::<Vec<_>>();
        let ops: Vec<String> = OpType::ALL.iter().map(|o| o.name().to_owned()).collect();
        let merges: Vec<String> = MergeType::ALL.iter().map(|m| m.name().to_owned()).collect();
        assert_eq!(listed(OP_NAMES), ops);
        assert_eq!(listed(MERGE_NAMES), merges);
    }

    #[test]
    fn each_merge_type_accepts_only_its_commuting_kinds() {
        let accepted: Vec<(MergeType, Vec<OpType>)> = MergeType::ALL
            .into_iter()
            .map(|m| {
                (
                    m,
                    OpType::ALL
                        .into_iter()
                        .filter(|&op| m.accepts(op))
                        .collect(),
                )
            })
            .collect();
        use MergeType as M;
        use OpType as O;
        assert_eq!(
            accepted,
            vec![
                (M::Max, vec![O::SemilatticeMax]),
                (M::Min, vec![O::SemilatticeMin]),
                (M::Union, vec![O::SemilatticeUnion]),
                (M::Intersect, vec![O::SemilatticeIntersect]),
                (M::Add, vec![O::AbelianAdd]),
                (M::Multiply, vec![O::AbelianMultiply]),
                (M::ObservedRemoveSet, vec![O::OrSetAdd, O::OrSetRemove]),
                (
                    M::Register,
                    vec![O::GenericOverwrite, O::GenericConditional]
                ),
            ]
        );
        assert!(!M::Register.is_conflict_free());
        assert!(MergeType::ALL.iter().all(|m| !m.accepts(O::Unknown)));
    }
}
