//! What a replica cluster records for the checkers: commits attempted and acknowledged, and
//! reads of whole replicas, each stamped with a sequence number that orders them.

use std::collections::BTreeMap;

use rhizo_algebra::AlgebraicValue;
use rhizo_clock::{NodeId, VectorClock};
use rhizo_commit::{AlgebraicTransaction, CellKey, LocalCommitError, VersionedUpdate};

use crate::SimTime;

/// A read's outcome for one cell.
pub type CellRead = std::result::Result<AlgebraicValue, LocalCommitError>;

/// A commit a client asked for, acknowledged or refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// Position in the history.
    pub seq: u64,
    /// When.
    pub at: SimTime,
    /// Where.
    pub node: NodeId,
    /// What was asked.
    pub tx: AlgebraicTransaction,
    /// Whether it was acknowledged.
    pub acknowledged: bool,
}

/// A commit acknowledged to its client, as the replica made it durable.
#[derive(Debug, Clone, PartialEq)]
pub struct Acknowledged {
    /// Position in the history (after its attempt).
    pub seq: u64,
    /// When.
    pub at: SimTime,
    /// Where.
    pub node: NodeId,
    /// The update, with its dot and causal past.
    pub update: VersionedUpdate,
}

/// A read of a whole replica at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Position in the history.
    pub seq: u64,
    /// When.
    pub at: SimTime,
    /// Which replica.
    pub node: NodeId,
    /// Everything it had delivered.
    pub clock: VectorClock,
    /// Every cell it held, in key order.
    pub values: BTreeMap<CellKey, CellRead>,
}

/// The recorded history of a replica cluster (kept by the cluster, so it outlives crashes).
#[derive(Debug, Clone)]
pub struct History {
    recording: bool,
    next_seq: u64,
    attempts: Vec<Attempt>,
    acknowledged: Vec<Acknowledged>,
    observations: Vec<Observation>,
}

impl Default for History {
    fn default() -> Self {
        Self {
            recording: true,
            next_seq: 0,
            attempts: Vec::new(),
            acknowledged: Vec::new(),
            observations: Vec::new(),
        }
    }
}

impl History {
    /// An empty history that records.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether events are recorded (on by default; benchmarks turn it off).
    pub(crate) fn is_recording(&self) -> bool {
        self.recording
    }

    /// Turns recording on or off.
    pub fn set_recording(&mut self, recording: bool) {
        self.recording = recording;
    }

    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Records a commit attempt.
    pub(crate) fn record_attempt(
        &mut self,
        at: SimTime,
        node: NodeId,
        tx: AlgebraicTransaction,
        acknowledged: bool,
    ) {
        let seq = self.seq();
        self.attempts.push(Attempt {
            seq,
            at,
            node,
            tx,
            acknowledged,
        });
    }

    /// Records an acknowledged commit.
    pub(crate) fn record_acknowledged(
        &mut self,
        at: SimTime,
        node: NodeId,
        update: VersionedUpdate,
    ) {
        let seq = self.seq();
        self.acknowledged.push(Acknowledged {
            seq,
            at,
            node,
            update,
        });
    }

    /// Records a read of a whole replica.
    pub(crate) fn record_observation(
        &mut self,
        at: SimTime,
        node: NodeId,
        clock: VectorClock,
        values: BTreeMap<CellKey, CellRead>,
    ) {
        let seq = self.seq();
        self.observations.push(Observation {
            seq,
            at,
            node,
            clock,
            values,
        });
    }

    /// Every commit attempted, in order.
    pub fn attempts(&self) -> &[Attempt] {
        &self.attempts
    }

    /// Every commit acknowledged, in order.
    pub fn acknowledged(&self) -> &[Acknowledged] {
        &self.acknowledged
    }

    /// Every read, in order.
    pub fn observations(&self) -> &[Observation] {
        &self.observations
    }

    /// The acknowledged updates alone, in order.
    pub fn acknowledged_updates(&self) -> impl Iterator<Item = &VersionedUpdate> {
        self.acknowledged.iter().map(|a| &a.update)
    }
}
