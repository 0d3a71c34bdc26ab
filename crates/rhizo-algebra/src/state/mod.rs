//! The state one cell — one (table, row, column) — converges to, and the effects applied to it.

mod int_sum;
mod list;
mod origin;
mod orset;

use rhizo_clock::{Dot, NodeId, VectorClock};

use crate::{
    AlgebraError, AlgebraicValue, ColumnSpec, Decimal, MergeType, OpType, Result, SortedSet,
    TotalF64, ValueType,
};
pub(crate) use int_sum::IntSum;
pub use list::{ListedState, StateList};
pub(crate) use origin::{FloatProduct, IntProduct, OriginEntry, PerOrigin, WideInt};
use orset::OrSet;

/// A number that can be compared within a Max or Min column.
///
/// Decimals are held as their mantissa at the column's scale, so comparing mantissas compares
/// numbers. Floats compare by [`f64::total_cmp`] (`-0.0 < +0.0`); NaN never gets here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Scalar {
    /// An integer.
    Integer(i64),
    /// A finite float.
    Float(TotalF64),
    /// A decimal mantissa at the column's scale.
    Decimal(i128),
    /// A boolean (`false < true`).
    Boolean(bool),
}

impl Scalar {
    fn kind(&self) -> &'static str {
        match self {
            Scalar::Integer(_) => "integer",
            Scalar::Float(_) => "float",
            Scalar::Decimal(_) => "decimal",
            Scalar::Boolean(_) => "boolean",
        }
    }
}

/// The elements of a set operand or set state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Elements {
    /// Strings.
    Strings(SortedSet<String>),
    /// 64-bit integers.
    Ints(SortedSet<i64>),
}

impl Elements {
    fn empty_like(value_type: ValueType) -> Self {
        match value_type {
            ValueType::IntSet => Elements::Ints(SortedSet::new()),
            _ => Elements::Strings(SortedSet::new()),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Elements::Strings(_) => "string set",
            Elements::Ints(_) => "int set",
        }
    }

    /// How many elements there are.
    pub fn len(&self) -> usize {
        match self {
            Elements::Strings(s) => s.len(),
            Elements::Ints(s) => s.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn to_value(&self) -> AlgebraicValue {
        match self {
            Elements::Strings(s) => AlgebraicValue::StringSet(s.clone()),
            Elements::Ints(s) => AlgebraicValue::IntSet(s.clone()),
        }
    }

    fn union_with(&mut self, other: &Elements) -> Result<()> {
        match (self, other) {
            (Elements::Strings(a), Elements::Strings(b)) => a.union_with(b),
            (Elements::Ints(a), Elements::Ints(b)) => a.union_with(b),
            (a, b) => return Err(mismatch(a.kind(), b.kind())),
        }
        Ok(())
    }

    fn intersect_with(&mut self, other: &Elements) -> Result<()> {
        match (self, other) {
            (Elements::Strings(a), Elements::Strings(b)) => a.intersect_with(b),
            (Elements::Ints(a), Elements::Ints(b)) => a.intersect_with(b),
            (a, b) => return Err(mismatch(a.kind(), b.kind())),
        }
        Ok(())
    }
}

/// The `(element, tag)` pairs a remove deletes from an observed-remove set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum ObservedTags {
    /// Tags of string elements.
    Strings(SortedSet<(String, Dot)>),
    /// Tags of integer elements.
    Ints(SortedSet<(i64, Dot)>),
}

impl ObservedTags {
    /// How many tags the remove deletes.
    pub fn len(&self) -> usize {
        match self {
            ObservedTags::Strings(s) => s.len(),
            ObservedTags::Ints(s) => s.len(),
        }
    }

    /// Whether the remove deletes nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One element of a set column, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementRef<'a> {
    /// A string element.
    Str(&'a str),
    /// An integer element.
    Int(i64),
}

/// A validated, type-specific effect on one cell, built by [`CellOp::new`] (or
/// [`CellOp::compare_and_set`], [`CellState::remove_op`]) and applied by [`CellState::apply`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum CellOp {
    /// Add an integer.
    AddInt(i64),
    /// Add a finite float.
    AddFloat(TotalF64),
    /// Add a decimal, given as its mantissa at the column's scale.
    AddDecimal(i128),
    /// Multiply by an integer.
    MulInt(i64),
    /// Multiply by a finite float.
    MulFloat(TotalF64),
    /// Raise to at least this value.
    Max(Scalar),
    /// Lower to at most this value.
    Min(Scalar),
    /// Add these elements to a grow-only set.
    Union(Elements),
    /// Keep only these elements.
    Intersect(Elements),
    /// Add these elements to an observed-remove set, tagged with the update's dot.
    OrAdd(Elements),
    /// Delete these observed tags from an observed-remove set.
    OrRemove(ObservedTags),
    /// Replace a register's value (consensus path only).
    ///
    /// The register values are boxed: effects are moved through every layer of a commit, and
    /// boxing halves a `CellOp` (96 to 48 bytes) for the far more common algebraic operations.
    Overwrite(Box<AlgebraicValue>),
    /// Replace a register's value if it equals `expected` (consensus path only).
    CompareAndSet {
        /// The value the register must hold.
        expected: Box<AlgebraicValue>,
        /// The value to write.
        new: Box<AlgebraicValue>,
    },
}

/// Refuses adding `amount` to an exact integer sum whose total would then leave `i64`; a sum
/// already out of range (through updates of others) is left to its reads.
#[inline]
fn sum_in_range(origins: &IntSum, amount: i64) -> Result<()> {
    // One origin whose partial is in `i64` (a counter only its committer bumps): an `i64` add.
    if let Some(only) = origins.only_partial()
        && let Some(total) = narrow_i64(only)
    {
        return match total.checked_add(amount) {
            Some(_) => Ok(()),
            None => Err(AlgebraError::overflow(ValueType::Integer)),
        };
    }
    let mut total = 0i128;
    for partial in origins.partials() {
        match total.checked_add(partial) {
            Some(next) => total = next,
            None => return Ok(()),
        }
    }
    if i64::try_from(total).is_err() {
        return Ok(());
    }
    match i64::try_from(total + i128::from(amount)) {
        Ok(_) => Ok(()),
        Err(_) => Err(AlgebraError::overflow(ValueType::Integer)),
    }
}

/// `x` as an `i64`, if it is one: `i64::try_from` written as a sign check of the high half,
/// which compiles to a compare where `try_from` became an add-with-carry chain (this runs in
/// the loop of a batch of counter bumps).
#[inline(always)]
pub(crate) fn narrow_i64(x: i128) -> Option<i64> {
    let low = x as i64;
    (((x >> 64) as i64) == (low >> 63)).then_some(low)
}

/// An integer added to a sum's partial (|partial| < 2^127 for fewer than 2^64 `i64` addends;
/// checked anyway).
#[inline]
fn add_int(sum: i128, v: i64) -> Result<i128> {
    sum.checked_add(i128::from(v))
        .ok_or_else(|| AlgebraError::overflow(ValueType::Integer))
}

/// A value as the column stores it: decimals rescaled to the column's scale.
fn normalize(spec: &ColumnSpec, value: &AlgebraicValue) -> Result<AlgebraicValue> {
    match (spec.value_type(), value) {
        (ValueType::Decimal { scale }, AlgebraicValue::Decimal(d)) => {
            Ok(AlgebraicValue::Decimal(d.rescale(scale)?))
        }
        _ => Ok(value.clone()),
    }
}

fn scalar(spec: &ColumnSpec, value: &AlgebraicValue) -> Result<Scalar> {
    match normalize(spec, value)? {
        AlgebraicValue::Integer(v) => Ok(Scalar::Integer(v)),
        AlgebraicValue::Float(v) => Ok(Scalar::Float(v)),
        AlgebraicValue::Decimal(d) => Ok(Scalar::Decimal(d.mantissa())),
        AlgebraicValue::Boolean(v) => Ok(Scalar::Boolean(v)),
        other => Err(AlgebraError::TypeMismatch {
            expected: spec.value_type(),
            found: other.kind_name().into(),
        }),
    }
}

fn elements(spec: &ColumnSpec, value: &AlgebraicValue) -> Result<Elements> {
    match value {
        AlgebraicValue::StringSet(s) => Ok(Elements::Strings(s.clone())),
        AlgebraicValue::IntSet(s) => Ok(Elements::Ints(s.clone())),
        other => Err(AlgebraError::TypeMismatch {
            expected: spec.value_type(),
            found: other.kind_name().into(),
        }),
    }
}

fn mismatch(state: &'static str, op: &'static str) -> AlgebraError {
    AlgebraError::StateMismatch {
        state: state.into(),
        op: op.into(),
    }
}

impl CellOp {
    /// Validates `value` as an operation of kind `op` on a column of `spec` and builds the
    /// effect. Decimals are rescaled to the column's scale.
    ///
    /// `CONDITIONAL` needs an expected value ([`CellOp::compare_and_set`]) and `OR_REMOVE` the
    /// tags its writer observed ([`CellState::remove_op`]); both are refused here with
    /// [`AlgebraError::NeedsContext`].
    ///
    /// ```
    /// use rhizo_algebra::{AlgebraicValue, CellOp, ColumnSpec, MergeType, OpType, ValueType};
    /// let peak = ColumnSpec::new(MergeType::Max, ValueType::Integer).unwrap();
    /// let op = CellOp::new(&peak, OpType::SemilatticeMax, &AlgebraicValue::Integer(7)).unwrap();
    /// assert_eq!(op.op_type(), OpType::SemilatticeMax);
    /// // A MAX column takes no ADD, and an integer column no float.
    /// assert!(CellOp::new(&peak, OpType::AbelianAdd, &AlgebraicValue::Integer(7)).is_err());
    /// assert!(CellOp::new(&peak, OpType::SemilatticeMax, &AlgebraicValue::float(7.0)).is_err());
    /// ```
    #[inline]
    pub fn new(spec: &ColumnSpec, op: OpType, value: &AlgebraicValue) -> Result<CellOp> {
        // The commonest operation, an integer added to an integer sum, is valid as it stands:
        // skip the general checks (the law tests build every other pair through them), inline
        // in the caller.
        if let (
            OpType::AbelianAdd,
            MergeType::Add,
            ValueType::Integer,
            AlgebraicValue::Integer(v),
        ) = (op, spec.merge(), spec.value_type(), value)
        {
            return Ok(CellOp::AddInt(*v));
        }
        Self::checked(spec, op, value)
    }

