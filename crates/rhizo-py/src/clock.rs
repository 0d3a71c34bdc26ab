//! `rhizo-clock`: node ids, dots, vector clocks and causal order.

use std::collections::BTreeMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use pyo3::basic::CompareOp;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rhizo_clock::{CausalOrder, Dot, NodeId, VectorClock};

use serde::{Deserialize, Serialize};

use crate::convert::NodeArg;
use crate::errors::{Exc, PyResultExt, Raise};

pub(crate) fn hash_of(value: &impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// The identity of one replica: a name of 1 to 16 bytes.
#[pyclass(module = "_rhizo", name = "PyNodeId", frozen)]
#[derive(Clone, Copy)]
pub(crate) struct PyNodeId(pub(crate) NodeId);

#[pymethods]
impl PyNodeId {
    #[new]
    fn new(id: &str) -> PyResult<Self> {
        NodeId::new(id).py().map(Self)
    }

    /// The node called `n{index}`, as the simulator names its nodes.
    #[staticmethod]
    fn numbered(index: u32) -> Self {
        Self(NodeId::numbered(index))
    }

    /// The node's name.
    #[getter]
    fn name(&self) -> String {
        self.0.to_string()
    }

    fn __str__(&self) -> String {
        self.0.to_string()
    }

    fn __repr__(&self) -> String {
        format!("NodeId('{}')", self.0)
    }

    fn __richcmp__(&self, other: &Self, op: CompareOp) -> bool {
        op.matches(self.0.cmp(&other.0))
    }

    fn __hash__(&self) -> u64 {
        hash_of(&self.0)
    }
}

/// One event: the node that did it and its sequence number there (from 1).
#[pyclass(module = "_rhizo", name = "PyDot", frozen)]
#[derive(Clone, Copy)]
pub(crate) struct PyDot(pub(crate) Dot);

#[pymethods]
impl PyDot {
    #[new]
    fn new(node: NodeArg, counter: u64) -> PyResult<Self> {
        Dot::new(node.0, counter).py().map(Self)
    }

    /// The node that did the event.
    #[getter]
    fn node(&self) -> PyNodeId {
        PyNodeId(self.0.node())
    }

    /// The event's sequence number at its node.
    #[getter]
    fn counter(&self) -> u64 {
        self.0.counter()
    }

    fn __repr__(&self) -> String {
        format!(
            "PyDot({:?}, {})",
            self.0.node().name().as_str(),
            self.0.counter()
        )
    }

    fn __richcmp__(&self, other: &Self, op: CompareOp) -> bool {
        op.matches(self.0.cmp(&other.0))
    }

    fn __hash__(&self) -> u64 {
        hash_of(&self.0)
    }
}

/// How two vector clocks relate causally.
#[pyclass(module = "_rhizo", name = "PyCausalOrder", eq, hash, frozen)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum PyCausalOrder {
    Before,
    After,
    Equal,
    Concurrent,
}

#[pymethods]
impl PyCausalOrder {
    /// The relation read from the receiver's side: `"before"`, `"after"`, `"equal"` or
    /// `"concurrent"` (`a.compare(b).order` is `"before"` when `a` happened before `b`).
    #[getter]
    fn order(&self) -> &'static str {
        match self {
            Self::Before => "before",
            Self::After => "after",
            Self::Equal => "equal",
            Self::Concurrent => "concurrent",
        }
    }

    /// Whether the two sides must be merged: they are concurrent.
    fn needs_merge(&self) -> bool {
        *self == Self::Concurrent
    }

    /// Whether the other side holds something the receiver lacks: it is newer or concurrent.
    fn should_apply(&self) -> bool {
        matches!(self, Self::Before | Self::Concurrent)
    }

    fn __str__(&self) -> &'static str {
        self.order()
    }

    fn __repr__(&self) -> String {
        format!("CausalOrder('{}')", self.order())
    }
}

impl From<CausalOrder> for PyCausalOrder {
    fn from(order: CausalOrder) -> Self {
        match order {
            CausalOrder::Before => Self::Before,
            CausalOrder::After => Self::After,
            CausalOrder::Equal => Self::Equal,
            CausalOrder::Concurrent => Self::Concurrent,
        }
    }
}

/// A vector clock: for each node, how many of its events are known.
///
/// Mutable like the Rust value (`tick`, `set`, `merge` change it in place), so unhashable; `==`
/// follows its causal meaning (canonical form: an entry set to 0 is no entry). `<=` is
/// `dominated_by`, `<` is `happened_before`.
#[pyclass(module = "_rhizo", name = "PyVectorClock")]
#[derive(Clone, Default)]
pub(crate) struct PyVectorClock(pub(crate) VectorClock);

/// The JSON form of a clock: `{"clocks": {node: counter}}`.
#[derive(Serialize, Deserialize)]
struct ClockJson {
    clocks: BTreeMap<String, u64>,
}

#[pymethods]
impl PyVectorClock {
    /// A clock from `{node: counter}` (names or `PyNodeId`s), or the empty clock.
    #[new]
    #[pyo3(signature = (entries = None))]
    fn new(entries: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let mut clock = VectorClock::new();
        if let Some(entries) = entries {
            for (node, counter) in entries.iter() {
                clock.set(node.extract::<NodeArg>()?.0, counter.extract()?);
            }
        }
        Ok(Self(clock))
    }

    /// The clock with the one entry `node_id: time` (empty if `time` is 0).
    #[staticmethod]
    fn with_node(node_id: NodeArg, time: u64) -> Self {
        Self(VectorClock::new().with_node(node_id.0, time))
    }

