use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::{AlgebraError, Result};

/// An exact fixed-point decimal: `mantissa × 10^-scale`, for money and other quantities whose
/// sums must not round.
///
/// Equality is structural: `1.0` (scale 1) and `1.00` (scale 2) are different values, because
/// they encode differently. Inside a column every decimal is held at the column's scale, so
/// structural and numeric equality coincide there; use [`Decimal::numeric_cmp`] across scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "(i128, u8)", into = "(i128, u8)"))]
pub struct Decimal {
    mantissa: i128,
    scale: u8,
}

impl Decimal {
    /// The most fractional digits a decimal may have.
    pub const MAX_SCALE: u8 = 18;
    /// The most significant digits a decimal may have (its mantissa is below `10^MAX_DIGITS`).
    pub const MAX_DIGITS: u32 = 38;
    /// The largest mantissa magnitude: `10^38 - 1`.
    pub const MAX_MANTISSA: i128 = 10i128.pow(Self::MAX_DIGITS) - 1;

    /// The decimal `mantissa × 10^-scale`.
    ///
    /// ```
    /// use rhizo_algebra::Decimal;
    /// let price = Decimal::new(1999, 2).unwrap();
    /// assert_eq!(price.to_string(), "19.99");
    /// assert_eq!("19.99".parse::<Decimal>().unwrap(), price);
    /// assert!(Decimal::new(1, 19).is_err()); // at most 18 fractional digits
    /// ```
    pub fn new(mantissa: i128, scale: u8) -> Result<Self> {
        if scale > Self::MAX_SCALE {
            return Err(AlgebraError::DecimalScale {
                found: scale,
                max: Self::MAX_SCALE,
            });
        }
        if !(-Self::MAX_MANTISSA..=Self::MAX_MANTISSA).contains(&mantissa) {
            return Err(AlgebraError::DecimalPrecision {
                max_digits: Self::MAX_DIGITS,
            });
        }
        Ok(Self { mantissa, scale })
    }

    /// The integer `value` at scale 0.
    pub fn from_i64(value: i64) -> Self {
        Self {
            mantissa: i128::from(value),
            scale: 0,
        }
    }

    /// The unscaled integer.
    pub fn mantissa(&self) -> i128 {
        self.mantissa
    }

    /// How many digits follow the decimal point.
    pub fn scale(&self) -> u8 {
        self.scale
    }

    /// The same number with `scale` fractional digits, exactly; refuses if digits would be lost
    /// or the mantissa would grow past [`Decimal::MAX_DIGITS`].
    ///
    /// ```
    /// use rhizo_algebra::Decimal;
    /// let d = Decimal::new(15, 1).unwrap(); // 1.5
    /// assert_eq!(d.rescale(3).unwrap(), Decimal::new(1500, 3).unwrap());
    /// assert!(d.rescale(0).is_err()); // 1.5 has no integer form
    /// ```
    pub fn rescale(&self, scale: u8) -> Result<Self> {
        if scale > Self::MAX_SCALE {
            return Err(AlgebraError::DecimalScale {
                found: scale,
                max: Self::MAX_SCALE,
            });
        }
        match scale.cmp(&self.scale) {
            Ordering::Equal => Ok(*self),
            Ordering::Greater => {
                let factor = 10i128.pow(u32::from(scale - self.scale));
                let Some(mantissa) = self.mantissa.checked_mul(factor) else {
                    return Err(AlgebraError::DecimalPrecision {
                        max_digits: Self::MAX_DIGITS,
                    });
                };
                Self::new(mantissa, scale)
            }
            Ordering::Less => {
                let factor = 10i128.pow(u32::from(self.scale - scale));
                if self.mantissa % factor != 0 {
                    return Err(AlgebraError::DecimalScale {
                        found: self.scale,
                        max: scale,
                    });
                }
                Self::new(self.mantissa / factor, scale)
            }
        }
    }

