//! `rhizo`: runs a node, issues its certificates, and talks to a running node. A thin shell:
//! what each command does lives in `rhizo_net` (the node, its config file, the client, the
//! certificates); this file only reads the command line and prints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use rhizo_clock::NodeId;
use rhizo_net::pki::Issue;
use rhizo_net::{Client, ClientSecurity, ClientTls, ConfigFile, MembershipChange, NetError, Node};
use rhizo_txn::{CommitOutcome, CommitPath, DEFAULT_COLUMN, ReadConsistency, TransactionMode};
use tracing::info;

#[derive(Parser)]
#[command(
    name = "rhizo",
    version,
    about = "Rhizo: coordination-free transactions, networked"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a node from its configuration file (docs/config.md) until SIGTERM or Ctrl-C, then
    /// stops it gracefully: its log is flushed before it exits.
    Agent {
        /// The node's TOML configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Issues the cluster's certificates (PEM files).
    Tls {
        #[command(subcommand)]
        what: TlsCommand,
        /// The directory the files are written to (and the CA read from).
        #[arg(long, default_value = "certs", global = true)]
        dir: PathBuf,
    },
    /// Commits one transaction through a node: `VERB TABLE ROW [COLUMN] VALUE`, several
    /// operations separated by `+` (the column defaults to `value`; sets are `a,b,c`).
    Tx {
        #[command(flatten)]
        node: NodeArgs,
        /// `auto` (local when every operation is algebraic, else through consensus),
        /// `coordination_free` or `coordinated`.
        #[arg(long, default_value = "auto")]
        mode: String,
        /// The operations.
        #[arg(required = true, allow_hyphen_values = true, trailing_var_arg = true)]
        words: Vec<String>,
    },
    /// Reads one cell on a node.
    Read {
        #[command(flatten)]
        node: NodeArgs,
        /// The table.
        table: String,
        /// The row.
        row: String,
        /// The column.
        #[arg(default_value = DEFAULT_COLUMN)]
        column: String,
        /// `local` (the node's state at once) or `linearizable` (first waits until the node
        /// holds every coordinated transaction acknowledged anywhere before the read).
        #[arg(long, default_value = "local")]
        consistency: String,
    },
    /// A node's view: members, who is behind, Raft leader, term and commit index, queues.
    Status {
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Lists the cluster's members, or changes them through Raft (docs/protocol.md).
    Members {
        #[command(subcommand)]
        what: MembersCommand,
    },
}

#[derive(Subcommand)]
enum MembersCommand {
    /// The members as the node has applied them: id, voter or learner, address.
    List {
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Adds a node, which its peers reach at ADDR; returns once the node asked applied it. The
    /// new node runs with `join = true` and is refused by the others until then.
    Add {
        /// The new member's node id.
        id: String,
        /// Where the new member listens for peers (its `listen`).
        address: String,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Removes a member; from then on the others refuse it. By default the member is first
    /// retired (it refuses writes) and removed once every other member holds the commits it
    /// acknowledged; if that does not happen within the node's commit timeout the command fails
    /// saying the member has not drained, and running it again is safe.
    Remove {
        /// The member's node id.
        id: String,
        /// Remove it at once, without waiting for it to drain: for a member that is gone for
        /// good. Commits it acknowledged that no other member holds yet are lost.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
}

#[derive(Subcommand)]
enum TlsCommand {
    /// A new certificate authority for the cluster: `ca.crt` and `ca.key`.
    Ca {
        /// The cluster's name, written in the CA's subject.
        #[arg(long, default_value = "rhizo")]
        cluster: String,
    },
    /// A node's certificate, naming its node id: `NAME.crt` and `NAME.key`.
    Node {
        /// The node id.
        name: String,
    },
    /// A client's certificate, for `rhizo tx`/`read`/`status` and other programs:
    /// `NAME.crt` and `NAME.key`.
    Client {
        /// The client's name.
        name: String,
    },
}

/// How to reach a node's client listener.
#[derive(Args)]
struct NodeArgs {
    /// The node's client address (its `[client] listen`).
    #[arg(long, env = "RHIZO_NODE")]
    node: String,
    /// The cluster CA's certificate.
    #[arg(long, env = "RHIZO_CA")]
    ca: Option<PathBuf>,
    /// This client's certificate.
    #[arg(long, env = "RHIZO_CERT")]
    cert: Option<PathBuf>,
    /// This client's private key.
    #[arg(long, env = "RHIZO_KEY")]
    key: Option<PathBuf>,
    /// Plaintext, for a node with `insecure = true`.
    #[arg(long, conflicts_with_all = ["ca", "cert", "key"])]
    insecure: bool,
}

impl NodeArgs {
    fn connect(&self) -> Result<Client, NetError> {
        let security = if self.insecure {
            ClientSecurity::Insecure
        } else {
            let ca = self.ca.clone().ok_or_else(|| NetError::Usage {
                reason: "--ca (or RHIZO_CA) is required, or --insecure".into(),
            })?;
            let mut tls = ClientTls::new(ca);
            if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
                tls = tls.with_identity(cert, key);
            }
            ClientSecurity::Tls(tls)
        };
        Client::connect(&self.node, &security)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ran = match cli.command {
        Command::Agent { config } => agent(&config),
        Command::Tls { what, dir } => tls(what, &dir),
        Command::Tx { node, mode, words } => tx(&node, &mode, &words),
        Command::Read {
            node,
            table,
            row,
            column,
            consistency,
        } => read(&node, &consistency, (&table, &row, &column)),
        Command::Status { node } => node.connect().and_then(|client| {
            println!("{}", client.status()?);
            Ok(())
        }),
        Command::Members { what } => members(what),
    };
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the node until SIGTERM or Ctrl-C, then shuts it down (flushing its log).
fn members(what: MembersCommand) -> Result<(), NetError> {
    let node_id = |id: &str| {
        NodeId::new(id).map_err(|err| NetError::Usage {
            reason: format!("{id:?} is not a node id: {err}"),
        })
    };
    match what {
        MembersCommand::List { node } => {
            for member in node.connect()?.members()? {
                let role = if member.voter { "voter" } else { "learner" };
                let address = if member.address.is_empty() {
                    "(configured)"
                } else {
                    &member.address
                };
                let retired = if member.retired {
                    " retired (draining before its removal)"
                } else {
                    ""
                };
                println!("{} {role} {address}{retired}", member.node);
            }
        }
        MembersCommand::Add { id, address, node } => {
            let change = MembershipChange::Add {
                node: node_id(&id)?,
                address,
            };
            node.connect()?.change_members(change)?;
            println!("added {id}");
        }
        MembersCommand::Remove { id, force, node } => {
            let node_to_remove = node_id(&id)?;
            let change = if force {
                MembershipChange::ForceRemove {
                    node: node_to_remove,
                }
            } else {
                MembershipChange::Remove {
                    node: node_to_remove,
                }
            };
            node.connect()?.change_members(change)?;
            println!("removed {id}");
        }
    }
    Ok(())
}

fn agent(config_path: &Path) -> Result<(), NetError> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let file = ConfigFile::load(config_path)?;
    let base = config_path.parent().unwrap_or(Path::new("."));
    let config = file.node_config(base)?;
    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(NetError::Runtime)?;
    // Registered before the node starts, so a signal during its start stops it gracefully too.
    let mut stop = signals
        .block_on(async { StopSignals::register() })
        .map_err(NetError::Runtime)?;
    let node = Node::start(config)?;
    info!(
        node = %node.node_id(),
        peers = %node.local_addr(),
        clients = ?node.client_addr(),
        "rhizo agent started"
    );
    let signal = signals.block_on(stop.next());
    info!(signal, "stopping: flushing the log and closing connections");
    node.shutdown()?;
    info!("rhizo agent stopped");
    Ok(())
}

/// SIGTERM and SIGINT (Ctrl-C), caught.
struct StopSignals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn register() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for the next one and names it.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

fn tls(what: TlsCommand, dir: &Path) -> Result<(), NetError> {
    let issue = match what {
        TlsCommand::Ca { cluster } => Issue::Ca { cluster },
        TlsCommand::Node { name } => Issue::Node { name },
        TlsCommand::Client { name } => Issue::Client { name },
    };
    let (cert, key) = rhizo_net::pki::issue_into(dir, &issue)?;
    println!("wrote {} and {}", cert.display(), key.display());
    Ok(())
}

fn tx(node: &NodeArgs, mode: &str, words: &[String]) -> Result<(), NetError> {
    let mode: TransactionMode = mode.parse()?;
    let client = node.connect()?;
    let tx = rhizo_net::transaction_from_words(words, &client.schema()?)?;
    let outcome = client.commit(mode, tx)?;
    println!("{}", describe(&outcome));
    Ok(())
}

fn read(node: &NodeArgs, consistency: &str, cell: (&str, &str, &str)) -> Result<(), NetError> {
    let consistency: ReadConsistency = consistency.parse()?;
    let client = node.connect()?;
    let (table, row, column) = cell;
    println!("{}", client.read_with(consistency, table, row, column)?);
    Ok(())
}

fn describe(outcome: &CommitOutcome) -> String {
    let durable = if outcome.durable {
        "durable"
    } else {
        "not yet durable"
    };
    match (outcome.path, outcome.sequence, outcome.dot) {
        (CommitPath::Consensus, Some(index), _) => {
            format!("committed through consensus at log index {index} ({durable})")
        }
        (_, _, Some(dot)) => format!("committed locally as {dot} ({durable})"),
        _ => format!("committed ({durable})"),
    }
}
