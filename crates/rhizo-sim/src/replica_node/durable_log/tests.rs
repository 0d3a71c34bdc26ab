use proptest::prelude::*;
use rhizo_clock::NodeId;
use rhizo_commit::{Record, Replica, ReplicaConfig};

use super::{BYTE_CHUNK, DurableLog};
use crate::testkit::incr;
use crate::{ReplicaNode, SimError, workload};

/// The records replicas `a` and `b` make (in that order) when `a` commits to `rows` (each by
/// its amount), `b` commits once, and they run one exchange: commits and deltas applied, as
/// their drivers would make them durable.
fn records_of_an_exchange(rows: &[(u16, i64)]) -> [Vec<Record>; 2] {
    let [(of_a, _), (of_b, _)] = exchange(rows, Sizing::NotSized);
    [of_a, of_b]
}

/// [`records_of_an_exchange`], each list led by its replica's snapshot at the end (a log that
/// restarted at a snapshot holds it first; that these records came before it matters not to
/// their encoding, only to a replay).
fn records_after_a_snapshot(rows: &[(u16, i64)], sized: Sizing) -> [Vec<Record>; 2] {
    exchange(rows, sized)
        .map(|(records, snapshot)| std::iter::once(snapshot).chain(records).collect())
}

/// Whether the exchange's messages are sized for the wire before they are delivered, as the
/// simulator's network does: a delta so sized keeps its encoding, and its record is then
/// written to the log from it.
#[derive(Debug, Clone, Copy)]
enum Sizing {
    NotSized,
    ForTheWire,
}

/// Each replica's records and its snapshot after the exchange of [`records_of_an_exchange`].
fn exchange(rows: &[(u16, i64)], sized: Sizing) -> [(Vec<Record>, Record); 2] {
    let deliver = |to: &mut Replica, from: NodeId, msg: rhizo_commit::Message| {
        if let Sizing::ForTheWire = sized {
            rhizo_commit::wire::encoded_message_len_keeping(&msg);
        }
        to.step(from, msg).unwrap();
    };
    let (a, b) = (NodeId::numbered(0), NodeId::numbered(1));
    let config = ReplicaConfig {
        members: vec![a, b],
        ..ReplicaConfig::default()
    };
    let mut on_a = Replica::new(a, workload::schema(), config.clone());
    let mut on_b = Replica::new(b, workload::schema(), config);
    let (mut of_a, mut of_b) = (Vec::new(), Vec::new());
    for (row, amount) in rows {
        on_a.commit(incr(&format!("row-{row}"), *amount)).unwrap();
    }
    on_b.commit(incr("row-b", 1)).unwrap();
    on_a.sync_with(b);
    while on_a.has_ready() || on_b.has_ready() {
        let ready = on_a.take_ready();
        of_a.extend(ready.records);
        for (_, msg) in ready.messages {
            deliver(&mut on_b, a, msg);
        }
        let ready = on_b.take_ready();
        of_b.extend(ready.records);
        for (_, msg) in ready.messages {
            deliver(&mut on_a, b, msg);
        }
    }
    let snapshot = |replica: &Replica| Record::Snapshot(Box::new(replica.snapshot()));
    [(of_a, snapshot(&on_a)), (of_b, snapshot(&on_b))]
}

fn log_of(records: &[Record]) -> DurableLog {
    let mut log = DurableLog::new();
    for record in records {
        log.push(record.clone());
    }
    log
}

fn is_merge(record: &Record) -> bool {
    matches!(record, Record::Merge { .. })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Law: a log gives back exactly the records pushed, in order, whatever their kinds and
    /// sizes, however they fall across chunks, and whether a delta's record is written from the
    /// encoding it kept or encoded afresh.
    #[test]
    fn a_log_gives_back_the_records_pushed(
        rows in proptest::collection::vec((any::<u16>(), -1000i64..1000), 1..600),
        sized_for_the_wire in any::<bool>(),
    ) {
        let sized = if sized_for_the_wire { Sizing::ForTheWire } else { Sizing::NotSized };
        for records in records_after_a_snapshot(&rows, sized) {
            prop_assert!(records.iter().any(is_merge));
            let log = log_of(&records);
            prop_assert_eq!(log.len(), records.len());
            let decoded: Vec<Record> = log.records().collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(decoded, records);
        }
    }
}

#[test]
fn deltas_and_snapshots_are_kept_encoded_and_commits_as_they_are() {
    let [of_a, _] = records_after_a_snapshot(&[(1, 2), (3, 4)], Sizing::NotSized);
    let log = log_of(&of_a);
    let is_encoded = |r: &Record| matches!(r, Record::Merge { .. } | Record::Snapshot(_));
    assert_eq!(
        log.encoded.len(),
        of_a.iter().filter(|r| is_encoded(r)).count()
    );
    assert_eq!(
        log.held_len + log.open.len(),
        of_a.iter().filter(|r| !is_encoded(r)).count()
    );
    let encoded: usize = of_a
        .iter()
        .filter(|r| is_encoded(r))
        .map(rhizo_commit::wire::encoded_record_len)
        .sum();
    assert_eq!(log.encoded_bytes(), encoded);
}

#[test]
fn a_delta_sized_for_the_wire_is_written_from_its_kept_encoding_without_the_scratch() {
    let [(of_a, _), (of_b, _)] = exchange(&[(1, 2), (3, 4)], Sizing::ForTheWire);
    for records in [of_a, of_b] {
        assert!(records.iter().any(is_merge));
        let log = log_of(&records);
        // Nothing went through the scratch buffer, which a delta of every key would otherwise
        // have grown to its size for the life of the node.
        assert_eq!(log.scratch.capacity(), 0);
        let sized: usize = records
            .iter()
            .filter(|r| is_merge(r))
            .map(|r| rhizo_commit::wire::kept_record_len(r).expect("an encoding kept"))
            .sum();
        assert_eq!(log.encoded_bytes(), sized);
        let decoded: Vec<Record> = log.records().collect::<Result<_, _>>().unwrap();
        assert_eq!(decoded, records);
    }
}

