//! The durability boundary: one owner per directory, states larger than a frame, torn tails,
//! failed writes, group commits by their deadline, Raft messages after their records, bounded
//! error messages, and simulated crashes as power losses.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;
use crate::raft::{FileRaftLog, RaftConfig};
use crate::storage::fault::{Fault, FaultyStorage, SyncGate};

/// Every file of a directory with its bytes, by name.
fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

fn increment(engine: &mut Engine, row: &str) -> Result<CommitOutcome> {
    let mut tx = engine.transaction(TransactionMode::CoordinationFree);
    tx.increment("counters", row, "value", 1);
    decide(tx)
}

#[test]
fn a_second_open_of_a_directory_is_refused_and_touches_nothing() {
    for raft in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let config = if raft {
            config().with_raft(RaftConfig::default())
        } else {
            config()
        };
        let mut owner = Engine::open(dir.path(), config.clone()).unwrap();
        for _ in 0..10 {
            increment(&mut owner, "c").unwrap();
        }
        owner.flush().unwrap();
        let before = files_of(dir.path());
        let second = Engine::open(dir.path(), config.clone());
        assert!(
            matches!(&second, Err(TxnError::DirectoryLocked { dir: d }) if d.contains(&*dir.path().to_string_lossy())),
            "{second:?}"
        );
        assert!(matches!(
            FileRaftLog::open_dir(dir.path()),
            Err(TxnError::DirectoryLocked { .. })
        ));
        assert_eq!(
            files_of(dir.path()),
            before,
            "the refused opens changed nothing"
        );
        drop(owner);
        let reopened = Engine::open(dir.path(), config).unwrap();
        assert_eq!(reopened.read("counters", "c", "value").unwrap(), int(10));
    }
}

/// The environment variable that makes this test binary the owner process of the
/// cross-process tests: `hold:<dir>` or `load:<dir>`.
const CHILD: &str = "RHIZO_TEST_DIRECTORY_OWNER";

/// Runs as the owner process: opens the directory, commits (printing `acked N` after each
/// acknowledged durable commit), then either holds the directory (`hold`, until killed or its
/// input closes) or keeps committing (`load`, up to a bound).
fn run_owner(spec: &str) {
    let (mode, dir) = spec.split_once(':').expect("mode:dir");
    let mut engine = Engine::open(dir, config()).unwrap();
    let limit = if mode == "hold" { 50 } else { 1_000_000 };
    let mut out = std::io::stdout().lock();
    for n in 1..=limit {
        assert!(increment(&mut engine, "c").unwrap().durable);
        writeln!(out, "acked {n}").unwrap();
        out.flush().unwrap();
    }
    writeln!(out, "holding").unwrap();
    out.flush().unwrap();
    // Until the parent kills us (or gives up and closes our input).
    let _ = std::io::stdin().lock().read_line(&mut String::new());
}

/// A child process killed (by its pid, with SIGKILL) when dropped, whatever the test did.
struct Owner(Child);

