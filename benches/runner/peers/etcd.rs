//! etcd (Debian's `etcd-server`, 3.4) as a three-member cluster on 127.0.0.1, and a client of
//! its v3 HTTP/JSON gateway (`/v3/kv/put`, `/v3/kv/txn`; keys and values in base64).
//!
//! The members keep etcd's defaults for durability: a member fsyncs its write-ahead log before
//! it acknowledges an entry, so a put is durable on a quorum before its answer — the promise
//! Rhizo's `SyncPolicy::EveryCommit` makes.
//!
//! Each member gets ports found free just before it starts, and a data directory and a log file
//! of its own under one temporary directory. The members are stopped through their process
//! handles (SIGKILL to that pid, then reaped) when the [`Cluster`] is dropped — after a run, on
//! an error return and while unwinding alike. Nothing here finds processes by name, so another
//! etcd on this machine is never touched.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use super::{free_ports, install_package, on_path, tail};

/// Members of the cluster.
pub(crate) const MEMBERS: usize = 3;

/// What to do when etcd is missing, for the reason a skipped row gives.
const HOW_TO_INSTALL: &str =
    "install it with `apt-get install etcd-server` (as root), or put an etcd 3.4 binary on PATH";
/// How long a new cluster has to elect a leader and accept a write through every member.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// A port found free may be taken by another process before etcd binds it; starting is tried
/// again on new ports this many times in all.
const START_ATTEMPTS: usize = 3;

/// An etcd server binary.
#[derive(Debug, Clone)]
pub(crate) struct Binary {
    path: PathBuf,
    /// "etcd" and the version `etcd --version` prints, e.g. "etcd 3.4.23".
    pub(crate) version: String,
}

/// The `etcd` on PATH, if there is one.
pub(crate) fn locate() -> Result<Binary, String> {
    let path = on_path("etcd").ok_or_else(|| format!("etcd is not installed: {HOW_TO_INSTALL}"))?;
    let output = Command::new(&path)
        .arg("--version")
        .output()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let version = version_of(&String::from_utf8_lossy(&output.stdout));
    Ok(Binary { path, version })
}

/// "etcd 3.4.23" from what `etcd --version` prints ("etcd Version: 3.4.23", then the git sha,
/// Go version and platform, one a line).
fn version_of(printed: &str) -> String {
    printed
        .lines()
        .find_map(|line| line.trim().strip_prefix("etcd Version:"))
        .map_or_else(
            || "etcd, version unknown".to_owned(),
            |v| format!("etcd {}", v.trim()),
        )
}

/// The `etcd` on PATH; when there is none, Debian's `etcd-server` is installed with apt-get if
/// this process runs as root on a system that has apt-get, within `install_timeout` (apt-get is
/// stopped by its pid after that: a bench must not wait forever on a package mirror). `Err`
/// says why etcd cannot be used and how to get it: the etcd rows are skipped with that reason.
pub(crate) fn locate_or_install(install_timeout: Duration) -> Result<Binary, String> {
    if on_path("etcd").is_none() {
        install_package("etcd", "etcd-server", HOW_TO_INSTALL, install_timeout)?;
    }
    locate()
}

struct Member {
    child: Child,
    client_url: String,
    log: PathBuf,
}

/// A running three-member etcd cluster; its members are killed (by pid) when it is dropped.
pub(crate) struct Cluster {
    // Members before the directory: fields drop in order, so the processes are gone before
    // their data directories are removed.
    members: Vec<Member>,
    dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for member in &mut self.members {
            let _ = member.child.kill();
            let _ = member.child.wait();
        }
    }
}

