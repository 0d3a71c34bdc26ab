//! A fault-injecting storage layer for crash tests: counts write points and fails (or tears a
//! write) at the Nth.

use std::io;

use super::{MemStorage, Storage};

/// How the fault layer fails at its Nth write point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The operation returns an error and has no effect; the disk is dead afterwards.
    Fail,
    /// A write lands half-way (a torn write), other operations do nothing; then the disk is
    /// dead (the machine lost power).
    Tear,
}

/// A [`Storage`] that counts write points and faults at the Nth.
pub(crate) struct FaultyStorage {
    pub(crate) inner: MemStorage,
    fault_at: Option<u64>,
    fault: Fault,
    pub(crate) writes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    dead: bool,
}

impl FaultyStorage {
    pub(crate) fn new(inner: MemStorage, fault_at: Option<u64>, fault: Fault) -> Self {
        Self {
            inner,
            fault_at,
            fault,
            writes: Default::default(),
            dead: false,
        }
    }

    /// Counts a write point; `Some(keep)` means "fault here, keeping `keep` of `len` bytes".
    fn point(&mut self, len: usize) -> io::Result<Option<usize>> {
        if self.dead {
            return Err(io::Error::other("disk is gone"));
        }
        let n = self
            .writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        if Some(n) != self.fault_at {
            return Ok(None);
        }
        self.dead = true;
        match self.fault {
            Fault::Fail => Err(io::Error::other("injected write failure")),
            Fault::Tear => Ok(Some(len / 2)),
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
}
