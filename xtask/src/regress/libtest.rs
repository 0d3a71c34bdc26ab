//! Reads test results out of the merged stdout+stderr of `cargo test` and of
//! `cargo bench -- --test`, both run with `--message-format=json-render-diagnostics`.
//!
//! The JSON `compiler-artifact` lines tell which package and target each test executable belongs
//! to; cargo then announces each executable ("Running unittests src/lib.rs (…/deps/x-hash)",
//! "Doc-tests x") before the binary prints libtest's "test name ... ok" lines or criterion's
//! "Testing id" / "Success" pairs. Whatever else appears (compiler output, stray stderr, the
//! captured output of failed tests) is skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use super::{Outcome, TestResult};
use crate::workspace::{Workspace, is_library};

/// Everything learnt from one cargo run.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Parsed {
    pub(crate) tests: Vec<TestResult>,
    /// Crates cargo could not build ("could not compile `x`", a failed build script).
    pub(crate) build_failures: BTreeSet<String>,
    /// Things that make the results doubtful: a result outside any known test binary, a
    /// libtest summary that disagrees with the lines read, a binary that died mid-run.
    pub(crate) problems: Vec<String>,
}

/// One test executable: its package and a label for the target (`lib`, `doc`, an integration
/// test's name, `bin-NAME`, `bench-NAME`, `example-NAME`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Binary {
    package: String,
    label: String,
}

impl Binary {
    fn describe(&self) -> String {
        format!("{}::{}", self.package, self.label)
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    passed: usize,
    failed: usize,
    ignored: usize,
}

#[derive(Debug)]
struct DocTest {
    package: String,
    name: String,
    line: u32,
    outcome: Outcome,
}

/// Parses the whole output of one cargo run.
pub(crate) fn parse(output: &str, workspace: &Workspace) -> Parsed {
    let mut parser = Parser {
        workspace,
        executables: BTreeMap::new(),
        current: None,
        block: None,
        in_failure_report: false,
        pending_test: None,
        pending_bench: None,
        doc_tests: Vec::new(),
        parsed: Parsed::default(),
    };
    for raw in output.lines() {
        parser.line(strip_ansi(raw).trim_end());
    }
    parser.finish_binary();
    let Parser {
        mut parsed,
        doc_tests,
        ..
    } = parser;
    parsed.tests.extend(name_doc_tests(doc_tests));
    parsed
}

struct Parser<'w> {
    workspace: &'w Workspace,
    /// Executable file name (with cargo's hash) to the binary it is.
    executables: BTreeMap<String, Binary>,
    current: Option<Binary>,
    /// Results read since libtest's "running N tests", until its "test result:" line.
    block: Option<Counts>,
    /// Inside libtest's "failures:" report, where captured test output is replayed verbatim.
    in_failure_report: bool,
    /// A test whose "test name ... " was printed without its outcome yet (single-threaded runs).
    pending_test: Option<String>,
    /// A criterion benchmark announced by "Testing id", awaiting its "Success".
    pending_bench: Option<String>,
    doc_tests: Vec<DocTest>,
    parsed: Parsed,
}