impl Owner {
    fn start(mode: &str, dir: &Path) -> (Self, BufReader<std::process::ChildStdout>) {
        let test = if mode == "hold" {
            "engine::tests::durability::a_second_open_in_another_process_is_refused"
        } else {
            "engine::tests::durability::an_owner_killed_mid_load_loses_nothing_it_acknowledged"
        };
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(CHILD, format!("{mode}:{}", dir.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        (Self(child), stdout)
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads the owner's lines until `done` says stop or 60 s pass; returns the last ack seen.
fn read_acks(
    stdout: &mut BufReader<std::process::ChildStdout>,
    done: impl Fn(&str, u64) -> bool,
) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut acked = 0;
    let mut line = String::new();
    while Instant::now() < deadline {
        line.clear();
        if stdout.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(n) = line.trim().strip_prefix("acked ") {
            acked = n.parse().unwrap();
        }
        if done(line.trim(), acked) {
            break;
        }
    }
    acked
}

#[test]
fn a_second_open_in_another_process_is_refused() {
    if let Ok(spec) = std::env::var(CHILD) {
        return run_owner(&spec);
    }
    let dir = tempfile::tempdir().unwrap();
    let (owner, mut stdout) = Owner::start("hold", dir.path());
    let acked = read_acks(&mut stdout, |line, _| line == "holding");
    assert_eq!(acked, 50);
    let before = files_of(dir.path());
    assert!(matches!(
        Engine::open(dir.path(), config()),
        Err(TxnError::DirectoryLocked { .. })
    ));
    assert_eq!(
        files_of(dir.path()),
        before,
        "the refused open changed no byte"
    );
    drop(owner); // SIGKILL: the OS releases the lock with the process
    let reopened = Engine::open(dir.path(), config()).unwrap();
    assert_eq!(reopened.read("counters", "c", "value").unwrap(), int(50));
}

#[test]
fn an_owner_killed_mid_load_loses_nothing_it_acknowledged() {
    if let Ok(spec) = std::env::var(CHILD) {
        return run_owner(&spec);
    }
    let dir = tempfile::tempdir().unwrap();
    let (owner, mut stdout) = Owner::start("load", dir.path());
    let acked = read_acks(&mut stdout, |_, acked| acked >= 300);
    drop(owner);
    assert!(acked >= 300, "the owner acknowledged only {acked}");
    let reopened = Engine::open(dir.path(), config()).unwrap();
    let AlgebraicValue::Integer(value) = reopened.read("counters", "c", "value").unwrap() else {
        panic!("an integer counter")
    };
    assert!(value >= acked as i64, "{value} < {acked} acknowledged");
}

#[test]
fn a_state_larger_than_a_frame_compacts_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let schema = Schema::builder()
        .table("t")
        .column("s", MergeType::Union, ValueType::StringSet)
        .build()
        .unwrap();
    let config = EngineConfig::new(node(0))
        .with_schema(schema)
        .with_compaction_after(u64::MAX);
    let mut engine = Engine::open(dir.path(), config.clone()).unwrap();
    // One cell of about 4 frames, committed in three transactions of more than a frame each.
    for batch in 0..3 {
        let elements: Vec<String> = (0..1_400)
            .map(|i| format!("{batch}-{i:06}-{}", "x".repeat(988)))
            .collect();
        let mut tx = engine.transaction(TransactionMode::CoordinationFree);
        tx.add_to_set("t", "r", "s", elements);
        assert!(decide(tx).unwrap().durable);
    }
    let print = engine.fingerprint();
    engine.compact().unwrap();
    drop(engine);
    let reopened = Engine::open(dir.path(), config).unwrap();
    assert_eq!(reopened.fingerprint(), print);
    let AlgebraicValue::StringSet(set) = reopened.read("t", "r", "s").unwrap() else {
        panic!("a string set")
    };
    assert_eq!(set.len(), 4_200);
}

#[test]
fn a_zero_filled_tail_inside_a_multi_frame_append_is_cut() {
    let storage = MemStorage::new();
    let config = config().with_sync(SyncPolicy::Group {
        max_delay_ms: 1_000_000,
        max_records: 4,
    });
    let mut engine = Engine::open_in_memory_log(storage.clone(), config.clone()).unwrap();
    increment(&mut engine, "c").unwrap();
    engine.flush().unwrap();
    let mut names = storage.clone().list().unwrap();
    let name = names.pop().unwrap();
    let durable_len = storage.contents(&name).unwrap().len();
    for _ in 0..4 {
        increment(&mut engine, "c").unwrap(); // one append of four frames, at the fourth
    }
    let mut bytes = storage.contents(&name).unwrap();
    drop(engine);
    let frame = (bytes.len() - durable_len) / 4;
    // The file system kept the length but not the data, from inside the second new frame on.
    let tear = durable_len + frame + frame / 2;
    bytes[tear..].fill(0);
    storage.set_contents(&name, bytes);
    let reopened = Engine::open_in_memory_log(storage, config).unwrap();
    assert_eq!(reopened.read("counters", "c", "value").unwrap(), int(2));
}

#[test]
fn error_messages_quote_a_bounded_prefix_of_the_input() {
    let (mut engine, _) = mem_engine();
    let row = "k".repeat(100_000);
    let refused = increment(&mut engine, &row).unwrap_err();
    let message = refused.to_string();
    assert!(
        message.len() < 400,
        "{} bytes: {message:.200}",
        message.len()
    );
    assert!(message.contains("(100000 bytes)"), "{message}");
    let mut tx = engine.transaction(TransactionMode::CoordinationFree);
    tx.increment(&"t".repeat(50_000), "r", "value", 1);
    let message = decide(tx).unwrap_err().to_string();
    assert!(
        message.len() < 400 && message.contains("(50000 bytes)"),
        "{message:.200}"
    );
    let mut tx = engine.transaction(TransactionMode::CoordinationFree);
    for i in 0..1_000 {
        tx.increment("nope", &format!("r{i}"), "value", 1);
    }
    let message = decide(tx).unwrap_err().to_string();
    assert!(
        message.len() < 1_000 && message.contains("and 992 more"),
        "{message:.200}"
    );
}

#[test]
fn a_commit_that_fails_on_disk_is_never_read_and_reopening_recovers_the_acknowledged() {
    // Count the write points of opening and of five commits, then fail the next one.
    let counted = FaultyStorage::new(MemStorage::new(), None, Fault::Fail);
    let writes = counted.writes.clone();
    let mut engine = Engine::open_with_storage(Box::new(counted), config()).unwrap();
    for _ in 0..5 {
        increment(&mut engine, "c").unwrap();
    }
    let fault_at = writes.load(std::sync::atomic::Ordering::Relaxed) + 1;
    drop(engine);
    let disk = MemStorage::new();
    let faulty = FaultyStorage::new(disk.clone(), Some(fault_at), Fault::Fail);
    let mut engine = Engine::open_with_storage(Box::new(faulty), config()).unwrap();
    for _ in 0..5 {
        assert!(increment(&mut engine, "c").unwrap().durable);
    }
    assert!(matches!(
        increment(&mut engine, "c"),
        Err(TxnError::Io { .. })
    ));
    // The failed commit is in memory, but nobody may read it, and nothing more is written.
    assert!(matches!(
        engine.read("counters", "c", "value"),
        Err(TxnError::Poisoned { .. })
    ));
    assert!(matches!(
        increment(&mut engine, "c"),
        Err(TxnError::Poisoned { .. })
    ));
    let mut tx = engine.transaction(TransactionMode::CoordinationFree);
    assert!(matches!(
        tx.read("counters", "c", "value"),
        Err(TxnError::Poisoned { .. })
    ));
    drop(tx);
    drop(engine);
    let lost = disk.deep_clone();
    lost.power_loss(false);
    let reopened = Engine::open_in_memory_log(lost, config()).unwrap();
    assert_eq!(reopened.read("counters", "c", "value").unwrap(), int(5));
}

#[test]
fn a_waiting_group_is_synced_by_its_deadline_without_help() {
    let storage = MemStorage::new();
    let config = config().with_sync(SyncPolicy::Group {
        max_delay_ms: 20,
        max_records: 1_000,
    });
    let mut engine = Engine::open_in_memory_log(storage.clone(), config.clone()).unwrap();
    let outcome = increment(&mut engine, "c").unwrap();
    assert!(!outcome.durable);
    // No commit, tick, poll or flush from here on: the engine's flusher must sync the group.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !engine.is_durable(&outcome) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(engine.is_durable(&outcome), "still not durable after 30 s");
    let lost = storage.deep_clone();
    lost.power_loss(false);
    let reopened = Engine::open_in_memory_log(lost, config).unwrap();
    assert_eq!(reopened.read("counters", "c", "value").unwrap(), int(1));
}

/// An engine whose group commits (of three) are synced by its flusher through a storage
/// handle held at `gate`, on the in-memory disk `disk`.
fn gated_group_engine(disk: &MemStorage, gate: &SyncGate) -> (Engine, EngineConfig) {
    let config = config().with_sync(SyncPolicy::Group {
        max_delay_ms: 60_000,
        max_records: 3,
    });
    let storage = FaultyStorage::new(disk.clone(), None, Fault::Fail).with_sync_gate(gate.clone());
    let engine = Engine::open_with_storage(Box::new(storage), config.clone()).unwrap();
    (engine, config)
}

/// The counter `c` after a power loss that keeps only what was synced.
fn after_power_loss(disk: &MemStorage, config: &EngineConfig) -> AlgebraicValue {
    let lost = disk.deep_clone();
    lost.power_loss(false);
    let reopened = Engine::open_in_memory_log(lost, config.clone()).unwrap();
    reopened.read("counters", "c", "value").unwrap()
}

#[test]
fn a_full_group_is_acknowledged_durable_only_after_the_flusher_s_sync_returns() {
    let (disk, gate) = (MemStorage::new(), SyncGate::default());
    let (mut engine, config) = gated_group_engine(&disk, &gate);
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        outcomes.push(increment(&mut engine, "c").unwrap());
    }
    // The third commit filled the group and handed it to the flusher: it returns at once.
    assert!(outcomes.iter().all(|o| !o.durable));
    assert!(
        gate.wait_for_a_sync(Duration::from_secs(30)),
        "no sync began"
    );
    // The sync is held: nothing may be acknowledged, and a power loss now would lose the group.
    assert!(!engine.is_durable(&outcomes[2]));
    assert_eq!(after_power_loss(&disk, &config), int(0));
    // The flusher holds no lock while it syncs: commits go on (a commit behind the held sync
    // would wait out the gate's hold and fail with the sync's error).
    let started = Instant::now();
    let fourth = increment(&mut engine, "c").unwrap();
    assert!(started.elapsed() < SyncGate::HOLD / 2);
    assert!(!engine.is_durable(&outcomes[0]) && !fourth.durable);
    gate.open();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !engine.is_durable(&outcomes[2]) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(
        engine.is_durable(&outcomes[2]),
        "not durable 30 s after the gate opened"
    );
    assert!(!engine.is_durable(&fourth));
    // What is acknowledged survives; the fourth commit, logged after the sync began, need not.
    assert_eq!(after_power_loss(&disk, &config), int(3));
    engine.flush().unwrap();
    assert!(engine.is_durable(&fourth));
    assert_eq!(after_power_loss(&disk, &config), int(4));
}

#[test]
fn a_failed_sync_outside_the_lock_acknowledges_nothing_and_poisons_the_engine() {
    let (disk, gate) = (MemStorage::new(), SyncGate::default());
    let (mut engine, config) = gated_group_engine(&disk, &gate);
    let outcomes: Vec<CommitOutcome> = (0..3)
        .map(|_| increment(&mut engine, "c").unwrap())
        .collect();
    assert!(
        gate.wait_for_a_sync(Duration::from_secs(30)),
        "no sync began"
    );
    gate.fail();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(engine.poll(), Err(TxnError::Poisoned { .. })) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(matches!(engine.poll(), Err(TxnError::Poisoned { .. })));
    assert!(outcomes.iter().all(|o| !engine.is_durable(o)));
    assert!(matches!(
        increment(&mut engine, "c"),
        Err(TxnError::Poisoned { .. })
    ));
    drop(engine);
    assert_eq!(after_power_loss(&disk, &config), int(0));
}

/// Two Raft members on memory logs with the given policy: `n1` learns `n0`'s commit (and, with
/// `reuse`, `n0` learns one of `n1`'s), loses power, restarts, commits again; after healthy
/// anti-entropy both must hold the same state.
fn raft_power_loss(policy: SyncPolicy, reuse: bool) {
    let cfg = |id: NodeId| {
        EngineConfig::new(id)
            .with_members([node(0), node(1)])
            .with_sync(policy)
            .with_schema(test_schema())
            .with_raft(RaftConfig::default())
    };
    let (s0, s1) = (MemStorage::new(), MemStorage::new());
    let mut engines = [
        Engine::open_in_memory_log(s0.clone(), cfg(node(0))).unwrap(),
        Engine::open_in_memory_log(s1.clone(), cfg(node(1))).unwrap(),
    ];
    let pump = |engines: &mut [Engine; 2]| {
        for _ in 0..100 {
            let mut carried = false;
            for from in 0..2 {
                for (to, message) in engines[from].take_messages().unwrap() {
                    let to = usize::from(to == node(1));
                    engines[to].receive(node(from as u32), message).unwrap();
                    carried = true;
                }
            }
            if !carried {
                return;
            }
        }
    };
    increment(&mut engines[0], "c").unwrap();
    engines[0].flush().unwrap();
    if reuse {
        increment(&mut engines[1], "d").unwrap();
        engines[0].sync_with(node(1)).unwrap();
        pump(&mut engines);
    }
    for _ in 0..2 {
        engines[1].sync_with(node(0)).unwrap();
        pump(&mut engines);
    }
    // n1 loses power: what it did not sync is gone (the engine value is dropped aside).
    let lost = s1.deep_clone();
    lost.power_loss(false);
    engines[1] = Engine::open_in_memory_log(lost, cfg(node(1))).unwrap();
    if reuse {
        increment(&mut engines[1], "d").unwrap();
    }
    increment(&mut engines[0], "later").unwrap();
    for _ in 0..20 {
        for i in 0..2 {
            engines[i].sync_with(node(1 - i as u32)).unwrap();
            pump(&mut engines);
        }
    }
    for row in ["c", "d", "later"] {
        assert_eq!(
            engines[0].read("counters", row, "value").unwrap(),
            engines[1].read("counters", row, "value").unwrap(),
            "{policy:?} reuse={reuse}: {row}"
        );
    }
    assert_eq!(engines[0].fingerprint(), engines[1].fingerprint());
    assert_eq!(engines[1].replica().buffered(), 0);
}

#[test]
fn no_message_leaves_before_the_records_it_depends_on_are_durable() {
    for policy in [
        SyncPolicy::None,
        SyncPolicy::Group {
            max_delay_ms: 1_000_000,
            max_records: 1_000_000,
        },
        SyncPolicy::EveryCommit,
    ] {
        for reuse in [false, true] {
            raft_power_loss(policy, reuse);
        }
    }
}