    /// Drops the operation. One that owns nothing (a number, the commonest) goes without the
    /// out-of-line drop every other needs.
    ///
    /// Hidden: a fast path of rhizo-commit's one-operation commit, which lives in another crate
    /// and so cannot reach a `pub(crate)` item; dropping the operation means the same.
    #[doc(hidden)]
    #[inline]
    pub fn discard(self) {
        match self {
            CellOp::AddInt(_)
            | CellOp::AddFloat(_)
            | CellOp::AddDecimal(_)
            | CellOp::MulInt(_)
            | CellOp::MulFloat(_) => std::mem::forget(self),
            owning => drop(owning),
        }
    }

    #[inline(never)]
    fn checked(spec: &ColumnSpec, op: OpType, value: &AlgebraicValue) -> Result<CellOp> {
        spec.validate(op, value)?;
        Ok(match op {
            // The common operand needs no rescaling: skip the copy `normalize` makes.
            OpType::AbelianAdd if let AlgebraicValue::Integer(v) = value => CellOp::AddInt(*v),
            OpType::AbelianAdd => match normalize(spec, value)? {
                AlgebraicValue::Integer(v) => CellOp::AddInt(v),
                AlgebraicValue::Float(v) => CellOp::AddFloat(v),
                AlgebraicValue::Decimal(d) => CellOp::AddDecimal(d.mantissa()),
                other => {
                    return Err(AlgebraError::UnsupportedType {
                        op,
                        found: other.kind_name().into(),
                    });
                }
            },
            OpType::AbelianMultiply => match value {
                AlgebraicValue::Integer(v) => CellOp::MulInt(*v),
                AlgebraicValue::Float(v) => CellOp::MulFloat(*v),
                other => {
                    return Err(AlgebraError::UnsupportedType {
                        op,
                        found: other.kind_name().into(),
                    });
                }
            },
            OpType::SemilatticeMax => CellOp::Max(scalar(spec, value)?),
            OpType::SemilatticeMin => CellOp::Min(scalar(spec, value)?),
            OpType::SemilatticeUnion => CellOp::Union(elements(spec, value)?),
            OpType::SemilatticeIntersect => CellOp::Intersect(elements(spec, value)?),
            OpType::OrSetAdd => CellOp::OrAdd(elements(spec, value)?),
            OpType::OrSetRemove => {
                return Err(AlgebraError::NeedsContext {
                    op,
                    needs: "the tags its writer observed; build it with CellState::remove_op"
                        .into(),
                });
            }
            OpType::GenericOverwrite => CellOp::Overwrite(Box::new(normalize(spec, value)?)),
            OpType::GenericConditional => {
                return Err(AlgebraError::NeedsContext {
                    op,
                    needs: "an expected value; build it with CellOp::compare_and_set".into(),
                });
            }
            // No merge type accepts Unknown, so `validate` has already refused it.
            OpType::Unknown => return Err(AlgebraError::NotConflictFree { op }),
        })
    }

    /// A compare-and-set on a register column: write `new` if the register holds `expected`.
    /// Either may be `Null` (an unset register holds `Null`).
    ///
    /// ```
    /// use rhizo_algebra::{AlgebraicValue, CellOp, CellState, ColumnSpec, MergeType, ValueType};
    /// use rhizo_clock::{Dot, NodeId};
    /// let spec = ColumnSpec::new(MergeType::Register, ValueType::Integer).unwrap();
    /// let (unset, one) = (AlgebraicValue::Null, AlgebraicValue::Integer(1));
    /// let claim = CellOp::compare_and_set(&spec, &unset, &one).unwrap();
    /// let mut cell = CellState::new(&spec);
    /// let log = NodeId::new("log").unwrap();
    /// cell.apply(&claim, Dot::new(log, 1).unwrap()).unwrap();
    /// assert_eq!(cell.value().unwrap(), one);
    /// // The register no longer holds `Null`: the same claim fails, and changes nothing.
    /// assert!(cell.apply(&claim, Dot::new(log, 2).unwrap()).is_err());
    /// ```
    pub fn compare_and_set(
        spec: &ColumnSpec,
        expected: &AlgebraicValue,
        new: &AlgebraicValue,
    ) -> Result<CellOp> {
        spec.validate(OpType::GenericConditional, expected)?;
        spec.validate(OpType::GenericConditional, new)?;
        Ok(CellOp::CompareAndSet {
            expected: Box::new(normalize(spec, expected)?),
            new: Box::new(normalize(spec, new)?),
        })
    }

    /// The operation kind this effect belongs to.
    pub fn op_type(&self) -> OpType {
        match self {
            CellOp::AddInt(_) | CellOp::AddFloat(_) | CellOp::AddDecimal(_) => OpType::AbelianAdd,
            CellOp::MulInt(_) | CellOp::MulFloat(_) => OpType::AbelianMultiply,
            CellOp::Max(_) => OpType::SemilatticeMax,
            CellOp::Min(_) => OpType::SemilatticeMin,
            CellOp::Union(_) => OpType::SemilatticeUnion,
            CellOp::Intersect(_) => OpType::SemilatticeIntersect,
            CellOp::OrAdd(_) => OpType::OrSetAdd,
            CellOp::OrRemove(_) => OpType::OrSetRemove,
            CellOp::Overwrite(_) => OpType::GenericOverwrite,
            CellOp::CompareAndSet { .. } => OpType::GenericConditional,
        }
    }

    fn kind(&self) -> &'static str {
        self.op_type().name()
    }
}

/// A Max or Min column's state: the extreme value so far (`None` until the first write).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct Extremum {
    value_type: ValueType,
    best: Option<Packed<Scalar>>,
}

/// A copyable value held at 8-byte alignment: a [`Scalar`]'s `i128` would align, and so pad,
/// every [`CellState`] to 16 bytes. Encoded as the value it holds; its value is only ever
/// copied out (no reference to a packed field can exist).
#[derive(Clone, Copy)]
#[repr(C, packed(8))]
struct Packed<T: Copy>(T);

