//! A data directory with a power switch, so that a simulated crash is a power loss.
//!
//! While the power is on, [`PoweredStorage`] is the real directory ([`FsStorage`]) and tracks,
//! per file, how many bytes were synced. [`PowerSwitch::pull_plug`] models the machine losing
//! power: every later operation of the storage fails (the process is gone, so its destructors
//! write nothing), and every file is cut back to its synced bytes. A simulated node restarted
//! on the directory therefore recovers exactly what its engine made durable.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rhizo_txn::{FsStorage, Result, Storage, TxnError};

/// What each file holds: its length and the bytes of it a power loss keeps.
#[derive(Debug, Default, Clone, Copy)]
struct Extent {
    len: u64,
    synced: u64,
}

#[derive(Debug)]
struct Power {
    on: AtomicBool,
    dir: PathBuf,
    /// Files written through the storage; a file not listed is as it was found (durable).
    extents: Mutex<BTreeMap<String, Extent>>,
}

impl Power {
    fn extents(&self) -> MutexGuard<'_, BTreeMap<String, Extent>> {
        self.extents.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Cuts a [`PoweredStorage`] off.
#[derive(Debug, Clone)]
pub(crate) struct PowerSwitch(Arc<Power>);

impl PowerSwitch {
    /// The machine loses power: the storage refuses everything from now on, and each file keeps
    /// only its synced bytes.
    pub(crate) fn pull_plug(&self) -> Result<()> {
        self.0.on.store(false, Ordering::SeqCst);
        for (name, extent) in self.0.extents().iter() {
            if extent.synced >= extent.len {
                continue;
            }
            let path = self.0.dir.join(name);
            let cut = OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|file| file.set_len(extent.synced));
            match cut {
                Ok(()) => {}
                // Renamed or removed since (a directory operation is durable at once).
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(TxnError::Io {
                        op: "cut unsynced bytes of",
                        name: path.display().to_string(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }
}

/// A real directory whose unsynced bytes a [`PowerSwitch`] can take away.
#[derive(Debug)]
pub(crate) struct PoweredStorage {
    inner: FsStorage,
    power: Arc<Power>,
}

impl PoweredStorage {
    /// Opens (and locks) `dir` with the power on; the switch turns it off.
    pub(crate) fn open(dir: &Path) -> Result<(Self, PowerSwitch)> {
        let power = Arc::new(Power {
            on: AtomicBool::new(true),
            dir: dir.to_path_buf(),
            extents: Mutex::new(BTreeMap::new()),
        });
        let storage = Self {
            inner: FsStorage::open(dir)?,
            power: Arc::clone(&power),
        };
        Ok((storage, PowerSwitch(power)))
    }

    fn powered(&self) -> io::Result<()> {
        if self.power.on.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(io::Error::other("the machine lost power"))
        }
    }

    /// The extent of `name`, found on disk (all durable) the first time it is touched.
    fn extent<'a>(
        &self,
        extents: &'a mut BTreeMap<String, Extent>,
        name: &str,
    ) -> io::Result<&'a mut Extent> {
        if !extents.contains_key(name) {
            let len = std::fs::metadata(self.power.dir.join(name))?.len();
            extents.insert(name.to_owned(), Extent { len, synced: len });
        }
        Ok(extents.get_mut(name).expect("inserted above"))
    }
}

impl Storage for PoweredStorage {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn list(&mut self) -> io::Result<Vec<String>> {
        self.powered()?;
        self.inner.list()
    }

    fn read(&mut self, name: &str) -> io::Result<Vec<u8>> {
        self.powered()?;
        self.inner.read(name)
    }

    fn write_new(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.powered()?;
        self.inner.write_new(name, bytes)?;
        let extent = Extent {
            len: bytes.len() as u64,
            synced: 0,
        };
        self.power.extents().insert(name.to_owned(), extent);
        Ok(())
    }

    fn append(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.powered()?;
        let mut extents = self.power.extents();
        let extent = self.extent(&mut extents, name)?;
        self.inner.append(name, bytes)?;
        extent.len += bytes.len() as u64;
        Ok(())
    }

    /// Marks every byte written so far as surviving a power loss. The real file is not synced:
    /// what survives a simulated power loss is decided here, and a real sync would only cost the
    /// simulation the disk's latency at every commit.
    fn sync(&mut self, name: &str) -> io::Result<()> {
        self.powered()?;
        let mut extents = self.power.extents();
        let extent = self.extent(&mut extents, name)?;
        extent.synced = extent.len;
        Ok(())
    }

    fn truncate(&mut self, name: &str, len: u64) -> io::Result<()> {
        self.powered()?;
        let mut extents = self.power.extents();
        let extent = self.extent(&mut extents, name)?;
        self.inner.truncate(name, len)?;
        extent.len = len;
        extent.synced = extent.synced.min(len);
        Ok(())
    }

    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        self.powered()?;
        self.inner.rename(from, to)?;
        let mut extents = self.power.extents();
        extents.remove(to);
        if let Some(extent) = extents.remove(from) {
            extents.insert(to.to_owned(), extent);
        }
        Ok(())
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        self.powered()?;
        self.inner.remove(name)?;
        self.power.extents().remove(name);
        Ok(())
    }

    /// Directory operations are durable at once here (see [`PowerSwitch::pull_plug`]).
    fn sync_dir(&mut self) -> io::Result<()> {
        self.powered()
    }
}
