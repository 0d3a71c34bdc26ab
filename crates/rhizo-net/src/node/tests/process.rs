//! A node in a child process, killed with SIGKILL mid-load and restarted on its directory:
//! it keeps everything it acknowledged and catches up with the others.
//!
//! The child is this test binary run again with `RHIZO_NODE_CHILD` set; it talks to the
//! parent through its standard output only, and the parent ends it by its pid whatever happens.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use super::*;

const CHILD: &str = "RHIZO_NODE_CHILD";
const TEST: &str = "node::tests::process::a_node_killed_mid_load_keeps_what_it_acknowledged";

/// What the child is told: `mode|data dir|certificates dir|address of n0|n1|n2`.
fn spec(mode: &str, dir: &Path, certs: &Path, members: &BTreeMap<NodeId, String>) -> String {
    let addresses: Vec<&str> = members.values().map(String::as_str).collect();
    format!(
        "{mode}|{}|{}|{}",
        dir.display(),
        certs.display(),
        addresses.join("|")
    )
}

/// Runs as the child: node n2 on its directory. `load`: commits increments, printing
/// `acked N` after each; `resume`: prints `state <own counter> <others' counter> <fingerprint>`
/// every 20 ms. Either way until killed (bounded by a minute).
fn run_child(spec: &str) {
    let parts: Vec<&str> = spec.split('|').collect();
    let (mode, dir, certs) = (parts[0], parts[1], Path::new(parts[2]));
    let members: BTreeMap<NodeId, String> = parts[3..]
        .iter()
        .enumerate()
        .map(|(i, address)| (node(i as u32), (*address).to_owned()))
        .collect();
    let id = node(2);
    let certificates = Certificates::at(certs);
    let config = test_config(id, &members, certificates.security(id)).with_data_dir(dir);
    let handle = Node::start(config).unwrap();
    let mut out = std::io::stdout().lock();
    let until = Instant::now() + Duration::from_secs(60);
    let mut acked = 0u64;
    while Instant::now() < until {
        if mode == "load" {
            let mut tx = handle.transaction(TransactionMode::CoordinationFree);
            tx.increment("counters", "child", "value", 1);
            tx.commit().unwrap();
            acked += 1;
            writeln!(out, "acked {acked}").unwrap();
        } else {
            let fingerprint = handle.status().fingerprint;
            let own = counter(&handle, "child");
            let others = counter(&handle, "parent");
            writeln!(out, "state {own} {others} {fingerprint}").unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        out.flush().unwrap();
    }
}

/// The child process, killed by its pid with SIGKILL when dropped.
struct ChildNode(Child, BufReader<ChildStdout>);

impl ChildNode {
    fn start(spec: String) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
            .env(CHILD, spec)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self(child, stdout)
    }

    /// The next line that starts with `prefix`, split in words after it (`None` at the end).
    fn next(&mut self, prefix: &str) -> Option<Vec<u64>> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.1.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if let Some(rest) = line.trim().strip_prefix(prefix) {
                return Some(
                    rest.split_whitespace()
                        .map(|w| w.parse().unwrap())
                        .collect(),
                );
            }
        }
    }
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_node_killed_mid_load_keeps_what_it_acknowledged() {
    if let Ok(spec) = std::env::var(CHILD) {
        return run_child(&spec);
    }
    let certificates = Certificates::new(3);
    let dir = tempfile::tempdir().unwrap();
    // Ports for all three; the child's is released for it to bind.
    let held: Vec<std::net::TcpListener> = (0..3)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let members: BTreeMap<NodeId, String> = held
        .iter()
        .enumerate()
        .map(|(i, l)| (node(i as u32), l.local_addr().unwrap().to_string()))
        .collect();
    let mut held = held.into_iter();
    let parents: Vec<NodeHandle> = (0..2)
        .map(|i| {
            let id = node(i);
            let config = test_config(id, &members, certificates.security(id));
            Node::start_listening(config, held.next().unwrap()).unwrap()
        })
        .collect();
    drop(held);
    let stop_parents = Cluster(parents.clone());

    let mut child = ChildNode::start(spec("load", dir.path(), certificates.dir.path(), &members));
    let mut acked = 0;
    let mut parent_total = 0;
    while acked < 300 {
        acked = child.next("acked ").expect("the child acknowledges")[0];
        let mut tx = parents[0].transaction(TransactionMode::CoordinationFree);
        tx.increment("counters", "parent", "value", 1);
        tx.commit().unwrap();
        parent_total += 1;
    }
    drop(child); // SIGKILL, mid-load
    for _ in 0..50 {
        let mut tx = parents[1].transaction(TransactionMode::CoordinationFree);
        tx.increment("counters", "parent", "value", 1);
        tx.commit().unwrap();
        parent_total += 1;
    }

    let mut child = ChildNode::start(spec(
        "resume",
        dir.path(),
        certificates.dir.path(),
        &members,
    ));
    let deadline = Instant::now() + PATIENCE;
    loop {
        let state = child.next("state ").expect("the restarted child reports");
        let (own, others, fingerprint) = (state[0], state[1], state[2]);
        assert!(
            own >= acked,
            "the restarted node holds {own} of {acked} acknowledged"
        );
        let converged = others == parent_total
            && parents
                .iter()
                .all(|p| p.status().fingerprint == fingerprint)
            && counter(&parents[0], "child") as u64 == own;
        if converged {
            break;
        }
        assert!(Instant::now() < deadline, "no convergence: {state:?}");
    }
    drop(child);
    drop(stop_parents);
}
