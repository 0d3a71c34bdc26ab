//! The file layer under the log: a small trait over the few file operations the log needs, so
//! that tests can run it in memory and inject faults at any write.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::{Result, TxnError};

/// The file operations of one data directory. Names are plain file names inside it.
///
/// "Write points" are the mutating calls: `write_new`, `append`, `sync`, `truncate`, `rename`,
/// `remove`, `sync_dir`. Only data passed to `sync` is promised to survive a power loss.
pub trait Storage: Send {
    /// Where the data lives, for messages.
    fn describe(&self) -> String;
    /// The file names in the directory.
    fn list(&mut self) -> io::Result<Vec<String>>;
    /// A file's whole content.
    fn read(&mut self, name: &str) -> io::Result<Vec<u8>>;
    /// Creates (or truncates) a file holding exactly `bytes`.
    fn write_new(&mut self, name: &str, bytes: &[u8]) -> io::Result<()>;
    /// Appends `bytes` to an existing file.
    fn append(&mut self, name: &str, bytes: &[u8]) -> io::Result<()>;
    /// Makes a file's data durable (`fdatasync`).
    fn sync(&mut self, name: &str) -> io::Result<()>;
    /// Cuts a file to `len` bytes.
    fn truncate(&mut self, name: &str, len: u64) -> io::Result<()>;
    /// Atomically renames a file, replacing any file called `to`.
    fn rename(&mut self, from: &str, to: &str) -> io::Result<()>;
    /// Deletes a file.
    fn remove(&mut self, name: &str) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&mut self) -> io::Result<()>;
    /// A handle that syncs `name` from another thread while this storage goes on appending to
    /// it, or `None` when this storage syncs only through [`Storage::sync`] (then a group
    /// commit's flusher syncs while holding the log's lock, and commits wait for it).
    fn sync_handle(&mut self, name: &str) -> io::Result<Option<Arc<dyn SyncHandle>>> {
        let _ = name;
        Ok(None)
    }
}

/// Makes one file's data durable from another thread than the [`Storage`] that gave it, so that
/// a group commit's sync runs outside the log's lock while commits go on appending.
pub trait SyncHandle: Send + Sync + std::fmt::Debug {
    /// Makes at least the file's first `len` bytes durable: every one of them was handed to the
    /// file before this call. A file removed since the handle was taken has nothing left to keep,
    /// and this succeeds.
    fn sync_data(&self, len: u64) -> io::Result<()>;
}

/// The name of the file whose lock marks a data directory as owned by one engine.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// A real directory, owned exclusively while this value lives: an OS advisory lock on its
/// `LOCK` file is taken at open and released at drop — or by the OS when the process dies, so
/// no stale lock outlives its owner. Keeps the file last appended to open, so a commit costs one
/// `write` and one `fdatasync`.
#[derive(Debug)]
pub struct FsStorage {
    dir: PathBuf,
    open: Option<(String, File)>,
    /// Holds the directory's lock.
    _lock: File,
}

