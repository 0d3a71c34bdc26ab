use proptest::prelude::*;

use super::*;
use crate::raft::LogEntry;
use crate::storage::MemStorage;

/// A record whose identity a test can see after a round trip: a Raft entry list holding one
/// entry numbered `n` with `size` bytes of data.
fn numbered(n: u64, size: usize) -> RaftRecord {
    RaftRecord::Entries(vec![LogEntry {
        index: n,
        term: 1,
        kind: 0,
        data: (0..size).map(|i| (i as u64 ^ n) as u8).collect(),
        context: Vec::new(),
    }])
}

/// The numbers of the records a scan found.
fn numbers(entries: &[Entry]) -> Vec<u64> {
    entries
        .iter()
        .map(|entry| match entry {
            Entry::Raft(record) => match &**record {
                RaftRecord::Entries(list) => list[0].index,
                other => panic!("unexpected record {other:?}"),
            },
            other => panic!("unexpected entry {}", other.describe()),
        })
        .collect()
}

/// A log in memory with `durable` records synced and then `appended` records written in one
/// append that was never synced. Returns the storage, the segment's name and number, and where
/// the last append starts.
fn log_with(
    durable: &[(u64, usize)],
    appended: &[(u64, usize)],
) -> (MemStorage, String, u64, usize) {
    let storage = MemStorage::new();
    let (mut writer, entries) = LogWriter::open(Box::new(storage.clone())).unwrap();
    assert!(entries.is_none());
    writer.rotate(|_| {}).unwrap();
    for &(n, size) in durable {
        writer.frames().push_raft(&numbered(n, size));
        writer.sync().unwrap();
    }
    let append_start = writer.len as usize;
    for &(n, size) in appended {
        writer.frames().push_raft(&numbered(n, size));
    }
    writer.write_out().unwrap();
    (storage, writer.name.clone(), writer.segment, append_start)
}

#[test]
fn frames_round_trip_and_names_parse() {
    let mut frames = Frames::new(3, MAGIC.len() as u64, 0);
    frames.push_schema(&Schema::new());
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&frames.bytes);
    let scan = scan("s", 3, &bytes).unwrap();
    assert_eq!(scan.valid_len, bytes.len());
    assert!(!scan.torn);
    assert!(matches!(scan.entries.as_slice(), [Entry::Schema(s)] if **s == Schema::new()));
    assert_eq!(parse_segment(&segment_name(42)), Some(42));
    assert_eq!(parse_segment("00000000000000000042.log.tmp"), None);
    assert_eq!(parse_segment("42.log"), None);
}

#[test]
fn a_frame_verifies_only_in_its_own_segment_and_place() {
    let mut frames = Frames::new(3, MAGIC.len() as u64, 0);
    frames.push_raft(&numbered(1, 10));
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&frames.bytes);
    // Another segment number: nothing verifies, so the whole body is a torn tail.
    let other = scan("s", 4, &bytes).unwrap();
    assert!(other.entries.is_empty() && other.torn && other.valid_len == MAGIC.len());
    // Shifted by one byte: the same frame no longer verifies.
    let mut shifted = MAGIC.to_vec();
    shifted.push(0);
    shifted.extend_from_slice(&frames.bytes);
    let shifted = scan("s", 3, &shifted).unwrap();
    assert!(shifted.entries.is_empty() && shifted.torn);
}

#[test]
fn a_record_larger_than_a_frame_is_written_in_parts_and_read_whole() {
    let big = 3 * MAX_PAYLOAD + MAX_PAYLOAD / 2;
    let (storage, name, segment, _) = log_with(&[(1, 5), (2, big), (3, 7)], &[]);
    let bytes = storage.contents(&name).unwrap();
    let scan = scan(&name, segment, &bytes).unwrap();
    assert_eq!(numbers(&scan.entries), [1, 2, 3]);
    match &scan.entries[1] {
        Entry::Raft(record) => assert_eq!(**record, numbered(2, big)),
        other => panic!("unexpected entry {}", other.describe()),
    }
    // Cut inside the parts: the whole record is the torn tail.
    let second_starts = {
        let (s, ..) = log_with(&[(1, 5)], &[]);
        s.contents(&name).unwrap().len()
    };
    for cut in [
        second_starts + 1,
        second_starts + MAX_PAYLOAD + 40,
        bytes.len() - 60,
    ] {
        let scan = scan_of(&name, segment, &bytes[..cut]);
        assert_eq!(numbers(&scan.entries), [1], "cut at {cut}");
        assert_eq!(scan.valid_len, second_starts);
    }
}

