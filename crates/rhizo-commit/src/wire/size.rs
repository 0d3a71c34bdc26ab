//! The length of a value's postcard encoding, counted without encoding it.
//!
//! postcard's own size flavour runs its encoder and throws the bytes away; varint-encoding every
//! integer just to count its bytes would make sizing the simulator's messages cost more than
//! merging them (the simulator sizes every message for its statistics). This serializer
//! follows the same format rules and computes each length arithmetically. The tests compare it
//! with postcard's encoder on every message and record the property tests produce.

use std::fmt;

use serde::ser::{self, Serialize};

/// The length of `value`'s postcard encoding.
pub(crate) fn postcard_len<T: Serialize + ?Sized>(value: &T) -> usize {
    let mut counter = SizeCounter { len: 0 };
    // Every collection this crate encodes knows its length, as postcard requires; a value that
    // does not could not be encoded at all.
    value
        .serialize(&mut counter)
        .expect("postcard can encode only collections of known length");
    counter.len
}

/// Bytes of an unsigned LEB128 varint (postcard's integer encoding): one per 7 bits.
#[inline]
fn varint_len(value: u64) -> usize {
    // ceil(bits / 7) as a multiply and a shift, for bits in 1..=64 (`| 1`: zero takes a byte).
    let bits = 64 - (value | 1).leading_zeros() as usize;
    (bits * 9 + 64) / 64
}

#[inline]
fn varint_len_wide(value: u128) -> usize {
    match u64::try_from(value) {
        Ok(narrow) => varint_len(narrow),
        Err(_) => (128 - value.leading_zeros() as usize).div_ceil(7),
    }
}

#[inline]
fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

#[inline]
fn zigzag_wide(value: i128) -> u128 {
    ((value << 1) ^ (value >> 127)) as u128
}

struct SizeCounter {
    len: usize,
}

impl SizeCounter {
    #[inline]
    fn add(&mut self, bytes: usize) {
        self.len += bytes;
    }

    #[inline]
    fn varint(&mut self, value: u64) {
        self.len += varint_len(value);
    }

    #[inline]
    fn length_prefixed(&mut self, len: usize) {
        self.varint(len as u64);
        self.len += len;
    }
}

/// A value postcard cannot encode (a sequence or map that does not know its length).
#[derive(Debug)]
struct Unsizable;

impl fmt::Display for Unsizable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("postcard needs the length of every sequence and map")
    }
}

impl std::error::Error for Unsizable {}

impl ser::Error for Unsizable {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Unsizable
    }
}

/// Counts the bytes `collect_str` would write.
struct CountingWriter(usize);

impl fmt::Write for CountingWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

/// Serializer methods for scalars of a fixed encoded width.
macro_rules! fixed_width {
    ($($method:ident($ty:ty) = $bytes:expr),* $(,)?) => {$(
        fn $method(self, _: $ty) -> Result<(), Unsizable> {
            self.add($bytes);
            Ok(())
        }
    )*};
}

/// Serializer methods for integers, each with the length of its varint.
macro_rules! varint {
    ($($method:ident($ty:ty) = $len:expr),* $(,)?) => {$(
        fn $method(self, v: $ty) -> Result<(), Unsizable> {
            let len: fn($ty) -> usize = $len;
            self.add(len(v));
            Ok(())
        }
    )*};
}

impl ser::Serializer for &mut SizeCounter {
    type Ok = ();
    type Error = Unsizable;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn is_human_readable(&self) -> bool {
        false
    }

