//! Production systems measured beside Rhizo in the same run, each in a module of its own that
//! finds (or installs) the system, starts it on 127.0.0.1, stops it by process id, and speaks
//! its client protocol; and what they share: finding a program, installing its Debian package
//! within a deadline, free ports, a log's last lines.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) mod etcd;
pub(crate) mod redis;

/// `program`'s path, if it is on PATH.
pub(crate) fn on_path(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Whether this process's effective user is root (from /proc: no `libc` call, no unsafe code).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            // Real, effective, saved and filesystem ids: the effective one decides.
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

/// Installs Debian's `package` (which provides `program`) with apt-get, if this process runs as
/// root on a system that has apt-get, within `timeout` (apt-get is stopped by its pid after that:
/// a bench must not wait forever on a package mirror). `Err` says why not, ending with
/// `how_to_install`: the peer's rows are skipped with that reason.
pub(crate) fn install_package(
    program: &str,
    package: &str,
    how_to_install: &str,
    timeout: Duration,
) -> Result<(), String> {
    if !running_as_root() {
        return Err(format!(
            "{program} is not installed and this process is not root: {how_to_install}"
        ));
    }
    let apt = on_path("apt-get").ok_or_else(|| {
        format!("{program} is not installed and there is no apt-get: {how_to_install}")
    })?;
    eprintln!(
        "rhizo-bench: {program} is not installed; installing Debian's {package} with apt-get"
    );
    let deadline = Instant::now() + timeout;
    let install = [
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "-o",
        "DPkg::Lock::Timeout=60",
        package,
    ];
    if run_until(&apt, &install, deadline).is_ok() {
        return Ok(());
    }
    // A fresh machine may have no package lists yet, or stale ones: refresh them once.
    run_until(&apt, &["update", "-q"], deadline)
        .and_then(|()| run_until(&apt, &install, deadline))
        .map_err(|e| format!("installing {package} failed ({e}); {how_to_install}"))
}

/// Runs `program args` to completion or until `deadline`, when it is killed by its pid. Its
/// output goes to a temporary file (a pipe nobody reads could fill and stall it), whose end is
/// quoted when it fails.
fn run_until(program: &Path, args: &[&str], deadline: Instant) -> Result<(), String> {
    let described = format!("{} {}", program.display(), args.join(" "));
    let output = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    let sink = |file: &File| file.try_clone().map(Stdio::from).map_err(|e| e.to_string());
    let mut child = Command::new(program)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(sink(output.as_file())?)
        .stderr(sink(output.as_file())?)
        .spawn()
        .map_err(|e| format!("{described}: {e}"))?;
    loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) if status.success() => return Ok(()),
            Some(status) => {
                return Err(format!(
                    "{described}: {status}: {}",
                    tail(output.path(), 600)
                ));
            }
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{described}: still running at its deadline"));
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The last `chars` characters of a file (a log), for an error message.
pub(crate) fn tail(path: &Path, chars: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let skip = text.chars().count().saturating_sub(chars);
    text.chars()
        .skip(skip)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// `count` distinct ports free on 127.0.0.1 at the moment of asking: all bound at once (so the
/// system hands out distinct ones), then released for the caller to use.
pub(crate) fn free_ports(count: usize) -> Result<Vec<u16>, String> {
    let listeners = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("finding free ports: {e}"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("finding free ports: {e}"))
}
