//! The `rhizo` binary as an operator runs it: agents started from config files on 127.0.0.1,
//! stopped by SIGTERM (sent to their pid) and restarted; the README's cluster commands run as
//! written; the metrics endpoint scraped; a config file with an unknown key refused.
//!
//! Every process a test starts is ended by its pid (or its process group's) when the test
//! ends, whether its checks passed or not, and every wait is bounded.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const RHIZO: &str = env!("CARGO_BIN_EXE_rhizo");
/// The bound on every wait.
const PATIENCE: Duration = Duration::from_secs(30);

/// A process this test started, ended by its pid when dropped; `group` processes are ended
/// with their whole process group (a shell and what it started).
struct Running {
    child: Child,
    group: bool,
}

impl Running {
    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Waits (bounded) for the process to exit.
    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "pid {} did not exit", self.pid());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM to the process (or its group) by pid.
    fn terminate(&self) {
        let target = if self.group {
            format!("-{}", self.pid())
        } else {
            self.pid()
        };
        let _ = Command::new("kill").args(["-TERM", "--", &target]).status();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.group {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.pid())])
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `rhizo ARGS` in `dir` to completion (bounded) and returns what it printed.
fn rhizo(dir: &Path, args: &[&str]) -> Output {
    let child = Command::new(RHIZO)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut running = Running {
        child,
        group: false,
    };
    running.wait();
    let child = &mut running.child;
    let mut output = Output {
        status: child.try_wait().unwrap().unwrap(),
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut output.stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut output.stderr)
        .unwrap();
    output
}

/// `rhizo ARGS`, which must succeed; its standard output.
fn rhizo_ok(dir: &Path, args: &[&str]) -> String {
    let output = rhizo(dir, args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "rhizo {args:?}: {stderr}");
    String::from_utf8(output.stdout).unwrap()
}

fn agent(dir: &Path, config: &str) -> Running {
    let log = std::fs::File::create(dir.join(format!("{config}.log"))).unwrap();
    let child = Command::new(RHIZO)
        .args(["agent", "--config", config])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Running {
        child,
        group: false,
    }
}

