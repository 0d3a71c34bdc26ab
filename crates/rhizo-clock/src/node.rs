use std::fmt;

use crate::{ClockError, Result};

/// The identity of one replica.
///
/// A `NodeId` is a name of 1 to 16 bytes of UTF-8 (no NUL) packed into two machine words, so it
/// is `Copy`, compares with two integer comparisons and hashes without touching the heap. The
/// order of `NodeId`s is the byte-wise order of their names, which makes every sorted structure
/// keyed by node ids (a [`VectorClock`](crate::VectorClock), a replica's state) canonical.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId {
    // Big-endian packing of the name, zero padded: ordering (hi, lo) equals ordering the names.
    hi: u64,
    lo: u64,
}

impl NodeId {
    /// The longest name a node may have, in bytes.
    pub const MAX_NAME_LEN: usize = 16;

    /// Makes a node id from its name.
    ///
    /// ```
    /// let n = rhizo_clock::NodeId::new("frankfurt-2").unwrap();
    /// assert_eq!(n.to_string(), "frankfurt-2");
    /// assert!(rhizo_clock::NodeId::new("").is_err());
    /// ```
    pub fn new(name: &str) -> Result<Self> {
        let bytes = name.as_bytes();
        if bytes.is_empty() {
            return Err(ClockError::EmptyNodeName);
        }
        if bytes.len() > Self::MAX_NAME_LEN {
            return Err(ClockError::NodeNameTooLong {
                name: name.to_owned(),
                len: bytes.len(),
            });
        }
        if bytes.contains(&0) {
            return Err(ClockError::NodeNameHasNul {
                name: name.to_owned(),
            });
        }
        let mut packed = [0u8; 16];
        packed[..bytes.len()].copy_from_slice(bytes);
        Ok(Self::from_packed(packed))
    }