impl Parser<'_> {
    fn line(&mut self, line: &str) {
        let trimmed = line.trim_start();
        if line.starts_with('{') {
            if let Ok(message) = serde_json::from_str::<Value>(line) {
                self.artifact(&message);
                return;
            }
        }
        if let Some(crate_name) = build_failure(trimmed) {
            self.parsed.build_failures.insert(crate_name.to_owned());
            return;
        }
        if trimmed.contains("process didn't exit successfully") && trimmed.contains("signal") {
            self.parsed.problems.push(trimmed.to_owned());
            return;
        }
        if let Some(announcement) = trimmed.strip_prefix("Running ") {
            self.finish_binary();
            self.current = self.binary_of_running_line(announcement);
            return;
        }
        if let Some(crate_name) = trimmed.strip_prefix("Doc-tests ") {
            self.finish_binary();
            self.current = self.doc_binary(crate_name.trim());
            return;
        }
        if let Some(summary) = line.strip_prefix("test result: ") {
            self.check_summary(summary);
            return;
        }
        if line.starts_with("running ") && (line.ends_with(" tests") || line.ends_with(" test")) {
            self.block = Some(Counts::default());
            self.in_failure_report = false;
            return;
        }
        if line == "failures:" {
            self.in_failure_report = true;
            return;
        }
        if self.in_failure_report {
            return;
        }
        if let Some(rest) = line.strip_prefix("test ") {
            if let Some(split) = rest.find(" ...") {
                let name = &rest[..split];
                let result = rest[split + " ...".len()..].trim();
                self.finish_pending_test();
                match outcome_word(result) {
                    Some(outcome) => self.record(name, outcome),
                    // `cargo bench`'s libtest lines ("bench: 12 ns/iter") are not tests.
                    None if result.starts_with("bench:") => {}
                    None => self.pending_test = Some(name.to_owned()),
                }
                return;
            }
        }
        if let Some(name) = self.pending_test.clone() {
            if let Some(outcome) = outcome_word(trimmed) {
                self.pending_test = None;
                self.record(&name, outcome);
                return;
            }
        }
        if self.is_bench_binary() {
            if let Some(id) = line.strip_prefix("Testing ") {
                self.finish_pending_bench();
                self.pending_bench = Some(id.trim().to_owned());
            } else if line == "Success" {
                if let Some(id) = self.pending_bench.take() {
                    self.record(&id, Outcome::Passed);
                }
            }
        }
    }

    fn artifact(&mut self, message: &Value) {
        if message["reason"].as_str() != Some("compiler-artifact") {
            return;
        }
        let Some(executable) = message["executable"].as_str() else {
            return;
        };
        let Some(package) = message["package_id"]
            .as_str()
            .and_then(|id| self.workspace.package_by_id(id))
        else {
            return;
        };
        let target = &message["target"];
        let name = target["name"].as_str().unwrap_or("?");
        let label = if is_library(&target["kind"]) {
            "lib".to_owned()
        } else {
            match target["kind"][0].as_str().unwrap_or("?") {
                "test" => name.to_owned(),
                kind => format!("{kind}-{name}"),
            }
        };
        self.executables.insert(
            file_name(executable).to_owned(),
            Binary {
                package: package.name.clone(),
                label,
            },
        );
    }

    fn binary_of_running_line(&mut self, announcement: &str) -> Option<Binary> {
        let path = announcement
            .rsplit_once('(')
            .and_then(|(_, tail)| tail.strip_suffix(')'))
            .unwrap_or(announcement);
        let file = file_name(path);
        let binary = self.executables.get(file).cloned();
        if binary.is_none() {
            self.parsed.problems.push(format!(
                "cannot tell which package `{file}` belongs to (no compiler-artifact message for \
                 it); its results are not counted"
            ));
        }
        binary
    }

    fn doc_binary(&mut self, crate_name: &str) -> Option<Binary> {
        match self.workspace.package_of_lib_crate(crate_name) {
            Some(package) => Some(Binary {
                package: package.name.clone(),
                label: "doc".to_owned(),
            }),
            None => {
                self.parsed.problems.push(format!(
                    "doc tests of `{crate_name}` belong to no workspace package; not counted"
                ));
                None
            }
        }
    }

    fn is_bench_binary(&self) -> bool {
        self.current
            .as_ref()
            .is_some_and(|binary| binary.label.starts_with("bench-"))
    }

    fn record(&mut self, name: &str, outcome: Outcome) {
        if let Some(block) = &mut self.block {
            match outcome {
                Outcome::Passed => block.passed += 1,
                Outcome::Failed => block.failed += 1,
                Outcome::Ignored => block.ignored += 1,
            }
        }
        let Some(binary) = &self.current else {
            self.parsed.problems.push(format!(
                "result `{name}` ({outcome}) outside any known test binary; not counted"
            ));
            return;
        };
        let name = name.strip_suffix(" - should panic").unwrap_or(name);
        if binary.label == "doc" {
            let (name, line) = doc_test_name(name);
            self.doc_tests.push(DocTest {
                package: binary.package.clone(),
                name,
                line,
                outcome,
            });
        } else {
            self.parsed.tests.push(TestResult {
                package: binary.package.clone(),
                id: format!("{}::{}::{name}", binary.package, binary.label),
                outcome,
            });
        }
    }

    fn check_summary(&mut self, summary: &str) {
        let Some(read) = self.block.take() else {
            return;
        };
        self.in_failure_report = false;
        let reported = Counts {
            passed: count_before(summary, " passed"),
            failed: count_before(summary, " failed"),
            ignored: count_before(summary, " ignored"),
        };
        if reported != read {
            let binary = self
                .current
                .as_ref()
                .map_or_else(|| "?".to_owned(), Binary::describe);
            self.parsed.problems.push(format!(
                "{binary}: libtest reports {} passed, {} failed, {} ignored, but {} passed, {} \
                 failed, {} ignored were read",
                reported.passed,
                reported.failed,
                reported.ignored,
                read.passed,
                read.failed,
                read.ignored
            ));
        }
    }

    fn finish_pending_test(&mut self) {
        if let Some(name) = self.pending_test.take() {
            self.problems_for_unfinished(&name);
            self.record(&name, Outcome::Failed);
        }
    }

    fn finish_pending_bench(&mut self) {
        if let Some(id) = self.pending_bench.take() {
            self.problems_for_unfinished(&id);
            self.record(&id, Outcome::Failed);
        }
    }

    fn problems_for_unfinished(&mut self, name: &str) {
        let binary = self
            .current
            .as_ref()
            .map_or_else(|| "?".to_owned(), Binary::describe);
        self.parsed
            .problems
            .push(format!("{binary}: `{name}` started but never finished"));
    }

    /// Called when the next binary starts or the output ends.
    fn finish_binary(&mut self) {
        self.finish_pending_test();
        self.finish_pending_bench();
        if self.block.take().is_some() {
            let binary = self
                .current
                .as_ref()
                .map_or_else(|| "?".to_owned(), Binary::describe);
            self.parsed.problems.push(format!(
                "{binary}: the test binary ended without libtest's summary (did it crash?)"
            ));
        }
        self.in_failure_report = false;
        self.current = None;
    }
}