    /// A new clock holding the entry-wise maximum of `a` and `b`.
    #[staticmethod]
    fn max(a: &PyVectorClock, b: &PyVectorClock) -> Self {
        let mut clock = a.0.clone();
        clock.merge(&b.0);
        Self(clock)
    }

    /// The clock from `to_json`'s output. Other members are ignored.
    #[staticmethod]
    fn from_json(json: &str) -> PyResult<Self> {
        let parsed: ClockJson = serde_json::from_str(json).map_err(|err| {
            Raise::new(
                Exc::Decode,
                "Deserialization",
                format!("Deserialization error: {err}"),
            )
            .into_pyerr()
        })?;
        let mut clock = VectorClock::new();
        for (node, counter) in parsed.clocks {
            clock.set(NodeId::new(&node).py()?, counter);
        }
        Ok(Self(clock))
    }

    /// The clock as JSON: `{"clocks": {node: counter}}`, nodes in order.
    fn to_json(&self) -> String {
        let clocks = self.0.iter().map(|(n, c)| (n.to_string(), c)).collect();
        // A map of strings to integers always serializes.
        serde_json::to_string(&ClockJson { clocks }).unwrap_or_default()
    }

    /// How many events of `node_id` this clock knows (0 if none).
    fn get(&self, node_id: NodeArg) -> u64 {
        self.0.get(node_id.0)
    }

    /// Sets `node_id`'s entry (0 removes it).
    fn set(&mut self, node_id: NodeArg, time: u64) {
        self.0.set(node_id.0, time);
    }

    /// Records a new event of `node_id`.
    fn tick(&mut self, node_id: NodeArg) -> PyResult<()> {
        self.0.tick(node_id.0).py().map(drop)
    }

    /// A copy of this clock with a new event of `node_id`; this clock does not change.
    fn ticked(&self, node_id: NodeArg) -> PyResult<Self> {
        let mut clock = self.0.clone();
        clock.tick(node_id.0).py()?;
        Ok(Self(clock))
    }

    /// Whether the clock knows the event `dot`.
    fn contains(&self, dot: &PyDot) -> bool {
        self.0.contains(dot.0)
    }

    /// Absorbs `other` in place (entry-wise maximum).
    fn merge(&mut self, other: &PyVectorClock) {
        self.0.merge(&other.0);
    }

    /// The entry-wise minimum of the two clocks (a new clock).
    fn meet(&self, other: &PyVectorClock) -> Self {
        Self(self.0.meet(&other.0))
    }

    /// How this clock relates to `other`.
    fn compare(&self, other: &PyVectorClock) -> PyCausalOrder {
        self.0.compare(&other.0).into()
    }

    /// Whether every entry is at most `other`'s.
    fn dominated_by(&self, other: &PyVectorClock) -> bool {
        self.0.dominated_by(&other.0)
    }

    /// Whether this clock is strictly before `other`.
    fn happened_before(&self, other: &PyVectorClock) -> bool {
        self.0.happened_before(&other.0)
    }

    /// Whether `other` is strictly before this clock.
    fn happened_after(&self, other: &PyVectorClock) -> bool {
        other.0.happened_before(&self.0)
    }

    /// Whether neither clock is before or equal to the other.
    fn concurrent_with(&self, other: &PyVectorClock) -> bool {
        self.0.concurrent(&other.0)
    }

    /// The same as `concurrent_with`.
    fn concurrent(&self, other: &PyVectorClock) -> bool {
        self.0.concurrent(&other.0)
    }

    /// Whether the update named `dot` with clock `update_clock` can be delivered next here.
    fn causally_ready(&self, dot: &PyDot, update_clock: &PyVectorClock) -> bool {
        self.0.causally_ready(dot.0, &update_clock.0)
    }

    /// Whether the clock knows no event.
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many nodes have an entry.
    fn node_count(&self) -> usize {
        self.0.node_count()
    }

    /// The total number of events known.
    fn sum(&self) -> u128 {
        self.0.sum()
    }

    /// The entries as `{name: counter}`, in node order.
    fn to_dict(&self) -> BTreeMap<String, u64> {
        // Node order is the byte order of names, which is `String`'s order: the dict is sorted.
        self.0.iter().map(|(n, c)| (n.to_string(), c)).collect()
    }

    /// A copy of this clock.
    fn copy(&self) -> Self {
        self.clone()
    }

    fn __copy__(&self) -> Self {
        self.clone()
    }

    fn __len__(&self) -> usize {
        self.0.node_count()
    }

    fn __contains__(&self, dot: &PyDot) -> bool {
        self.0.contains(dot.0)
    }

    fn __str__(&self) -> String {
        clock_text(&self.0)
    }

    fn __repr__(&self) -> String {
        format!("VectorClock({})", clock_text(&self.0))
    }

    fn __richcmp__(&self, other: PyRef<'_, Self>, op: CompareOp) -> bool {
        let other = &other.0;
        match op {
            CompareOp::Eq => self.0 == *other,
            CompareOp::Ne => self.0 != *other,
            CompareOp::Le => self.0.dominated_by(other),
            CompareOp::Lt => self.0.happened_before(other),
            CompareOp::Ge => other.dominated_by(&self.0),
            CompareOp::Gt => other.happened_before(&self.0),
        }
    }
}

/// A clock as the roadmap prints it: `[node:counter, …]`, nodes in order.
pub(crate) fn clock_text(clock: &VectorClock) -> String {
    let entries: Vec<String> = clock.iter().map(|(n, c)| format!("{n}:{c}")).collect();
    format!("[{}]", entries.join(", "))
}
