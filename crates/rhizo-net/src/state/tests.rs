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

fn shared_of(own: NodeId, members: &[NodeId]) -> Arc<Shared> {
    let members = members
        .iter()
        .map(|&node| (node, format!("{node}:7000")))
        .collect();
    let config = TransportConfig::new(
        own,
        "127.0.0.1:0",
        "test-cluster",
        members,
        crate::Security::Insecure,
    );
    Shared::new(config)
}

/// A dialler is refused as removed only when the listener's log, at an index at or after the
/// one where the dialler last saw itself a member, no longer holds it: a node not known yet, one
/// that never was a member, or a listener behind the dialler gets "not a member".
#[test]
fn a_removed_dialler_is_told_apart_from_an_unknown_one() {
    let [a, b, c, d] = [1, 2, 3, 4].map(NodeId::numbered);
    let listener = shared_of(a, &[a, b, c]);
    listener.publish_membership(10, BTreeSet::from([a, b]));
    assert!(listener.removed_since(c, 9), "removed after index 9");
    assert!(
        listener.removed_since(c, 10),
        "removed by index 10 at the latest"
    );
    assert!(
        !listener.removed_since(c, 11),
        "the listener is behind the dialler"
    );
    assert!(
        !listener.removed_since(d, 0),
        "never a member: not known yet"
    );
    assert!(!listener.removed_since(b, 9), "still a member");
    // An older view published late changes nothing.
    listener.publish_membership(8, BTreeSet::from([a, b, c]));
    assert!(listener.removed_since(c, 9));
}

/// A node learns its removal from its own log once the log has shown it a member and then no
/// longer does — a newcomer not yet added does not — or from a peer's refusal as `Removed`,
/// which only a named peer (a dialler's) can give.
#[test]
fn a_node_learns_its_removal_from_its_log_or_a_peers_refusal() {
    let [a, b, c] = [1, 2, 3].map(NodeId::numbered);
    let newcomer = shared_of(c, &[a, b]);
    newcomer.publish_membership(4, BTreeSet::from([a, b]));
    assert_eq!((newcomer.member_at(), newcomer.removed_by()), (0, None));
    newcomer.publish_membership(6, BTreeSet::from([a, b, c]));
    assert_eq!(newcomer.member_at(), 6);
    newcomer.publish_membership(9, BTreeSet::from([a, b]));
    assert_eq!(newcomer.removed_by(), Some(c), "its own log removed it");
    assert_eq!(
        newcomer.member_at(),
        6,
        "the last index it was a member at stays"
    );

    let member = shared_of(b, &[a, b]);
    member.publish_membership(3, BTreeSet::from([a, b]));
    member.handshake_failed(None, RefusalReason::Removed);
    member.handshake_failed(Some(a), RefusalReason::NotAMember);
    assert_eq!(
        member.removed_by(),
        None,
        "no named peer said it was removed"
    );
    member.handshake_failed(Some(a), RefusalReason::Removed);
    assert_eq!(member.removed_by(), Some(a));
}
