//! The networked Python rows: a 1-op coordination-free commit through a node running in the
//! Python process, and through `rhizo.connect()` on loopback, beside a Redis INCR from Python
//! (the `redis` client against Debian's `redis-server`) in the same run.

use std::path::Path;
use std::process::Command;

use crate::peers::redis::RedisServer;
use crate::results::PythonNetRow;

/// The probe, a script of the Python package (it runs by hand as well).
const PROBE: &str = "crates/rhizo-py/bench/network.py";

/// Measures the rows through `./.venv/bin/python` (whose bindings `cargo xtask bench` has just
/// built in release mode). `None` when the bindings are not there or the probe failed (said on
/// stderr); the Redis row alone is skipped, with its reason, when Redis cannot be run.
pub(crate) fn python_network_rows() -> Option<PythonNetRow> {
    let python = Path::new(".venv/bin/python");
    if !python.exists() {
        return None;
    }
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into());
    let redis = redis_client(python).and_then(|()| RedisServer::start());
    let mut probe = Command::new(python);
    probe.arg(PROBE);
    if let Ok(server) = &redis {
        probe.args(["--redis-port", &server.port().to_string()]);
    }
    let output = probe.output().ok()?;
    // Stopped (by pid) as soon as the probe is done.
    let redis_skipped = redis.err();
    if !output.status.success() {
        eprintln!(
            "python network probe failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    let micros = |key: &str| value[key].as_f64();
    Some(PythonNetRow {
        node_p50_us: micros("node_p50_us")?,
        node_p99_us: micros("node_p99_us")?,
        client_p50_us: micros("client_p50_us")?,
        client_p99_us: micros("client_p99_us")?,
        redis_p50_us: micros("redis_p50_us"),
        redis_p99_us: micros("redis_p99_us"),
        redis_skipped: redis_skipped.or_else(|| value["redis_skipped"].as_str().map(Into::into)),
        samples: value["samples"].as_u64().unwrap_or(0),
        load_average: load,
    })
}

/// Makes sure the venv has the `redis` client (pip installs it when missing).
fn redis_client(python: &Path) -> Result<(), String> {
    let present = |python: &Path| {
        Command::new(python)
            .args(["-c", "import redis"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if present(python) {
        return Ok(());
    }
    let installed = Command::new(python)
        .args(["-m", "pip", "install", "-q", "redis"])
        .output()
        .map_err(|e| format!("pip could not run: {e}"))?;
    if installed.status.success() && present(python) {
        Ok(())
    } else {
        Err(format!(
            "pip install redis failed: {}",
            String::from_utf8_lossy(&installed.stderr).trim()
        ))
    }
}
