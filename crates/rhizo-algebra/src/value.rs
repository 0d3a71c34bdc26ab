use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use crate::{AlgebraError, Decimal, Result};

/// An `f64` that is equal to another only when their bits are equal and ordered by
/// [`f64::total_cmp`], so `-0.0 < +0.0` and equal values encode to equal bytes.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct TotalF64(pub f64);

impl PartialEq for TotalF64 {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for TotalF64 {}

impl PartialOrd for TotalF64 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for TotalF64 {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl std::hash::Hash for TotalF64 {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state);
    }
}

/// A set kept as a sorted vector without duplicates: canonical (one representation per set, so
/// equal sets encode to equal bytes) and cheap to merge by a linear walk.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "Vec<T>", into = "Vec<T>"))]
#[cfg_attr(
    feature = "serde",
    serde(bound(
        serialize = "T: serde::Serialize + Clone",
        deserialize = "T: serde::Deserialize<'de> + Ord"
    ))
)]
pub struct SortedSet<T> {
    items: Vec<T>,
}

impl<T> Default for SortedSet<T> {
    fn default() -> Self {
        Self { items: Vec::new() }
    }
}

impl<T: Ord> SortedSet<T> {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wraps a vector that is already strictly increasing; refuses anything else, so a decoded
    /// set can never alias another.
    ///
    /// ```
    /// use rhizo_algebra::SortedSet;
    /// assert_eq!(SortedSet::from_sorted(vec![1, 2, 5]).unwrap().len(), 3);
    /// assert!(SortedSet::from_sorted(vec![2, 1]).is_err());
    /// assert!(SortedSet::from_sorted(vec![1, 1]).is_err());
    /// ```
    pub fn from_sorted(items: Vec<T>) -> Result<Self> {
        if items.windows(2).all(|w| w[0] < w[1]) {
            Ok(Self { items })
        } else {
            Err(AlgebraError::NonCanonical {
                reason: "set elements must be strictly increasing".into(),
            })
        }
    }

    /// The elements, in increasing order.
    pub fn as_slice(&self) -> &[T] {
        &self.items
    }

    /// The elements, in increasing order, by value.
    pub fn into_vec(self) -> Vec<T> {
        self.items
    }

    /// How many elements the set holds.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether `item` is an element.
    pub fn contains(&self, item: &T) -> bool {
        self.items.binary_search(item).is_ok()
    }

    /// The elements in increasing order.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.items.iter()
    }

    /// Inserts `item`; returns whether it was new.
    pub fn insert(&mut self, item: T) -> bool {
        match self.items.binary_search(&item) {
            Ok(_) => false,
            Err(i) => {
                self.items.insert(i, item);
                true
            }
        }
    }
}

impl<T: Ord + Clone> SortedSet<T> {
    /// Adds every element of `other` (set union), in one linear walk.
    pub fn union_with(&mut self, other: &SortedSet<T>) {
        if other.items.is_empty() {
            return;
        }
        if self.items.is_empty() {
            self.items = other.items.clone();
            return;
        }
        if self.items.last() < other.items.first() {
            // Disjoint and ordered: append without a merge walk.
            self.items.extend_from_slice(&other.items);
            return;
        }
        self.items = merge_sorted(&self.items, &other.items);
    }

    /// Keeps only elements also in `other` (set intersection).
    pub fn intersect_with(&mut self, other: &SortedSet<T>) {
        let b = &other.items;
        let mut j = 0;
        self.items.retain(|x| {
            while j < b.len() && b[j] < *x {
                j += 1;
            }
            j < b.len() && b[j] == *x
        });
    }
}

/// The sorted union of two strictly increasing slices.
fn merge_sorted<T: Ord + Clone>(a: &[T], b: &[T]) -> Vec<T> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            Ordering::Less => {
                out.push(a[i].clone());
                i += 1;
            }
            Ordering::Greater => {
                out.push(b[j].clone());
                j += 1;
            }
            Ordering::Equal => {
                out.push(a[i].clone());
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

impl<T: Ord> FromIterator<T> for SortedSet<T> {
    /// Collects any elements, sorting them and dropping duplicates.
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut items: Vec<T> = iter.into_iter().collect();
        items.sort_unstable();
        items.dedup();
        Self { items }
    }
}