/// A port on 127.0.0.1 that nothing holds, for an agent to bind.
///
/// Taken below the range the system hands out for `bind(0)` and for the local end of outgoing
/// connections (`ip_local_port_range`): a port from that range, released for the agent, can be
/// handed to any connection (this test's own clients, a concurrent test's) before the agent
/// binds it, and an agent that cannot bind never listens — which a regression run once saw.
/// Distinct within this process (tests run concurrently in it), spread across processes by
/// the pid, and checked free by binding it. Where the system's range starts too low to leave
/// room below it, a port from `bind(0)`.
fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let span = ephemeral_low.saturating_sub(10_000).min(12_000);
    if span < 1_000 {
        return TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
    }
    let low = ephemeral_low - span;
    let start = std::process::id().wrapping_mul(2_654_435_761) % span;
    loop {
        let taken = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(taken < span, "no free port below {ephemeral_low}");
        let port = u16::try_from(low + (start + taken) % span).expect("below 65536");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Waits until something listens at `address`.
fn wait_for_listener(address: &str) {
    let deadline = Instant::now() + PATIENCE;
    while TcpStream::connect(address).is_err() {
        assert!(Instant::now() < deadline, "nothing listens at {address}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A CA, node certificates for `nodes` and the client `tester`, through `rhizo tls`.
fn certificates(dir: &Path, nodes: &[&str]) {
    rhizo_ok(dir, &["tls", "ca", "--cluster", "test"]);
    for node in nodes {
        rhizo_ok(dir, &["tls", "node", node]);
    }
    rhizo_ok(dir, &["tls", "client", "tester"]);
}

/// Writes `NAME.toml` for node `name` of `members` (name → (peer port, client port)).
fn write_config(dir: &Path, name: &str, members: &BTreeMap<&str, (u16, u16)>, extra: &str) {
    let mut text = format!(
        "node_id = \"{name}\"\ncluster_id = \"test\"\ndata_dir = \"{name}-data\"\n{extra}\n\
         [members]\n"
    );
    for (member, (peer, _)) in members {
        text.push_str(&format!("{member} = \"127.0.0.1:{peer}\"\n"));
    }
    let client = members[name].1;
    text.push_str(&format!(
        "[tls]\nca_cert = \"certs/ca.crt\"\ncert = \"certs/{name}.crt\"\nkey = \"certs/{name}.key\"\n\
         [client]\nlisten = \"127.0.0.1:{client}\"\n\
         [schema.counters]\nvalue = {{ merge = \"ADD\", type = \"integer\" }}\n\
         [schema.kv]\nreg = {{ merge = \"REGISTER\", type = \"integer\" }}\n"
    ));
    std::fs::write(dir.join(format!("{name}.toml")), text).unwrap();
}

/// The client flags for the certificates `certificates` wrote.
fn client_args(address: &str) -> Vec<&str> {
    vec![
        "--node",
        address,
        "--ca",
        "certs/ca.crt",
        "--cert",
        "certs/tester.crt",
        "--key",
        "certs/tester.key",
    ]
}

/// `rhizo SUBCOMMAND <client flags> REST…`.
fn client_command<'a>(subcommand: &'a str, address: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![subcommand];
    args.extend(client_args(address));
    args.extend_from_slice(rest);
    args
}

#[test]
fn sigterm_flushes_and_a_restarted_agent_has_everything_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path(), &["n1"]);
    let members = BTreeMap::from([("n1", (free_port(), free_port()))]);
    // Group commit with a minute's delay: acknowledged commits wait in memory, so only the
    // flush at shutdown makes them durable.
    let sync =
        "[sync]\npolicy = \"group\"\ngroup_max_delay_ms = 60000\ngroup_max_records = 1000000\n";
    write_config(dir.path(), "n1", &members, sync);
    let client = format!("127.0.0.1:{}", members["n1"].1);

    let mut node = agent(dir.path(), "n1.toml");
    wait_for_listener(&client);
    for _ in 0..5 {
        let printed = rhizo_ok(
            dir.path(),
            &client_command("tx", &client, &["increment", "counters", "hits", "2"]),
        );
        assert!(printed.starts_with("committed locally as n1:"), "{printed}");
        assert!(printed.contains("not yet durable"), "{printed}");
    }
    node.terminate();
    let status = node.wait();
    let log = std::fs::read_to_string(dir.path().join("n1.toml.log")).unwrap();
    assert!(status.success(), "exit {status:?}: {log}");
    assert!(log.contains("rhizo agent stopped"), "{log}");

    let _node = agent(dir.path(), "n1.toml");
    wait_for_listener(&client);
    let read = rhizo_ok(
        dir.path(),
        &client_command("read", &client, &["counters", "hits"]),
    );
    assert_eq!(
        read.trim(),
        "10",
        "the restarted node lost acknowledged commits"
    );
}

#[test]
fn a_config_with_an_unknown_key_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path(), &["n1"]);
    let members = BTreeMap::from([("n1", (free_port(), free_port()))]);
    write_config(dir.path(), "n1", &members, "fanout_typo = 3\n");
    let output = rhizo(dir.path(), &["agent", "--config", "n1.toml"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("unknown field `fanout_typo`"), "{stderr}");
    assert!(
        !dir.path().join("n1-data").exists(),
        "a refused config started a node"
    );
}

/// `rhizo ARGS`, retried (bounded) until it succeeds: a cluster just started may still be
/// electing its leader. Its standard output.
/// Adds `by` to `counters.hits` in a coordinated transaction through the client listener at
/// `address`, retrying until the cluster has a leader.
fn coordinated_increment(dir: &Path, address: &str, by: &str) {
    let args = ["--mode", "coordinated", "increment", "counters", "hits", by];
    rhizo_eventually(dir, &client_command("tx", address, &args));
}

