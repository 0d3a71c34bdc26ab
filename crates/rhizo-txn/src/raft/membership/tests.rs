use proptest::prelude::*;

use super::*;

fn change(kind: ChangeKind, node: u32) -> MemberChange {
    MemberChange {
        id: ProposalId {
            node: NodeId::numbered(0),
            incarnation: 1,
            seq: u64::from(node),
        },
        kind,
        node: NodeId::numbered(node),
        address: format!("10.0.0.{node}:7000"),
    }
}

fn kind() -> impl Strategy<Value = ChangeKind> {
    prop_oneof![
        Just(ChangeKind::AddLearner),
        Just(ChangeKind::Promote),
        Just(ChangeKind::Remove),
    ]
}

#[test]
fn a_table_written_before_retirement_existed_decodes_with_nobody_retired() {
    // The encoding of a table before draining removals: each member's id, address and vote,
    // and nothing after the members.
    #[derive(serde::Serialize)]
    struct EarlierMember {
        raft_id: u64,
        address: String,
        voter: bool,
    }
    #[derive(serde::Serialize)]
    struct EarlierTable {
        members: BTreeMap<NodeId, EarlierMember>,
    }
    let mut table = Membership::voters(&[NodeId::numbered(0), NodeId::numbered(1)]).unwrap();
    let earlier = EarlierTable {
        members: table
            .iter()
            .map(|(node, m)| {
                let member = EarlierMember {
                    raft_id: m.raft_id,
                    address: m.address.clone(),
                    voter: m.voter,
                };
                (node, member)
            })
            .collect(),
    };
    let old_bytes = postcard::to_allocvec(&earlier).unwrap();
    let decoded: Membership = postcard::from_bytes(&old_bytes).unwrap();
    assert_eq!(decoded, table);
    // Today's bytes are the earlier ones followed by the retired nodes.
    assert!(table.retire(NodeId::numbered(1)));
    let bytes = postcard::to_allocvec(&table).unwrap();
    assert!(bytes.starts_with(&old_bytes));
    let decoded: Membership = postcard::from_bytes(&bytes).unwrap();
    assert!(decoded.is_retired(NodeId::numbered(1)) && !decoded.is_retired(NodeId::numbered(0)));
    // A retired node that is no member is refused, not dropped.
    let mut forged = old_bytes.clone();
    forged.extend(postcard::to_allocvec(&vec![NodeId::numbered(7)]).unwrap());
    assert!(postcard::from_bytes::<Membership>(&forged).is_err());
}

#[test]
fn raft_ids_are_a_function_of_the_name_and_never_zero() {
    let a = NodeId::new("frankfurt-2").unwrap();
    assert_eq!(
        raft_id_of(a),
        raft_id_of(NodeId::new("frankfurt-2").unwrap())
    );
    assert_ne!(
        raft_id_of(a),
        raft_id_of(NodeId::new("frankfurt-3").unwrap())
    );
    for n in 0..10_000 {
        assert_ne!(raft_id_of(NodeId::numbered(n)), 0);
    }
}

#[test]
fn each_refusal_names_its_reason() {
    let table = Membership::voters(&[NodeId::numbered(0)]).unwrap();
    assert!(matches!(
        table.check(&change(ChangeKind::AddLearner, 0)),
        Err(RaftError::AlreadyMember { .. })
    ));
    assert!(matches!(
        table.check(&change(ChangeKind::Promote, 0)),
        Err(RaftError::AlreadyMember { .. })
    ));
    assert!(matches!(
        table.check(&change(ChangeKind::Remove, 1)),
        Err(RaftError::UnknownMember { .. })
    ));
    assert!(matches!(
        table.check(&change(ChangeKind::Promote, 1)),
        Err(RaftError::UnknownMember { .. })
    ));
    assert!(matches!(
        table.check(&change(ChangeKind::Remove, 0)),
        Err(RaftError::LastVoter { .. })
    ));
    assert!(table.check(&change(ChangeKind::AddLearner, 1)).is_ok());
    // A draining removal that could never finish is refused before anything is proposed.
    assert!(matches!(
        table.check_retire(NodeId::numbered(1)),
        Err(RaftError::UnknownMember { .. })
    ));
    assert!(matches!(
        table.check_retire(NodeId::numbered(0)),
        Err(RaftError::LastVoter { .. })
    ));
}