impl<T: Ord> From<BTreeSet<T>> for SortedSet<T> {
    fn from(set: BTreeSet<T>) -> Self {
        Self {
            items: set.into_iter().collect(),
        }
    }
}

impl<T: Ord> TryFrom<Vec<T>> for SortedSet<T> {
    type Error = AlgebraError;
    fn try_from(items: Vec<T>) -> Result<Self> {
        Self::from_sorted(items)
    }
}

impl<T> From<SortedSet<T>> for Vec<T> {
    fn from(set: SortedSet<T>) -> Self {
        set.items
    }
}

impl<'a, T> IntoIterator for &'a SortedSet<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

/// The type of a column's values, as the schema declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum ValueType {
    /// 64-bit signed integers.
    Integer,
    /// Finite 64-bit floats (NaN and infinities are refused).
    Float,
    /// Exact decimals with exactly `scale` fractional digits.
    Decimal {
        /// Fractional digits, at most [`Decimal::MAX_SCALE`].
        scale: u8,
    },
    /// Sets of strings.
    StringSet,
    /// Sets of 64-bit integers.
    IntSet,
    /// `true` or `false` (`false < true`).
    Boolean,
}

impl ValueType {
    /// Whether values of this type are sets.
    pub fn is_set(self) -> bool {
        matches!(self, ValueType::StringSet | ValueType::IntSet)
    }

    /// The name used in messages, e.g. `"integer"`.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::Integer => "integer",
            ValueType::Float => "float",
            ValueType::Decimal { .. } => "decimal",
            ValueType::StringSet => "string set",
            ValueType::IntSet => "int set",
            ValueType::Boolean => "boolean",
        }
    }
}

impl ValueType {
    /// The value `text` writes, read as this type: a number for the numeric types
    /// (`decimal(N)` as a decimal string), `true` or `false`, a comma-separated list of
    /// elements for a set (`a,b,c`; the empty text is the empty set); `null` for any type.
    pub fn parse_literal(self, text: &str) -> Result<AlgebraicValue> {
        let invalid = || AlgebraError::InvalidLiteral {
            expected: self,
            input: text.chars().take(64).collect(),
        };
        if text == "null" {
            return Ok(AlgebraicValue::Null);
        }
        let elements = || text.split(',').filter(|element| !element.is_empty());
        Ok(match self {
            ValueType::Integer => AlgebraicValue::Integer(text.parse().map_err(|_| invalid())?),
            ValueType::Float => AlgebraicValue::float(text.parse().map_err(|_| invalid())?),
            ValueType::Decimal { .. } => AlgebraicValue::Decimal(text.parse()?),
            ValueType::Boolean => AlgebraicValue::Boolean(text.parse().map_err(|_| invalid())?),
            ValueType::StringSet => AlgebraicValue::string_set(elements()),
            ValueType::IntSet => AlgebraicValue::int_set(
                elements()
                    .map(|element| element.parse().map_err(|_| invalid()))
                    .collect::<Result<Vec<i64>>>()?,
            ),
        })
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueType::Decimal { scale } => write!(f, "decimal(scale {scale})"),
            other => f.write_str(other.name()),
        }
    }
}

impl FromStr for ValueType {
    type Err = AlgebraError;

    /// Parses a type as people write it: `"integer"` (or `"int"`), `"float"`, `"boolean"` (or
    /// `"bool"`), `"string_set"` (or `"str_set"`), `"int_set"`, `"decimal(N)"`. Case, spaces
    /// and hyphens do not matter, so [`ValueType::name`] and the `Display` form parse back.
    fn from_str(s: &str) -> Result<Self> {
        let spelled = s.trim().to_ascii_lowercase().replace([' ', '-'], "_");
        let scale = spelled
            .strip_prefix("decimal(")
            .and_then(|rest| rest.strip_suffix(')'))
            .map(|inner| inner.strip_prefix("scale_").unwrap_or(inner))
            .and_then(|digits| digits.parse::<u8>().ok());
        match (spelled.as_str(), scale) {
            (_, Some(scale)) => Ok(ValueType::Decimal { scale }),
            ("integer" | "int", _) => Ok(ValueType::Integer),
            ("float", _) => Ok(ValueType::Float),
            ("boolean" | "bool", _) => Ok(ValueType::Boolean),
            ("string_set" | "str_set", _) => Ok(ValueType::StringSet),
            ("int_set", _) => Ok(ValueType::IntSet),
            _ => Err(AlgebraError::UnknownName {
                what: "value type".into(),
                name: s.to_owned(),
                valid: "integer, float, boolean, string_set, int_set, decimal(N)".into(),
            }),
        }
    }
}

