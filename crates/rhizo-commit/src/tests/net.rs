//! A hand-driven network of replicas with durable logs, for tests that delay, drop, crash and
//! change the membership at chosen moments.

use rhizo_algebra::AlgebraicValue;

use super::{node, schema};
use crate::Operations;
use crate::{AlgebraicTransaction, Message, Record, Replica, ReplicaConfig};

/// Replicas `0..n` (named `node(i)`), each with the log its driver made durable, and the
/// messages in flight as `(from, to, message)`. A crashed replica is `None`.
pub(super) struct Net {
    configs: Vec<ReplicaConfig>,
    replicas: Vec<Option<Replica>>,
    logs: Vec<Vec<Record>>,
    pub(super) wire: Vec<(usize, usize, Message)>,
}

impl Net {
    /// Replica `i` starts with `configs[i]`.
    pub(super) fn new(configs: Vec<ReplicaConfig>) -> Self {
        let replicas = configs
            .iter()
            .enumerate()
            .map(|(i, config)| Some(Replica::new(node(i as u32), schema(), config.clone())))
            .collect();
        Self {
            logs: vec![Vec::new(); configs.len()],
            configs,
            replicas,
            wire: Vec::new(),
        }
    }

    /// `n` replicas, each counting all `n` as members, with `config`'s other settings.
    pub(super) fn uniform(n: u32, config: ReplicaConfig) -> Self {
        let config = ReplicaConfig {
            members: (0..n).map(node).collect(),
            ..config
        };
        Self::new(vec![config; n as usize])
    }

    pub(super) fn replica(&self, i: usize) -> &Replica {
        self.replicas[i].as_ref().expect("replica is running")
    }

    /// Replica `i`, to call it directly; [`Net::drain`] it afterwards.
    pub(super) fn replica_mut(&mut self, i: usize) -> &mut Replica {
        self.replicas[i].as_mut().expect("replica is running")
    }

    /// The driver's duty: records made durable (a snapshot supersedes the records before it),
    /// then messages sent.
    pub(super) fn drain(&mut self, i: usize) {
        let Some(replica) = self.replicas[i].as_mut() else {
            return;
        };
        let ready = replica.take_ready();
        for record in ready.records {
            if matches!(record, Record::Snapshot(_)) {
                self.logs[i].clear();
            }
            self.logs[i].push(record);
        }
        for (to, message) in ready.messages {
            let to = (0..self.replicas.len())
                .find(|&j| node(j as u32) == to)
                .expect("a replica of the net");
            self.wire.push((i, to, message));
        }
    }

    pub(super) fn commit(&mut self, i: usize, tx: AlgebraicTransaction) {
        self.replica_mut(i).commit(tx).unwrap();
        self.drain(i);
    }

    pub(super) fn sync(&mut self, i: usize, peer: usize) {
        self.replica_mut(i).sync_with(node(peer as u32));
        self.drain(i);
    }

    /// A power loss: only the durable log survives, and messages to the replica are lost.
    pub(super) fn crash(&mut self, i: usize) {
        self.replicas[i] = None;
        self.wire.retain(|(_, to, _)| *to != i);
    }

    /// Rebuilds replica `i` from its log; the recovered replica hands back nothing it read.
    pub(super) fn restart(&mut self, i: usize) {
        let mut replica = Replica::recover(
            node(i as u32),
            schema(),
            self.configs[i].clone(),
            self.logs[i].clone(),
        )
        .unwrap();
        assert!(replica.take_ready().is_empty(), "recovery re-emitted");
        self.replicas[i] = Some(replica);
    }

    /// Delivers the messages now in flight from `from` to `to` (one hop, not their answers)
    /// and drops every other message in flight.
    pub(super) fn hop(&mut self, from: usize, to: usize) {
        for (f, t, message) in std::mem::take(&mut self.wire) {
            if (f, t) == (from, to) && self.replicas[t].is_some() {
                self.replica_mut(t).step(node(f as u32), message).unwrap();
                self.drain(t);
            }
        }
    }

    /// Takes the message in flight from `from` to `to` (to deliver later with
    /// [`Net::deliver`]).
    pub(super) fn hold(&mut self, from: usize, to: usize) -> Message {
        let at = self
            .wire
            .iter()
            .position(|(f, t, _)| (*f, *t) == (from, to))
            .expect("a message in flight");
        self.wire.remove(at).2
    }

    pub(super) fn deliver(&mut self, from: usize, to: usize, message: Message) {
        self.replica_mut(to)
            .step(node(from as u32), message)
            .unwrap();
        self.drain(to);
    }

    /// Delivers everything in flight between running replicas, answers included, until
    /// nothing is left.
    pub(super) fn deliver_all(&mut self) {
        while !self.wire.is_empty() {
            for (from, to, message) in std::mem::take(&mut self.wire) {
                if self.replicas[to].is_some() {
                    self.deliver(from, to, message);
                }
            }
        }
    }

    /// One exchange started by `a` with `b`, carried to its end.
    pub(super) fn exchange(&mut self, a: usize, b: usize) {
        self.sync(a, b);
        self.deliver_all();
    }

    /// Every running replica syncs with every other, `rounds` times.
    pub(super) fn settle(&mut self, rounds: usize) {
        for _ in 0..rounds {
            for a in self.running() {
                for b in self.running() {
                    if a != b {
                        self.exchange(a, b);
                    }
                }
            }
        }
    }

    pub(super) fn running(&self) -> Vec<usize> {
        (0..self.replicas.len())
            .filter(|&i| self.replicas[i].is_some())
            .collect()
    }

    pub(super) fn tags(&self, i: usize, row: &str) -> AlgebraicValue {
        self.replica(i).read("t", row, "tags").unwrap()
    }

    /// Whether every running replica holds the same bytes.
    pub(super) fn converged(&self) -> bool {
        let running = self.running();
        let first = self.replica(running[0]).canonical_state();
        running
            .iter()
            .all(|&i| self.replica(i).canonical_state() == first)
    }
}

pub(super) fn add(row: &str, element: &str) -> AlgebraicTransaction {
    let mut tx = AlgebraicTransaction::new();
    tx.add_to_set("t", row, "tags", [element]);
    tx
}

pub(super) fn remove(row: &str, element: &str) -> AlgebraicTransaction {
    let mut tx = AlgebraicTransaction::new();
    tx.remove_from_set("t", row, "tags", [element]);
    tx
}

pub(super) fn none() -> AlgebraicValue {
    AlgebraicValue::string_set(Vec::<String>::new())
}
