//! Reads pytest's `--junitxml` report: one `<testcase classname=… name=…>` element per test, with
//! a `<failure>` or `<error>` child when it failed and `<skipped>` when it was skipped (or
//! xfailed). A small hand parser: the report is machine-written and regular.

use super::Outcome;
use crate::{Error, Result};

/// One test case of the report: `classname::name` and its outcome.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Case {
    pub(crate) name: String,
    pub(crate) outcome: Outcome,
}

pub(crate) fn parse(xml: &str) -> Result<Vec<Case>> {
    let mut cases = Vec::new();
    let mut rest = xml;
    while let Some(start) = find_tag(rest, "testcase") {
        let StartTag {
            attributes,
            self_closing,
            after,
        } = read_start_tag(&rest[start + "<testcase".len()..])?;
        let classname = attribute(&attributes, "classname").unwrap_or_default();
        let name = attribute(&attributes, "name")
            .ok_or_else(|| Error::new("a <testcase> in pytest's report has no name"))?;
        let (outcome, next) = if self_closing {
            (Outcome::Passed, after)
        } else {
            let end = after
                .find("</testcase>")
                .ok_or_else(|| Error::new(format!("<testcase name=\"{name}\"> is not closed")))?;
            let body = &after[..end];
            let outcome =
                if find_tag(body, "failure").is_some() || find_tag(body, "error").is_some() {
                    Outcome::Failed
                } else if find_tag(body, "skipped").is_some() {
                    Outcome::Ignored
                } else {
                    Outcome::Passed
                };
            (outcome, &after[end + "</testcase>".len()..])
        };
        let name = if classname.is_empty() {
            name
        } else {
            format!("{classname}::{name}")
        };
        cases.push(Case { name, outcome });
        rest = next;
    }
    Ok(cases)
}

/// The byte offset of the next `<tag` that is that element (not `<tagname…`).
fn find_tag(text: &str, tag: &str) -> Option<usize> {
    let open = format!("<{tag}");
    let mut from = 0;
    while let Some(found) = text[from..].find(&open) {
        let at = from + found;
        match text[at + open.len()..].chars().next() {
            Some(c) if c.is_whitespace() || c == '>' || c == '/' => return Some(at),
            _ => from = at + open.len(),
        }
    }
    None
}

/// A start tag's attributes (unescaped), whether it closes itself, and the text after it.
struct StartTag<'a> {
    attributes: Vec<(String, String)>,
    self_closing: bool,
    after: &'a str,
}

/// Reads `attr="value" …>` or `… />` after a tag name. Quotes are honoured, so `>` inside a value is fine.
fn read_start_tag(text: &str) -> Result<StartTag<'_>> {
    let mut attributes = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("/>") {
            return Ok(StartTag {
                attributes,
                self_closing: true,
                after,
            });
        }
        if let Some(after) = rest.strip_prefix('>') {
            return Ok(StartTag {
                attributes,
                self_closing: false,
                after,
            });
        }
        let equals = rest
            .find('=')
            .ok_or_else(|| Error::new("malformed attribute in pytest's report"))?;
        let key = rest[..equals].trim().to_owned();
        let value_start = rest[equals + 1..].trim_start();
        let quote = value_start
            .chars()
            .next()
            .filter(|c| *c == '"' || *c == '\'')
            .ok_or_else(|| Error::new(format!("attribute `{key}` is not quoted")))?;
        let value_text = &value_start[1..];
        let close = value_text
            .find(quote)
            .ok_or_else(|| Error::new(format!("attribute `{key}` is not closed")))?;
        attributes.push((key, unescape(&value_text[..close])));
        rest = &value_text[close + 1..];
    }
}

fn attribute(attributes: &[(String, String)], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.clone())
}

/// Replaces XML's five named entities and numeric character references.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let Some(semi) = after.find(';') else {
            out.push_str(&rest[amp..]);
            return out;
        };
        let entity = &after[..semi];
        let decoded = match entity {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .map(|hex| u32::from_str_radix(hex, 16))
                .or_else(|| entity.strip_prefix('#').map(str::parse))
                .and_then(|code| code.ok())
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = r#"<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="0" failures="1" skipped="1" tests="5" time="0.050" timestamp="2026-11-26T09:00:00" hostname="h"><testcase classname="tests.test_clock" name="test_merge_takes_max" time="0.001" /><testcase classname="tests.test_clock.TestOrder" name="test_compare[a&lt;b-&quot;x&quot;]" time="0.002"><failure message="assert 1 == 2">def test():
&gt;       assert 1 == 2
E       assert 1 == 2</failure></testcase><testcase classname="tests.test_clock" name="test_skipped" time="0.000"><skipped type="pytest.skip" message="no numpy">tests/test_clock.py:9: no numpy</skipped></testcase><testcase classname="tests.test_txn" name="test_setup_error" time="0.000"><error message="failed on setup">fixture 'db' not found</error></testcase><testcase classname="tests.test_txn" name="test_prints" time="0.000"><system-out>&lt;failure&gt; is only text here</system-out></testcase><testcase classname="" name="test_toplevel" time="0.000"></testcase></testsuite></testsuites>"#;

    #[test]
    fn outcomes_and_names_are_read() {
        let cases = parse(REPORT).unwrap();
        let expected = [
            ("tests.test_clock::test_merge_takes_max", Outcome::Passed),
            (
                "tests.test_clock.TestOrder::test_compare[a<b-\"x\"]",
                Outcome::Failed,
            ),
            ("tests.test_clock::test_skipped", Outcome::Ignored),
            ("tests.test_txn::test_setup_error", Outcome::Failed),
            ("tests.test_txn::test_prints", Outcome::Passed),
            ("test_toplevel", Outcome::Passed),
        ];
        let expected: Vec<Case> = expected
            .into_iter()
            .map(|(name, outcome)| Case {
                name: name.to_owned(),
                outcome,
            })
            .collect();
        assert_eq!(cases, expected);
    }

    #[test]
    fn an_empty_report_has_no_cases() {
        let empty =
            r#"<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="0"/></testsuites>"#;
        assert_eq!(parse(empty).unwrap(), []);
    }

    #[test]
    fn malformed_reports_are_errors() {
        assert_eq!(
            parse("<testcase classname=\"a\" name=\"b\">")
                .unwrap_err()
                .to_string(),
            "<testcase name=\"b\"> is not closed"
        );
        assert_eq!(
            parse("<testcase classname=a />").unwrap_err().to_string(),
            "attribute `classname` is not quoted"
        );
        assert_eq!(
            parse("<testcase classname=\"a\" />")
                .unwrap_err()
                .to_string(),
            "a <testcase> in pytest's report has no name"
        );
    }

    #[test]
    fn entities_are_decoded() {
        assert_eq!(
            unescape("a&amp;b&#65;&#x42;&apos;&bogus;&"),
            "a&bAB'&bogus;&"
        );
    }
}
