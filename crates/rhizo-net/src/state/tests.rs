use super::*;

fn queue(max_messages: usize, max_bytes: usize) -> OutQueue {
    OutQueue::new(QueueLimits {
        max_messages,
        max_bytes,
    })
}

/// Both limits bound the queue, except that an empty queue takes any one message; a message
/// leaves only when popped after being written.
#[test]
fn queue_limits_hold_and_an_oversized_message_travels_alone() {
    let mut q = queue(3, 10);
    assert!(q.admits(100));
    q.push(Bytes::from(vec![0; 100]));
    assert!(!q.admits(1), "a full queue takes nothing more");
    assert_eq!(q.front().map(|m| m.len()), Some(100));
    q.pop_written();
    assert_eq!((q.messages.len(), q.bytes, q.peak_bytes), (0, 0, 100));
    for _ in 0..3 {
        assert!(q.admits(2));
        q.push(Bytes::from_static(b"ab"));
    }
    assert!(!q.admits(1), "the count limit holds");
    q.pop_written();
    assert!(
        q.admits(6) && !q.admits(7),
        "the byte limit holds: 4 + 6 <= 10 < 4 + 7"
    );
}
