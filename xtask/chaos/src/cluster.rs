//! The agents under test: one `rhizo agent` process per node on 127.0.0.1, each on its own data
//! directory under the run directory, with certificates the harness issues and a config file
//! that names the fault proxies as its peers' addresses.
//!
//! Every process is started as the leader of its own process group and is ended by signals to
//! that group's id (its pid) — never by name — when the nemesis kills it and, whatever happened,
//! when the [`Cluster`] is dropped (also while a panic unwinds).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use rhizo_net::pki::CertificateAuthority;
use rhizo_net::{ClientSecurity, ClientTls};
use rustix::process::{Pid, Signal, kill_process_group};

use crate::error::{ChaosError, Result};
use crate::nemesis::node_name;

/// The cluster id every node's config names.
const CLUSTER_ID: &str = "chaos";

/// The tables the workload uses, declared in every node's config.
pub const COUNTERS: &str = "counters";
/// The observed-remove set table.
pub const SETS: &str = "sets";
/// The register table (coordinated writes only).
pub const REGISTERS: &str = "registers";
/// The column of every table.
pub const COLUMN: &str = "value";

/// Where each node listens: its real peer listener and its client listener. The peer listener
/// is reached by other nodes only through the proxies.
#[derive(Clone, Debug)]
pub struct NodeAddresses {
    /// The node's own peer listener.
    pub peer: SocketAddr,
    /// The node's client listener.
    pub client: SocketAddr,
}

/// One agent: its files and, while it runs, its process.
#[derive(Debug)]
struct Agent {
    name: String,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    paused: bool,
}

/// The running agents of a run; dropping it SIGKILLs every one still running, by pid.
#[derive(Debug)]
pub struct Cluster {
    rhizo: PathBuf,
    run_dir: PathBuf,
    agents: Vec<Agent>,
    security: ClientSecurity,
}

/// A free port on 127.0.0.1 (another process may take it before the agent binds it; the
/// startup bound then reports the agent that could not listen).
pub fn free_address() -> Result<SocketAddr> {
    let socket = |source| ChaosError::Socket {
        address: "127.0.0.1:0".into(),
        source,
    };
    TcpListener::bind("127.0.0.1:0")
        .map_err(socket)?
        .local_addr()
        .map_err(socket)
}

impl Cluster {
    /// Issues the certificates and writes one config per node into `run_dir`. `peers[a][b]`
    /// is the address node `a` dials to reach node `b` (the proxy a→b); `seed` seeds the
    /// nodes' election timeouts. Nothing is started.
    pub fn prepare(
        rhizo: &Path,
        run_dir: &Path,
        addresses: &[NodeAddresses],
        peers: &[Vec<SocketAddr>],
        seed: u64,
    ) -> Result<Self> {
        let certs = run_dir.join("certs");
        let ca = CertificateAuthority::generate(CLUSTER_ID).map_err(ChaosError::Certificates)?;
        ca.pem()
            .write(&certs, "ca")
            .map_err(ChaosError::Certificates)?;
        let (client_cert, client_key) = ca
            .issue_client("chaos-client")
            .and_then(|issued| issued.write(&certs, "client"))
            .map_err(ChaosError::Certificates)?;
        let mut agents = Vec::with_capacity(addresses.len());
        for (index, own) in addresses.iter().enumerate() {
            let name = node_name(index);
            let node_id = name
                .parse()
                .map_err(|_| ChaosError::Usage(format!("{name} is not a node id")))?;
            ca.issue(node_id)
                .and_then(|issued| issued.write(&certs, &name))
                .map_err(ChaosError::Certificates)?;
            let config = run_dir.join(format!("{name}.toml"));
            write_file(&config, &config_text(index, own, &peers[index], seed))?;
            agents.push(Agent {
                log: run_dir.join(format!("{name}.log")),
                name,
                config,
                child: None,
                paused: false,
            });
        }
        let tls = ClientTls::new(certs.join("ca.crt")).with_identity(client_cert, client_key);
        Ok(Self {
            rhizo: rhizo.to_owned(),
            run_dir: run_dir.to_owned(),
            agents,
            security: ClientSecurity::Tls(tls),
        })
    }

