//! The engine's log behind a lock, so that a background flusher can make a waiting group commit
//! durable by its deadline without the application's help.
//!
//! Durability is tracked by marks: after logging a commit the engine notes the mark it reached
//! (its own dot counter and the coordinated sequence); a sync makes every mark noted before it
//! durable. A failed write or sync poisons the log for good: what reached the disk is unknown,
//! so the engine refuses reads and writes until it is reopened and recovers.
//!
//! **The flusher syncs outside the lock.** It takes the lock only to hand pending frames to the
//! file and note how far they reach (bytes and marks), syncs those bytes through the storage's
//! [`crate::SyncHandle`] without the lock, then takes the lock again to publish them as durable.
//! So commits append while the disk works, and what must hold is the order: the durable marks
//! (what [`SharedLog::durable`] and every acknowledgement read) move only after the sync that
//! covers them returned.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Entry, Frames, LogWriter, OutsideSync, SyncPlan};
use crate::storage::Storage;
use crate::{Result, TxnError};

/// The bytes of frames logged after a group was handed to the flusher that the committer writes
/// to the file itself rather than wait for the flusher to take them.
const HANDED_OFF_WRITE_BATCH: usize = 64 * 1024;

/// How far the log reaches: this node's own dot counter and the coordinated sequence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Marks {
    pub(crate) counter: u64,
    pub(crate) sequence: u64,
}

#[derive(Debug)]
struct State {
    writer: LogWriter,
    /// Why the log refuses everything, once a write or sync failed.
    poison: Option<String>,
    /// Marks of everything logged, and of everything durable.
    logged: Marks,
    durable: Marks,
    /// Commits of the group waiting for its sync, and when it is due.
    waiting: usize,
    deadline: Option<Instant>,
    /// A full group was handed to the flusher, which has not started its sync yet.
    handed_off: bool,
    stop: bool,
}

impl State {
    fn note<T>(&mut self, shared: &Shared, result: Result<T>) -> Result<T> {
        if let Err(err) = &result {
            self.poison = Some(err.to_string());
            shared.poisoned.store(true, Ordering::Release);
        }
        result
    }

