//! Coordinated read-modify-write transfers are serializable and conserve the total.

use std::collections::{BTreeMap, BTreeSet};

use super::Told;

/// An account as its ledger row holds it: two registers, the balance and the id of the
/// transfer that wrote it last (0: none since the initial balance).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Balance {
    /// The balance.
    pub amount: i64,
    /// The transfer that wrote it (0: the initial balance).
    pub version: u64,
}

/// A transfer between two accounts: a coordinated transaction that read both rows and wrote
/// both (the new balances, and its own id as their version).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// The transfer's id: at least 1, and no other transfer has it.
    pub id: u64,
    /// The two accounts, by index.
    pub accounts: [usize; 2],
    /// The rows it read, as its read set recorded them.
    pub read: [Balance; 2],
    /// The balances it wrote.
    pub wrote: [i64; 2],
    /// What its client was told.
    pub told: Told,
}

/// Checks transfers against the accounts' rows `last` once every member applied the whole log
/// (`initial`: each account's balance before them, at version 0).
///
/// Each account's history is the chain from its last version back through the transfers that
/// wrote each version, to its initial balance. The transfers on those chains are those that
/// took effect: each must be on both its accounts' chains (all of it took effect, and no
/// other transfer wrote over what it read — a lost update leaves it on one chain only), no
/// refused one may be there, every acknowledged one must. The chains together must order the
/// transfers serially, consistently with their log indices; replaying that order from the
/// initial balances must show every transfer the rows it read and end at `last`, with the
/// total conserved.
pub fn check_transfers(
    initial: &[i64],
    transfers: &[Transfer],
    last: &[Balance],
) -> Result<(), String> {
    let by_id = index_transfers(initial.len(), transfers)?;
    if initial.len() != last.len() {
        return Err("initial and final balances name different accounts".to_owned());
    }
    let mut chains = Vec::with_capacity(initial.len());
    for (account, (&start, &end)) in initial.iter().zip(last).enumerate() {
        chains.push(account_chain(account, start, end, &by_id)?);
    }
    let took_effect = took_effect(&chains, &by_id)?;
    if let Some(t) = transfers
        .iter()
        .find(|t| matches!(t.told, Told::Committed { .. }) && !took_effect.contains(&t.id))
    {
        return Err(format!(
            "acknowledged transfer {} ({:?}) took no effect",
            t.id, t.told
        ));
    }
    let order = serial_order(&chains, &took_effect, &by_id)?;
    replay(initial, &order, &by_id, last)
}

/// The transfers by id, once each is checked to be a well-formed transfer.
fn index_transfers(
    accounts: usize,
    transfers: &[Transfer],
) -> Result<BTreeMap<u64, &Transfer>, String> {
    let mut by_id = BTreeMap::new();
    for t in transfers {
        let [a, b] = t.accounts;
        if t.id == 0 || a == b || a >= accounts || b >= accounts {
            return Err(format!("transfer {} is malformed: {t:?}", t.id));
        }
        if t.wrote[0] + t.wrote[1] != t.read[0].amount + t.read[1].amount {
            return Err(format!(
                "transfer {} does not conserve its total: {t:?}",
                t.id
            ));
        }
        if by_id.insert(t.id, t).is_some() {
            return Err(format!("two transfers have id {}", t.id));
        }
    }
    Ok(by_id)
}

/// The transfers that wrote `account`, oldest first, from its final row back to `initial`.
fn account_chain(
    account: usize,
    initial: i64,
    last: Balance,
    by_id: &BTreeMap<u64, &Transfer>,
) -> Result<Vec<u64>, String> {
    let mut chain = Vec::new();
    let mut row = last;
    while row.version != 0 {
        let Some(t) = by_id.get(&row.version) else {
            return Err(format!(
                "account {account} holds version {}, which no transfer wrote",
                row.version
            ));
        };
        let Some(slot) = t.accounts.iter().position(|a| *a == account) else {
            return Err(format!(
                "account {account} holds version {} of a transfer between other accounts",
                t.id
            ));
        };
        if t.wrote[slot] != row.amount {
            return Err(format!(
                "account {account} holds {} at version {}, which wrote {}",
                row.amount, t.id, t.wrote[slot]
            ));
        }
        if t.told == Told::Refused {
            return Err(format!(
                "refused transfer {} took effect on account {account}",
                t.id
            ));
        }
        if chain.len() == by_id.len() {
            return Err(format!("account {account}'s versions go round in a circle"));
        }
        chain.push(t.id);
        row = t.read[slot];
    }
    if row.amount != initial {
        return Err(format!(
            "account {account}'s history starts at {}, not at its initial balance {initial}",
            row.amount
        ));
    }
    chain.reverse();
    Ok(chain)
}

