//! Three nodes in this process over real TLS on 127.0.0.1.

use super::*;

/// Listeners on free ports of 127.0.0.1 and the membership they make.
fn listeners(count: u32) -> (Vec<std::net::TcpListener>, BTreeMap<NodeId, String>) {
    let listeners: Vec<std::net::TcpListener> = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let members = listeners
        .iter()
        .enumerate()
        .map(|(i, l)| (node(i as u32), l.local_addr().unwrap().to_string()))
        .collect();
    (listeners, members)
}

fn start_tls_cluster(count: u32, certificates: &Certificates) -> Cluster {
    let (listeners, members) = listeners(count);
    let handles = listeners
        .into_iter()
        .enumerate()
        .map(|(i, listener)| {
            let id = node(i as u32);
            let config = test_config(id, &members, certificates.security(id));
            Node::start_listening(config, listener).unwrap()
        })
        .collect();
    Cluster(handles)
}

#[test]
fn three_nodes_over_tls_replicate_both_paths() {
    let certificates = Certificates::new(3);
    let cluster = start_tls_cluster(3, &certificates);
    let [a, b, c] = [&cluster.0[0], &cluster.0[1], &cluster.0[2]];

    // Coordination-free: committed on one node at once, visible on the others by anti-entropy.
    let mut tx = a.transaction(TransactionMode::CoordinationFree);
    tx.increment("counters", "page_views", "value", 5)
        .add_to_set("users", "u1", "tags", "premium");
    let outcome = tx.commit().unwrap();
    assert!(outcome.durable);
    eventually("the increment reaches every node", || {
        counter(b, "page_views") == 5 && counter(c, "page_views") == 5
    });

    // Coordinated: waits for a leader, then for the log.
    let mut tx = b.transaction(TransactionMode::Coordinated);
    tx.put("kv", "r", "reg", 7);
    let put = tx.commit().unwrap();
    assert!(put.sequence.is_some());
    // Acknowledged on `b`: a linearizable read on any node sees it at once, with no waiting
    // for the node to catch up by itself.
    let register = [rhizo_commit::CellKey::new("kv", "r", "reg")];
    for handle in [a, c] {
        assert_eq!(
            handle
                .read_cells(ReadConsistency::Linearizable, &register)
                .unwrap(),
            [AlgebraicValue::Integer(7)]
        );
    }
    let mut tx = c.transaction(TransactionMode::Coordinated);
    tx.compare_and_set("kv", "r", "reg", 1, 2);
    let refused = tx.commit().unwrap_err();
    assert!(
        matches!(
            refused,
            NetError::Engine(rhizo_txn::TxnError::ConditionFailed { .. })
        ),
        "{refused}"
    );
    eventually("every node reads the register and the same state", || {
        cluster
            .0
            .iter()
            .all(|h| h.read("kv", "r", "reg").unwrap() == AlgebraicValue::Integer(7))
            && cluster
                .0
                .iter()
                .all(|h| h.status().fingerprint == a.status().fingerprint)
    });
    let status = a.status();
    assert_eq!(status.members.len(), 3);
    assert!(status.raft.is_some_and(|raft| raft.leader.is_some()));
}

#[test]
fn a_read_after_a_commit_made_on_another_node_sees_it() {
    let certificates = Certificates::new(3);
    let cluster = start_tls_cluster(3, &certificates);
    let [a, b, c] = [&cluster.0[0], &cluster.0[1], &cluster.0[2]];
    let hits = [rhizo_commit::CellKey::new("counters", "hits", "value")];
    let mut after = ReadAfter::new();
    for round in 1..=20 {
        let mut tx = a.transaction(TransactionMode::CoordinationFree);
        tx.increment("counters", "hits", "value", 1);
        after.include(&tx.commit().unwrap());
        // Acknowledged on `a` only: the other nodes serve the read once they hold it, and
        // nothing else writes the counter, so each reads exactly the rounds committed.
        for reader in [b, c] {
            assert_eq!(
                reader
                    .read_cells_after(ReadConsistency::Local, &hits, &after)
                    .unwrap(),
                [AlgebraicValue::Integer(round)]
            );
        }
    }
    // A coordinated write is named by its log index: a read after it waits for the log.
    let mut tx = b.transaction(TransactionMode::Coordinated);
    tx.put("kv", "r", "reg", 9);
    let put = ReadAfter::new().with(&tx.commit().unwrap());
    let register = [rhizo_commit::CellKey::new("kv", "r", "reg")];
    for reader in [a, c] {
        let read = reader.read_cells_after(ReadConsistency::Local, &register, &put);
        assert_eq!(read.unwrap(), [AlgebraicValue::Integer(9)]);
    }
}