impl<T: Copy> Packed<T> {
    fn get(self) -> T {
        self.0
    }
}

impl<T: Copy + std::fmt::Debug> std::fmt::Debug for Packed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

impl<T: Copy + PartialEq> PartialEq for Packed<T> {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl<T: Copy + Eq> Eq for Packed<T> {}

#[cfg(feature = "serde")]
impl<T: Copy + serde::Serialize> serde::Serialize for Packed<T> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        self.get().serialize(serializer)
    }
}

#[cfg(feature = "serde")]
impl<'de, T: Copy + serde::Deserialize<'de>> serde::Deserialize<'de> for Packed<T> {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        T::deserialize(deserializer).map(Packed)
    }
}

impl Extremum {
    /// [`CellState::apply_all`] on a Max (`keep_larger`) or Min column's state: all or nothing.
    fn apply_all(&mut self, ops: &[CellOp], keep_larger: bool, state: &'static str) -> Result<()> {
        let mut next = self.clone();
        for op in ops {
            match (op, keep_larger) {
                (CellOp::Max(v), true) | (CellOp::Min(v), false) if next.accepts(v) => {
                    next.raise(*v, keep_larger);
                }
                (CellOp::Max(v) | CellOp::Min(v), _) if !next.accepts(v) => {
                    return Err(mismatch(state, v.kind()));
                }
                _ => return Err(mismatch(state, op.kind())),
            }
        }
        *self = next;
        Ok(())
    }

    fn raise(&mut self, candidate: Scalar, keep_larger: bool) {
        self.best = Some(Packed(match self.best.map(Packed::get) {
            None => candidate,
            Some(b) if keep_larger => b.max(candidate),
            Some(b) => b.min(candidate),
        }));
    }

    fn accepts(&self, v: &Scalar) -> bool {
        matches!(
            (self.value_type, v),
            (ValueType::Integer, Scalar::Integer(_))
                | (ValueType::Float, Scalar::Float(_))
                | (ValueType::Decimal { .. }, Scalar::Decimal(_))
                | (ValueType::Boolean, Scalar::Boolean(_))
        )
    }

    fn value(&self) -> Result<AlgebraicValue> {
        Ok(match self.best.map(Packed::get) {
            None => AlgebraicValue::Null,
            Some(Scalar::Integer(v)) => AlgebraicValue::Integer(v),
            Some(Scalar::Float(v)) => AlgebraicValue::Float(v),
            Some(Scalar::Boolean(v)) => AlgebraicValue::Boolean(v),
            Some(Scalar::Decimal(m)) => {
                let ValueType::Decimal { scale } = self.value_type else {
                    return Err(mismatch(self.value_type.name(), "decimal"));
                };
                AlgebraicValue::Decimal(Decimal::new(m, scale)?)
            }
        })
    }
}

/// An Intersect column's state: `None` is the universe (no constraint yet), the identity of
/// intersection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct Meet {
    value_type: ValueType,
    set: Option<Elements>,
}

impl Meet {
    /// [`CellState::apply_all`] on an Intersect column's state: every operation is checked
    /// before any is applied.
    fn apply_all(&mut self, ops: &[CellOp], state: &'static str) -> Result<()> {
        let expected = Elements::empty_like(self.value_type).kind();
        for op in ops {
            match op {
                CellOp::Intersect(e) if e.kind() == expected => {}
                _ => return Err(mismatch(state, op.kind())),
            }
        }
        for op in ops {
            if let CellOp::Intersect(e) = op {
                match &mut self.set {
                    None => self.set = Some(e.clone()),
                    Some(s) => s.intersect_with(e)?,
                }
            }
        }
        Ok(())
    }
}

/// [`CellState::apply_all`] on a Union column's state: every operation is checked before any
/// is applied.
fn union_all(set: &mut Elements, ops: &[CellOp], state: &'static str) -> Result<()> {
    for op in ops {
        match op {
            CellOp::Union(e) if e.kind() == set.kind() => {}
            _ => return Err(mismatch(state, op.kind())),
        }
    }
    for op in ops {
        if let CellOp::Union(e) = op {
            set.union_with(e)?;
        }
    }
    Ok(())
}

/// What an observed-remove set of `E` takes from one operation.
enum OrEffect<'a, E> {
    /// Elements to add, tagged with the update's dot.
    Add(&'a SortedSet<E>),
    /// Observed tags to delete.
    Remove(&'a SortedSet<(E, Dot)>),
}

/// The effect of `op` on a string observed-remove set; `None` for any other operation.
fn string_effect(op: &CellOp) -> Option<OrEffect<'_, String>> {
    match op {
        CellOp::OrAdd(Elements::Strings(e)) => Some(OrEffect::Add(e)),
        CellOp::OrRemove(ObservedTags::Strings(t)) => Some(OrEffect::Remove(t)),
        _ => None,
    }
}

/// The effect of `op` on an integer observed-remove set; `None` for any other operation.
fn int_effect(op: &CellOp) -> Option<OrEffect<'_, i64>> {
    match op {
        CellOp::OrAdd(Elements::Ints(e)) => Some(OrEffect::Add(e)),
        CellOp::OrRemove(ObservedTags::Ints(t)) => Some(OrEffect::Remove(t)),
        _ => None,
    }
}

/// [`CellState::apply_all`] on an observed-remove set: every operation must have an `effect`
/// on it (else the first that has none is refused and nothing changes), then all are applied
/// under `dot`.
fn apply_or_set<E: Ord + Clone>(
    set: &mut OrSet<E>,
    ops: &[CellOp],
    dot: Dot,
    state: &'static str,
    effect: impl Fn(&CellOp) -> Option<OrEffect<'_, E>>,
) -> Result<()> {
    if let Some(op) = ops.iter().find(|op| effect(op).is_none()) {
        return Err(mismatch(state, op.kind()));
    }
    for op in ops {
        match effect(op) {
            Some(OrEffect::Add(elements)) => set.add(elements, dot),
            Some(OrEffect::Remove(tags)) => set.remove(tags, dot),
            None => {}
        }
    }
    Ok(())
}

/// Folds `ops` into one origin's partial aggregate with `step`, which gives the next partial
/// for an operation of this state's kind and `None` for any other: such an operation refuses
/// the update whole.
#[inline]
fn fold_ops<P>(
    partial: P,
    ops: &[CellOp],
    state: &'static str,
    step: impl Fn(P, &CellOp) -> Option<Result<P>>,
) -> Result<P> {
    ops.iter().try_fold(partial, |partial, op| {
        step(partial, op).unwrap_or_else(|| Err(mismatch(state, op.kind())))
    })
}

/// A register: written only through consensus, in log order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct Register {
    /// How many writes have been applied (the same on every replica at the same log position).
    version: u64,
    /// Boxed: an `AlgebraicValue` is 16-byte aligned and would pad every [`CellState`] to 64
    /// bytes, and registers are rare beside counters. Encoded as the value itself.
    value: Box<AlgebraicValue>,
}

