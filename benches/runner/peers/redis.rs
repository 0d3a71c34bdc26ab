//! A Redis server for peer rows: Debian's `redis-server` (installed with apt-get when it is
//! absent and this process runs as root), started on 127.0.0.1 on a port the OS reports free,
//! with persistence off, and stopped by its pid when dropped.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
        let program = ensure_installed()?;
        let port = free_port()?;
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

/// `redis-server`'s path: found on PATH, or installed with apt-get when running as root.
fn ensure_installed() -> Result<String, String> {
    if let Some(path) = which("redis-server") {
        return Ok(path);
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        return Err("redis-server is not installed and this user cannot apt-get install it".into());
    }
    let installed = Command::new("apt-get")
        .args(["install", "-y", "-q", "redis-server"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("apt-get could not run: {e}"))?;
    if !installed.success() {
        return Err(format!("apt-get install redis-server failed ({installed})"));
    }
    which("redis-server").ok_or_else(|| "redis-server absent after apt-get install".into())
}

fn which(program: &str) -> Option<String> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
        .map(|path| path.display().to_string())
}

/// A port the OS reports free on 127.0.0.1 now.
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}