fn rhizo_eventually(dir: &Path, args: &[&str]) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let output = rhizo(dir, args);
        if output.status.success() {
            return String::from_utf8(output.stdout).unwrap();
        }
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(Instant::now() < deadline, "rhizo {args:?}: {stderr}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_fourth_agent_is_added_with_rhizo_members_then_removed_and_told() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["n1", "n2", "n3", "n4"];
    certificates(dir.path(), &names);
    let ports: BTreeMap<&str, (u16, u16)> = names
        .iter()
        .map(|n| (*n, (free_port(), free_port())))
        .collect();
    let group: BTreeMap<&str, (u16, u16)> = ports
        .iter()
        .filter(|(n, _)| **n != "n4")
        .map(|(n, p)| (*n, *p))
        .collect();
    for name in ["n1", "n2", "n3"] {
        write_config(dir.path(), name, &group, "");
    }
    // The newcomer names the group and itself, and joins.
    write_config(dir.path(), "n4", &ports, "[raft]\njoin = true\n");
    let _agents: Vec<Running> = names
        .iter()
        .map(|n| agent(dir.path(), &format!("{n}.toml")))
        .collect();
    let client = |name: &str| format!("127.0.0.1:{}", ports[name].1);
    let (c1, c4) = (client("n1"), client("n4"));
    for name in names {
        wait_for_listener(&client(name));
    }

    let peer4 = format!("127.0.0.1:{}", ports["n4"].0);
    let added = rhizo_eventually(
        dir.path(),
        &members_command("add", &c1, &["n4", peer4.as_str()]),
    );
    assert_eq!(added.trim(), "added n4");
    let listed = rhizo_ok(dir.path(), &members_command("list", &c1, &[]));
    assert!(listed.lines().any(|l| l.starts_with("n4 ")), "{listed}");
    coordinated_increment(dir.path(), &c1, "3");
    // Acknowledged through n1: a linearizable read on the newcomer sees it, however far
    // behind the newcomer's own state is.
    let linearizable = rhizo_eventually(
        dir.path(),
        &client_command(
            "read",
            &c4,
            &["--consistency", "linearizable", "counters", "hits"],
        ),
    );
    assert_eq!(linearizable.trim(), "3");
    // The newcomer catches up: the value is read on it, and its own log holds its addition
    // (anti-entropy alone can bring the value; a node removed before its log showed it a member
    // cannot tell its removal from not being added yet).
    let deadline = Instant::now() + PATIENCE;
    loop {
        let read = rhizo(
            dir.path(),
            &client_command("read", &c4, &["counters", "hits"]),
        );
        let status = rhizo(dir.path(), &client_command("status", &c4, &[]));
        let members = String::from_utf8_lossy(&status.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("members").map(str::to_owned))
            .unwrap_or_default();
        if String::from_utf8_lossy(&read.stdout).trim() == "3" && members.contains("n4") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "n4 never read the value: {read:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let removed = rhizo_eventually(dir.path(), &members_command("remove", &c1, &["n4"]));
    assert_eq!(removed.trim(), "removed n4");
    let listed = rhizo_ok(dir.path(), &members_command("list", &c1, &[]));
    assert!(!listed.lines().any(|l| l.starts_with("n4 ")), "{listed}");
    // Removing it again is refused with the engine's typed error.
    let again = rhizo(dir.path(), &members_command("remove", &c1, &["n4"]));
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("n4 is not a member"),
        "{again:?}"
    );
    // n4 learns it was removed (from its log, or from a member's refusal): its status says so,
    // and it refuses writes with a typed error instead of acknowledging what no member takes.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let status = rhizo(dir.path(), &client_command("status", &c4, &[]));
        if String::from_utf8_lossy(&status.stdout).contains("removed   from the cluster") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "n4 never learned: {status:?}\n{}",
            std::fs::read_to_string(dir.path().join("n4.toml.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let refused = rhizo(
        dir.path(),
        &client_command("tx", &c4, &["increment", "counters", "hits", "1"]),
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("removed from its cluster"),
        "{refused:?}"
    );
}

#[test]
fn a_dead_member_is_not_drained_and_is_removed_with_force() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["n1", "n2", "n3"];
    certificates(dir.path(), &names);
    let ports: BTreeMap<&str, (u16, u16)> = names
        .iter()
        .map(|n| (*n, (free_port(), free_port())))
        .collect();
    for name in names {
        write_config(dir.path(), name, &ports, "commit_timeout_ms = 1500");
    }
    let mut agents: BTreeMap<&str, Running> = names
        .iter()
        .map(|n| (*n, agent(dir.path(), &format!("{n}.toml"))))
        .collect();
    let client = |name: &str| format!("127.0.0.1:{}", ports[name].1);
    let c1 = client("n1");
    for name in names {
        wait_for_listener(&client(name));
    }
    // A coordinated commit shows the group has a leader before n3 goes.
    coordinated_increment(dir.path(), &c1, "1");
    let mut dead = agents.remove("n3").unwrap();
    dead.terminate();
    dead.wait();
    drop(dead);
    // n3 can no longer show that the others hold its commits: the draining removal retires it
    // but fails, saying so (a survivor may first be electing a leader: retried, bounded).
    let deadline = Instant::now() + PATIENCE;
    let not_drained = loop {
        let output = rhizo(dir.path(), &members_command("remove", &c1, &["n3"]));
        assert!(
            !output.status.success(),
            "a dead member drained: {output:?}"
        );
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if stderr.contains("n3 has not drained") {
            break stderr;
        }
        assert!(
            Instant::now() < deadline,
            "never told n3 had not drained: {stderr}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(not_drained.contains("force"), "{not_drained}");
    let listed = rhizo_ok(dir.path(), &members_command("list", &c1, &[]));
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("n3 ") && l.contains("retired")),
        "{listed}"
    );
    // --force removes it at once.
    let removed = rhizo_eventually(
        dir.path(),
        &members_command("remove", &c1, &["--force", "n3"]),
    );
    assert_eq!(removed.trim(), "removed n3");
    let listed = rhizo_ok(dir.path(), &members_command("list", &c1, &[]));
    assert!(!listed.lines().any(|l| l.starts_with("n3 ")), "{listed}");
}