/// A value a column holds or an operation carries.
///
/// Equality is exact: floats are equal when their bits are (`-0.0 != +0.0`), decimals when
/// mantissa and scale are, sets when they hold the same elements. The `Ord` is a total order
/// (by variant, then by value; floats by [`f64::total_cmp`]) used to break ties canonically.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum AlgebraicValue {
    /// No value.
    Null,
    /// A 64-bit signed integer.
    Integer(i64),
    /// A 64-bit float.
    Float(TotalF64),
    /// An exact decimal.
    Decimal(Decimal),
    /// A set of strings.
    StringSet(SortedSet<String>),
    /// A set of 64-bit integers.
    IntSet(SortedSet<i64>),
    /// A boolean.
    Boolean(bool),
}

impl AlgebraicValue {
    /// A float value.
    pub fn float(value: f64) -> Self {
        AlgebraicValue::Float(TotalF64(value))
    }

    /// A string set from any strings (sorted and deduplicated).
    ///
    /// ```
    /// use rhizo_algebra::AlgebraicValue;
    /// let tags = AlgebraicValue::string_set(["vip", "beta", "vip"]);
    /// let elements: Vec<&String> = tags.as_string_set().unwrap().iter().collect();
    /// assert_eq!(elements, ["beta", "vip"]);
    /// ```
    pub fn string_set<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Self {
        AlgebraicValue::StringSet(items.into_iter().map(Into::into).collect())
    }

    /// An integer set from any integers (sorted and deduplicated).
    pub fn int_set(items: impl IntoIterator<Item = i64>) -> Self {
        AlgebraicValue::IntSet(items.into_iter().collect())
    }

    /// The name of the value's kind, e.g. `"integer"` or `"null"`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            AlgebraicValue::Null => "null",
            AlgebraicValue::Integer(_) => "integer",
            AlgebraicValue::Float(_) => "float",
            AlgebraicValue::Decimal(_) => "decimal",
            AlgebraicValue::StringSet(_) => "string set",
            AlgebraicValue::IntSet(_) => "int set",
            AlgebraicValue::Boolean(_) => "boolean",
        }
    }

    /// Whether the value is `Null`.
    pub fn is_null(&self) -> bool {
        matches!(self, AlgebraicValue::Null)
    }

    /// The integer, if the value is one.
    pub fn as_integer(&self) -> Option<i64> {
        match self {
            AlgebraicValue::Integer(v) => Some(*v),
            _ => None,
        }
    }

    /// The float, if the value is one.
    pub fn as_float(&self) -> Option<f64> {
        match self {
            AlgebraicValue::Float(v) => Some(v.0),
            _ => None,
        }
    }

    /// The decimal, if the value is one.
    pub fn as_decimal(&self) -> Option<Decimal> {
        match self {
            AlgebraicValue::Decimal(v) => Some(*v),
            _ => None,
        }
    }

    /// The boolean, if the value is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            AlgebraicValue::Boolean(v) => Some(*v),
            _ => None,
        }
    }

    /// The string set, if the value is one.
    pub fn as_string_set(&self) -> Option<&SortedSet<String>> {
        match self {
            AlgebraicValue::StringSet(v) => Some(v),
            _ => None,
        }
    }

    /// The integer set, if the value is one.
    pub fn as_int_set(&self) -> Option<&SortedSet<i64>> {
        match self {
            AlgebraicValue::IntSet(v) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for AlgebraicValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AlgebraicValue::Null => f.write_str("null"),
            AlgebraicValue::Integer(v) => write!(f, "{v}"),
            AlgebraicValue::Float(v) => write!(f, "{:?}", v.0),
            AlgebraicValue::Decimal(v) => write!(f, "{v}"),
            AlgebraicValue::StringSet(s) => f.debug_set().entries(s.iter()).finish(),
            AlgebraicValue::IntSet(s) => f.debug_set().entries(s.iter()).finish(),
            AlgebraicValue::Boolean(v) => write!(f, "{v}"),
        }
    }
}

