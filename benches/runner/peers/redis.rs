//! A Redis server for peer rows: Debian's `redis-server` (installed with apt-get when it is
//! absent and this process runs as root), started on 127.0.0.1 on a port the OS reports free,
//! with persistence off, and stopped by its pid when dropped.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_ports, install_package, on_path};

/// What to do when Redis is missing, for the reason a skipped row gives.
const HOW_TO_INSTALL: &str = "install it with `apt-get install redis-server` (as root)";
/// The longest apt-get may take to install it (a bench must not wait on a mirror for ever).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);

/// A running `redis-server`, ours alone: killed by pid and reaped on drop.
pub(crate) struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    /// The longest the server gets to accept connections after it is spawned.
    const STARTUP: Duration = Duration::from_secs(10);

    /// Starts a server (installing the package first if needed and possible). The error says
    /// why there is none, for the report's skipped row.
    pub(crate) fn start() -> Result<Self, String> {
        if on_path("redis-server").is_none() {
            install_package(
                "redis-server",
                "redis-server",
                HOW_TO_INSTALL,
                INSTALL_TIMEOUT,
            )?;
        }
        let program = on_path("redis-server")
            .ok_or_else(|| format!("redis-server is not installed: {HOW_TO_INSTALL}"))?
            .display()
            .to_string();
        let port = free_ports(1)?[0];
        let child = Command::new(&program)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            // In memory only: no snapshot, no append-only file, nothing left on disk.
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {program}: {e}"))?;
        let server = Self { child, port };
        server.wait_until_listening()?;
        Ok(server)
    }

    /// The port the server listens on, on 127.0.0.1.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    fn wait_until_listening(&self) -> Result<(), String> {
        let deadline = Instant::now() + Self::STARTUP;
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "redis-server did not listen on 127.0.0.1:{} within {:?}",
            self.port,
            Self::STARTUP
        ))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // `Child::kill` signals this child's pid only; `wait` reaps it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
