//! The sync handles: what a sync made outside the storage promises, and that it outlives the
//! name it was taken for.

use super::*;

#[test]
fn a_memory_sync_handle_keeps_only_the_bytes_written_before_the_sync() {
    let mut storage = MemStorage::new();
    storage.write_new("seg", b"0123456789").unwrap();
    let handle = storage.sync_handle("seg").unwrap().unwrap();
    handle.sync_data(4).unwrap();
    storage.append("seg", b"abcde").unwrap();
    // A later, shorter sync does not take back what an earlier one made durable.
    handle.sync_data(2).unwrap();
    let lost = storage.deep_clone();
    lost.power_loss(false);
    assert_eq!(lost.contents("seg").unwrap(), b"0123");
    handle.sync_data(15).unwrap();
    storage.power_loss(false);
    assert_eq!(storage.contents("seg").unwrap(), b"0123456789abcde");
    assert!(storage.sync_handle("missing").is_err());
    storage.remove("seg").unwrap();
    handle.sync_data(15).unwrap();
}

#[test]
fn a_file_sync_handle_outlives_a_rename_and_a_removal_of_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = FsStorage::open(dir.path()).unwrap();
    storage.write_new("seg", b"frames").unwrap();
    let handle = storage.sync_handle("seg").unwrap().unwrap();
    storage.append("seg", b" and more").unwrap();
    handle.sync_data(15).unwrap();
    assert_eq!(storage.read("seg").unwrap(), b"frames and more");
    storage.rename("seg", "moved").unwrap();
    handle.sync_data(15).unwrap();
    storage.remove("moved").unwrap();
    handle.sync_data(15).unwrap();
    assert!(storage.sync_handle("gone").is_err());
}