    // Scalars: a fixed number of bytes, or a varint of the value (zigzagged when signed).
    fixed_width!(
        serialize_bool(bool) = 1,
        serialize_i8(i8) = 1,
        serialize_u8(u8) = 1,
        serialize_f32(f32) = 4,
        serialize_f64(f64) = 8,
    );
    varint!(
        serialize_i16(i16) = |v| varint_len(zigzag(v.into())),
        serialize_i32(i32) = |v| varint_len(zigzag(v.into())),
        serialize_i64(i64) = |v| varint_len(zigzag(v)),
        serialize_i128(i128) = |v| varint_len_wide(zigzag_wide(v)),
        serialize_u16(u16) = |v| varint_len(v.into()),
        serialize_u32(u32) = |v| varint_len(v.into()),
        serialize_u64(u64) = varint_len,
        serialize_u128(u128) = varint_len_wide,
    );
    fn serialize_char(self, v: char) -> Result<(), Unsizable> {
        self.length_prefixed(v.len_utf8());
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Unsizable> {
        self.length_prefixed(v.len());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Unsizable> {
        self.length_prefixed(v.len());
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Unsizable> {
        self.add(1);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Unsizable> {
        self.add(1);
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Unsizable> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Unsizable> {
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
    ) -> Result<(), Unsizable> {
        self.varint(index.into());
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Unsizable> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), Unsizable> {
        self.varint(index.into());
        value.serialize(self)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self, Unsizable> {
        self.varint(len.ok_or(Unsizable)? as u64);
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self, Unsizable> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, Unsizable> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Unsizable> {
        self.varint(index.into());
        Ok(self)
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self, Unsizable> {
        self.varint(len.ok_or(Unsizable)? as u64);
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Unsizable> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Unsizable> {
        self.varint(index.into());
        Ok(self)
    }
    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<(), Unsizable> {
        let mut counter = CountingWriter(0);
        fmt::write(&mut counter, format_args!("{value}")).map_err(|_| Unsizable)?;
        self.length_prefixed(counter.0);
        Ok(())
    }
}

/// The compound serializers: every part of a sequence, tuple, map or struct is its encoding,
/// with nothing between the parts (the length or variant prefix was counted when it began).
macro_rules! parts_in_order {
    ($($trait:ident :: $method:ident $(($name:ty))?),* $(,)?) => {$(
        impl ser::$trait for &mut SizeCounter {
            type Ok = ();
            type Error = Unsizable;
            fn $method<T: Serialize + ?Sized>(
                &mut self,
                $(_: $name,)?
                value: &T,
            ) -> Result<(), Unsizable> {
                value.serialize(&mut **self)
            }
            fn end(self) -> Result<(), Unsizable> {
                Ok(())
            }
        }
    )*};
}

parts_in_order!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
    SerializeStruct::serialize_field(&'static str),
    SerializeStructVariant::serialize_field(&'static str),
);

impl ser::SerializeMap for &mut SizeCounter {
    type Ok = ();
    type Error = Unsizable;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Unsizable> {
        key.serialize(&mut **self)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsizable> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Unsizable> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::Serialize;

    use super::postcard_len;

    fn same_as_postcard<T: Serialize + ?Sized>(value: &T) -> Result<(), TestCaseError> {
        let encoded = postcard::to_allocvec(value).expect("encodes");
        prop_assert_eq!(postcard_len(value), encoded.len());
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Every integer width at its extremes and in between, signed and unsigned, and the
        /// other scalars, size as postcard encodes them.
        #[test]
        fn scalars_size_as_postcard_encodes_them(
            a in any::<u16>(), b in any::<u32>(), c in any::<u64>(), d in any::<u128>(),
            e in any::<i16>(), f in any::<i32>(), g in any::<i64>(), h in any::<i128>(),
            flag in any::<bool>(), byte in any::<u8>(), tiny in any::<i8>(),
            x in any::<f32>(), y in any::<f64>(), ch in any::<char>(),
            text in ".{0,200}", blob in prop::collection::vec(any::<u8>(), 0..300),
        ) {
            same_as_postcard(&(a, b, c, d, e, f, g, h))?;
            same_as_postcard(&(flag, byte, tiny, x, y, ch))?;
            same_as_postcard(&(text.as_str(), serde_bytes_like(&blob)))?;
            same_as_postcard(&(Some(c), None::<u8>, vec![h; (a % 200) as usize]))?;
        }
    }

    /// A byte slice serialized as bytes (not as a sequence of u8).
    fn serde_bytes_like(blob: &[u8]) -> impl Serialize + '_ {
        struct Bytes<'a>(&'a [u8]);
        impl Serialize for Bytes<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        Bytes(blob)
    }

    #[test]
    fn varint_boundaries() {
        for shift in 0..128u32 {
            let v = 1u128 << shift;
            for value in [v - 1, v, v | (v >> 1)] {
                let encoded = postcard::to_allocvec(&value).unwrap();
                assert_eq!(postcard_len(&value), encoded.len(), "{value}");
            }
        }
        assert_eq!(postcard_len(&u128::MAX), 19);
        assert_eq!(postcard_len(&i128::MIN), 19);
    }

    #[test]
    fn enums_maps_and_display_strings_size_as_postcard_encodes_them() {
        #[derive(Serialize)]
        enum Shape {
            Unit,
            Newtype(u64),
            Tuple(i32, String),
            Struct { a: Option<i64>, b: Vec<u16> },
        }
        struct Shown(u64);
        impl Serialize for Shown {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&format_args!("node-{}", self.0))
            }
        }
        let map: std::collections::BTreeMap<String, Vec<u8>> = (0..150)
            .map(|i| (format!("k{i}"), vec![i as u8; i]))
            .collect();
        let shapes = vec![
            Shape::Unit,
            Shape::Newtype(u64::MAX),
            Shape::Tuple(-5, "ü".repeat(70)),
            Shape::Struct {
                a: Some(i64::MIN),
                b: (0..200).collect(),
            },
        ];
        assert_eq!(
            postcard_len(&shapes),
            postcard::to_allocvec(&shapes).unwrap().len()
        );
        assert_eq!(
            postcard_len(&map),
            postcard::to_allocvec(&map).unwrap().len()
        );
        for n in [0, 7, u64::MAX] {
            let shown = Shown(n);
            assert_eq!(
                postcard_len(&shown),
                postcard::to_allocvec(&shown).unwrap().len()
            );
        }
    }
}