impl From<i64> for AlgebraicValue {
    fn from(v: i64) -> Self {
        AlgebraicValue::Integer(v)
    }
}

impl From<i32> for AlgebraicValue {
    fn from(v: i32) -> Self {
        AlgebraicValue::Integer(i64::from(v))
    }
}

impl From<f64> for AlgebraicValue {
    fn from(v: f64) -> Self {
        AlgebraicValue::float(v)
    }
}

impl From<bool> for AlgebraicValue {
    fn from(v: bool) -> Self {
        AlgebraicValue::Boolean(v)
    }
}

impl From<Decimal> for AlgebraicValue {
    fn from(v: Decimal) -> Self {
        AlgebraicValue::Decimal(v)
    }
}

impl From<SortedSet<String>> for AlgebraicValue {
    fn from(v: SortedSet<String>) -> Self {
        AlgebraicValue::StringSet(v)
    }
}

impl From<SortedSet<i64>> for AlgebraicValue {
    fn from(v: SortedSet<i64>) -> Self {
        AlgebraicValue::IntSet(v)
    }
}

impl From<BTreeSet<String>> for AlgebraicValue {
    fn from(v: BTreeSet<String>) -> Self {
        AlgebraicValue::StringSet(v.into())
    }
}

impl From<BTreeSet<i64>> for AlgebraicValue {
    fn from(v: BTreeSet<i64>) -> Self {
        AlgebraicValue::IntSet(v.into())
    }
}

impl<T: Into<AlgebraicValue>> From<Option<T>> for AlgebraicValue {
    /// `None` becomes `Null`.
    fn from(v: Option<T>) -> Self {
        v.map_or(AlgebraicValue::Null, Into::into)
    }
}

fn conversion(to: &'static str, from: &AlgebraicValue) -> AlgebraError {
    AlgebraError::Conversion {
        from: from.kind_name().into(),
        to: to.into(),
    }
}

impl TryFrom<AlgebraicValue> for i64 {
    type Error = AlgebraError;
    fn try_from(v: AlgebraicValue) -> Result<Self> {
        v.as_integer().ok_or_else(|| conversion("integer", &v))
    }
}

impl TryFrom<AlgebraicValue> for f64 {
    type Error = AlgebraError;
    fn try_from(v: AlgebraicValue) -> Result<Self> {
        v.as_float().ok_or_else(|| conversion("float", &v))
    }
}

impl TryFrom<AlgebraicValue> for bool {
    type Error = AlgebraError;
    fn try_from(v: AlgebraicValue) -> Result<Self> {
        v.as_bool().ok_or_else(|| conversion("boolean", &v))
    }
}

impl TryFrom<AlgebraicValue> for Decimal {
    type Error = AlgebraError;
    fn try_from(v: AlgebraicValue) -> Result<Self> {
        v.as_decimal().ok_or_else(|| conversion("decimal", &v))
    }
}

impl TryFrom<AlgebraicValue> for SortedSet<String> {
    type Error = AlgebraError;
    fn try_from(v: AlgebraicValue) -> Result<Self> {
        match v {
            AlgebraicValue::StringSet(s) => Ok(s),
            other => Err(conversion("string set", &other)),
        }
    }
}