impl FsStorage {
    /// Opens the directory `dir` (created if missing) and locks it. Another owner, in this
    /// process or another, makes this fail at once with [`TxnError::DirectoryLocked`], before
    /// anything in the directory is read or changed.
    ///
    /// ```
    /// use rhizo_txn::{FsStorage, TxnError};
    /// let dir = std::env::temp_dir().join(format!("rhizo-fs-doc-{}", std::process::id()));
    /// let owner = FsStorage::open(&dir).unwrap();
    /// assert!(matches!(FsStorage::open(&dir), Err(TxnError::DirectoryLocked { .. })));
    /// drop(owner);
    /// assert!(FsStorage::open(&dir).is_ok());
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let io = |op: &'static str, source: io::Error| TxnError::Io {
            op,
            name: dir.display().to_string(),
            source,
        };
        fs::create_dir_all(&dir).map_err(|e| io("create", e))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(|e| io("open the lock file of", e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(TxnError::DirectoryLocked {
                    dir: dir.display().to_string(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io("lock", e)),
        }
        Ok(Self {
            dir,
            open: None,
            _lock: lock,
        })
    }

    fn file(&mut self, name: &str) -> io::Result<&mut File> {
        if self.open.as_ref().is_none_or(|(n, _)| n != name) {
            let file = OpenOptions::new().append(true).open(self.dir.join(name))?;
            self.open = Some((name.to_owned(), file));
        }
        Ok(&mut self.open.as_mut().expect("just opened").1)
    }

    fn forget(&mut self, name: &str) {
        if self.open.as_ref().is_some_and(|(n, _)| n == name) {
            self.open = None;
        }
    }
}

impl Storage for FsStorage {
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    fn list(&mut self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file()
                && let Ok(name) = entry.file_name().into_string()
            {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn read(&mut self, name: &str) -> io::Result<Vec<u8>> {
        fs::read(self.dir.join(name))
    }

    fn write_new(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.forget(name);
        let mut file = File::create(self.dir.join(name))?;
        file.write_all(bytes)?;
        self.open = Some((name.to_owned(), file));
        Ok(())
    }

    fn append(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.file(name)?.write_all(bytes)
    }

    fn sync(&mut self, name: &str) -> io::Result<()> {
        self.file(name)?.sync_data()
    }

    fn truncate(&mut self, name: &str, len: u64) -> io::Result<()> {
        self.forget(name);
        OpenOptions::new()
            .write(true)
            .open(self.dir.join(name))?
            .set_len(len)
    }

    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        self.forget(from);
        self.forget(to);
        fs::rename(self.dir.join(from), self.dir.join(to))
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        self.forget(name);
        fs::remove_file(self.dir.join(name))
    }

    fn sync_dir(&mut self) -> io::Result<()> {
        // Directories are opened read-only to fsync them; that is how POSIX makes entries durable.
        File::open(&self.dir)?.sync_all()
    }

    fn sync_handle(&mut self, name: &str) -> io::Result<Option<Arc<dyn SyncHandle>>> {
        // A duplicate of the descriptor: `fdatasync` on it covers every byte written through
        // either, and it stays valid after a rename or removal of the name.
        let file = self.file(name)?.try_clone()?;
        Ok(Some(Arc::new(FsSyncHandle { file })))
    }
}

/// [`FsStorage`]'s [`SyncHandle`]: a duplicate descriptor of the file.
#[derive(Debug)]
struct FsSyncHandle {
    file: File,
}

impl SyncHandle for FsSyncHandle {
    fn sync_data(&self, _len: u64) -> io::Result<()> {
        self.file.sync_data()
    }
}

#[derive(Debug, Default, Clone)]
struct MemFile {
    data: Vec<u8>,
    /// How many leading bytes a power loss keeps.
    synced: usize,
}

/// An in-memory directory that models what a power loss keeps: synced bytes survive, unsynced
/// ones may not ([`MemStorage::power_loss`]). Clones share the same files, so a test keeps a
/// handle while an engine owns another. Directory operations are durable at once.
#[derive(Debug, Clone, Default)]
pub struct MemStorage {
    files: Arc<Mutex<BTreeMap<String, MemFile>>>,
}

impl MemStorage {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    fn files(&self) -> MutexGuard<'_, BTreeMap<String, MemFile>> {
        // A panic while holding the lock leaves whole files behind; keep going.
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Simulates a power loss: each file keeps its synced bytes, plus its unsynced ones when
    /// `keep_unsynced` (the kernel happened to write them back).
    ///
    /// ```
    /// # use rhizo_algebra::AlgebraicValue;
    /// # use rhizo_clock::NodeId;
    /// # use rhizo_commit::Operations;
    /// # use rhizo_txn::{default_schema, Engine, EngineConfig, TransactionMode};
    /// # let config = EngineConfig::new(NodeId::new("a").unwrap()).with_schema(default_schema());
    /// use rhizo_txn::{MemStorage, SyncPolicy};
    /// let storage = MemStorage::new();
    /// let config = config.with_sync(SyncPolicy::None); // written in batches, synced on flush
    /// let mut engine = Engine::open_in_memory_log(storage.clone(), config.clone()).unwrap();
    /// let mut tx = engine.transaction(TransactionMode::CoordinationFree);
    /// tx.increment("counters", "hits", "value", 1);
    /// tx.commit().unwrap();
    /// let disk = storage.deep_clone(); // the files as they are at this instant ...
    /// disk.power_loss(false); // ... after a power loss: the unsynced commit is gone
    /// let restarted = Engine::open_in_memory_log(disk, config).unwrap();
    /// assert_eq!(restarted.read("counters", "hits", "value").unwrap(), AlgebraicValue::Integer(0));
    /// # drop(engine);
    /// ```
    pub fn power_loss(&self, keep_unsynced: bool) {
        for file in self.files().values_mut() {
            if !keep_unsynced {
                let synced = file.synced.min(file.data.len());
                file.data.truncate(synced);
            }
            file.synced = file.data.len();
        }
    }

    /// A file's content, if it exists.
    pub fn contents(&self, name: &str) -> Option<Vec<u8>> {
        self.files().get(name).map(|f| f.data.clone())
    }

    /// Replaces a file's content (marked synced): for tests that damage a log.
    #[cfg(test)]
    pub(crate) fn set_contents(&self, name: &str, data: Vec<u8>) {
        let synced = data.len();
        self.files()
            .insert(name.to_owned(), MemFile { data, synced });
    }

    /// A deep copy that shares nothing with `self`.
    pub fn deep_clone(&self) -> Self {
        Self {
            files: Arc::new(Mutex::new(self.files().clone())),
        }
    }
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no file {name}"))
}

impl Storage for MemStorage {
    fn describe(&self) -> String {
        "memory".to_owned()
    }

    fn list(&mut self) -> io::Result<Vec<String>> {
        Ok(self.files().keys().cloned().collect())
    }

    fn read(&mut self, name: &str) -> io::Result<Vec<u8>> {
        self.contents(name).ok_or_else(|| not_found(name))
    }

    fn write_new(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.files().insert(
            name.to_owned(),
            MemFile {
                data: bytes.to_vec(),
                synced: 0,
            },
        );
        Ok(())
    }

    fn append(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let mut files = self.files();
        let file = files.get_mut(name).ok_or_else(|| not_found(name))?;
        file.data.extend_from_slice(bytes);
        Ok(())
    }

    fn sync(&mut self, name: &str) -> io::Result<()> {
        let mut files = self.files();
        let file = files.get_mut(name).ok_or_else(|| not_found(name))?;
        file.synced = file.data.len();
        Ok(())
    }

    fn truncate(&mut self, name: &str, len: u64) -> io::Result<()> {
        let mut files = self.files();
        let file = files.get_mut(name).ok_or_else(|| not_found(name))?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        file.data.truncate(len);
        file.synced = file.synced.min(len);
        Ok(())
    }

    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        let mut files = self.files();
        let file = files.remove(from).ok_or_else(|| not_found(from))?;
        files.insert(to.to_owned(), file);
        Ok(())
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        self.files()
            .remove(name)
            .map(drop)
            .ok_or_else(|| not_found(name))
    }

    fn sync_dir(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn sync_handle(&mut self, name: &str) -> io::Result<Option<Arc<dyn SyncHandle>>> {
        if !self.files().contains_key(name) {
            return Err(not_found(name));
        }
        Ok(Some(Arc::new(MemSyncHandle {
            storage: self.clone(),
            name: name.to_owned(),
        })))
    }
}

/// [`MemStorage`]'s [`SyncHandle`]: marks bytes synced up to the length it is given, not up to
/// the file's end, because bytes appended while a sync runs are not promised by it.
#[derive(Debug)]
struct MemSyncHandle {
    storage: MemStorage,
    name: String,
}

impl SyncHandle for MemSyncHandle {
    fn sync_data(&self, len: u64) -> io::Result<()> {
        if let Some(file) = self.storage.files().get_mut(&self.name) {
            let len = usize::try_from(len)
                .unwrap_or(usize::MAX)
                .min(file.data.len());
            file.synced = file.synced.max(len);
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod fault;

#[cfg(test)]
mod tests;