/// The transfers on the chains; each must be on both its accounts' chains, once.
fn took_effect(
    chains: &[Vec<u64>],
    by_id: &BTreeMap<u64, &Transfer>,
) -> Result<BTreeSet<u64>, String> {
    let mut seen: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (account, chain) in chains.iter().enumerate() {
        for id in chain {
            seen.entry(*id).or_default().push(account);
        }
    }
    for (id, accounts) in &seen {
        let mut expected = by_id[id].accounts;
        expected.sort_unstable();
        if accounts.as_slice() != expected {
            return Err(format!(
                "transfer {id} took effect on accounts {accounts:?} of {expected:?}: half a \
                 transfer, or another transfer wrote over what it read (a lost update)"
            ));
        }
    }
    Ok(seen.into_keys().collect())
}

/// An order of the transfers that took effect in which each account's chain is in its order
/// (a topological order of the chains' union), consistent with acknowledged log indices.
fn serial_order(
    chains: &[Vec<u64>],
    took_effect: &BTreeSet<u64>,
    by_id: &BTreeMap<u64, &Transfer>,
) -> Result<Vec<u64>, String> {
    let mut after: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    let mut waiting: BTreeMap<u64, usize> = took_effect.iter().map(|id| (*id, 0)).collect();
    for chain in chains {
        for pair in chain.windows(2) {
            let (first, then) = (pair[0], pair[1]);
            if let (Some(a), Some(b)) = (by_id[&first].told.index(), by_id[&then].told.index())
                && a >= b
            {
                return Err(format!(
                    "transfer {then} (index {b}) read what transfer {first} (index {a}) wrote"
                ));
            }
            if after.entry(first).or_default().insert(then) {
                *waiting.get_mut(&then).expect("on a chain") += 1;
            }
        }
    }
    let mut ready: BTreeSet<u64> = waiting
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(id, _)| *id)
        .collect();
    let mut order = Vec::with_capacity(took_effect.len());
    while let Some(id) = ready.pop_first() {
        order.push(id);
        for next in after.get(&id).into_iter().flatten() {
            let n = waiting.get_mut(next).expect("on a chain");
            *n -= 1;
            if *n == 0 {
                ready.insert(*next);
            }
        }
    }
    if order.len() != took_effect.len() {
        return Err("the transfers that took effect have no serial order (a cycle)".to_owned());
    }
    Ok(order)
}

/// Replays `order` from the initial balances: each transfer must read the rows the order gives
/// it, the end must be `last`, and the total must not change.
fn replay(
    initial: &[i64],
    order: &[u64],
    by_id: &BTreeMap<u64, &Transfer>,
    last: &[Balance],
) -> Result<(), String> {
    let mut rows: Vec<Balance> = initial
        .iter()
        .map(|&amount| Balance { amount, version: 0 })
        .collect();
    for id in order {
        let t = by_id[id];
        for slot in 0..2 {
            let account = t.accounts[slot];
            if rows[account] != t.read[slot] {
                return Err(format!(
                    "in serial order, transfer {id} reads {:?} from account {account}, which \
                     holds {:?} there",
                    t.read[slot], rows[account]
                ));
            }
        }
        for slot in 0..2 {
            rows[t.accounts[slot]] = Balance {
                amount: t.wrote[slot],
                version: t.id,
            };
        }
    }
    if rows != last {
        return Err(format!(
            "the serial order ends at {rows:?}, not at {last:?}"
        ));
    }
    let (before, after): (i64, i64) = (initial.iter().sum(), last.iter().map(|b| b.amount).sum());
    if before != after {
        return Err(format!("the total went from {before} to {after}"));
    }
    Ok(())
}