/// The crate named by cargo's "could not compile `x` (lib test) due to …" or "failed to run
/// custom build command for `x v1.2.3 (…)`".
pub(crate) fn build_failure(line: &str) -> Option<&str> {
    let line = line.strip_prefix("error: ")?;
    if let Some(rest) = line.strip_prefix("could not compile `") {
        return rest.split('`').next();
    }
    let rest = line.strip_prefix("failed to run custom build command for `")?;
    rest.split(['`', ' ']).next()
}

/// libtest's outcome word at the start of `text`. Stray output may follow it on the same line.
fn outcome_word(text: &str) -> Option<Outcome> {
    if text.starts_with("ok") {
        Some(Outcome::Passed)
    } else if text.starts_with("FAILED") {
        Some(Outcome::Failed)
    } else if text.starts_with("ignored") {
        Some(Outcome::Ignored)
    } else {
        None
    }
}

/// The number before `label` in "ok. 3 passed; 0 failed; 1 ignored; …".
fn count_before(summary: &str, label: &str) -> usize {
    summary
        .split(';')
        .find_map(|part| part.trim().strip_suffix(label.trim_start()))
        .and_then(|number| number.trim().rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

fn file_name(path: &str) -> &str {
    Path::new(path)
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or(path)
}

/// A doc test's stable name and its line. rustdoc names a doc test
/// "path/to/file.rs - item::path (line 42)" (with " - compile fail" and the like after it, and
/// no item for crate- or module-level docs). The line changes with every edit above the
/// example, so it is dropped from the id; examples of one item are numbered instead.
fn doc_test_name(raw: &str) -> (String, u32) {
    let (file, rest) = raw.split_once(" - ").unwrap_or(("", raw));
    let Some(open) = rest.find("(line ") else {
        return (raw.to_owned(), 0);
    };
    let item = rest[..open].trim();
    let after = &rest[open + "(line ".len()..];
    let Some(close) = after.find(')') else {
        return (raw.to_owned(), 0);
    };
    let line = after[..close].parse().unwrap_or(0);
    let suffix = &after[close + 1..];
    let base = if item.is_empty() { file } else { item };
    (format!("{base}{suffix}"), line)
}

/// Ids for doc tests: `package::doc::name`, then `name#2`, `name#3` for further examples of the
/// same item, in line order.
fn name_doc_tests(mut doc_tests: Vec<DocTest>) -> Vec<TestResult> {
    doc_tests.sort_by(|a, b| (&a.package, &a.name, a.line).cmp(&(&b.package, &b.name, b.line)));
    let mut results: Vec<TestResult> = Vec::with_capacity(doc_tests.len());
    let mut previous: Option<(String, String)> = None;
    let mut ordinal = 1;
    for test in doc_tests {
        let key = (test.package.clone(), test.name.clone());
        ordinal = if previous.as_ref() == Some(&key) {
            ordinal + 1
        } else {
            1
        };
        let id = if ordinal == 1 {
            format!("{}::doc::{}", test.package, test.name)
        } else {
            format!("{}::doc::{}#{ordinal}", test.package, test.name)
        };
        results.push(TestResult {
            package: test.package,
            id,
            outcome: test.outcome,
        });
        previous = Some(key);
    }
    results
}

/// `text` without ANSI colour sequences (CARGO_TERM_COLOR=always may be set in CI).
pub(crate) fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC '[' parameters, then one final byte in '@'..='~'.
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests;