    /// The node called `n{index}` — the naming the simulator and tests use for numbered nodes.
    ///
    /// ```
    /// assert_eq!(rhizo_clock::NodeId::numbered(7).to_string(), "n7");
    /// ```
    pub fn numbered(index: u32) -> Self {
        // "n" + at most 10 decimal digits always fits in 16 bytes.
        let mut packed = [0u8; 16];
        packed[0] = b'n';
        let mut digits = [0u8; 10];
        let mut len = 0;
        let mut rest = index;
        loop {
            digits[len] = b'0' + (rest % 10) as u8;
            len += 1;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        for i in 0..len {
            packed[1 + i] = digits[len - 1 - i];
        }
        Self::from_packed(packed)
    }

    /// Both words folded and multiplied into one, its high bits mixed from every byte of the
    /// name: a name's varying bytes may sit anywhere in either word (`n7` and `n42` differ only
    /// in the top bytes of `hi`), and a table indexes by the high bits of this.
    #[inline]
    pub(crate) fn mixed(self) -> u64 {
        let folded = self.hi.wrapping_add(self.lo.rotate_left(32));
        (folded ^ (folded >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    fn from_packed(packed: [u8; 16]) -> Self {
        let mut hi = [0u8; 8];
        let mut lo = [0u8; 8];
        hi.copy_from_slice(&packed[..8]);
        lo.copy_from_slice(&packed[8..]);
        Self {
            hi: u64::from_be_bytes(hi),
            lo: u64::from_be_bytes(lo),
        }
    }

    fn packed(self) -> [u8; 16] {
        let mut packed = [0u8; 16];
        packed[..8].copy_from_slice(&self.hi.to_be_bytes());
        packed[8..].copy_from_slice(&self.lo.to_be_bytes());
        packed
    }

    /// The node's name.
    ///
    /// ```
    /// let n = rhizo_clock::NodeId::new("tokyo-1").unwrap();
    /// assert_eq!(n.name().as_str(), "tokyo-1");
    /// ```
    pub fn name(&self) -> NodeName {
        // Names hold no NUL, so the zero bytes at the end are exactly the padding.
        let padding = if self.lo != 0 {
            self.lo.trailing_zeros() / 8
        } else {
            8 + self.hi.trailing_zeros() / 8
        };
        let len = (16 - padding) as u8;
        NodeName {
            packed: self.packed(),
            len,
        }
    }
}

/// A node's name, borrowed-free: the bytes live inside this value.
#[derive(Clone, Copy)]
pub struct NodeName {
    packed: [u8; 16],
    len: u8,
}

impl NodeName {
    /// The name's bytes (valid UTF-8).
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.packed[..self.len as usize]
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        // `NodeId::new` only packs valid UTF-8 and `numbered` only ASCII, and a UTF-8 string cut
        // at the first NUL (which no name contains) is the whole string.
        std::str::from_utf8(&self.packed[..self.len as usize]).unwrap_or("<invalid>")
    }
}

impl std::ops::Deref for NodeName {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name().as_str())
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({:?})", self.name().as_str())
    }
}

impl std::str::FromStr for NodeId {
    type Err = ClockError;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl TryFrom<&str> for NodeId {
    type Error = ClockError;
    fn try_from(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

#[cfg(feature = "serde")]
mod serde_impl {
    use super::NodeId;
    use serde::de::{Error, Visitor};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// A node id travels as its name: readable in JSON, a length byte plus the name in postcard.
    ///
    /// Binary formats get the name's bytes: postcard writes bytes exactly as it writes a string
    /// (length, then the bytes), and skipping the UTF-8 check a `&str` needs matters because every
    /// per-origin entry of every delta names its origin, so sizing and encoding a message pays it
    /// once per entry. The name is valid UTF-8 by construction, and decoding checks it again.
    impl Serialize for NodeId {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let name = self.name();
            if serializer.is_human_readable() {
                serializer.serialize_str(name.as_str())
            } else {
                serializer.serialize_bytes(name.as_bytes())
            }
        }
    }

    impl<'de> Deserialize<'de> for NodeId {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct NameVisitor;
            impl Visitor<'_> for NameVisitor {
                type Value = NodeId;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a node name of 1 to 16 bytes")
                }
                fn visit_str<E: Error>(self, v: &str) -> Result<NodeId, E> {
                    NodeId::new(v).map_err(E::custom)
                }
                // Formats that tell bytes from strings hand back the bytes written above.
                fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<NodeId, E> {
                    let name = std::str::from_utf8(v).map_err(E::custom)?;
                    NodeId::new(name).map_err(E::custom)
                }
            }
            deserializer.deserialize_str(NameVisitor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A name is written as postcard writes the string itself, and read back; the length is
    /// that of the name for every length 1 to 16.
    #[cfg(feature = "serde")]
    #[test]
    fn names_encode_as_their_strings_and_decode_back() {
        let mut names: Vec<String> = (1..=16).map(|n| "x".repeat(n)).collect();
        names.extend(["é".to_owned(), "n0".to_owned(), "aé€".to_owned()]);
        for name in &names {
            let id = NodeId::new(name).unwrap();
            assert_eq!(id.name().as_str(), name);
            assert_eq!(id.name().as_bytes(), name.as_bytes());
            let bytes = postcard::to_allocvec(&id).unwrap();
            assert_eq!(
                bytes,
                postcard::to_allocvec(name.as_str()).unwrap(),
                "{name}"
            );
            assert_eq!(postcard::from_bytes::<NodeId>(&bytes).unwrap(), id);
        }
        let invalid = postcard::to_allocvec(&[0xffu8, 0xfe][..]).unwrap();
        assert!(postcard::from_bytes::<NodeId>(&invalid).is_err());
    }

    #[test]
    fn names_round_trip_and_order_like_strings() {
        let names = ["a", "ab", "b", "n10", "n9", "zzzzzzzzzzzzzzzz", "émile"];
        let mut ids: Vec<NodeId> = names.iter().map(|n| NodeId::new(n).unwrap()).collect();
        for (id, name) in ids.iter().zip(names) {
            assert_eq!(id.to_string(), name);
        }
        ids.sort();
        let mut sorted = names.to_vec();
        sorted.sort();
        assert_eq!(
            ids.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
            sorted
        );
    }

    #[test]
    fn bad_names_are_refused() {
        assert_eq!(NodeId::new(""), Err(ClockError::EmptyNodeName));
        assert!(matches!(
            NodeId::new("seventeen-bytes!!"),
            Err(ClockError::NodeNameTooLong { len: 17, .. })
        ));
        assert!(matches!(
            NodeId::new("a\0b"),
            Err(ClockError::NodeNameHasNul { .. })
        ));
    }

    #[test]
    fn numbered_matches_new() {
        for i in [0, 1, 9, 10, 99, 12345, u32::MAX] {
            assert_eq!(NodeId::numbered(i), NodeId::new(&format!("n{i}")).unwrap());
        }
    }
}
