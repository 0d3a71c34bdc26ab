//! A fault-injecting storage layer for crash tests: counts write points and fails (or tears a
//! write) at the Nth; its [`SyncHandle`]s can also be held at a [`SyncGate`] until a test opens
//! it.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::{MemStorage, Storage, SyncHandle};

/// How the fault layer fails at its Nth write point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The operation returns an error and has no effect; the disk is dead afterwards.
    Fail,
    /// A write lands half-way (a torn write), other operations do nothing; then the disk is
    /// dead (the machine lost power).
    Tear,
}

/// The write-point count and the fault, shared by the storage and its sync handles.
#[derive(Debug)]
struct Faults {
    fault_at: Option<u64>,
    fault: Fault,
    writes: Arc<AtomicU64>,
    dead: AtomicBool,
}

impl Faults {
    /// Counts a write point; `Some(keep)` means "fault here, keeping `keep` of `len` bytes".
    fn point(&self, len: usize) -> io::Result<Option<usize>> {
        if self.dead.load(Ordering::Acquire) {
            return Err(io::Error::other("disk is gone"));
        }
        let n = self.writes.fetch_add(1, Ordering::Relaxed) + 1;
        if Some(n) != self.fault_at {
            return Ok(None);
        }
        self.dead.store(true, Ordering::Release);
        match self.fault {
            Fault::Fail => Err(io::Error::other("injected write failure")),
            Fault::Tear => Ok(Some(len / 2)),
        }
    }
}

/// Holds every sync made through a [`FaultyStorage`]'s [`SyncHandle`] until the test opens (or
/// fails) it. A gate left shut fails the held syncs after [`SyncGate::HOLD`], so a log that
/// waited for such a sync while holding its lock shows up as an error, not as a hung test.
#[derive(Debug, Clone, Default)]
pub(crate) struct SyncGate {
    inner: Arc<(Mutex<GateState>, Condvar)>,
}

#[derive(Debug, Default)]
struct GateState {
    /// `Some(true)`: syncs pass; `Some(false)`: they fail; `None`: they wait.
    verdict: Option<bool>,
    /// Syncs that reached the gate.
    arrived: usize,
}

impl SyncGate {
    /// The longest a sync waits at a shut gate before it fails.
    pub(crate) const HOLD: Duration = Duration::from_secs(10);

    fn pass(&self) -> io::Result<()> {
        let (state, changed) = &*self.inner;
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        state.arrived += 1;
        changed.notify_all();
        let (state, _) = changed
            .wait_timeout_while(state, Self::HOLD, |s| s.verdict.is_none())
            .unwrap_or_else(|e| e.into_inner());
        match state.verdict {
            Some(true) => Ok(()),
            Some(false) => Err(io::Error::other("injected sync failure")),
            None => Err(io::Error::other("a sync held at a gate nobody opened")),
        }
    }

    fn decide(&self, pass: bool) {
        let (state, changed) = &*self.inner;
        state.lock().unwrap_or_else(|e| e.into_inner()).verdict = Some(pass);
        changed.notify_all();
    }

    /// Lets every sync through, held or to come.
    pub(crate) fn open(&self) {
        self.decide(true);
    }

    /// Fails every sync, held or to come.
    pub(crate) fn fail(&self) {
        self.decide(false);
    }

    /// Waits (up to `timeout`) until a sync reached the gate; returns whether one did.
    pub(crate) fn wait_for_a_sync(&self, timeout: Duration) -> bool {
        let (state, changed) = &*self.inner;
        let state = state.lock().unwrap_or_else(|e| e.into_inner());
        let (state, _) = changed
            .wait_timeout_while(state, timeout, |s| s.arrived == 0)
            .unwrap_or_else(|e| e.into_inner());
        state.arrived > 0
    }
}

/// A [`Storage`] that counts write points and faults at the Nth.
pub(crate) struct FaultyStorage {
    pub(crate) inner: MemStorage,
    faults: Arc<Faults>,
    pub(crate) writes: Arc<AtomicU64>,
    /// Where syncs through this storage's handles wait, if anywhere.
    gate: Option<SyncGate>,
}

impl FaultyStorage {
    pub(crate) fn new(inner: MemStorage, fault_at: Option<u64>, fault: Fault) -> Self {
        let writes = Arc::new(AtomicU64::new(0));
        Self {
            inner,
            faults: Arc::new(Faults {
                fault_at,
                fault,
                writes: Arc::clone(&writes),
                dead: AtomicBool::new(false),
            }),
            writes,
            gate: None,
        }
    }

    /// Holds syncs through this storage's [`SyncHandle`]s at `gate`.
    pub(crate) fn with_sync_gate(mut self, gate: SyncGate) -> Self {
        self.gate = Some(gate);
        self
    }

    fn point(&mut self, len: usize) -> io::Result<Option<usize>> {
        self.faults.point(len)
    }
}

/// A [`FaultyStorage`]'s [`SyncHandle`]: through its gate, then a write point like
/// [`Storage::sync`].
#[derive(Debug)]
struct FaultySyncHandle {
    inner: Arc<dyn SyncHandle>,
    faults: Arc<Faults>,
    gate: Option<SyncGate>,
}

impl SyncHandle for FaultySyncHandle {
    fn sync_data(&self, len: u64) -> io::Result<()> {
        if let Some(gate) = &self.gate {
            gate.pass()?;
        }
        match self.faults.point(0)? {
            None => self.inner.sync_data(len),
            Some(_) => Err(torn()),
        }
    }
}

fn torn() -> io::Error {
    io::Error::other("power lost during the write")
}

impl Storage for FaultyStorage {
    fn describe(&self) -> String {
        "faulty memory".to_owned()
    }
    fn list(&mut self) -> io::Result<Vec<String>> {
        self.inner.list()
    }
    fn read(&mut self, name: &str) -> io::Result<Vec<u8>> {
        self.inner.read(name)
    }
    fn write_new(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        match self.point(bytes.len())? {
            None => self.inner.write_new(name, bytes),
            Some(keep) => {
                self.inner.write_new(name, &bytes[..keep])?;
                Err(torn())
            }
        }
    }
    fn append(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        match self.point(bytes.len())? {
            None => self.inner.append(name, bytes),
            Some(keep) => {
                self.inner.append(name, &bytes[..keep])?;
                Err(torn())
            }
        }
    }
    fn sync(&mut self, name: &str) -> io::Result<()> {
        match self.point(0)? {
            None => self.inner.sync(name),
            Some(_) => Err(torn()),
        }
    }
    fn truncate(&mut self, name: &str, len: u64) -> io::Result<()> {
        match self.point(0)? {
            None => self.inner.truncate(name, len),
            Some(_) => Err(torn()),
        }
    }
    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        match self.point(0)? {
            None => self.inner.rename(from, to),
            Some(_) => Err(torn()),
        }
    }
    fn remove(&mut self, name: &str) -> io::Result<()> {
        match self.point(0)? {
            None => self.inner.remove(name),
            Some(_) => Err(torn()),
        }
    }
    fn sync_dir(&mut self) -> io::Result<()> {
        match self.point(0)? {
            None => self.inner.sync_dir(),
            Some(_) => Err(torn()),
        }
    }
    fn sync_handle(&mut self, name: &str) -> io::Result<Option<Arc<dyn SyncHandle>>> {
        let Some(inner) = self.inner.sync_handle(name)? else {
            return Ok(None);
        };
        Ok(Some(Arc::new(FaultySyncHandle {
            inner,
            faults: Arc::clone(&self.faults),
            gate: self.gate.clone(),
        })))
    }
}
