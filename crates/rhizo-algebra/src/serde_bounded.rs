//! Deserializers that grow collections as elements arrive instead of trusting a length prefix.
//!
//! `smallvec`'s own `Deserialize` reserves whatever length the input claims; a few bytes
//! claiming a billion elements would reserve gigabytes. These visitors never allocate ahead of
//! the elements actually decoded.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};
use smallvec::{Array, SmallVec};

/// Use as `#[serde(deserialize_with = "rhizo_algebra::serde_bounded::smallvec")]`.
pub fn smallvec<'de, D, A>(deserializer: D) -> Result<SmallVec<A>, D::Error>
where
    D: Deserializer<'de>,
    A: Array,
    A::Item: Deserialize<'de>,
{
    struct SeqVisitor<A>(PhantomData<A>);
    impl<'de, A> Visitor<'de> for SeqVisitor<A>
    where
        A: Array,
        A::Item: Deserialize<'de>,
    {
        type Value = SmallVec<A>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a sequence")
        }
        fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<SmallVec<A>, S::Error> {
            let mut out = SmallVec::new();
            while let Some(item) = seq.next_element()? {
                out.push(item);
            }
            Ok(out)
        }
    }
    deserializer.deserialize_seq(SeqVisitor(PhantomData))
}
