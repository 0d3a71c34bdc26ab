//! Quoting user input in messages: at most a bounded prefix of it.
//!
//! An error message that repeats its input whole lets one oversized argument (a 100,000-byte row
//! key, say) flood logs and exception texts. Every crate quotes input through these two
//! wrappers, which print at most [`QUOTE_LIMIT`] characters and then say how long the input was.

use std::fmt;

/// The most characters of an input a message repeats.
pub const QUOTE_LIMIT: usize = 64;

/// Displays `text` in double quotes, escaped like `{:?}`, cut after [`QUOTE_LIMIT`] characters
/// with `… (N bytes)` after the closing quote.
///
/// ```
/// use rhizo_clock::Quoted;
/// assert_eq!(Quoted("page_views").to_string(), "\"page_views\"");
/// let long = "k".repeat(100_000);
/// assert_eq!(Quoted(&long).to_string(), format!("\"{}\"… (100000 bytes)", "k".repeat(64)));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Quoted<'a>(pub &'a str);

/// Displays `text` as it is, cut after [`QUOTE_LIMIT`] characters with `… (N bytes)`: for names
/// that are shown bare (a table, a column).
///
/// ```
/// use rhizo_clock::Bounded;
/// assert_eq!(Bounded("counters").to_string(), "counters");
/// assert!(Bounded(&"t".repeat(1000)).to_string().ends_with("… (1000 bytes)"));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Bounded<'a>(pub &'a str);

/// The prefix of `text` a message shows, and whether it is all of it.
fn prefix(text: &str) -> (&str, bool) {
    match text.char_indices().nth(QUOTE_LIMIT) {
        Some((cut, _)) => (&text[..cut], false),
        None => (text, true),
    }
}

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (shown, whole) = prefix(self.0);
        write!(f, "{shown:?}")?;
        if !whole {
            write!(f, "… ({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

impl fmt::Display for Bounded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (shown, whole) = prefix(self.0);
        f.write_str(shown)?;
        if !whole {
            write!(f, "… ({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_input_is_shown_whole_and_long_input_by_a_prefix() {
        assert_eq!(Quoted("a\"b").to_string(), "\"a\\\"b\"");
        let exact = "x".repeat(QUOTE_LIMIT);
        assert_eq!(Quoted(&exact).to_string(), format!("\"{exact}\""));
        let over = "é".repeat(QUOTE_LIMIT + 1);
        let shown = Quoted(&over).to_string();
        assert_eq!(
            shown,
            format!("\"{}\"… ({} bytes)", "é".repeat(QUOTE_LIMIT), over.len())
        );
        assert_eq!(Bounded(&exact).to_string(), exact);
        assert!(Bounded(&over).to_string().len() < 200);
    }
}
