use crate::state::{IntProduct, WideInt};
use crate::{
    AlgebraError, AlgebraicValue, Decimal, OpType, Result, SortedSet, TotalF64, ValueType,
};

/// Merges plain values of one operation kind — the roadmap's `merge_updates` building block.
///
/// `Null` is the identity of every merge (it means "no update"). The results are exact:
/// integer sums and products are computed without intermediate overflow and refused with
/// [`AlgebraError::Overflow`] only when the exact result leaves `i64`; decimal sums are exact.
///
/// IEEE float addition and multiplication are commutative but not associative, so the pairwise
/// [`AlgebraicMerger::merge`] is commutative but cannot be associative for floats.
/// [`AlgebraicMerger::merge_all`] sorts the floats into a canonical order before folding, so its
/// result depends only on the multiset of values. Replicated cells use
/// [`CellState`](crate::CellState), which is exact in every grouping.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlgebraicMerger;

impl AlgebraicMerger {
    /// The merge of two values under `op`.
    ///
    /// ```
    /// use rhizo_algebra::{AlgebraicMerger, AlgebraicValue, OpType};
    /// let sum = AlgebraicMerger::merge(OpType::AbelianAdd, &5.into(), &7.into()).unwrap();
    /// assert_eq!(sum, AlgebraicValue::Integer(12));
    /// assert!(AlgebraicMerger::merge(OpType::AbelianAdd, &i64::MAX.into(), &1.into()).is_err());
    /// ```
    #[inline]
    pub fn merge(op: OpType, a: &AlgebraicValue, b: &AlgebraicValue) -> Result<AlgebraicValue> {
        use AlgebraicValue::{Float, Integer};
        // Fast paths for the scalar cases; everything else goes through the general fold.
        match (op, a, b) {
            (OpType::AbelianAdd, Integer(x), Integer(y)) => {
                return x
                    .checked_add(*y)
                    .map(Integer)
                    .ok_or_else(|| AlgebraError::overflow(ValueType::Integer));
            }
            (OpType::SemilatticeMax, Integer(x), Integer(y)) => return Ok(Integer(*x.max(y))),
            (OpType::SemilatticeMin, Integer(x), Integer(y)) => return Ok(Integer(*x.min(y))),
            (OpType::SemilatticeMax, Float(x), Float(y)) if x.0.is_finite() && y.0.is_finite() => {
                return Ok(Float(*x.max(y)));
            }
            (OpType::SemilatticeMin, Float(x), Float(y)) if x.0.is_finite() && y.0.is_finite() => {
                return Ok(Float(*x.min(y)));
            }
            _ => {}
        }
        Self::merge_pair(op, a, b)
    }

    /// Everything but the scalar fast paths, kept out of line so that `merge` stays small
    /// enough to inline where it is called.
    #[inline(never)]
    fn merge_pair(op: OpType, a: &AlgebraicValue, b: &AlgebraicValue) -> Result<AlgebraicValue> {
        Self::merge_all(op, [a, b])
    }

    /// The merge of any number of values under `op`; `Null` for none. The result depends only
    /// on the multiset of values, never on their order.
    ///
    /// ```
    /// use rhizo_algebra::{AlgebraicMerger, AlgebraicValue, OpType};
    /// let values = [AlgebraicValue::float(1e16), AlgebraicValue::float(1.0), AlgebraicValue::float(-1e16)];
    /// let forward = AlgebraicMerger::merge_all(OpType::AbelianAdd, &values).unwrap();
    /// let backward = AlgebraicMerger::merge_all(OpType::AbelianAdd, values.iter().rev()).unwrap();
    /// assert_eq!(forward, backward); // floats are folded in one canonical order
    /// assert_eq!(AlgebraicMerger::merge_all(OpType::SemilatticeMax, []).unwrap(), AlgebraicValue::Null);
    /// ```
    pub fn merge_all<'a>(
        op: OpType,
        values: impl IntoIterator<Item = &'a AlgebraicValue>,
    ) -> Result<AlgebraicValue> {
        if !op.is_conflict_free() {
            return Err(AlgebraError::NotConflictFree { op });
        }
        let values = non_null_of_one_kind(values)?;
        let Some(first) = values.first() else {
            return Ok(AlgebraicValue::Null);
        };
        let unsupported = || AlgebraError::UnsupportedType {
            op,
            found: first.kind_name().into(),
        };
        match op {
            OpType::SemilatticeMax | OpType::SemilatticeMin => {
                if matches!(
                    first,
                    AlgebraicValue::StringSet(_) | AlgebraicValue::IntSet(_)
                ) {
                    return Err(unsupported());
                }
                let pick = if op == OpType::SemilatticeMax {
                    values.iter().max()
                } else {
                    values.iter().min()
                };
                Ok((*pick.expect("non-empty")).clone())
            }
            OpType::AbelianAdd => match first {
                AlgebraicValue::Integer(_) => integer_sum(&values),
                AlgebraicValue::Float(_) => {
                    float_fold(&values, -0.0, |acc, x| acc + x).map(AlgebraicValue::float)
                }
                AlgebraicValue::Decimal(_) => decimal_sum(&values),
                _ => Err(unsupported()),
            },
            OpType::AbelianMultiply => match first {
                AlgebraicValue::Integer(_) => {
                    let product = values
                        .iter()
                        .filter_map(|v| v.as_integer())
                        .map(IntProduct::from_i64)
                        .fold(IntProduct::from_i64(1), IntProduct::times);
                    product
                        .to_i64()
                        .map(AlgebraicValue::Integer)
                        .ok_or_else(|| AlgebraError::overflow(ValueType::Integer))
                }
                AlgebraicValue::Float(_) => {
                    float_fold(&values, 1.0, |acc, x| acc * x).map(AlgebraicValue::float)
                }
                _ => Err(unsupported()),
            },
            OpType::SemilatticeUnion
            | OpType::OrSetAdd
            | OpType::OrSetRemove
            | OpType::SemilatticeIntersect => {
                let intersect = op == OpType::SemilatticeIntersect;
                match first {
                    AlgebraicValue::StringSet(_) => {
                        let sets = values.iter().filter_map(|v| v.as_string_set());
                        Ok(AlgebraicValue::StringSet(combine_sets(sets, intersect)))
                    }
                    AlgebraicValue::IntSet(_) => {
                        let sets = values.iter().filter_map(|v| v.as_int_set());
                        Ok(AlgebraicValue::IntSet(combine_sets(sets, intersect)))
                    }
                    _ => Err(unsupported()),
                }
            }
            OpType::GenericOverwrite | OpType::GenericConditional | OpType::Unknown => {
                Err(AlgebraError::NotConflictFree { op })
            }
        }
    }
}