impl Cluster {
    /// Starts the members and waits until a write goes through each of them.
    pub(crate) fn start(binary: &Binary) -> Result<Self, String> {
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match Self::start_once(binary) {
                Ok(cluster) => return Ok(cluster),
                Err(failure) => failures.push(failure),
            }
        }
        Err(format!(
            "etcd did not start in {START_ATTEMPTS} attempts: {}",
            failures.join("; ")
        ))
    }

    fn start_once(binary: &Binary) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("rhizo-bench-etcd")
            .tempdir()
            .map_err(|e| format!("a data directory for etcd: {e}"))?;
        let ports = free_ports(2 * MEMBERS)?;
        let client_url = |i: usize| format!("http://127.0.0.1:{}", ports[2 * i]);
        let peer_url = |i: usize| format!("http://127.0.0.1:{}", ports[2 * i + 1]);
        let initial_cluster = (0..MEMBERS)
            .map(|i| format!("m{i}={}", peer_url(i)))
            .collect::<Vec<_>>()
            .join(",");
        // A token of this process's own: members of another run cannot join this cluster.
        let token = format!("rhizo-bench-{}", std::process::id());
        let mut cluster = Cluster {
            members: Vec::with_capacity(MEMBERS),
            dir,
        };
        for i in 0..MEMBERS {
            let data = cluster.dir.path().join(format!("m{i}"));
            let log = cluster.dir.path().join(format!("m{i}.log"));
            let file = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
            let sink = |file: &File| file.try_clone().map(Stdio::from).map_err(|e| e.to_string());
            let child = Command::new(&binary.path)
                .arg(format!("--name=m{i}"))
                .arg(format!("--data-dir={}", data.display()))
                .arg(format!("--listen-client-urls={}", client_url(i)))
                .arg(format!("--advertise-client-urls={}", client_url(i)))
                .arg(format!("--listen-peer-urls={}", peer_url(i)))
                .arg(format!("--initial-advertise-peer-urls={}", peer_url(i)))
                .arg(format!("--initial-cluster={initial_cluster}"))
                .arg(format!("--initial-cluster-token={token}"))
                .args([
                    "--initial-cluster-state=new",
                    "--logger=zap",
                    "--log-level=warn",
                ])
                .stdin(Stdio::null())
                .stdout(sink(&file)?)
                .stderr(sink(&file)?)
                .spawn()
                .map_err(|e| format!("{}: {e}", binary.path.display()))?;
            cluster.members.push(Member {
                child,
                client_url: client_url(i),
                log,
            });
        }
        cluster.wait_ready()?;
        Ok(cluster)
    }

    /// Waits until a put succeeds through every member (a leader is elected and every member
    /// reaches it); a member that exits meanwhile fails the start with the end of its log.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let clients: Vec<EtcdClient> = self
            .members
            .iter()
            .map(|m| EtcdClient::new(&m.client_url, Duration::from_secs(2)))
            .collect();
        let mut ready = [false; MEMBERS];
        while Instant::now() < deadline {
            for (i, member) in self.members.iter_mut().enumerate() {
                if let Ok(Some(status)) = member.child.try_wait() {
                    return Err(format!(
                        "etcd member m{i} exited ({status}): {}",
                        tail(&member.log, 600)
                    ));
                }
                if !ready[i] {
                    ready[i] = clients[i].put(b"rhizo-bench-ready", b"1").is_ok();
                }
            }
            if ready.iter().all(|&r| r) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "no write went through every etcd member within {READY_TIMEOUT:?}; m0's log: {}",
            tail(&self.members[0].log, 600)
        ))
    }

    /// Each member's client URL (`http://127.0.0.1:PORT`).
    pub(crate) fn client_urls(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// The members' process ids.
    #[cfg(test)]
    fn pids(&self) -> Vec<u32> {
        self.members.iter().map(|m| m.child.id()).collect()
    }
}

/// A request etcd did not carry out, or whose outcome is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// Whether a client would try again: no answer (a timeout, a closed connection), or an
    /// answer that etcd was busy or between leaders.
    pub(crate) retryable: bool,
    /// What happened.
    pub(crate) reason: String,
}

/// What a compare-and-set found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Swap {
    /// The key held the expected value and now holds the new one.
    Swapped,
    /// The key held this instead (`None`: the key does not exist); nothing was written.
    Held(Option<Vec<u8>>),
}

/// One client connection (HTTP/1.1 keep-alive) to one etcd member's gateway.
pub(crate) struct EtcdClient {
    agent: ureq::Agent,
    put_url: String,
    txn_url: String,
    range_url: String,
}

impl EtcdClient {
    /// A client of the member at `client_url`; each request waits at most `timeout`.
    pub(crate) fn new(client_url: &str, timeout: Duration) -> Self {
        let config = ureq::Agent::config_builder()
            // Loopback only: a proxy from the environment must not carry these requests.
            .proxy(None)
            // etcd's errors are answers with a JSON body that says whether to retry.
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build();
        Self {
            agent: config.into(),
            put_url: format!("{client_url}/v3/kv/put"),
            txn_url: format!("{client_url}/v3/kv/txn"),
            range_url: format!("{client_url}/v3/kv/range"),
        }
    }

    /// Writes `value` under `key`.
    pub(crate) fn put(&self, key: &[u8], value: &[u8]) -> Result<(), Failure> {
        let body = json!({ "key": BASE64.encode(key), "value": BASE64.encode(value) });
        self.post(&self.put_url, &body).map(drop)
    }