    fn check(&self) -> Result<()> {
        match &self.poison {
            Some(reason) => Err(TxnError::Poisoned {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    fn sync(&mut self, shared: &Shared) -> Result<()> {
        self.check()?;
        let synced = self.writer.sync();
        self.note(shared, synced)?;
        self.durable = self.logged;
        self.end_group();
        Ok(())
    }

    /// Everything logged is covered by a sync made or under way: no group waits.
    fn end_group(&mut self) {
        self.waiting = 0;
        self.deadline = None;
        self.handed_off = false;
    }

    /// Starts the flusher's sync of everything logged: returns the sync to make outside the
    /// lock, or `None` when it is already made (nothing to sync, or a storage without a
    /// [`crate::SyncHandle`], synced here).
    fn begin_sync(&mut self, shared: &Shared) -> Result<Option<(OutsideSync, Marks)>> {
        self.check()?;
        let plan = self.writer.plan_sync();
        let plan = self.note(shared, plan)?;
        let marks = self.logged;
        self.end_group();
        match plan {
            SyncPlan::Done => {
                self.durable = marks;
                Ok(None)
            }
            SyncPlan::Here => self.sync(shared).map(|()| None),
            SyncPlan::Outside(sync) => Ok(Some((sync, marks))),
        }
    }

    /// Publishes a sync made outside the lock: its bytes and the marks logged when it began are
    /// durable (unless it failed, which poisons the log).
    fn finish_sync(
        &mut self,
        shared: &Shared,
        sync: &OutsideSync,
        marks: Marks,
        result: Result<()>,
    ) {
        if self.note(shared, result).is_err() {
            return;
        }
        self.writer.synced(sync);
        // A sync under the lock (a flush, a rotation) may have published later marks meanwhile.
        self.durable = Marks {
            counter: self.durable.counter.max(marks.counter),
            sequence: self.durable.sequence.max(marks.sequence),
        };
    }
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the flusher when a group starts waiting, or to stop.
    wake: Condvar,
    /// Set with `State::poison`, readable without the lock (reads check it).
    poisoned: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent between calls (a panic inside cannot leave half a frame in
        // it: frames are built before they are pushed).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The engine's log: a [`LogWriter`] shared with the group flusher (if any).
#[derive(Debug)]
pub(crate) struct SharedLog {
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
}

impl SharedLog {
    /// Opens the log in `storage`: the log and the entries of its newest segment (`None` for an
    /// empty directory).
    pub(crate) fn open(storage: Box<dyn Storage>) -> Result<(Self, Option<Vec<Entry>>)> {
        let (writer, entries) = LogWriter::open(storage)?;
        let state = State {
            writer,
            poison: None,
            logged: Marks::default(),
            durable: Marks::default(),
            waiting: 0,
            deadline: None,
            handed_off: false,
            stop: false,
        };
        let log = Self {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                wake: Condvar::new(),
                poisoned: AtomicBool::new(false),
            }),
            flusher: None,
        };
        Ok((log, entries))
    }

    /// The log's description, for messages.
    pub(crate) fn describe(&self) -> String {
        format!("{:?}", self.shared.lock().writer)
    }

    /// Starts the thread that syncs a waiting group once its deadline passes.
    pub(crate) fn start_flusher(&mut self) -> Result<()> {
        if self.flusher.is_some() {
            return Ok(());
        }
        let shared = Arc::clone(&self.shared);
        let handle = std::thread::Builder::new()
            .name("rhizo-group-flush".to_owned())
            .spawn(move || flush_groups(&shared))
            .map_err(|source| TxnError::Io {
                op: "start the group-commit flusher",
                name: "thread".to_owned(),
                source,
            })?;
        self.flusher = Some(handle);
        Ok(())
    }

    /// Whether a write or sync failed (without taking the lock).
    pub(crate) fn is_poisoned(&self) -> bool {
        self.shared.poisoned.load(Ordering::Acquire)
    }

    /// Refuses with [`TxnError::Poisoned`] once a write or sync failed.
    pub(crate) fn check(&self) -> Result<()> {
        if !self.is_poisoned() {
            return Ok(());
        }
        self.shared.lock().check()
    }

    /// Frames records through `push` and notes `marks` as logged.
    pub(crate) fn append(&self, marks: Marks, push: impl FnOnce(&mut Frames)) -> Result<()> {
        let mut state = self.shared.lock();
        state.check()?;
        push(state.writer.frames());
        state.logged = marks;
        Ok(())
    }

    /// Hands what is logged to the file: it survives a process crash, not a power loss.
    pub(crate) fn write_out(&self) -> Result<()> {
        let mut state = self.shared.lock();
        state.check()?;
        let written = state.writer.write_out();
        state.note(&self.shared, written)
    }

    /// Hands what is logged to the file once at least `batch` bytes of frames wait: one
    /// `write` per batch rather than per commit. Frames below the batch stay in memory, where a
    /// process crash loses them (see [`crate::SyncPolicy::None`]).
    pub(crate) fn write_out_batched(&self, batch: usize) -> Result<()> {
        let mut state = self.shared.lock();
        state.check()?;
        if state.writer.pending_len() < batch {
            return Ok(());
        }
        let written = state.writer.write_out();
        state.note(&self.shared, written)
    }

    /// Makes everything logged durable now.
    pub(crate) fn sync(&self) -> Result<()> {
        self.shared.lock().sync(&self.shared)
    }

    /// A commit joins the waiting group. Once the group holds `max_records` commits it is
    /// handed to the flusher, if one runs (its frames go to the file now; the flusher syncs them
    /// while commits go on), or synced now; without a flusher it is also synced now once its
    /// `max_delay` passed. Returns whether everything logged is durable.
    pub(crate) fn join_group(&self, max_records: usize, max_delay: Duration) -> Result<bool> {
        let mut state = self.shared.lock();
        state.check()?;
        state.waiting += 1;
        let now = Instant::now();
        let deadline = match state.deadline {
            Some(deadline) => deadline,
            None => {
                let deadline = now + max_delay;
                state.deadline = Some(deadline);
                if self.flusher.is_some() {
                    self.shared.wake.notify_one();
                }
                deadline
            }
        };
        let full = state.waiting >= max_records;
        if self.flusher.is_some() {
            // Frames logged after the hand-off, before the flusher takes them, also go to the
            // file in batches: a flusher kept off the CPU must not let them pile up in memory.
            let overdue = state.handed_off && state.writer.pending_len() >= HANDED_OFF_WRITE_BATCH;
            if (full && !state.handed_off) || overdue {
                let written = state.writer.write_out();
                state.note(&self.shared, written)?;
            }
            if full && !state.handed_off {
                state.handed_off = true;
                self.shared.wake.notify_one();
            }
            return Ok(false);
        }
        if full || now >= deadline {
            state.sync(&self.shared)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Syncs a waiting group whose deadline passed (for engines without a flusher, at their
    /// `tick`; with `now_or_never`, whatever its deadline).
    pub(crate) fn flush_due_group(&self, now_or_never: bool) -> Result<()> {
        let mut state = self.shared.lock();
        let due = state
            .deadline
            .is_some_and(|deadline| now_or_never || Instant::now() >= deadline);
        if due {
            state.sync(&self.shared)?;
        }
        Ok(())
    }

    /// The marks known durable.
    pub(crate) fn durable(&self) -> Marks {
        self.shared.lock().durable
    }

    /// Whether the records after the checkpoint outgrew `threshold` (and the checkpoint).
    pub(crate) fn wants_compaction(&self, threshold: u64) -> bool {
        self.shared.lock().writer.wants_compaction(threshold)
    }

    /// Starts a new segment holding what `fill` frames (superseding everything logged), with
    /// `marks` durable.
    pub(crate) fn rotate(&self, marks: Marks, fill: impl FnOnce(&mut Frames)) -> Result<()> {
        let mut state = self.shared.lock();
        state.check()?;
        let rotated = state.writer.rotate(fill);
        state.note(&self.shared, rotated)?;
        state.logged = marks;
        state.durable = marks;
        state.end_group();
        Ok(())
    }

    /// Marks `marks` as logged and durable without writing (after recovery: the log holds them).
    pub(crate) fn restore(&self, marks: Marks) {
        let mut state = self.shared.lock();
        state.logged = marks;
        state.durable = marks;
    }
}

impl Drop for SharedLog {
    fn drop(&mut self) {
        if let Some(flusher) = self.flusher.take() {
            self.shared.lock().stop = true;
            self.shared.wake.notify_one();
            let _ = flusher.join();
        }
        // Best effort, like a buffered writer: frames still in memory reach the file. A process
        // that dies without dropping loses only what its sync policy allowed.
        let mut state = self.shared.lock();
        if state.poison.is_none() {
            let _ = state.sync(&self.shared);
        }
    }
}

/// The flusher thread: sleeps until a group is handed to it or a waiting group's deadline
/// passes, then syncs everything logged.
fn flush_groups(shared: &Shared) {
    let mut state = shared.lock();
    loop {
        if state.stop {
            return;
        }
        let now = Instant::now();
        let due = state.handed_off || state.deadline.is_some_and(|deadline| now >= deadline);
        state = if due {
            sync_outside_lock(shared, state)
        } else {
            match state.deadline {
                None => shared.wake.wait(state).unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    shared
                        .wake
                        .wait_timeout(state, deadline - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            }
        };
    }
}

/// Syncs everything logged, releasing the lock while the storage syncs. A failure poisons the
/// log (the engine reports it at its next call) and ends the group: nothing more is synced.
fn sync_outside_lock<'a>(
    shared: &'a Shared,
    mut state: MutexGuard<'a, State>,
) -> MutexGuard<'a, State> {
    let Ok(Some((sync, marks))) = state.begin_sync(shared) else {
        state.end_group();
        return state;
    };
    drop(state);
    let result = sync
        .handle
        .sync_data(sync.len)
        .map_err(|source| TxnError::Io {
            op: "sync",
            name: sync.name(),
            source,
        });
    let mut state = shared.lock();
    state.finish_sync(shared, &sync, marks, result);
    state
}