/// The values that are not `Null`, refused unless all are of one kind and every float is
/// finite (a merge of mixed kinds has no meaning, and NaN has no place in a total order).
fn non_null_of_one_kind<'a>(
    values: impl IntoIterator<Item = &'a AlgebraicValue>,
) -> Result<Vec<&'a AlgebraicValue>> {
    let values: Vec<&AlgebraicValue> = values.into_iter().filter(|v| !v.is_null()).collect();
    let Some(first) = values.first() else {
        return Ok(values);
    };
    for v in &values {
        if std::mem::discriminant(*v) != std::mem::discriminant(*first) {
            return Err(AlgebraError::MixedKinds {
                first: first.kind_name().into(),
                other: v.kind_name().into(),
            });
        }
        if let AlgebraicValue::Float(f) = v
            && !f.0.is_finite()
        {
            return Err(AlgebraError::NonFiniteFloat {
                bits: f.0.to_bits(),
            });
        }
    }
    Ok(values)
}

/// The exact sum of integers (all of `values` are), refused only if it leaves `i64`.
fn integer_sum(values: &[&AlgebraicValue]) -> Result<AlgebraicValue> {
    let overflow = AlgebraError::Overflow {
        value_type: ValueType::Integer,
    };
    let mut total = WideInt::ZERO;
    for v in values {
        let x = v.as_integer().expect("checked kind");
        total = total
            .checked_add(WideInt::from_i128(i128::from(x)))
            .ok_or_else(|| overflow.clone())?;
    }
    let total = total.to_i128().ok_or_else(|| overflow.clone())?;
    Ok(AlgebraicValue::Integer(
        i64::try_from(total).map_err(|_| overflow)?,
    ))
}

/// The exact sum of decimals (all of `values` are), at the largest scale among them.
fn decimal_sum(values: &[&AlgebraicValue]) -> Result<AlgebraicValue> {
    let scale = values
        .iter()
        .filter_map(|v| v.as_decimal())
        .map(|d| d.scale())
        .max()
        .expect("non-empty");
    let overflow = AlgebraError::Overflow {
        value_type: ValueType::Decimal { scale },
    };
    let mut total = WideInt::ZERO;
    for v in values {
        let d = v.as_decimal().expect("checked kind").rescale(scale)?;
        total = total
            .checked_add(WideInt::from_i128(d.mantissa()))
            .ok_or_else(|| overflow.clone())?;
    }
    let mantissa = total.to_i128().ok_or_else(|| overflow.clone())?;
    Ok(AlgebraicValue::Decimal(
        Decimal::new(mantissa, scale).map_err(|_| overflow)?,
    ))
}

/// Folds floats in ascending total order, so the result depends only on the multiset.
fn float_fold(
    values: &[&AlgebraicValue],
    identity: f64,
    f: impl Fn(f64, f64) -> f64,
) -> Result<f64> {
    let mut floats: Vec<TotalF64> = values
        .iter()
        .filter_map(|v| v.as_float())
        .map(TotalF64)
        .collect();
    floats.sort_unstable();
    let mut acc = identity;
    for x in floats {
        acc = f(acc, x.0);
        if !acc.is_finite() {
            return Err(AlgebraError::Overflow {
                value_type: ValueType::Float,
            });
        }
    }
    Ok(acc)
}

fn combine_sets<'a, T: Ord + Clone + 'a>(
    mut sets: impl Iterator<Item = &'a SortedSet<T>>,
    intersect: bool,
) -> SortedSet<T> {
    let mut acc = sets.next().cloned().unwrap_or_default();
    for s in sets {
        if intersect {
            acc.intersect_with(s);
        } else {
            acc.union_with(s);
        }
    }
    acc
}

#[cfg(test)]
mod tests;