    /// Compares the numbers the decimals denote, whatever their scales.
    pub fn numeric_cmp(&self, other: &Decimal) -> Ordering {
        // Both mantissas are below 10^38 and the scales differ by at most 18, so comparing
        // through a common scale cannot overflow when done on the magnitudes as i128 pairs:
        // split the larger-scale side into integer and fractional parts instead of multiplying.
        let (a, b) = (self, other);
        if a.scale == b.scale {
            return a.mantissa.cmp(&b.mantissa);
        }
        let (hi, lo, flipped) = if a.scale > b.scale {
            (a, b, false)
        } else {
            (b, a, true)
        };
        let factor = 10i128.pow(u32::from(hi.scale - lo.scale));
        // hi = q·factor + r with r having the sign of hi (truncating division).
        let q = hi.mantissa / factor;
        let r = hi.mantissa % factor;
        let ord = q.cmp(&lo.mantissa).then(r.cmp(&0));
        if flipped { ord.reverse() } else { ord }
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Decimal {
    /// Numeric order; equal numbers of different scales order by scale, so the order is total
    /// and agrees with the structural `==`.
    fn cmp(&self, other: &Self) -> Ordering {
        self.numeric_cmp(other).then(self.scale.cmp(&other.scale))
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.mantissa.unsigned_abs().to_string();
        let scale = usize::from(self.scale);
        let sign = if self.mantissa < 0 { "-" } else { "" };
        if scale == 0 {
            return write!(f, "{sign}{digits}");
        }
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (int, frac) = padded.split_at(padded.len() - scale);
        write!(f, "{sign}{int}.{frac}")
    }
}

impl FromStr for Decimal {
    type Err = AlgebraError;
    /// Parses `[+-]digits[.digits]`, e.g. `"-12.30"` (scale 2). No exponents, no separators.
    fn from_str(input: &str) -> Result<Self> {
        let invalid = |reason: &'static str| AlgebraError::InvalidDecimal {
            input: input.chars().take(64).collect(),
            reason: reason.into(),
        };
        let (negative, body) = match input.as_bytes().first() {
            Some(b'-') => (true, &input[1..]),
            Some(b'+') => (false, &input[1..]),
            _ => (false, input),
        };
        let (int, frac) = match body.split_once('.') {
            Some((int, frac)) => {
                if frac.is_empty() {
                    return Err(invalid("a decimal point must be followed by digits"));
                }
                (int, frac)
            }
            None => (body, ""),
        };
        if int.is_empty() {
            return Err(invalid("digits must precede the decimal point"));
        }
        if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
            return Err(invalid(
                "only ASCII digits, one '.' and a leading sign are allowed",
            ));
        }
        if frac.len() > usize::from(Self::MAX_SCALE) {
            return Err(AlgebraError::DecimalScale {
                found: u8::try_from(frac.len()).unwrap_or(u8::MAX),
                max: Self::MAX_SCALE,
            });
        }
        let significant = int.trim_start_matches('0').len() + frac.len();
        if significant > Self::MAX_DIGITS as usize {
            return Err(AlgebraError::DecimalPrecision {
                max_digits: Self::MAX_DIGITS,
            });
        }
        let mut mantissa: i128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            // At most 38 significant digits: below 10^38 < i128::MAX, so no overflow.
            mantissa = mantissa * 10 + i128::from(b - b'0');
        }
        if negative {
            mantissa = -mantissa;
        }
        Self::new(mantissa, frac.len() as u8)
    }
}

impl TryFrom<(i128, u8)> for Decimal {
    type Error = AlgebraError;
    fn try_from((mantissa, scale): (i128, u8)) -> Result<Self> {
        Self::new(mantissa, scale)
    }
}

impl From<Decimal> for (i128, u8) {
    fn from(d: Decimal) -> Self {
        (d.mantissa, d.scale)
    }
}

impl From<i64> for Decimal {
    fn from(value: i64) -> Self {
        Self::from_i64(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_displays_exactly() {
        for s in [
            "0",
            "12.34",
            "-12.30",
            "0.001",
            "-0.5",
            "123456789012345678.123456789012345678",
        ] {
            assert_eq!(dec(s).to_string(), s);
        }
        assert_eq!(dec("+7.50"), Decimal::new(750, 2).unwrap());
        assert_eq!(dec("007.5").to_string(), "7.5");
    }

    #[test]
    fn refuses_malformed_input_with_typed_errors() {
        for (s, reason) in [
            ("", "digits must precede the decimal point"),
            (".5", "digits must precede the decimal point"),
            ("5.", "a decimal point must be followed by digits"),
            (
                "1e3",
                "only ASCII digits, one '.' and a leading sign are allowed",
            ),
            (
                "1.2.3",
                "only ASCII digits, one '.' and a leading sign are allowed",
            ),
            (
                "--1",
                "only ASCII digits, one '.' and a leading sign are allowed",
            ),
        ] {
            assert_eq!(
                s.parse::<Decimal>(),
                Err(AlgebraError::InvalidDecimal {
                    input: s.into(),
                    reason: reason.into()
                }),
                "{s:?}"
            );
        }
        assert_eq!(
            "0.1234567890123456789".parse::<Decimal>(),
            Err(AlgebraError::DecimalScale { found: 19, max: 18 })
        );
        assert_eq!(
            "1".repeat(39).parse::<Decimal>(),
            Err(AlgebraError::DecimalPrecision { max_digits: 38 })
        );
        assert_eq!(
            Decimal::new(Decimal::MAX_MANTISSA + 1, 0),
            Err(AlgebraError::DecimalPrecision { max_digits: 38 })
        );
    }

    #[test]
    fn rescale_is_exact_or_refused() {
        assert_eq!(dec("1.5").rescale(3).unwrap(), dec("1.500"));
        assert_eq!(dec("1.500").rescale(1).unwrap(), dec("1.5"));
        assert_eq!(
            dec("1.25").rescale(1),
            Err(AlgebraError::DecimalScale { found: 2, max: 1 })
        );
        assert_eq!(
            Decimal::new(Decimal::MAX_MANTISSA, 0).unwrap().rescale(1),
            Err(AlgebraError::DecimalPrecision { max_digits: 38 })
        );
    }

    #[test]
    fn numeric_cmp_ignores_scale() {
        assert_eq!(dec("1.0").numeric_cmp(&dec("1.00")), Ordering::Equal);
        assert_eq!(dec("1.01").numeric_cmp(&dec("1.1")), Ordering::Less);
        assert_eq!(dec("-1.01").numeric_cmp(&dec("-1.1")), Ordering::Greater);
        assert_eq!(dec("2").numeric_cmp(&dec("1.999")), Ordering::Greater);
        assert_eq!(dec("-0.001").numeric_cmp(&dec("0")), Ordering::Less);
        assert_ne!(dec("1.0"), dec("1.00"), "equality is structural");
    }
}
