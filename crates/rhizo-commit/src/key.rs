use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use compact_str::CompactString;
use rhizo_clock::{Bounded, Quoted};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest concatenation `CompactString` stores inline.
const INLINE: usize = 24;

/// The address of one cell: a column of one row of one table.
///
/// The schema fixes, per (table, column), the merge type every replica applies to the cell; the
/// row key is free-form. Keys order by (table, row, column), which is the order in which states,
/// deltas and snapshots list cells — so their bytes never depend on insertion or hash order.
///
/// The three names are stored end to end in one string (inline, without a heap allocation, up to
/// 24 bytes in all) with the two split points beside it. Every commit builds, hashes and compares
/// keys: one buffer means one copy, one hash pass and one comparison instead of three of each.
/// The encoding is unchanged: a key is written as the three strings `table`, `row`, `column`.
#[derive(Clone)]
pub struct CellKey {
    /// `table`, `row` and `column`, concatenated.
    joined: CompactString,
    /// The length of `table`, in bytes.
    table_len: u32,
    /// The length of `row`, in bytes.
    row_len: u32,
}

impl CellKey {
    /// The cell `column` of row `row` in `table`.
    ///
    /// # Panics
    /// If `table` or `row` is 4 GiB or longer (no schema accepts such a name, and no transaction
    /// carrying such a row gets that far: the row key limit is far smaller).
    ///
    /// ```
    /// use rhizo_commit::CellKey;
    /// let key = CellKey::new("counters", "page_views", "value");
    /// assert_eq!(key.parts(), ("counters", "page_views", "value"));
    /// // Ordered by (table, row, column), as the three strings are.
    /// assert!(key < CellKey::new("counters", "page_views", "value2"));
    /// assert!(CellKey::new("a", "zz", "c") < CellKey::new("ab", "a", "c"));
    /// ```
    pub fn new(table: &str, row: &str, column: &str) -> Self {
        let len = table.len() + row.len() + column.len();
        let joined = if len <= INLINE {
            // Copying into a stack buffer and building the inline string once: three
            // `push_str`s would each check capacity and re-encode the inline length.
            let mut buf = [0u8; INLINE];
            let (t, r) = (table.len(), table.len() + row.len());
            buf[..t].copy_from_slice(table.as_bytes());
            buf[t..r].copy_from_slice(row.as_bytes());
            buf[r..len].copy_from_slice(column.as_bytes());
            // Three strings end to end are one string; the check cannot fail.
            match std::str::from_utf8(&buf[..len]) {
                Ok(joined) => CompactString::new(joined),
                Err(_) => Self::pushed(table, row, column),
            }
        } else {
            Self::pushed(table, row, column)
        };
        Self {
            joined,
            table_len: u32::try_from(table.len()).expect("a table name under 4 GiB"),
            row_len: u32::try_from(row.len()).expect("a row key under 4 GiB"),
        }
    }

    fn pushed(table: &str, row: &str, column: &str) -> CompactString {
        let mut joined = CompactString::with_capacity(table.len() + row.len() + column.len());
        joined.push_str(table);
        joined.push_str(row);
        joined.push_str(column);
        joined
    }

    /// The table, as declared in the schema.
    #[inline]
    pub fn table(&self) -> &str {
        &self.joined[..self.table_len as usize]
    }

    /// The row key, chosen by the application.
    #[inline]
    pub fn row(&self) -> &str {
        let start = self.table_len as usize;
        &self.joined[start..start + self.row_len as usize]
    }

    /// The column, as declared in the schema.
    #[inline]
    pub fn column(&self) -> &str {
        &self.joined[(self.table_len + self.row_len) as usize..]
    }

    /// The three names at once.
    #[inline]
    pub fn parts(&self) -> (&str, &str, &str) {
        // The string decoded once and split twice (each accessor decodes it and checks its own
        // bounds, and sizing a delta reads all three names of every key).
        let (table, rest) = self.joined.as_str().split_at(self.table_len as usize);
        let (row, column) = rest.split_at(self.row_len as usize);
        (table, row, column)
    }