fn scan_of(name: &str, segment: u64, bytes: &[u8]) -> Scan {
    scan(name, segment, bytes).unwrap()
}

#[test]
fn damage_followed_by_frames_written_after_it_was_durable_is_an_error() {
    let (storage, name, segment, _) = log_with(&[(1, 20), (2, 20), (3, 20)], &[(4, 20)]);
    let mut bytes = storage.contents(&name).unwrap();
    let second = MAGIC.len() + HEADER + 1 + encode_body(&numbered(1, 20)).len();
    bytes[second + HEADER + 3] ^= 0x40;
    assert!(matches!(
        scan(&name, segment, &bytes),
        Err(TxnError::Corrupt { offset, .. }) if offset == second as u64
    ));
}

#[test]
fn an_undecodable_record_with_good_checksums_is_an_error() {
    let mut frames = Frames::new(1, MAGIC.len() as u64, 0);
    frames.push(KIND_RAFT, &[0xff, 0xff, 0xff]);
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&frames.bytes);
    assert!(matches!(
        scan("s", 1, &bytes),
        Err(TxnError::Corrupt { offset: 8, .. })
    ));
}

#[test]
fn a_segment_of_format_1_is_named_as_such() {
    let mut bytes = MAGIC_V1.to_vec();
    bytes.extend_from_slice(&[0; 40]);
    match scan("s", 1, &bytes) {
        Err(TxnError::Corrupt { reason, .. }) => assert!(reason.contains("format 1"), "{reason}"),
        other => panic!("unexpected {other:?}"),
    }
}

/// Storage whose reads of temporary files come back damaged: a rotation must then fail and
/// leave the old segment in place.
#[derive(Clone)]
struct DamagedReadBack(MemStorage);

impl Storage for DamagedReadBack {
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn list(&mut self) -> std::io::Result<Vec<String>> {
        self.0.list()
    }
    fn read(&mut self, name: &str) -> std::io::Result<Vec<u8>> {
        let mut bytes = self.0.read(name)?;
        if name.ends_with(".tmp") {
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
        }
        Ok(bytes)
    }
    fn write_new(&mut self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.0.write_new(name, bytes)
    }
    fn append(&mut self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.0.append(name, bytes)
    }
    fn sync(&mut self, name: &str) -> std::io::Result<()> {
        self.0.sync(name)
    }
    fn truncate(&mut self, name: &str, len: u64) -> std::io::Result<()> {
        self.0.truncate(name, len)
    }
    fn rename(&mut self, from: &str, to: &str) -> std::io::Result<()> {
        self.0.rename(from, to)
    }
    fn remove(&mut self, name: &str) -> std::io::Result<()> {
        self.0.remove(name)
    }
    fn sync_dir(&mut self) -> std::io::Result<()> {
        self.0.sync_dir()
    }
}

#[test]
fn a_rotation_whose_segment_does_not_read_back_keeps_the_old_one() {
    let (storage, name, ..) = log_with(&[(1, 10), (2, 10)], &[]);
    let (mut writer, entries) =
        LogWriter::open(Box::new(DamagedReadBack(storage.clone()))).unwrap();
    assert_eq!(numbers(&entries.unwrap()), [1, 2]);
    let rotated = writer.rotate(|frames| frames.push_raft(&numbered(9, 10)));
    assert!(
        matches!(rotated, Err(TxnError::Corrupt { .. })),
        "{rotated:?}"
    );
    let (_, entries) = LogWriter::open(Box::new(storage.clone())).unwrap();
    assert_eq!(numbers(&entries.unwrap()), [1, 2]);
    assert!(storage.contents(&name).is_some());
}

/// How the bytes of the last append look after a crash that tore it at a cut point.
#[derive(Debug, Clone, Copy)]
enum Fill {
    /// The file ends at the cut.
    Truncated,
    /// The file kept its length, but not the data: zeros.
    Zeros,
    /// Random bytes.
    Garbage(u64),
    /// Stale bytes: the frames of this segment and of an older one, shifted.
    OldBytes(usize),
}