    /// How the workload's clients reach the nodes.
    pub fn security(&self) -> &ClientSecurity {
        &self.security
    }

    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.agents.len()
    }

    /// Whether the cluster has no node.
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    /// The nodes' log files.
    pub fn logs(&self) -> Vec<PathBuf> {
        self.agents.iter().map(|agent| agent.log.clone()).collect()
    }

    /// Starts node `index` on its data directory (its log is appended to).
    pub fn start(&mut self, index: usize) -> Result<()> {
        let agent = &mut self.agents[index];
        if agent.child.is_some() {
            return Ok(());
        }
        let process = |what, source| ChaosError::Process {
            node: agent.name.clone(),
            what,
            source,
        };
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&agent.log)
            .map_err(|source| process("open its log", source))?;
        let _ = writeln!(log, "--- chaos: starting {}", agent.name);
        let child = Command::new(&self.rhizo)
            .arg("agent")
            .arg("--config")
            .arg(&agent.config)
            .current_dir(&self.run_dir)
            .stdin(Stdio::null())
            .stdout(
                log.try_clone()
                    .map_err(|source| process("open its log", source))?,
            )
            .stderr(log)
            // Its own process group: the group's id is the pid, and signals to the group reach
            // anything the agent might start.
            .process_group(0)
            .spawn()
            .map_err(|source| process("start", source))?;
        agent.child = Some(child);
        agent.paused = false;
        Ok(())
    }

    /// The pid of node `index`'s process, while it runs.
    pub fn pid(&self, index: usize) -> Option<u32> {
        self.agents[index].child.as_ref().map(Child::id)
    }

    /// SIGKILLs node `index` (its process group) and reaps it.
    pub fn kill(&mut self, index: usize) -> Result<()> {
        let agent = &mut self.agents[index];
        let Some(mut child) = agent.child.take() else {
            return Ok(());
        };
        let _ = signal(&child, Signal::KILL);
        agent.paused = false;
        child
            .wait()
            .map(drop)
            .map_err(|source| ChaosError::Process {
                node: agent.name.clone(),
                what: "wait for",
                source,
            })
    }

    /// SIGSTOPs (`pause`) or SIGCONTs node `index`.
    pub fn set_paused(&mut self, index: usize, pause: bool) -> Result<()> {
        let agent = &mut self.agents[index];
        let Some(child) = &agent.child else {
            return Ok(());
        };
        let sig = if pause { Signal::STOP } else { Signal::CONT };
        signal(child, sig).map_err(|source| ChaosError::Process {
            node: agent.name.clone(),
            what: if pause { "pause" } else { "resume" },
            source,
        })?;
        agent.paused = pause;
        Ok(())
    }

    /// Resumes every paused node and starts every stopped one: the final heal.
    pub fn restore(&mut self) -> Result<()> {
        for index in 0..self.agents.len() {
            if self.agents[index].paused {
                self.set_paused(index, false)?;
            }
            self.start(index)?;
        }
        Ok(())
    }

    /// The nodes whose process exited on its own (not killed by the harness): a crash.
    pub fn exited(&mut self) -> Vec<String> {
        self.agents
            .iter_mut()
            .filter_map(|agent| {
                let status = agent.child.as_mut()?.try_wait().ok()??;
                Some(format!("{} exited on its own ({status})", agent.name))
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for agent in &mut self.agents {
            if let Some(mut child) = agent.child.take() {
                // SIGKILL ends a stopped process too.
                let _ = signal(&child, Signal::KILL);
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Sends `sig` to the process group `child` leads.
fn signal(child: &Child, sig: Signal) -> std::io::Result<()> {
    let pid = Pid::from_child(child);
    kill_process_group(pid, sig).map_err(std::io::Error::from)
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    File::create(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(|source| ChaosError::File {
            what: "write",
            path: path.to_owned(),
            source,
        })
}

/// Node `index`'s config: its own real peer listener, every other member at the proxy this
/// node dials, acknowledged commits durable (`every_commit`), short reconnection backoff so a
/// healed link is used again within the settle bound.
fn config_text(index: usize, own: &NodeAddresses, peers: &[SocketAddr], seed: u64) -> String {
    let name = node_name(index);
    let mut members = String::new();
    for (other, address) in peers.iter().enumerate() {
        let address = if other == index { own.peer } else { *address };
        members.push_str(&format!("{} = \"{address}\"\n", node_name(other)));
    }
    format!(
        "node_id = \"{name}\"
cluster_id = \"{CLUSTER_ID}\"
data_dir = \"{name}-data\"
listen = \"{peer}\"

[members]
{members}
[tls]
ca_cert = \"certs/ca.crt\"
cert = \"certs/{name}.crt\"
key = \"certs/{name}.key\"

[client]
listen = \"{client}\"

[sync]
policy = \"every_commit\"

[raft]
seed = {seed}

[transport]
backoff_max_ms = 500

[schema.{COUNTERS}]
{COLUMN} = {{ merge = \"ADD\", type = \"integer\" }}

[schema.{SETS}]
{COLUMN} = {{ merge = \"OR_SET\", type = \"string_set\" }}

[schema.{REGISTERS}]
{COLUMN} = {{ merge = \"REGISTER\", type = \"integer\" }}
",
        peer = own.peer,
        client = own.client,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether a process with this pid exists (a reaped child does not).
    fn alive(pid: u32) -> bool {
        let pid = Pid::from_raw(pid as i32).expect("a pid is positive");
        rustix::process::test_kill_process(pid).is_ok()
    }

    /// A cluster of three whose "rhizo" is a script that sleeps, in a fresh directory.
    fn sleeping_cluster(dir: &Path) -> Cluster {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        let script = dir.join("fake-rhizo");
        write_file(&script, "#!/bin/sh\nexec sleep 300\n").unwrap();
        let status = Command::new("chmod")
            .arg("+x")
            .arg(&script)
            .status()
            .unwrap();
        assert!(status.success());
        let addresses: Vec<NodeAddresses> = (0..3)
            .map(|_| NodeAddresses {
                peer: free_address().unwrap(),
                client: free_address().unwrap(),
            })
            .collect();
        let peers = vec![addresses.iter().map(|a| a.peer).collect::<Vec<_>>(); 3];
        Cluster::prepare(&script, dir, &addresses, &peers, 1).unwrap()
    }

    #[test]
    fn the_guard_ends_every_agent_by_pid_also_when_the_harness_panics() {
        let dir = std::env::temp_dir().join(format!("rhizo-chaos-guard-{}", std::process::id()));
        let mut cluster = sleeping_cluster(&dir);
        for index in 0..3 {
            cluster.start(index).unwrap();
        }
        let pids: Vec<u32> = (0..3).map(|i| cluster.pid(i).unwrap()).collect();
        assert!(pids.iter().all(|&pid| alive(pid)));
        // Killed and paused nodes are ended too.
        cluster.kill(0).unwrap();
        assert!(!alive(pids[0]));
        assert_eq!(cluster.pid(0), None);
        cluster.set_paused(1, true).unwrap();
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _owned = cluster;
            panic!("a check panicked");
        }));
        assert!(unwound.is_err());
        for pid in pids {
            assert!(!alive(pid), "pid {pid} outlived the harness");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn restore_restarts_killed_nodes_and_resumes_paused_ones() {
        let dir = std::env::temp_dir().join(format!("rhizo-chaos-restore-{}", std::process::id()));
        let mut cluster = sleeping_cluster(&dir);
        for index in 0..3 {
            cluster.start(index).unwrap();
        }
        cluster.kill(0).unwrap();
        cluster.set_paused(1, true).unwrap();
        cluster.restore().unwrap();
        assert!((0..3).all(|i| cluster.pid(i).is_some_and(alive)));
        assert!(cluster.agents.iter().all(|agent| !agent.paused));
        assert_eq!(cluster.exited(), Vec::<String>::new());
        drop(cluster);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_config_names_the_proxies_as_peers_and_parses() {
        let own = NodeAddresses {
            peer: "127.0.0.1:7001".parse().unwrap(),
            client: "127.0.0.1:7101".parse().unwrap(),
        };
        let peers: Vec<SocketAddr> = ["127.0.0.1:1", "127.0.0.1:9012", "127.0.0.1:9013"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let text = config_text(0, &own, &peers, 7);
        assert!(text.contains("n1 = \"127.0.0.1:7001\""), "{text}");
        assert!(text.contains("n2 = \"127.0.0.1:9012\""), "{text}");
        assert!(text.contains("n3 = \"127.0.0.1:9013\""), "{text}");
        let parsed = rhizo_net::ConfigFile::parse(&text).unwrap();
        let debug = format!("{parsed:?}");
        assert!(
            debug.contains("every_commit") || debug.contains("EveryCommit"),
            "{debug}"
        );
    }
}
