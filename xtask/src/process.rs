//! Running child processes with their output both shown and kept for parsing.

use std::io::{self, BufRead, BufReader, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// What a finished child process left behind.
#[derive(Debug)]
pub(crate) struct Captured {
    pub(crate) status: ExitStatus,
    /// stdout and stderr merged, in the order the child (and its children) wrote them.
    pub(crate) output: String,
    pub(crate) elapsed: Duration,
}

/// The command line of `command`, for messages.
pub(crate) fn describe(command: &Command) -> String {
    let mut text = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Runs `command` to completion with stdout and stderr sent into one pipe.
///
/// One pipe, not two: cargo announces each test binary on stderr ("Running ...") and the binary
/// reports its tests on stdout, so only a shared pipe keeps the order that tells which binary a
/// result belongs to. Each line is printed when `show(line)` is true, and every line is kept.
pub(crate) fn run_merged(mut command: Command, show: &dyn Fn(&str) -> bool) -> Result<Captured> {
    let program = describe(&command);
    let (reader, writer) =
        io::pipe().map_err(|e| Error::new(format!("cannot create a pipe: {e}")))?;
    let writer_for_stdout = writer
        .try_clone()
        .map_err(|e| Error::new(format!("cannot duplicate a pipe: {e}")))?;
    command
        .stdin(Stdio::null())
        .stdout(writer_for_stdout)
        .stderr(writer);
    let started = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| Error::new(format!("cannot start `{program}`: {e}")))?;
    // The command still holds the pipe's write ends; the reader sees end-of-file only once they
    // are closed here and the child has exited.
    drop(command);

    let mut reader = BufReader::new(reader);
    let mut output = String::new();
    let mut line = Vec::new();
    let stdout = io::stdout();
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::new(format!("cannot read the output of `{program}`: {e}")))?;
        if read == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&line);
        if show(text.trim_end_matches(['\n', '\r'])) {
            let mut out = stdout.lock();
            // A closed stdout (xtask piped into `head`) must not stop the checks.
            let _ = out.write_all(text.as_bytes());
            if !text.ends_with('\n') {
                let _ = out.write_all(b"\n");
            }
        }
        output.push_str(&text);
        if !text.ends_with('\n') {
            output.push('\n');
        }
    }
    let status = child
        .wait()
        .map_err(|e| Error::new(format!("cannot wait for `{program}`: {e}")))?;
    Ok(Captured {
        status,
        output,
        elapsed: started.elapsed(),
    })
}

/// Seconds with one decimal, for step timings.
pub(crate) fn seconds(elapsed: Duration) -> String {
    format!("{:.1} s", elapsed.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdout_and_stderr_arrive_in_the_order_written() {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "echo one; echo two >&2; echo three; printf 'no newline' >&2",
        ]);
        let captured = run_merged(command, &|_| false).unwrap();
        assert!(captured.status.success());
        assert_eq!(captured.output, "one\ntwo\nthree\nno newline\n");
    }

    #[test]
    fn exit_status_is_reported() {
        let mut command = Command::new("sh");
        command.args(["-c", "exit 3"]);
        let captured = run_merged(command, &|_| true).unwrap();
        assert_eq!(captured.status.code(), Some(3));
    }

    #[test]
    fn a_missing_program_is_an_error_naming_it() {
        let command = Command::new("rhizo-no-such-program");
        let error = run_merged(command, &|_| true).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("cannot start `rhizo-no-such-program`"),
            "{error}"
        );
    }

    #[test]
    fn describe_shows_program_and_arguments() {
        let mut command = Command::new("cargo");
        command.args(["test", "-p", "rhizo-clock"]);
        assert_eq!(describe(&command), "cargo test -p rhizo-clock");
    }
}