    /// Whether `other` is a cell of the same (table, column).
    #[inline]
    pub(crate) fn same_column(&self, other: &CellKey) -> bool {
        let (a, b) = (self.joined.as_bytes(), other.joined.as_bytes());
        let (a_table, b_table) = (self.table_len as usize, other.table_len as usize);
        let a_column = a_table + self.row_len as usize;
        let b_column = b_table + other.row_len as usize;
        eq_bytes(&a[..a_table], &b[..b_table]) && eq_bytes(&a[a_column..], &b[b_column..])
    }

    /// The three names as bytes: slicing the `str` would check char boundaries at every split
    /// point, and byte order is string order for UTF-8.
    #[inline]
    fn bytes(&self) -> [&[u8]; 3] {
        let joined = self.joined.as_bytes();
        let (table, rest) = joined.split_at(self.table_len as usize);
        let (row, column) = rest.split_at(self.row_len as usize);
        [table, row, column]
    }
}

/// Byte-string equality without a call into the C library: keys are a few words long, where
/// `bcmp`'s call and size dispatch cost more than the comparison itself.
#[inline]
fn eq_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && cmp_prefix(a, b) == Ordering::Equal
}

/// Byte-string (so UTF-8 string) order, inline for the same reason as [`eq_bytes`]: checking
/// that a delta's keys are strictly increasing compares every neighbouring pair.
#[inline]
fn cmp_bytes(a: &[u8], b: &[u8]) -> Ordering {
    cmp_prefix(a, b).then(a.len().cmp(&b.len()))
}

/// The order of the first `min(a.len(), b.len())` bytes: a word at a time, each word read
/// big-endian so that integer order is byte order.
#[inline]
fn cmp_prefix(a: &[u8], b: &[u8]) -> Ordering {
    let n = a.len().min(b.len());
    let (mut a, mut b) = (&a[..n], &b[..n]);
    while let (Some((x, rest_a)), Some((y, rest_b))) =
        (a.split_first_chunk::<8>(), b.split_first_chunk::<8>())
    {
        let (x, y) = (u64::from_be_bytes(*x), u64::from_be_bytes(*y));
        if x != y {
            return x.cmp(&y);
        }
        (a, b) = (rest_a, rest_b);
    }
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x.cmp(y);
        }
    }
    Ordering::Equal
}

impl PartialEq for CellKey {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        // Equal concatenations split at the same points are equal keys, and only those.
        self.table_len == other.table_len
            && self.row_len == other.row_len
            && eq_bytes(self.joined.as_bytes(), other.joined.as_bytes())
    }
}

impl Eq for CellKey {}

impl Hash for CellKey {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Consistent with `eq`: the same bytes and split points hash the same.
        state.write_u64(u64::from(self.table_len) << 32 | u64::from(self.row_len));
        state.write(self.joined.as_bytes());
    }
}

impl Ord for CellKey {
    fn cmp(&self, other: &Self) -> Ordering {
        // Component by component: comparing the concatenations would put ("ab", "c") after
        // ("a", "bz"), which (table, row, column) order does not.
        let (a, b) = (self.joined.as_bytes(), other.joined.as_bytes());
        if self.table_len == other.table_len {
            // With the split points equal, the first differing byte lies in the component that
            // decides, so one comparison of the concatenations gives the same order (the
            // common case: cells of one column, rows of one length).
            if self.row_len == other.row_len {
                return cmp_bytes(a, b);
            }
            // Tables of one length: table-and-row compare as one string (a differing table
            // byte comes first; equal tables leave the rows' order, shorter prefix first).
            let a_row_end = (self.table_len + self.row_len) as usize;
            let b_row_end = (other.table_len + other.row_len) as usize;
            return cmp_bytes(&a[..a_row_end], &b[..b_row_end])
                .then_with(|| cmp_bytes(&a[a_row_end..], &b[b_row_end..]));
        }
        let ([a_table, a_row, a_column], [b_table, b_row, b_column]) =
            (self.bytes(), other.bytes());
        cmp_bytes(a_table, b_table)
            .then_with(|| cmp_bytes(a_row, b_row))
            .then_with(|| cmp_bytes(a_column, b_column))
    }
}

impl PartialOrd for CellKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The encoded form of a key: the three names, as the derived encoding of
/// `struct CellKey { table, row, column }` writes them.
#[derive(Serialize)]
#[serde(rename = "CellKey")]
struct KeyParts<'a> {
    table: &'a str,
    row: &'a str,
    column: &'a str,
}