    /// Reads `key` linearizably (etcd's default range: the member confirms with the leader
    /// that it holds everything committed before answering): its value, `None` if absent.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Failure> {
        let body = json!({ "key": BASE64.encode(key) });
        let answer = self.post(&self.range_url, &body)?;
        parse_range(&answer)
    }

    /// Writes `new` under `key` if it holds `expected`, in one transaction; otherwise reads what
    /// it holds, in the same transaction.
    pub(crate) fn compare_and_set(
        &self,
        key: &[u8],
        expected: &[u8],
        new: &[u8],
    ) -> Result<Swap, Failure> {
        let answer = self.post(&self.txn_url, &cas_request(key, expected, new))?;
        parse_swap(&answer)
    }

    fn post(&self, url: &str, body: &Value) -> Result<Value, Failure> {
        let no_answer = |err: ureq::Error| Failure {
            // No answer came: the request may or may not have been carried out, and a client
            // asks again (a put rewrites the same value; a compare-and-set checks what it finds).
            retryable: matches!(
                err,
                ureq::Error::Io(_) | ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed
            ),
            reason: format!("{url}: {err}"),
        };
        let mut response = self
            .agent
            .post(url)
            .header("content-type", "application/json")
            .send(body.to_string())
            .map_err(no_answer)?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().map_err(no_answer)?;
        answer(status, &text)
    }
}

/// The `/v3/kv/txn` body of a compare-and-set: if `key`'s value is `expected`, put `new`;
/// otherwise range over `key`, so a failed swap says what it found.
fn cas_request(key: &[u8], expected: &[u8], new: &[u8]) -> Value {
    let key = BASE64.encode(key);
    json!({
        "compare": [{
            "key": key,
            "result": "EQUAL",
            "target": "VALUE",
            "value": BASE64.encode(expected),
        }],
        "success": [{ "request_put": { "key": key, "value": BASE64.encode(new) } }],
        "failure": [{ "request_range": { "key": key } }],
    })
}

/// etcd's answer with HTTP status `status` and body `text`: the JSON of a success, or a
/// [`Failure`] saying whether to retry.
fn answer(status: u16, text: &str) -> Result<Value, Failure> {
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    if status == 200 {
        return parsed.ok_or_else(|| Failure {
            retryable: false,
            reason: format!("etcd answered 200 with a body that is not JSON: {text:.200}"),
        });
    }
    // The gateway answers a gRPC error with its code and message: Unavailable (14, HTTP 503)
    // for "request timed out", "leader changed" or no leader; DeadlineExceeded (4, HTTP 504);
    // ResourceExhausted (8, HTTP 429) for "too many requests".
    let code = parsed
        .as_ref()
        .and_then(|v| v.get("code"))
        .and_then(Value::as_u64);
    let message = parsed
        .as_ref()
        .and_then(|v| v.get("error").or_else(|| v.get("message")))
        .and_then(Value::as_str)
        .unwrap_or(text);
    Err(Failure {
        retryable: matches!(status, 429 | 503 | 504) || matches!(code, Some(4 | 8 | 14)),
        reason: format!("etcd answered HTTP {status}: {message:.200}"),
    })
}

/// What a compare-and-set's answer says. The gateway leaves out fields that hold their default
/// (proto3 JSON), so a failed swap has no `succeeded` and a missing key no `kvs`.
fn parse_swap(answer: &Value) -> Result<Swap, Failure> {
    if answer.get("succeeded").and_then(Value::as_bool) == Some(true) {
        return Ok(Swap::Swapped);
    }
    let malformed = |what: &str| Failure {
        retryable: false,
        reason: format!(
            "a compare-and-set answer {what}: {}",
            answer.to_string().chars().take(300).collect::<String>()
        ),
    };
    let range = answer
        .get("responses")
        .and_then(|r| r.get(0))
        .and_then(|r| r.get("response_range").or_else(|| r.get("responseRange")))
        .ok_or_else(|| malformed("without the read of the failure branch"))?;
    range_value(range)
        .map(Swap::Held)
        .map_err(|()| malformed("whose value is not base64"))
}

/// The value a range answer holds for its key (`None`: no such key); `Err` if not base64.
fn range_value(range: &Value) -> Result<Option<Vec<u8>>, ()> {
    let value = range
        .get("kvs")
        .and_then(|kvs| kvs.get(0))
        .map(|kv| kv.get("value").and_then(Value::as_str).unwrap_or(""));
    value
        .map(|encoded| BASE64.decode(encoded).map_err(drop))
        .transpose()
}

/// A `/v3/kv/range` answer's value.
fn parse_range(answer: &Value) -> Result<Option<Vec<u8>>, Failure> {
    range_value(answer).map_err(|()| Failure {
        retryable: false,
        reason: format!(
            "a range answer whose value is not base64: {}",
            answer.to_string().chars().take(300).collect::<String>()
        ),
    })
}

#[cfg(test)]
mod tests;
