//! Memory per key: one `Engine` committing many distinct counters (one increment each, by name),
//! its resident bytes per key and commit rate, and Redis holding the same counters (`INCR`) in the
//! same run. Each engine measurement runs in a process of its own (`rhizo-bench child-memory`),
//! so that the resident-set delta is that engine's alone.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Instant;

use rhizo_clock::NodeId;
use rhizo_commit::Operations;
use rhizo_txn::{Engine, EngineConfig, SyncPolicy, TransactionMode, default_schema};

use crate::peers::redis::RedisServer;
use crate::results::MemoryRow;

/// The process's resident set in bytes (`/proc/self/statm`'s second field times the page size),
/// or 0 where /proc is not available.
fn resident_bytes() -> u64 {
    const PAGE: u64 = 4096;
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * PAGE)
}

/// The name of counter `i`: the same names for the engine and for Redis. Eleven bytes up to
/// 10 M counters, so that with `counters` and `value` a key is 24 bytes, which a `CellKey`
/// holds inline; a longer name adds its heap allocation to each key.
fn counter_name(i: usize) -> String {
    format!("key:{i:07}")
}

/// The sync policies the rows measure, by the names `SyncPolicy::named` takes.
pub(crate) const POLICIES: [&str; 2] = ["none", "group"];

fn policy(name: &str) -> Result<SyncPolicy, String> {
    match name {
        "none" => Ok(SyncPolicy::None),
        "group" => Ok(SyncPolicy::Group {
            max_delay_ms: 5,
            max_records: 1024,
        }),
        other => Err(format!("unknown sync policy `{other}` (none, group)")),
    }
}

/// One engine on a fresh directory under sync `policy_name` commits `keys` one-increment
/// transactions on distinct counters; the row holds the resident delta per key and the commits
/// per second. Run in a process of its own.
pub(crate) fn engine_row(keys: usize, policy_name: &str) -> Result<MemoryRow, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let node = NodeId::new("bench").map_err(|e| e.to_string())?;
    let config = EngineConfig::new(node)
        .with_schema(default_schema())
        .with_sync(policy(policy_name)?);
    // Names are built before the baseline is read, so neither their memory nor their
    // formatting is counted; they are dropped before the final reading.
    let names: Vec<String> = (0..keys).map(counter_name).collect();
    let mut engine = Engine::open(dir.path(), config).map_err(|e| e.to_string())?;
    let before = resident_bytes();
    let started = Instant::now();
    for name in &names {
        let mut tx = engine.transaction(TransactionMode::CoordinationFree);
        tx.increment("counters", name, "value", 1);
        let _committed = tx.commit().map_err(|e| e.to_string())?;
    }
    engine.flush().map_err(|e| e.to_string())?;
    let seconds = started.elapsed().as_secs_f64();
    // Read while the names still live: dropping them first would return their vector's pages
    // to the OS and take them off the engine's figure.
    let after = resident_bytes();
    drop(names);
    let read = engine
        .read("counters", &counter_name(keys - 1), "value")
        .map_err(|e| e.to_string())?;
    if read.as_integer() != Some(1) {
        return Err(format!("the last counter reads {read:?}, not 1"));
    }
    engine.close().map_err(|e| e.to_string())?;
    Ok(MemoryRow {
        system: "rhizo".into(),
        sync: policy_name.into(),
        keys,
        bytes_per_key: after.saturating_sub(before) as f64 / keys as f64,
        measure: "resident set delta (/proc/self/statm), names built beforehand".into(),
        ops_per_sec: keys as f64 / seconds,
        skipped: None,
    })
}

/// One engine row in a child process (`rhizo-bench child-memory KEYS POLICY`).
pub(crate) fn engine_row_in_child(keys: usize, policy_name: &str) -> Result<MemoryRow, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let output = Command::new(exe)
        .args(["child-memory", &keys.to_string(), policy_name])
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).map_err(|e| {
        format!(
            "memory {keys} keys, sync {policy_name}: {e}; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Redis holding `keys` counters, one `INCR` each (pipelined in batches, so the figure is the
/// server's memory rather than a round trip per key): `INFO memory`'s `used_memory` after minus
/// before, per key. A row with `skipped` set when Redis cannot run here.
pub(crate) fn redis_row(keys: usize) -> MemoryRow {
    let skipped = |reason: String| MemoryRow {
        system: "redis".into(),
        sync: "none".into(),
        keys,
        bytes_per_key: 0.0,
        measure: String::new(),
        ops_per_sec: 0.0,
        skipped: Some(reason),
    };
    let server = match RedisServer::start() {
        Ok(server) => server,
        Err(reason) => return skipped(reason),
    };
    match redis_incr(server.port(), keys) {
        Ok((bytes, ops_per_sec)) => MemoryRow {
            system: "redis".into(),
            sync: "none".into(),
            keys,
            bytes_per_key: bytes as f64 / keys as f64,
            measure: "INFO memory used_memory delta (persistence off), pipelined INCR".into(),
            ops_per_sec,
            skipped: None,
        },
        Err(reason) => skipped(reason),
    }
}

/// Commands per pipelined batch.
const PIPELINE: usize = 1000;

fn redis_incr(port: u16, keys: usize) -> Result<(u64, f64), String> {
    let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let before = used_memory(&mut writer, &mut reader)?;
    let started = Instant::now();
    let mut batch = Vec::with_capacity(PIPELINE * 32);
    for start in (0..keys).step_by(PIPELINE) {
        batch.clear();
        let end = (start + PIPELINE).min(keys);
        for i in start..end {
            let name = counter_name(i);
            write!(batch, "*2\r\n$4\r\nINCR\r\n${}\r\n{name}\r\n", name.len())
                .map_err(|e| e.to_string())?;
        }
        writer.write_all(&batch).map_err(|e| e.to_string())?;
        let mut line = String::new();
        for _ in start..end {
            line.clear();
            reader.read_line(&mut line).map_err(|e| e.to_string())?;
            if !line.starts_with(':') {
                return Err(format!("INCR answered {line:?}"));
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let after = used_memory(&mut writer, &mut reader)?;
    Ok((after.saturating_sub(before), keys as f64 / seconds))
}

/// `used_memory` from `INFO memory`.
fn used_memory(writer: &mut TcpStream, reader: &mut BufReader<TcpStream>) -> Result<u64, String> {
    writer
        .write_all(b"*2\r\n$4\r\nINFO\r\n$6\r\nmemory\r\n")
        .map_err(|e| e.to_string())?;
    let mut header = String::new();
    reader.read_line(&mut header).map_err(|e| e.to_string())?;
    let len: usize = header
        .trim()
        .strip_prefix('$')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("INFO answered {header:?}"))?;
    let mut body = vec![0u8; len + 2];
    std::io::Read::read_exact(reader, &mut body).map_err(|e| e.to_string())?;
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|line| line.strip_prefix("used_memory:")?.trim().parse().ok())
        .ok_or_else(|| "INFO memory has no used_memory".to_string())
}