#[test]
fn concurrent_read_modify_write_through_one_node_is_serializable() {
    let certificates = Certificates::new(3);
    let cluster = start_tls_cluster(3, &certificates);
    let threads = 4;
    let rounds = 25;
    std::thread::scope(|scope| {
        for t in 0..threads {
            let handle = cluster.0[t % 3].clone();
            scope.spawn(move || {
                let mut done = 0;
                while done < rounds {
                    let mut tx = handle.transaction(TransactionMode::Coordinated);
                    let current = match tx.read("kv", "total", "reg").unwrap() {
                        AlgebraicValue::Integer(v) => v,
                        _ => 0,
                    };
                    tx.put("kv", "total", "reg", current + 1);
                    match tx.commit() {
                        Ok(_) => done += 1,
                        // Another writer got there first: read again and retry.
                        Err(NetError::Engine(rhizo_txn::TxnError::ReadConflict { .. })) => {}
                        Err(other) => panic!("unexpected {other}"),
                    }
                }
            });
        }
    });
    let expected = AlgebraicValue::Integer((threads * rounds) as i64);
    eventually("every increment of the register counted once", || {
        cluster
            .0
            .iter()
            .all(|h| h.read("kv", "total", "reg").unwrap() == expected)
    });
}

#[test]
fn a_member_removed_while_it_commits_leaves_every_acknowledged_commit_with_the_others() {
    let certificates = Certificates::new(3);
    let cluster = start_tls_cluster(3, &certificates);
    let (gone, survivors) = (&cluster.0[2], [&cluster.0[0], &cluster.0[1]]);
    eventually("a leader is elected", || {
        survivors[0]
            .status()
            .raft
            .is_some_and(|raft| raft.leader.is_some())
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (acked, refusal, removed) = std::thread::scope(|scope| {
        // The member commits coordination-free increments right up to its removal; each
        // acknowledged one is counted.
        let writer = scope.spawn(|| {
            let deadline = Instant::now() + PATIENCE * 2;
            let mut acked = 0i64;
            while !stop.load(std::sync::atomic::Ordering::Acquire) && Instant::now() < deadline {
                let mut tx = gone.transaction(TransactionMode::CoordinationFree);
                tx.increment("counters", "drained", "value", 1);
                match tx.commit() {
                    Ok(_) => acked += 1,
                    Err(err) => return (acked, Some(err)),
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            (acked, None)
        });
        let started = Instant::now();
        while counter(gone, "drained") < 50 && started.elapsed() < PATIENCE {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Retrying a removal that has not drained yet is safe; bounded by `PATIENCE`.
        let removed = loop {
            let change = MembershipChange::Remove { node: node(2) };
            match runtime.block_on(survivors[0].change_members_async(change)) {
                Err(err) if is_retryable(&err) && started.elapsed() < PATIENCE => {}
                other => break other,
            }
        };
        stop.store(true, std::sync::atomic::Ordering::Release);
        let (acked, refusal) = writer.join().expect("the writer does not panic");
        (acked, refusal, removed)
    });
    removed.expect("the member is removed");
    assert!(acked >= 50, "the member acknowledged only {acked} commits");
    // As soon as the removal returned, the survivors hold every commit it acknowledged.
    for survivor in survivors {
        assert_eq!(
            counter(survivor, "drained"),
            acked,
            "on {}",
            survivor.status().node
        );
        assert!(!survivor.status().members.contains(&node(2)));
    }
    // Retired, then removed: its writes stop with a typed refusal, never a silent loss.
    match &refusal {
        Some(NetError::Removed { .. }) => {}
        Some(NetError::Engine(rhizo_txn::TxnError::Raft(err)))
            if matches!(**err, RaftError::Retired { .. }) => {}
        other => panic!("the writer was not refused as retired or removed: {other:?}"),
    }
}

#[test]
fn a_member_asked_to_remove_itself_answers_once_it_is_removed() {
    let certificates = Certificates::new(3);
    let cluster = start_tls_cluster(3, &certificates);
    let (gone, survivors) = (&cluster.0[2], [&cluster.0[0], &cluster.0[1]]);
    eventually("a leader is elected", || {
        gone.status().raft.is_some_and(|raft| raft.leader.is_some())
    });
    for _ in 0..20 {
        let mut tx = gone.transaction(TransactionMode::CoordinationFree);
        tx.increment("counters", "own", "value", 1);
        tx.commit().expect("the member commits");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let removed = loop {
        let change = MembershipChange::Remove { node: node(2) };
        match runtime.block_on(gone.change_members_async(change)) {
            Err(err) if is_retryable(&err) && started.elapsed() < PATIENCE => {}
            other => break other,
        }
    };
    removed.expect("the member removes itself");
    // It drained before it proposed its removal: the survivors hold its commits already.
    for survivor in survivors {
        assert_eq!(
            counter(survivor, "own"),
            20,
            "on {}",
            survivor.status().node
        );
    }
    // A follower learns that the removal committed with the leader's next message.
    eventually("every survivor applies the removal", || {
        survivors
            .iter()
            .all(|s| !s.status().members.contains(&node(2)))
    });
}