impl Register {
    /// [`CellState::apply_all`] on a register: writes and compare-and-sets in order, each
    /// counting as one write; a failed condition refuses them all.
    fn apply_all(&mut self, ops: &[CellOp], state: &'static str) -> Result<()> {
        let mut next = self.clone();
        for op in ops {
            match op {
                CellOp::Overwrite(v) => *next.value = (**v).clone(),
                CellOp::CompareAndSet { expected, new } => {
                    if *next.value != **expected {
                        return Err(AlgebraError::ConditionFailed {
                            expected: expected.to_string(),
                            found: next.value.to_string(),
                        });
                    }
                    *next.value = (**new).clone();
                }
                _ => return Err(mismatch(state, op.kind())),
            }
            next.version += 1;
        }
        *self = next;
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
enum StateKind {
    Max(Extremum),
    Min(Extremum),
    SumInt(IntSum),
    SumFloat(PerOrigin<TotalF64>),
    SumDecimal {
        scale: u8,
        origins: PerOrigin<WideInt>,
    },
    ProductInt(PerOrigin<IntProduct>),
    ProductFloat(PerOrigin<FloatProduct>),
    Union(Elements),
    Intersect(Meet),
    OrSetStrings(OrSet<String>),
    OrSetInts(OrSet<i64>),
    Register(Register),
}

// Every cell of a replica holds one; the inline origin entry of a counter fits in it, and
// every other kind fits beside the kind's tag.
const _: () = assert!(std::mem::size_of::<CellState>() == 48);

/// The state one cell converges to. Every replica that has applied the same updates — in any
/// order, in any grouping, through any mix of [`CellState::apply`] and [`CellState::merge`] —
/// holds an equal state (`==` compares floats by bits, and equal states encode to equal bytes).
///
/// What each merge type keeps (see `docs/proofs/convergence.md`):
/// - `Max`/`Min`: the extreme value (a total order; floats by `total_cmp`).
/// - `Union`: the grow-only set. `Intersect`: the meet, starting from "every element".
/// - `Add`/`Multiply`: per origin, the highest dot counter applied and that origin's partial
///   aggregate; the read folds the partials in `NodeId` order. Integer and decimal sums are
///   exact (wide accumulators); a result outside the value type is an `Overflow` error on read.
/// - `ObservedRemoveSet`: add-wins observed-remove set with tombstones, one tag per element
///   and origin (an origin's newer add supersedes its older tag of the element).
/// - `Register`: the latest write in consensus order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "StateKind"))]
pub struct CellState {
    kind: StateKind,
}

impl CellState {
    /// The initial state of a cell of column `spec`: the identity of its merge.
    ///
    /// ```
    /// use rhizo_algebra::{AlgebraicValue, CellState, ColumnSpec, MergeType, ValueType};
    /// let sum = ColumnSpec::new(MergeType::Add, ValueType::Integer).unwrap();
    /// assert_eq!(CellState::new(&sum).value().unwrap(), AlgebraicValue::Integer(0));
    /// let peak = ColumnSpec::new(MergeType::Max, ValueType::Integer).unwrap();
    /// assert_eq!(CellState::new(&peak).value().unwrap(), AlgebraicValue::Null);
    /// ```
    pub fn new(spec: &ColumnSpec) -> CellState {
        let value_type = spec.value_type();
        let kind = match (spec.merge(), value_type) {
            (MergeType::Max, _) => StateKind::Max(Extremum {
                value_type,
                best: None,
            }),
            (MergeType::Min, _) => StateKind::Min(Extremum {
                value_type,
                best: None,
            }),
            (MergeType::Add, ValueType::Float) => StateKind::SumFloat(PerOrigin::default()),
            (MergeType::Add, ValueType::Decimal { scale }) => StateKind::SumDecimal {
                scale,
                origins: PerOrigin::default(),
            },
            (MergeType::Add, _) => StateKind::SumInt(IntSum::default()),
            (MergeType::Multiply, ValueType::Float) => {
                StateKind::ProductFloat(PerOrigin::default())
            }
            (MergeType::Multiply, _) => StateKind::ProductInt(PerOrigin::default()),
            (MergeType::Union, _) => StateKind::Union(Elements::empty_like(value_type)),
            (MergeType::Intersect, _) => StateKind::Intersect(Meet {
                value_type,
                set: None,
            }),
            (MergeType::ObservedRemoveSet, ValueType::IntSet) => {
                StateKind::OrSetInts(OrSet::default())
            }
            (MergeType::ObservedRemoveSet, _) => StateKind::OrSetStrings(OrSet::default()),
            (MergeType::Register, _) => StateKind::Register(Register {
                version: 0,
                value: Box::new(AlgebraicValue::Null),
            }),
        };
        CellState { kind }
    }

    fn kind_name(&self) -> &'static str {
        match &self.kind {
            StateKind::Max(_) => "MAX",
            StateKind::Min(_) => "MIN",
            StateKind::SumInt(_) => "integer ADD",
            StateKind::SumFloat(_) => "float ADD",
            StateKind::SumDecimal { .. } => "decimal ADD",
            StateKind::ProductInt(_) => "integer MULTIPLY",
            StateKind::ProductFloat(_) => "float MULTIPLY",
            StateKind::Union(_) => "UNION",
            StateKind::Intersect(_) => "INTERSECT",
            StateKind::OrSetStrings(_) => "string OR_SET",
            StateKind::OrSetInts(_) => "int OR_SET",
            StateKind::Register(_) => "REGISTER",
        }
    }

    /// Applies the effect `op` of the update named `dot`.
    ///
    /// The caller applies each update at most once per replica and, for Add and Multiply
    /// columns, one origin's updates in that origin's dot order (causal delivery gives both).
    /// An update whose dot is not newer than its origin's last applied one is a duplicate and is
    /// ignored. All effects of one update on one cell must be applied together, with
    /// [`CellState::apply_all`]: a second `apply` under the same dot would be ignored.
    /// On error the state is unchanged.
    ///
    /// ```
    /// use rhizo_algebra::{AlgebraicValue, CellOp, CellState, ColumnSpec, MergeType, OpType, ValueType};
    /// use rhizo_clock::{Dot, NodeId};
    /// let spec = ColumnSpec::new(MergeType::Add, ValueType::Integer).unwrap();
    /// let add = CellOp::new(&spec, OpType::AbelianAdd, &AlgebraicValue::Integer(5)).unwrap();
    /// let dot = Dot::new(NodeId::new("a").unwrap(), 1).unwrap();
    /// let mut cell = CellState::new(&spec);
    /// cell.apply(&add, dot).unwrap();
    /// cell.apply(&add, dot).unwrap(); // the same update again: a duplicate, ignored
    /// assert_eq!(cell.value().unwrap(), AlgebraicValue::Integer(5));
    /// ```
    #[inline]
    pub fn apply(&mut self, op: &CellOp, dot: Dot) -> Result<()> {
        // The commonest effect, an integer added to a sum, inline in the caller; the others
        // out of line, so that this stays small enough to inline (as `check_integer_range` is
        // split).
        if let (StateKind::SumInt(origins), CellOp::AddInt(v)) = (&mut self.kind, op) {
            return origins.apply(dot, |sum| add_int(sum, *v)).map(drop);
        }
        self.apply_scalar(op, dot)
    }

    /// [`CellState::apply`] of `CellOp::AddInt(amount)`, for callers that hold the amount: no
    /// operation to build, and none to drop (a `CellOp`'s drop is an out-of-line call).
    ///
    /// Hidden, as the other `*_add_int` and `*_in_range` shortcuts below: rhizo-commit's commit
    /// paths call them from another crate; users call [`CellState::apply`] and
    /// [`CellState::check_integer_range`], which compute the same.
    #[doc(hidden)]
    #[inline]
    pub fn apply_add_int(&mut self, amount: i64, dot: Dot) -> Result<()> {
        if let StateKind::SumInt(origins) = &mut self.kind {
            return origins.add(dot, amount).map(drop);
        }
        let op = CellOp::AddInt(amount);
        let applied = self.apply_scalar(&op, dot);
        op.discard();
        applied
    }

    /// [`CellState::apply`] of anything but an integer added to a sum.
    fn apply_scalar(&mut self, op: &CellOp, dot: Dot) -> Result<()> {
        // Single-effect fast paths for the other scalar columns; each computes exactly what
        // `apply_all` computes for a one-element slice (the law tests drive both).
        match (&mut self.kind, op) {
            (StateKind::SumFloat(origins), CellOp::AddFloat(v)) => {
                origins.apply(dot, |sum| finite_float(sum.0 + v.0))?;
            }
            (StateKind::ProductInt(origins), CellOp::MulInt(v)) => {
                origins.apply(dot, |product| Ok(product.times(IntProduct::from_i64(*v))))?;
            }
            (StateKind::Max(ext), CellOp::Max(v)) if ext.accepts(v) => ext.raise(*v, true),
            (StateKind::Min(ext), CellOp::Min(v)) if ext.accepts(v) => ext.raise(*v, false),
            _ => return self.apply_all(std::slice::from_ref(op), dot),
        }
        Ok(())
    }

    /// Applies all effects of the update named `dot` on this cell, in order, atomically:
    /// either all take effect or (on error) none.
    ///
    /// ```
    /// use rhizo_algebra::{AlgebraicValue, CellOp, CellState, ColumnSpec, MergeType, OpType, ValueType};
    /// use rhizo_clock::{Dot, NodeId};
    ///
    /// let spec = ColumnSpec::new(MergeType::Add, ValueType::Integer).unwrap();
    /// let add = |v| CellOp::new(&spec, OpType::AbelianAdd, &AlgebraicValue::Integer(v)).unwrap();
    /// let a = NodeId::new("a").unwrap();
    /// let mut cell = CellState::new(&spec);
    /// cell.apply_all(&[add(2), add(3)], Dot::new(a, 1).unwrap()).unwrap();
    /// assert_eq!(cell.value().unwrap(), AlgebraicValue::Integer(5));
    /// // A wrong kind anywhere refuses the whole update.
    /// let max = CellOp::new(
    ///     &ColumnSpec::new(MergeType::Max, ValueType::Integer).unwrap(),
    ///     OpType::SemilatticeMax,
    ///     &AlgebraicValue::Integer(9),
    /// ).unwrap();
    /// assert!(cell.apply_all(&[add(1), max], Dot::new(a, 2).unwrap()).is_err());
    /// assert_eq!(cell.value().unwrap(), AlgebraicValue::Integer(5));
    /// ```
    pub fn apply_all(&mut self, ops: &[CellOp], dot: Dot) -> Result<()> {
        let state = self.kind_name();
        match &mut self.kind {
            StateKind::SumInt(origins) => {
                origins.apply(dot, |sum| {
                    fold_ops(sum, ops, state, |sum, op| match op {
                        CellOp::AddInt(v) => Some(add_int(sum, *v)),
                        _ => None,
                    })
                })?;
            }
            StateKind::SumFloat(origins) => {
                origins.apply(dot, |sum| {
                    fold_ops(sum, ops, state, |sum, op| match op {
                        CellOp::AddFloat(v) => Some(finite_float(sum.0 + v.0)),
                        _ => None,
                    })
                })?;
            }
            StateKind::SumDecimal { scale, origins } => {
                let overflow = || AlgebraError::overflow(ValueType::Decimal { scale: *scale });
                origins.apply(dot, |sum| {
                    fold_ops(sum, ops, state, |sum, op| match op {
                        CellOp::AddDecimal(m) => {
                            Some(sum.checked_add(WideInt::from_i128(*m)).ok_or_else(overflow))
                        }
                        _ => None,
                    })
                })?;
            }
            StateKind::ProductInt(origins) => {
                origins.apply(dot, |product| {
                    fold_ops(product, ops, state, |product, op| match op {
                        CellOp::MulInt(v) => Some(Ok(product.times(IntProduct::from_i64(*v)))),
                        _ => None,
                    })
                })?;
            }
            StateKind::ProductFloat(origins) => {
                origins.apply(dot, |product| {
                    fold_ops(product, ops, state, |product, op| match op {
                        CellOp::MulFloat(v) => {
                            Some(finite_float(product.0.0 * v.0).map(FloatProduct))
                        }
                        _ => None,
                    })
                })?;
            }
            StateKind::Max(ext) => ext.apply_all(ops, true, state)?,
            StateKind::Min(ext) => ext.apply_all(ops, false, state)?,
            StateKind::Union(set) => union_all(set, ops, state)?,
            StateKind::Intersect(meet) => meet.apply_all(ops, state)?,
            StateKind::OrSetStrings(set) => apply_or_set(set, ops, dot, state, string_effect)?,
            StateKind::OrSetInts(set) => apply_or_set(set, ops, dot, state, int_effect)?,
            StateKind::Register(reg) => reg.apply_all(ops, state)?,
        }
        Ok(())
    }

    /// [`CellState::check_integer_range`] of `op`, then [`CellState::apply`]: the committer's
    /// step for one operation. An integer added to a sum takes one pass over its origins for
    /// both. On error nothing changes.
    #[doc(hidden)]
    #[inline]
    pub fn apply_in_range(&mut self, op: &CellOp, dot: Dot) -> Result<()> {
        if let (StateKind::SumInt(origins), CellOp::AddInt(v)) = (&mut self.kind, op) {
            return origins.add_in_range(dot, *v).map(drop);
        }
        self.check_then_apply(op, dot)
    }

    /// [`CellState::apply_in_range`] of `CellOp::AddInt(amount)`, for callers that hold the
    /// amount: the committer's step for the commonest operation, with nothing to build or drop.
    #[doc(hidden)]
    #[inline]
    pub fn add_int_in_range(&mut self, amount: i64, dot: Dot) -> Result<()> {
        if let StateKind::SumInt(origins) = &mut self.kind {
            return origins.add_in_range(dot, amount).map(drop);
        }
        self.check_then_apply(&CellOp::AddInt(amount), dot)
    }

    /// [`CellState::apply_in_range`] of anything but an integer added to a sum: out of line,
    /// so that the integer path stays small enough to inline into a commit.
    #[inline(never)]
    fn check_then_apply(&mut self, op: &CellOp, dot: Dot) -> Result<()> {
        self.check_integer_range(std::slice::from_ref(op))?;
        self.apply(op, dot)
    }

    /// Refuses `ops` with [`AlgebraError::Overflow`] if applying them would take this cell's
    /// exact integer sum or product out of `i64` as this state reads now.
    ///
    /// The state itself holds any exact result (reads report an overflow), so replicas converge
    /// whatever they receive; this is the committer's check, so that a node does not
    /// acknowledge a write it could not read back. A cell already out of range (through updates
    /// of others) is left to its reads. Other kinds have nothing to check.
    ///
    /// ```
    /// use rhizo_algebra::{AlgebraicValue, CellOp, CellState, ColumnSpec, MergeType, OpType, ValueType};
    /// use rhizo_clock::{Dot, NodeId};
    /// let spec = ColumnSpec::new(MergeType::Add, ValueType::Integer).unwrap();
    /// let add = |v| CellOp::new(&spec, OpType::AbelianAdd, &AlgebraicValue::Integer(v)).unwrap();
    /// let mut cell = CellState::new(&spec);
    /// cell.apply(&add(i64::MAX), Dot::new(NodeId::new("a").unwrap(), 1).unwrap()).unwrap();
    /// assert!(cell.check_integer_range(&[add(1)]).is_err());
    /// assert!(cell.check_integer_range(&[add(-1)]).is_ok());
    /// ```
    #[inline]
    pub fn check_integer_range(&self, ops: &[CellOp]) -> Result<()> {
        // One integer added to a sum: the common commit, checked inline without the general
        // fold (out of line, as in `apply`).
        if let (StateKind::SumInt(origins), [CellOp::AddInt(v)]) = (&self.kind, ops) {
            return sum_in_range(origins, *v);
        }
        self.check_integer_range_folded(ops)
    }

    /// [`CellState::check_integer_range`] of `[CellOp::AddInt(amount)]`, for callers that
    /// hold the amount (as [`CellState::apply_add_int`]).
    #[doc(hidden)]
    #[inline]
    pub fn check_add_int(&self, amount: i64) -> Result<()> {
        if let StateKind::SumInt(origins) = &self.kind {
            return sum_in_range(origins, amount);
        }
        let ops = [CellOp::AddInt(amount)];
        let checked = self.check_integer_range_folded(&ops);
        let [op] = ops;
        op.discard();
        checked
    }

    /// [`CellState::check_integer_range`] by the read's fold.
    fn check_integer_range_folded(&self, ops: &[CellOp]) -> Result<()> {
        let (is_sum, current) = match &self.kind {
            // The read's fold, without building a value: this runs on every local commit.
            StateKind::SumInt(origins) => {
                let total = origins
                    .partials()
                    .try_fold(0i128, |total, partial| total.checked_add(partial));
                (true, total)
            }
            StateKind::ProductInt(_) => match self.value() {
                Ok(AlgebraicValue::Integer(v)) => (false, Some(i128::from(v))),
                _ => (false, None),
            },
            _ => return Ok(()),
        };
        let Some(current) = current.filter(|c| i64::try_from(*c).is_ok()) else {
            return Ok(());
        };
        // Bounded so that the arithmetic cannot overflow; anything this large is out of range.
        const BOUND: i128 = 1 << 100;
        let mut result = current;
        for op in ops {
            result = match op {
                CellOp::AddInt(v) if is_sum => result.saturating_add(i128::from(*v)),
                CellOp::MulInt(v) if !is_sum => result.saturating_mul(i128::from(*v)),
                _ => continue,
            }
            .clamp(-BOUND, BOUND);
        }
        match i64::try_from(result) {
            Ok(_) => Ok(()),
            Err(_) => Err(AlgebraError::overflow(ValueType::Integer)),
        }
    }

    /// Whether [`CellState::merge`] of `other` into this state cannot fail: both are the same
    /// kind with the same parameters, and the kind has no size limit to reach (only grow-only
    /// `Union` and `Intersect` sets may exceed theirs). A replica merges such a state in place,
    /// without first trying it on a copy.
    pub fn merges_infallibly(&self, other: &CellState) -> bool {
        use StateKind as K;
        match (&self.kind, &other.kind) {
            (K::Max(a), K::Max(b)) | (K::Min(a), K::Min(b)) => a.value_type == b.value_type,
            (K::SumDecimal { scale, .. }, K::SumDecimal { scale: theirs, .. }) => scale == theirs,
            (K::SumInt(_), K::SumInt(_))
            | (K::SumFloat(_), K::SumFloat(_))
            | (K::ProductInt(_), K::ProductInt(_))
            | (K::ProductFloat(_), K::ProductFloat(_))
            | (K::OrSetStrings(_), K::OrSetStrings(_))
            | (K::OrSetInts(_), K::OrSetInts(_))
            | (K::Register(_), K::Register(_)) => true,
            _ => false,
        }
    }

    /// Joins `other` into this state: the least upper bound of the two, so merging is
    /// commutative, associative and idempotent. Both must be states of the same column kind.
    ///
    /// ```
    /// use rhizo_algebra::{AlgebraicValue, CellOp, CellState, ColumnSpec, MergeType, OpType, ValueType};
    /// use rhizo_clock::{Dot, NodeId};
    /// let spec = ColumnSpec::new(MergeType::Max, ValueType::Integer).unwrap();
    /// let max = |v| CellOp::new(&spec, OpType::SemilatticeMax, &AlgebraicValue::Integer(v)).unwrap();
    /// let (a, b) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
    /// let (mut on_a, mut on_b) = (CellState::new(&spec), CellState::new(&spec));
    /// on_a.apply(&max(3), Dot::new(a, 1).unwrap()).unwrap();
    /// on_b.apply(&max(8), Dot::new(b, 1).unwrap()).unwrap();
    /// let mut joined = on_a.clone();
    /// joined.merge(&on_b).unwrap();
    /// on_b.merge(&on_a).unwrap();
    /// assert_eq!(joined, on_b); // commutative
    /// assert_eq!(joined.value().unwrap(), AlgebraicValue::Integer(8));
    /// ```
    pub fn merge(&mut self, other: &CellState) -> Result<()> {
        self.merge_expecting(other, 0)
    }

    /// [`CellState::merge`], told that the cell may come to hold entries of up to
    /// `expected_origins` origins (its replica's members, say): a per-origin list that must grow
    /// makes room for them at once, up to four times the origins it then holds, rather than
    /// doubling once per merge as news of them spreads. The result is the same.
    pub(crate) fn merge_expecting(
        &mut self,
        other: &CellState,
        expected_origins: usize,
    ) -> Result<()> {
        let state = self.kind_name();
        let is_max = matches!(self.kind, StateKind::Max(_));
        let refuse = || Err(mismatch(state, other.kind_name()));
        match (&mut self.kind, &other.kind) {
            (StateKind::Max(a), StateKind::Max(b)) | (StateKind::Min(a), StateKind::Min(b)) => {
                if a.value_type != b.value_type {
                    return refuse();
                }
                if let Some(v) = b.best {
                    a.raise(v.get(), is_max);
                }
            }
            (StateKind::SumInt(a), StateKind::SumInt(b)) => a.merge(b, expected_origins),
            (StateKind::SumFloat(a), StateKind::SumFloat(b)) => a.merge(b, expected_origins),
            (
                StateKind::SumDecimal { scale, origins },
                StateKind::SumDecimal {
                    scale: other_scale,
                    origins: b,
                },
            ) => {
                if scale != other_scale {
                    return refuse();
                }
                origins.merge(b, expected_origins);
            }
            (StateKind::ProductInt(a), StateKind::ProductInt(b)) => a.merge(b, expected_origins),
            (StateKind::ProductFloat(a), StateKind::ProductFloat(b)) => {
                a.merge(b, expected_origins)
            }
            (StateKind::Union(a), StateKind::Union(b)) => a.union_with(b)?,
            (StateKind::Intersect(a), StateKind::Intersect(b)) => {
                if a.value_type != b.value_type {
                    return refuse();
                }
                match (&mut a.set, &b.set) {
                    (_, None) => {}
                    (None, Some(s)) => a.set = Some(s.clone()),
                    (Some(x), Some(y)) => x.intersect_with(y)?,
                }
            }
            (StateKind::OrSetStrings(a), StateKind::OrSetStrings(b)) => a.merge(b),
            (StateKind::OrSetInts(a), StateKind::OrSetInts(b)) => a.merge(b),
            (StateKind::Register(a), StateKind::Register(b)) => {
                // Consensus makes equal versions hold equal values; the value tie-break keeps
                // the join total (and commutative) even if they did not.
                if (b.version, &b.value) > (a.version, &a.value) {
                    *a = b.clone();
                }
            }
            _ => return refuse(),
        }
        Ok(())
    }

    /// The cell's value.
    ///
    /// Add and Multiply fold the per-origin partials in `NodeId` order. When the exact result
    /// lies outside the value type (an integer beyond i64, a decimal beyond 38 digits, a float
    /// beyond the finite range) this returns [`AlgebraError::Overflow`] — the same on every
    /// replica holding the same updates. Unwritten Max/Min cells and untouched Intersect cells
    /// read `Null`; unwritten sums read 0 and products 1 (their identities).
    ///
    /// ```
    /// use rhizo_algebra::{AlgebraError, AlgebraicValue, CellOp, CellState, ColumnSpec, MergeType, OpType, ValueType};
    /// use rhizo_clock::{Dot, NodeId};
    /// let spec = ColumnSpec::new(MergeType::Add, ValueType::Integer).unwrap();
    /// let add = CellOp::new(&spec, OpType::AbelianAdd, &AlgebraicValue::Integer(i64::MAX)).unwrap();
    /// let mut cell = CellState::new(&spec);
    /// cell.apply(&add, Dot::new(NodeId::new("a").unwrap(), 1).unwrap()).unwrap();
    /// cell.apply(&add, Dot::new(NodeId::new("b").unwrap(), 1).unwrap()).unwrap();
    /// // The state holds the exact sum; a read outside i64 says so.
    /// assert!(matches!(cell.value(), Err(AlgebraError::Overflow { .. })));
    /// ```
    pub fn value(&self) -> Result<AlgebraicValue> {
        Ok(match &self.kind {
            StateKind::Max(e) | StateKind::Min(e) => e.value()?,
            StateKind::SumInt(origins) => {
                let overflow = AlgebraError::Overflow {
                    value_type: ValueType::Integer,
                };
                let mut total = WideInt::ZERO;
                for p in origins.partials() {
                    total = total
                        .checked_add(WideInt::from_i128(p))
                        .ok_or_else(|| overflow.clone())?;
                }
                let total = total.to_i128().ok_or_else(|| overflow.clone())?;
                AlgebraicValue::Integer(i64::try_from(total).map_err(|_| overflow)?)
            }
            StateKind::SumFloat(origins) => {
                if origins.is_empty() {
                    return Ok(AlgebraicValue::float(0.0));
                }
                let mut total = -0.0f64;
                for p in origins.partials() {
                    total += p.0;
                    finite(total)?;
                }
                AlgebraicValue::float(total)
            }
            StateKind::SumDecimal { scale, origins } => {
                let overflow = AlgebraError::Overflow {
                    value_type: ValueType::Decimal { scale: *scale },
                };
                let mut total = WideInt::ZERO;
                for p in origins.partials() {
                    total = total.checked_add(p).ok_or_else(|| overflow.clone())?;
                }
                let mantissa = total.to_i128().ok_or_else(|| overflow.clone())?;
                AlgebraicValue::Decimal(Decimal::new(mantissa, *scale).map_err(|_| overflow)?)
            }
            StateKind::ProductInt(origins) => {
                let product = origins
                    .partials()
                    .fold(IntProduct::from_i64(1), IntProduct::times);
                AlgebraicValue::Integer(
                    product
                        .to_i64()
                        .ok_or_else(|| AlgebraError::overflow(ValueType::Integer))?,
                )
            }
            StateKind::ProductFloat(origins) => {
                let mut product = 1.0f64;
                for p in origins.partials() {
                    product *= p.0.0;
                    finite(product)?;
                }
                AlgebraicValue::float(product)
            }
            StateKind::Union(set) => set.to_value(),
            StateKind::Intersect(meet) => meet
                .set
                .as_ref()
                .map_or(AlgebraicValue::Null, Elements::to_value),
            StateKind::OrSetStrings(set) => AlgebraicValue::StringSet(set.elements()),
            StateKind::OrSetInts(set) => AlgebraicValue::IntSet(set.elements()),
            StateKind::Register(reg) => (*reg.value).clone(),
        })
    }

    /// The live tags of `element` in an observed-remove set (empty for other states): what a
    /// remove issued against this replica's view would delete.
    pub fn observed(&self, element: ElementRef<'_>) -> Vec<Dot> {
        match (&self.kind, element) {
            (StateKind::OrSetStrings(set), ElementRef::Str(s)) => set.observed(&s.to_owned()),
            (StateKind::OrSetInts(set), ElementRef::Int(i)) => set.observed(&i),
            _ => Vec::new(),
        }
    }

    /// Builds the remove of the elements in `value` (a set) from an observed-remove set column:
    /// it deletes exactly the tags of those elements this state has observed.
    ///
    /// ```
    /// use rhizo_algebra::{AlgebraicValue, CellOp, CellState, ColumnSpec, ElementRef, MergeType, OpType, ValueType};
    /// use rhizo_clock::{Dot, NodeId};
    /// let spec = ColumnSpec::new(MergeType::ObservedRemoveSet, ValueType::StringSet).unwrap();
    /// let vip = AlgebraicValue::string_set(["vip"]);
    /// let a = NodeId::new("a").unwrap();
    /// let mut cell = CellState::new(&spec);
    /// cell.apply(&CellOp::new(&spec, OpType::OrSetAdd, &vip).unwrap(), Dot::new(a, 1).unwrap()).unwrap();
    /// assert_eq!(cell.observed(ElementRef::Str("vip")), [Dot::new(a, 1).unwrap()]);
    /// let remove = cell.remove_op(&spec, &vip).unwrap();
    /// cell.apply(&remove, Dot::new(a, 2).unwrap()).unwrap();
    /// assert_eq!(cell.value().unwrap(), AlgebraicValue::string_set(Vec::<String>::new()));
    /// assert_eq!(cell.tombstone_count(), 1); // kept until every member has seen the remove
    /// ```
    pub fn remove_op(&self, spec: &ColumnSpec, value: &AlgebraicValue) -> Result<CellOp> {
        spec.validate(OpType::OrSetRemove, value)?;
        match (&self.kind, value) {
            (StateKind::OrSetStrings(set), AlgebraicValue::StringSet(elements)) => {
                let tags = elements
                    .iter()
                    .flat_map(|e| set.observed(e).into_iter().map(move |d| (e.clone(), d)))
                    .collect();
                Ok(CellOp::OrRemove(ObservedTags::Strings(tags)))
            }
            (StateKind::OrSetInts(set), AlgebraicValue::IntSet(elements)) => {
                let tags = elements
                    .iter()
                    .flat_map(|e| set.observed(e).into_iter().map(move |d| (*e, d)))
                    .collect();
                Ok(CellOp::OrRemove(ObservedTags::Ints(tags)))
            }
            _ => Err(mismatch(self.kind_name(), value.kind_name())),
        }
    }

    /// Discards observed-remove tombstones whose tag and remover are both in `stable`, the
    /// causally stable clock (what every member has delivered). Other states are unchanged.
    ///
    /// After compaction this state must only meet updates and states that are not older than
    /// `stable`; the replica layer guarantees that by delivering each update once.
    ///
    /// ```
    /// use rhizo_algebra::{AlgebraicValue, CellOp, CellState, ColumnSpec, MergeType, OpType, ValueType};
    /// use rhizo_clock::{Dot, NodeId, VectorClock};
    /// let spec = ColumnSpec::new(MergeType::ObservedRemoveSet, ValueType::IntSet).unwrap();
    /// let seven = AlgebraicValue::int_set([7]);
    /// let a = NodeId::new("a").unwrap();
    /// let mut cell = CellState::new(&spec);
    /// cell.apply(&CellOp::new(&spec, OpType::OrSetAdd, &seven).unwrap(), Dot::new(a, 1).unwrap()).unwrap();
    /// let remove = cell.remove_op(&spec, &seven).unwrap();
    /// cell.apply(&remove, Dot::new(a, 2).unwrap()).unwrap();
    /// cell.compact(&VectorClock::new().with_node(a, 1)); // the remove is not yet stable
    /// assert_eq!(cell.tombstone_count(), 1);
    /// cell.compact(&VectorClock::new().with_node(a, 2));
    /// assert_eq!(cell.tombstone_count(), 0);
    /// ```
    pub fn compact(&mut self, stable: &VectorClock) {
        match &mut self.kind {
            StateKind::OrSetStrings(set) => set.compact(stable),
            StateKind::OrSetInts(set) => set.compact(stable),
            _ => {}
        }
    }

    /// The part of this state a replica that has delivered every update in `known` may lack.
    ///
    /// For Add and Multiply, the origins' entries newer than `known`; for observed-remove sets,
    /// the tags and tombstones of updates outside `known`; other kinds are returned whole. For a
    /// state `s` built from updates of a causally closed set and a replica state `r` that
    /// reflects every update in `known`, `r.merge(&s.restricted(known))` equals `r.merge(&s)`:
    /// this is what lets a delta carry only what its receiver lacks.
    ///
    /// ```
    /// use rhizo_algebra::{AlgebraicValue, CellOp, CellState, ColumnSpec, MergeType, OpType, ValueType};
    /// use rhizo_clock::{Dot, NodeId, VectorClock};
    /// let spec = ColumnSpec::new(MergeType::Add, ValueType::Integer).unwrap();
    /// let add = CellOp::new(&spec, OpType::AbelianAdd, &AlgebraicValue::Integer(1)).unwrap();
    /// let (a, b) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
    /// let mut sender = CellState::new(&spec);
    /// sender.apply(&add, Dot::new(a, 1).unwrap()).unwrap();
    /// sender.apply(&add, Dot::new(b, 1).unwrap()).unwrap();
    /// // A receiver that holds a's update already gets only b's.
    /// let mut receiver = CellState::new(&spec);
    /// receiver.apply(&add, Dot::new(a, 1).unwrap()).unwrap();
    /// let known = VectorClock::new().with_node(a, 1);
    /// receiver.merge(&sender.restricted(&known)).unwrap();
    /// assert_eq!(receiver, sender);
    /// ```
    pub fn restricted(&self, known: &VectorClock) -> CellState {
        let kind = match &self.kind {
            StateKind::SumInt(o) => StateKind::SumInt(o.restricted(known)),
            StateKind::SumFloat(o) => StateKind::SumFloat(o.restricted(known)),
            StateKind::SumDecimal { scale, origins } => StateKind::SumDecimal {
                scale: *scale,
                origins: origins.restricted(known),
            },
            StateKind::ProductInt(o) => StateKind::ProductInt(o.restricted(known)),
            StateKind::ProductFloat(o) => StateKind::ProductFloat(o.restricted(known)),
            StateKind::OrSetStrings(set) => StateKind::OrSetStrings(set.restricted(known)),
            StateKind::OrSetInts(set) => StateKind::OrSetInts(set.restricted(known)),
            other => other.clone(),
        };
        CellState { kind }
    }

    /// Joins into this state what `other` holds beyond `known`: the same as
    /// `self.merge(&other.restricted(known))`.
    ///
    /// A replica joins a peer's state this way, with `known` its own clock: this state reflects
    /// every update in `known` already — including removes whose tombstones it may have
    /// collected — so the tags of those updates that `other` still holds can only be stale
    /// copies, and joining them whole would bring a collected remove's element back. For a
    /// state that has collected no tombstone it is the same as `merge`.
    ///
    /// ```
    /// use rhizo_algebra::{AlgebraicValue, CellOp, CellState, ColumnSpec, MergeType, OpType, ValueType};
    /// use rhizo_clock::{Dot, NodeId, VectorClock};
    /// let spec = ColumnSpec::new(MergeType::ObservedRemoveSet, ValueType::StringSet).unwrap();
    /// let x = AlgebraicValue::string_set(["x"]);
    /// let a = NodeId::new("a").unwrap();
    /// let mut stale = CellState::new(&spec); // a peer that saw the add but not the remove
    /// stale.apply(&CellOp::new(&spec, OpType::OrSetAdd, &x).unwrap(), Dot::new(a, 1).unwrap()).unwrap();
    /// let mut mine = stale.clone();
    /// let remove = mine.remove_op(&spec, &x).unwrap();
    /// mine.apply(&remove, Dot::new(a, 2).unwrap()).unwrap();
    /// mine.compact(&VectorClock::new().with_node(a, 2)); // tombstone collected
    /// mine.merge_beyond(&stale, &VectorClock::new().with_node(a, 2)).unwrap();
    /// assert_eq!(mine.value().unwrap(), AlgebraicValue::string_set(Vec::<String>::new()));
    /// ```
    pub fn merge_beyond(&mut self, other: &CellState, known: &VectorClock) -> Result<()> {
        self.merge_beyond_expecting(other, known, 0)
    }

    /// [`CellState::merge_beyond`], expecting `expected_origins` origins as
    /// [`CellState::merge_expecting`] does.
    pub(crate) fn merge_beyond_expecting(
        &mut self,
        other: &CellState,
        known: &VectorClock,
        expected_origins: usize,
    ) -> Result<()> {
        match (&self.kind, &other.kind) {
            (StateKind::OrSetStrings(_), _) | (StateKind::OrSetInts(_), _) => {
                self.merge_expecting(&other.restricted(known), expected_origins)
            }
            _ => self.merge_expecting(other, expected_origins),
        }
    }

    /// Before joining `complete` — the whole state of this cell on a replica that had
    /// delivered every update in `clock` — drops what that replica shows removed without
    /// keeping a trace: the live tags of an observed-remove set that `clock` covers and for
    /// whose element and origin `complete` holds no tag at all. That replica delivered those
    /// adds and holds neither them, nor a newer add of their origin, nor a tombstone, so a
    /// remove it delivered deleted them and the tombstone was collected. Other states, and
    /// states of another kind, are unchanged.
    ///
    /// With [`CellState::merge_beyond`] after it, this is the join of two replicas' states
    /// given what each has delivered: it is what lets a replica collect a tombstone before a
    /// replica that lacks the remove (a member joining, one re-added) has it, and hand that
    /// replica its whole state instead.
    ///
    /// ```
    /// use rhizo_algebra::{AlgebraicValue, CellOp, CellState, ColumnSpec, MergeType, OpType, ValueType};
    /// use rhizo_clock::{Dot, NodeId, VectorClock};
    /// let spec = ColumnSpec::new(MergeType::ObservedRemoveSet, ValueType::StringSet).unwrap();
    /// let x = AlgebraicValue::string_set(["x"]);
    /// let a = NodeId::new("a").unwrap();
    /// let mut behind = CellState::new(&spec); // holds the add, never saw the remove
    /// behind.apply(&CellOp::new(&spec, OpType::OrSetAdd, &x).unwrap(), Dot::new(a, 1).unwrap()).unwrap();
    /// let mut complete = behind.clone(); // removed x and collected the tombstone
    /// let remove = complete.remove_op(&spec, &x).unwrap();
    /// complete.apply(&remove, Dot::new(a, 2).unwrap()).unwrap();
    /// let clock = VectorClock::new().with_node(a, 2);
    /// complete.compact(&clock);
    /// behind.retract_collected(&complete, &clock);
    /// behind.merge(&complete).unwrap();
    /// assert_eq!(behind, complete);
    /// ```
    pub fn retract_collected(&mut self, complete: &CellState, clock: &VectorClock) {
        match (&mut self.kind, &complete.kind) {
            (StateKind::OrSetStrings(mine), StateKind::OrSetStrings(theirs)) => {
                mine.retract_collected(theirs, clock);
            }
            (StateKind::OrSetInts(mine), StateKind::OrSetInts(theirs)) => {
                mine.retract_collected(theirs, clock);
            }
            _ => {}
        }
    }

    /// Reads a word of each cache line of the entries an integer sum keeps out of line, if it
    /// keeps them, and returns them folded (0 for any other state): nothing else. A replica
    /// about to join or restrict many cells reads each ahead, in a loop of its own, so that
    /// the misses on the cells' lists overlap instead of each waiting on its own in turn.
    #[doc(hidden)]
    #[inline]
    pub fn read_ahead(&self) -> u64 {
        match &self.kind {
            StateKind::SumInt(sum) => sum.lines_read(),
            _ => 0,
        }
    }

    /// How many observed-remove tombstones await [`CellState::compact`] (0 for other states).
    pub fn tombstone_count(&self) -> usize {
        match &self.kind {
            StateKind::OrSetStrings(set) => set.tombstone_count(),
            StateKind::OrSetInts(set) => set.tombstone_count(),
            _ => 0,
        }
    }

    /// For Add and Multiply columns, the highest dot counter of `origin` applied (0 if none or
    /// for other columns): a replica may use it to recognise duplicates.
    pub fn applied_seq(&self, origin: NodeId) -> u64 {
        match &self.kind {
            StateKind::SumInt(o) => o.seq(origin),
            StateKind::SumFloat(o) => o.seq(origin),
            StateKind::SumDecimal { origins, .. } => origins.seq(origin),
            StateKind::ProductInt(o) => o.seq(origin),
            StateKind::ProductFloat(o) => o.seq(origin),
            _ => 0,
        }
    }

    fn check_canonical(&self) -> Result<()> {
        match &self.kind {
            StateKind::SumInt(o) => o.check_canonical(),
            StateKind::SumFloat(o) => o.check_canonical(),
            StateKind::SumDecimal { origins, scale } => {
                if *scale > Decimal::MAX_SCALE {
                    return Err(AlgebraError::DecimalScale {
                        found: *scale,
                        max: Decimal::MAX_SCALE,
                    });
                }
                origins.check_canonical()
            }
            StateKind::ProductInt(o) => o.check_canonical(),
            StateKind::ProductFloat(o) => o.check_canonical(),
            StateKind::OrSetStrings(s) => s.check_canonical(),
            StateKind::OrSetInts(s) => s.check_canonical(),
            StateKind::Max(_)
            | StateKind::Min(_)
            | StateKind::Union(_)
            | StateKind::Intersect(_)
            | StateKind::Register(_) => Ok(()),
        }
    }
}

/// `x` as a float partial, if it is finite.
#[inline]
fn finite_float(x: f64) -> Result<TotalF64> {
    finite(x).map(|()| TotalF64(x))
}

fn finite(x: f64) -> Result<()> {
    if x.is_finite() {
        Ok(())
    } else {
        Err(AlgebraError::Overflow {
            value_type: ValueType::Float,
        })
    }
}

impl TryFrom<StateKind> for CellState {
    type Error = AlgebraError;
    fn try_from(kind: StateKind) -> Result<Self> {
        let state = CellState { kind };
        state.check_canonical()?;
        Ok(state)
    }
}

/// Encoded as its kind, exactly as `serde(into = "StateKind")` would, but by reference: `into`
/// clones the state on every encoding (and on every sizing of a message that carries it).
#[cfg(feature = "serde")]
impl serde::Serialize for CellState {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        self.kind.serialize(serializer)
    }
}

/// Writes an integer sum of these entries exactly as its [`CellState`] would be written
/// (`StateKind::SumInt` of a `PerOrigin`), from the entries alone.
#[cfg(feature = "serde")]
fn serialize_int_sum<S: serde::Serializer>(
    entries: int_sum::Entries<'_>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    /// `StateKind::SumInt`'s place among the kinds (the tests compare the two encodings).
    const SUM_INT: u32 = 2;
    let sum = int_sum::EncodedSum::of(entries);
    serializer.serialize_newtype_variant("StateKind", SUM_INT, "SumInt", &sum)
}

#[cfg(test)]
mod laws;
#[cfg(test)]
mod tests;