fn fill_strategy() -> impl Strategy<Value = Fill> {
    prop_oneof![
        Just(Fill::Truncated),
        Just(Fill::Zeros),
        any::<u64>().prop_map(Fill::Garbage),
        (0usize..64).prop_map(Fill::OldBytes),
    ]
}

/// Tears `bytes` at `cut` (up to `until`) with `fill`. `stale` is what a file system could
/// expose instead of the written data.
fn tear(bytes: &mut Vec<u8>, cut: usize, until: usize, fill: Fill, stale: &[u8]) {
    match fill {
        Fill::Truncated => bytes.truncate(cut),
        Fill::Zeros => bytes[cut..until].fill(0),
        Fill::Garbage(seed) => {
            let mut state = seed | 1;
            for b in &mut bytes[cut..until] {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = state as u8;
            }
        }
        Fill::OldBytes(shift) => {
            for (i, b) in bytes[cut..until].iter_mut().enumerate() {
                *b = stale[(shift + i) % stale.len()];
            }
        }
    }
}

/// The records of the last append that lie whole before `cut`, given each record's end.
fn whole_before(ends: &[(u64, usize)], cut: usize) -> Vec<u64> {
    ends.iter()
        .take_while(|(_, end)| *end <= cut)
        .map(|(n, _)| *n)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// For every cut point and fill of the last append — at its end or inside it, with the
    /// frames after the damage lost or surviving (a file system that wrote blocks out of
    /// order) — recovery yields exactly the records before the damage, and a log reopened
    /// after it is clean and holds them.
    #[test]
    fn recovery_yields_exactly_the_durable_prefix(
        durable in prop::collection::vec(1usize..300, 1..5),
        appended in prop::collection::vec(prop_oneof![1usize..300, 1000usize..3000], 1..6),
        big_part in any::<bool>(),
        cut_at in any::<prop::sample::Index>(),
        span in prop_oneof![Just(usize::MAX), 1usize..200],
        fill in fill_strategy(),
    ) {
        let durable: Vec<(u64, usize)> =
            durable.iter().enumerate().map(|(i, s)| (i as u64 + 1, *s)).collect();
        let mut appended: Vec<(u64, usize)> = appended
            .iter()
            .enumerate()
            .map(|(i, s)| (100 + i as u64, *s))
            .collect();
        if big_part {
            appended[0].1 = MAX_PAYLOAD + 500;
        }
        let (storage, name, segment, start) = log_with(&durable, &appended);
        let mut bytes = storage.contents(&name).unwrap();
        // Where each record of the last append ends.
        let mut ends = Vec::new();
        let mut end = start;
        for &(n, size) in &appended {
            let mut frames = Frames::new(segment, end as u64, 0);
            frames.push_raft(&numbered(n, size));
            end += frames.len();
            ends.push((n, end));
        }
        prop_assert_eq!(end, bytes.len());
        let cut = start + cut_at.index(bytes.len() - start);
        let until = if span == usize::MAX { bytes.len() } else { (cut + span).min(bytes.len()) };
        let fill = if until < bytes.len() && matches!(fill, Fill::Truncated) { Fill::Zeros } else { fill };
        let (older, ..) = log_with(&[(7, 40), (8, 90)], &appended);
        let mut stale = older.contents(&name).unwrap();
        stale.extend_from_slice(&bytes[MAGIC.len()..]);
        let original = bytes.clone();
        tear(&mut bytes, cut, until, fill, &stale);
        storage.set_contents(&name, bytes.clone());
        // A fill may reproduce some of the written bytes: damage starts at the first change.
        let first_change = original
            .iter()
            .zip(&bytes)
            .position(|(a, b)| a != b)
            .unwrap_or(bytes.len());

        let mut expected: Vec<u64> = durable.iter().map(|(n, _)| *n).collect();
        expected.extend(whole_before(&ends, first_change));
        let scanned = scan(&name, segment, &bytes).unwrap();
        let got = numbers(&scanned.entries);
        prop_assert_eq!(&got, &expected);

        let (writer, entries) = LogWriter::open(Box::new(storage.clone())).unwrap();
        prop_assert_eq!(numbers(&entries.unwrap()), expected.clone());
        drop(writer);
        let (_, again) = LogWriter::open(Box::new(storage.clone())).unwrap();
        prop_assert_eq!(numbers(&again.unwrap()), expected);
    }
}