/// The decoded form: borrowed from the input where the format allows (postcard does), so a key
/// is copied once, into its own buffer.
#[derive(Deserialize)]
#[serde(rename = "CellKey")]
struct DecodedKeyParts<'a> {
    #[serde(borrow)]
    table: Cow<'a, str>,
    #[serde(borrow)]
    row: Cow<'a, str>,
    #[serde(borrow)]
    column: Cow<'a, str>,
}

impl Serialize for CellKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (table, row, column) = self.parts();
        KeyParts { table, row, column }.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for CellKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let parts = DecodedKeyParts::deserialize(deserializer)?;
        if u32::try_from(parts.table.len()).is_err() || u32::try_from(parts.row.len()).is_err() {
            return Err(serde::de::Error::custom("a cell key name of 4 GiB or more"));
        }
        Ok(CellKey::new(&parts.table, &parts.row, &parts.column))
    }
}

impl fmt::Display for CellKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Bounded: a key is user input, and it appears in error messages.
        write!(
            f,
            "{}[{}].{}",
            Bounded(self.table()),
            Quoted(self.row()),
            Bounded(self.column())
        )
    }
}

impl fmt::Debug for CellKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CellKey({self})")
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use proptest::prelude::*;

    use super::*;

    /// The key as it was before it was packed: the reference for order and encoding.
    #[derive(Serialize, PartialEq, Eq, PartialOrd, Ord, Debug)]
    struct ThreeStrings {
        table: String,
        row: String,
        column: String,
    }

    fn name() -> impl Strategy<Value = String> {
        // Short names over a small alphabet, so that prefixes and equal names are common.
        // "counters" and "\0b" make names that span whole words and differ after a NUL byte.
        let parts = vec!["a", "b", "é", "", "zz", "counters", "\0b"];
        prop::collection::vec(prop::sample::select(parts), 0..4).prop_map(|parts| parts.concat())
    }

    fn key_parts() -> impl Strategy<Value = (String, String, String)> {
        (name(), name(), name())
    }

    #[test]
    fn parts_come_back_as_given() {
        let key = CellKey::new("counters", "page_views", "value");
        assert_eq!(key.parts(), ("counters", "page_views", "value"));
        let long = "r".repeat(100);
        let key = CellKey::new("t", &long, "c");
        assert_eq!(key.parts(), ("t", long.as_str(), "c"));
    }

    #[test]
    fn keys_split_differently_are_different() {
        let a = CellKey::new("ab", "c", "d");
        let b = CellKey::new("a", "bc", "d");
        assert_ne!(a, b);
        assert_eq!(
            a.cmp(&b),
            Ordering::Greater,
            "table \"ab\" sorts after \"a\""
        );
    }

    proptest! {
        #[test]
        fn order_and_equality_are_those_of_the_three_names(
            (t1, r1, c1) in key_parts(),
            (t2, r2, c2) in key_parts(),
        ) {
            let (a, b) = (CellKey::new(&t1, &r1, &c1), CellKey::new(&t2, &r2, &c2));
            let reference = (&t1, &r1, &c1).cmp(&(&t2, &r2, &c2));
            prop_assert_eq!(a.cmp(&b), reference);
            prop_assert_eq!(a == b, reference == Ordering::Equal);
            prop_assert_eq!(a.same_column(&b), t1 == t2 && c1 == c2);
            if a == b {
                let hasher = foldhash::fast::FixedState::with_seed(7);
                prop_assert_eq!(hasher.hash_one(&a), hasher.hash_one(&b));
            }
        }

        #[test]
        fn encoding_is_the_three_strings_and_round_trips((t, r, c) in key_parts()) {
            let key = CellKey::new(&t, &r, &c);
            let bytes = postcard::to_allocvec(&key).unwrap();
            let reference = ThreeStrings { table: t, row: r, column: c };
            prop_assert_eq!(&bytes, &postcard::to_allocvec(&reference).unwrap());
            let back: CellKey = postcard::from_bytes(&bytes).unwrap();
            prop_assert_eq!(back, key);
        }
    }
}