#[test]
fn a_change_round_trips_through_its_entry_and_a_mismatched_one_is_corrupt() {
    let add = change(ChangeKind::AddLearner, 3);
    let (raft_change, context) = add.to_raft();
    let data = protobuf::Message::write_to_bytes(&raft_change).unwrap();
    let (decoded_change, decoded) = MemberChange::decode(7, &data, &context).unwrap();
    assert_eq!(decoded, add);
    assert_eq!(decoded_change, raft_change);
    let (other, _) = change(ChangeKind::Remove, 3).to_raft();
    let other = protobuf::Message::write_to_bytes(&other).unwrap();
    assert!(matches!(
        MemberChange::decode(7, &other, &context),
        Err(RaftError::Corrupt { index: 7, .. })
    ));
}

proptest! {
    /// Whatever changes are attempted, a refused one leaves the table as it was, an accepted
    /// one keeps at least one voter, and Raft's configuration names exactly the table's
    /// members under their ids (learners apart from voters).
    #[test]
    fn the_table_stays_a_valid_group_and_refusals_change_nothing(
        changes in prop::collection::vec((kind(), 0u32..5), 0..60),
    ) {
        let mut table = Membership::voters(&[NodeId::numbered(0), NodeId::numbered(1)]).unwrap();
        for (kind, node) in changes {
            let before = table.clone();
            let change = change(kind, node);
            match table.check(&change) {
                Ok(()) => table.apply(&change),
                Err(_) => prop_assert_eq!(&table, &before),
            }
            prop_assert!(table.voter_count() >= 1);
            let conf = table.conf_state();
            let mut ids: Vec<u64> = conf.voters.iter().chain(&conf.learners).copied().collect();
            ids.sort_unstable();
            let mut expected: Vec<u64> = table.nodes().into_iter().map(raft_id_of).collect();
            expected.sort_unstable();
            prop_assert_eq!(ids, expected);
            prop_assert_eq!(conf.voters.len(), table.voter_count());
        }
    }

    /// Retiring marks a member and nothing else: Raft's configuration and the members stay
    /// as they were, a second retirement (or one of a non-member) changes nothing, and the
    /// mark travels with the table's encoding (as records and snapshots carry it).
    #[test]
    fn retiring_marks_only_the_member_and_is_idempotent(
        changes in prop::collection::vec((kind(), 0u32..5), 0..30),
        retired in prop::collection::vec(0u32..6, 0..8),
    ) {
        let mut table = Membership::voters(&[NodeId::numbered(0), NodeId::numbered(1)]).unwrap();
        for (kind, node) in changes {
            let change = change(kind, node);
            if table.check(&change).is_ok() {
                table.apply(&change);
            }
        }
        for node in retired.into_iter().map(NodeId::numbered) {
            let before = table.clone();
            let changed = table.retire(node);
            prop_assert_eq!(changed, before.get(node).is_some_and(|m| !m.retired));
            prop_assert_eq!(table.is_retired(node), before.get(node).is_some());
            prop_assert_eq!(table.conf_state(), before.conf_state());
            prop_assert_eq!(table.nodes(), before.nodes());
            prop_assert!(!table.retire(node));
            let decoded: Membership =
                postcard::from_bytes(&postcard::to_allocvec(&table).unwrap()).unwrap();
            prop_assert_eq!(&decoded, &table);
        }
    }

    /// Malformed entry bytes are an error, never a panic.
    #[test]
    fn malformed_change_entries_are_refused(
        data in prop::collection::vec(any::<u8>(), 0..64),
        context in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let _ = MemberChange::decode(1, &data, &context);
    }
}