#[test]
fn a_snapshot_supersedes_every_record_before_it() {
    let [(of_a, snapshot), _] = exchange(&[(1, 2), (3, 4)], Sizing::NotSized);
    let mut log = log_of(&of_a);
    log.push(of_a[0].clone());
    log.push(snapshot.clone());
    log.push(of_a[1].clone());
    let read: Vec<Record> = log.records().collect::<Result<_, _>>().unwrap();
    assert_eq!(read, [snapshot, of_a[1].clone()]);
}

/// Law: records kept as they are fill chunks that are never moved once full, however many.
#[test]
fn many_commits_fill_chunks_in_order() {
    let [of_a, _] = records_of_an_exchange(&[(1, 2)]);
    let merge = of_a.iter().find(|r| is_merge(r)).unwrap().clone();
    let commit = of_a[0].clone();
    let mut records = Vec::new();
    for i in 0..2000 {
        records.push(if i % 97 == 0 {
            merge.clone()
        } else {
            commit.clone()
        });
    }
    let log = log_of(&records);
    assert!(log.held.len() >= 2);
    assert_eq!(log.len(), records.len());
    let read: Vec<Record> = log.records().collect::<Result<_, _>>().unwrap();
    assert_eq!(read, records);
}

#[test]
fn a_record_larger_than_a_chunk_gets_its_own() {
    // Fewer commits than a replica makes before its own snapshot (which would supersede them).
    let rows: Vec<(u16, i64)> = (0..3500).map(|row| (row, 1)).collect();
    let [of_a, of_b] = records_after_a_snapshot(&rows, Sizing::NotSized);
    assert!(rhizo_commit::wire::encoded_record_len(&of_a[0]) > BYTE_CHUNK);
    for records in [of_a, of_b] {
        let log = log_of(&records);
        assert!(log.bytes.len() >= 2);
        let decoded: Vec<Record> = log.records().collect::<Result<_, _>>().unwrap();
        assert_eq!(decoded, records);
    }
}

#[test]
fn clearing_drops_every_record() {
    let [of_a, _] = records_of_an_exchange(&[(1, 2), (3, 4)]);
    let mut log = log_of(&of_a);
    assert!(!log.is_empty() && log.encoded_bytes() > 0);
    log.clear();
    assert!(log.is_empty());
    assert_eq!((log.len(), log.encoded_bytes()), (0, 0));
    assert_eq!(log.records().count(), 0);
}

/// `a`'s records up to its first delta applied, and that log with the delta's bytes cut short.
fn log_with_a_cut_delta() -> (Vec<Record>, DurableLog) {
    let [of_a, _] = records_of_an_exchange(&[(1, 2), (3, 4)]);
    let first_merge = of_a.iter().position(is_merge).unwrap();
    let records = of_a[..=first_merge].to_vec();
    let mut log = log_of(&records);
    let bytes = log.bytes.last_mut().unwrap();
    bytes.truncate(bytes.len() - 1);
    (records, log)
}

#[test]
fn a_cut_record_is_an_error_and_ends_the_records() {
    let (records, mut log) = log_with_a_cut_delta();
    let read: Vec<_> = log.records().collect();
    assert_eq!(read.len(), records.len());
    assert!(read[..records.len() - 1].iter().all(Result::is_ok));
    assert!(matches!(
        read.last().unwrap(),
        Err(SimError::DurableLog { .. })
    ));
    // Bytes gone altogether are refused the same way, and nothing after them is read.
    log.bytes.clear();
    log.push(records[0].clone());
    assert_eq!(log.len(), records.len() + 1);
    let read: Vec<_> = log.records().collect();
    assert_eq!(read.len(), records.len());
    assert!(matches!(
        read.last().unwrap(),
        Err(SimError::DurableLog { .. })
    ));
}

#[test]
fn garbage_in_an_encoded_record_is_an_error_not_a_panic() {
    let (records, mut log) = log_with_a_cut_delta();
    for byte in log.bytes.last_mut().unwrap().iter_mut() {
        *byte = 0xff;
    }
    let read: Vec<_> = log.records().collect();
    assert_eq!(read.len(), records.len());
    assert!(matches!(
        read.last().unwrap(),
        Err(SimError::DurableLog { .. })
    ));
}

#[test]
fn a_node_recovered_from_an_unreadable_log_reports_it_and_replays_nothing() {
    let a = NodeId::numbered(0);
    let config = ReplicaConfig {
        members: vec![a, NodeId::numbered(1)],
        ..ReplicaConfig::default()
    };
    let [of_a, _] = records_of_an_exchange(&[(1, 2), (3, 4)]);
    let first_merge = of_a.iter().position(is_merge).unwrap();
    let whole = log_of(&of_a[..=first_merge]);
    let recovered = ReplicaNode::recover(a, workload::schema(), config.clone(), whole);
    assert!(recovered.faults().is_empty());
    assert_eq!(recovered.replica().clock().get(a), 2);
    assert_eq!(recovered.replica().clock().get(NodeId::numbered(1)), 1);
    let (_, cut) = log_with_a_cut_delta();
    let recovered = ReplicaNode::recover(a, workload::schema(), config, cut);
    assert_eq!(recovered.faults().len(), 1);
    assert_eq!(recovered.replica().clock().get(a), 0);
}