impl TryFrom<AlgebraicValue> for SortedSet<i64> {
    type Error = AlgebraError;
    fn try_from(v: AlgebraicValue) -> Result<Self> {
        match v {
            AlgebraicValue::IntSet(s) => Ok(s),
            other => Err(conversion("int set", &other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_types_parse_from_their_names_and_display() {
        for vt in [
            ValueType::Integer,
            ValueType::Float,
            ValueType::Decimal { scale: 2 },
            ValueType::StringSet,
            ValueType::IntSet,
            ValueType::Boolean,
        ] {
            assert_eq!(vt.to_string().parse::<ValueType>(), Ok(vt));
        }
        assert_eq!(" Int ".parse::<ValueType>(), Ok(ValueType::Integer));
        assert_eq!("string-set".parse::<ValueType>(), Ok(ValueType::StringSet));
        assert_eq!(
            "decimal(4)".parse::<ValueType>(),
            Ok(ValueType::Decimal { scale: 4 })
        );
        for bad in ["complex", "decimal(x)", "decimal(300)", ""] {
            let err = bad.parse::<ValueType>().unwrap_err();
            assert!(
                matches!(&err, AlgebraError::UnknownName { what, name, .. } if name == bad && what == "value type")
            );
            assert!(err.to_string().contains("decimal(N)"), "{err}");
        }
    }

    #[test]
    fn conversions_round_trip_and_refuse_other_kinds() {
        assert_eq!(i64::try_from(AlgebraicValue::from(-3i64)).unwrap(), -3);
        assert_eq!(f64::try_from(AlgebraicValue::from(1.5)).unwrap(), 1.5);
        assert!(bool::try_from(AlgebraicValue::from(true)).unwrap());
        let d: Decimal = "9.99".parse().unwrap();
        assert_eq!(Decimal::try_from(AlgebraicValue::from(d)).unwrap(), d);
        let s = AlgebraicValue::string_set(["b", "a", "b"]);
        assert_eq!(
            SortedSet::<String>::try_from(s).unwrap().into_vec(),
            vec!["a".to_owned(), "b".to_owned()]
        );
        assert_eq!(AlgebraicValue::from(None::<i64>), AlgebraicValue::Null);
        assert_eq!(
            i64::try_from(AlgebraicValue::from(1.0)),
            Err(AlgebraError::Conversion {
                from: "float".into(),
                to: "integer".into()
            })
        );
        assert_eq!(
            SortedSet::<i64>::try_from(AlgebraicValue::Null),
            Err(AlgebraError::Conversion {
                from: "null".into(),
                to: "int set".into()
            })
        );
    }

    #[test]
    fn float_equality_is_bitwise() {
        assert_ne!(AlgebraicValue::from(0.0), AlgebraicValue::from(-0.0));
        assert_eq!(AlgebraicValue::from(0.1), AlgebraicValue::from(0.1));
        assert!(AlgebraicValue::from(-0.0) < AlgebraicValue::from(0.0));
    }

    #[test]
    fn sorted_set_is_canonical() {
        assert!(SortedSet::from_sorted(vec![1, 1]).is_err());
        assert!(SortedSet::from_sorted(vec![2, 1]).is_err());
        let mut a: SortedSet<i64> = [5, 1, 3].into_iter().collect();
        a.union_with(&[2, 3, 9].into_iter().collect());
        assert_eq!(a.as_slice(), &[1, 2, 3, 5, 9]);
        a.intersect_with(&[0, 3, 9, 10].into_iter().collect());
        assert_eq!(a.as_slice(), &[3, 9]);
        assert!(a.insert(4));
        assert!(!a.insert(4));
        assert_eq!(a.as_slice(), &[3, 4, 9]);
    }

    #[test]
    fn literals_parse_by_value_type_and_bad_text_is_a_typed_error() {
        let parse = |vt: ValueType, text: &str| vt.parse_literal(text);
        assert_eq!(
            parse(ValueType::Integer, "-12"),
            Ok(AlgebraicValue::Integer(-12))
        );
        assert_eq!(
            parse(ValueType::Float, "1.5"),
            Ok(AlgebraicValue::float(1.5))
        );
        assert_eq!(
            parse(ValueType::Boolean, "true"),
            Ok(AlgebraicValue::Boolean(true))
        );
        assert_eq!(
            parse(ValueType::StringSet, "b,a,b"),
            Ok(AlgebraicValue::string_set(["a", "b"]))
        );
        assert_eq!(
            parse(ValueType::StringSet, ""),
            Ok(AlgebraicValue::string_set(Vec::<String>::new()))
        );
        assert_eq!(
            parse(ValueType::IntSet, "3,1"),
            Ok(AlgebraicValue::int_set([1, 3]))
        );
        assert_eq!(parse(ValueType::Integer, "null"), Ok(AlgebraicValue::Null));
        assert!(matches!(
            parse(ValueType::Decimal { scale: 2 }, "1.25"),
            Ok(AlgebraicValue::Decimal(_))
        ));
        for (vt, text) in [
            (ValueType::Integer, "1.5"),
            (ValueType::Integer, "99999999999999999999"),
            (ValueType::Float, "x"),
            (ValueType::Boolean, "yes"),
            (ValueType::IntSet, "1,a"),
        ] {
            assert_eq!(
                parse(vt, text),
                Err(AlgebraError::InvalidLiteral {
                    expected: vt,
                    input: text.to_owned()
                }),
                "{vt} {text}"
            );
        }
    }
}