/// `rhizo members WHAT <client flags> REST…`.
fn members_command<'a>(what: &'a str, address: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["members", what];
    args.extend(client_args(address));
    args.extend_from_slice(rest);
    args
}

/// Reads the whole scrape of the endpoint at `address`.
fn scrape(address: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(address) else {
        return String::new();
    };
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return String::new();
    }
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body);
    body
}

/// The metric names docs/metrics.md documents.
fn documented_metrics() -> Vec<String> {
    include_str!("../../../docs/metrics.md")
        .lines()
        .filter_map(|line| line.strip_prefix("| `rhizo_"))
        .filter_map(|rest| rest.split('`').next())
        .map(|name| format!("rhizo_{name}"))
        .collect()
}

#[test]
fn the_metrics_endpoint_serves_every_documented_metric() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path(), &["n1", "n2"]);
    let members = BTreeMap::from([
        ("n1", (free_port(), free_port())),
        ("n2", (free_port(), free_port())),
    ]);
    let endpoint = format!("127.0.0.1:{}", free_port());
    let metrics = format!("[metrics]\nlisten = \"{endpoint}\"\ninterval_ms = 50\n");
    write_config(dir.path(), "n1", &members, &metrics);
    write_config(dir.path(), "n2", &members, "");
    let n1_client = format!("127.0.0.1:{}", members["n1"].1);
    let _n1 = agent(dir.path(), "n1.toml");
    let mut n2 = agent(dir.path(), "n2.toml");
    wait_for_listener(&n1_client);

    // A local commit, a coordinated one, a client refused (no certificate), a peer handshake
    // that fails, and, by stopping n2, connections closed.
    let local = client_command("tx", &n1_client, &["increment", "counters", "x", "1"]);
    rhizo_ok(dir.path(), &local);
    let coordinated = client_command("tx", &n1_client, &["put", "kv", "r", "reg", "5"]);
    rhizo_ok(dir.path(), &coordinated);
    let refused = rhizo(
        dir.path(),
        &["status", "--node", &n1_client, "--ca", "certs/ca.crt"],
    );
    assert!(!refused.status.success());
    let mut garbage = TcpStream::connect(format!("127.0.0.1:{}", members["n1"].0)).unwrap();
    let _ = garbage.write_all(b"this is not a TLS client hello");
    drop(garbage);
    n2.terminate();
    assert!(n2.wait().success());

    let deadline = Instant::now() + PATIENCE;
    loop {
        let scraped = scrape(&endpoint);
        let missing: Vec<String> = documented_metrics()
            .into_iter()
            .filter(|name| !scraped.lines().any(|line| line.starts_with(name.as_str())))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not exported: {missing:?}\n{scraped}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The README's cluster block, and the lines it says the commands print.
struct ReadmeBlock {
    script: String,
    /// Each expected line, and whether only its start (up to `…`) must match.
    expected: Vec<(String, bool)>,
}

fn readme_block() -> ReadmeBlock {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find("readme_cluster_runs_as_written")
        .expect("the README's cluster block");
    let block = &readme[start..];
    let block = &block[block.find("```sh\n").unwrap() + 6..];
    let script = block[..block.find("\n```").unwrap()].to_owned();
    let expected = script
        .lines()
        .filter_map(|line| {
            if let Some(exact) = line.strip_prefix("#> ") {
                Some((exact.to_owned(), false))
            } else {
                let start = line.strip_prefix("#~ ")?;
                Some((start.trim_end_matches('…').to_owned(), true))
            }
        })
        .collect();
    ReadmeBlock { script, expected }
}

#[test]
fn readme_cluster_runs_as_written() {
    let block = readme_block();
    assert!(block.expected.len() >= 5, "{:?}", block.expected);
    let dir = tempfile::tempdir().unwrap();
    let bin = Path::new(RHIZO).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let child = Command::new("bash")
        .args(["-e", "-c", &block.script])
        .current_dir(dir.path())
        .env("PATH", path)
        .env_remove("RHIZO_NODE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut shell = Running { child, group: true };
    let status = shell.wait();
    // A block that failed part-way leaves its agents running, holding its output open: end
    // the group first (the block's last line already sent SIGTERM to each agent otherwise),
    // so that reading the output ends.
    shell.terminate();
    let mut stdout = String::new();
    let mut stderr = String::new();
    shell
        .child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    shell
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    drop(shell);
    assert!(
        status.success(),
        "the block failed: {status:?}\n{stdout}\n{stderr}"
    );
    let mut lines = stdout.lines();
    for (expected, prefix_only) in &block.expected {
        let found = lines.any(|line| {
            if *prefix_only {
                line.starts_with(expected.as_str())
            } else {
                line == expected
            }
        });
        assert!(
            found,
            "the README says {expected:?}; the commands printed:\n{stdout}"
        );
    }
}
