//! Python bindings for Rhizo: the `_rhizo` extension module behind the `rhizo` package.
//!
//! This crate's one responsibility is translation. Each function converts its arguments, calls
//! a Rhizo crate, and converts the result or maps the error onto the `RhizoError` hierarchy
//! (module `errors`); no behaviour lives only here.
//!
//! The roadmap's classes keep the roadmap's names and calls (`PyNodeId`, `PyVectorClock`,
//! `PyAlgebraicTransaction`, `PySimulatedCluster`, …; `docs/python-compat.md` lists where they
//! differ from the original and why). Where Rhizo's own class of the same role takes other
//! arguments (cells rather than flat keys, virtual time rather than rounds), it is a separate
//! class under the name the `rhizo` package gives it (`AlgebraicTransaction`,
//! `SimulatedCluster`, …).
//!
//! **Architecture invariant:** no Rust panic reaches Python as a panic — every fallible core
//! call returns a typed error that becomes a Python exception.

mod algebra;
mod clock;
mod cluster;
mod commit;
mod convert;
mod engine;
mod errors;
mod keyed;
mod net;
mod rounds;
mod sim;

use pyo3::prelude::*;

/// The native module. Registered classes are listed in `_rhizo.pyi`.
#[pymodule]
fn _rhizo(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    // The roadmap's classes, under the roadmap's names.
    m.add_class::<clock::PyNodeId>()?;
    m.add_class::<clock::PyVectorClock>()?;
    m.add_class::<clock::PyCausalOrder>()?;
    m.add_class::<algebra::PyOpType>()?;
    m.add_class::<algebra::PyAlgebraicValue>()?;
    m.add_function(wrap_pyfunction!(algebra::algebraic_merge, m)?)?;
    m.add_class::<keyed::PyKeyedOperation>()?;
    m.add_class::<keyed::PyKeyedTransaction>()?;
    m.add_class::<keyed::PyKeyedUpdate>()?;
    m.add_class::<keyed::PyKeyedCommitProtocol>()?;
    m.add_class::<rounds::PyNetworkCondition>()?;
    m.add_class::<rounds::PySimulationConfig>()?;
    m.add_class::<rounds::PySimulationStats>()?;
    m.add_class::<rounds::PySimulatedNode>()?;
    m.add_class::<rounds::PyRoundCluster>()?;
    m.add_class::<rounds::PyRoundScenario>()?;
    // Rhizo's own classes.
    m.add_class::<clock::PyDot>()?;
    m.add_class::<algebra::PyMergeType>()?;
    m.add_class::<algebra::PyValueType>()?;
    m.add_class::<algebra::PySchema>()?;
    m.add_class::<algebra::PyAlgebraicMerger>()?;
    m.add_class::<commit::PyCellOperation>()?;
    m.add_class::<commit::PyCellTransaction>()?;
    m.add_class::<commit::PyCellUpdate>()?;
    m.add_class::<commit::PyMergedState>()?;
    m.add_class::<commit::PyCellCommitProtocol>()?;
    m.add_class::<engine::PyEngine>()?;
    m.add_class::<engine::PyTransaction>()?;
    m.add_class::<engine::PyCommitOutcome>()?;
    m.add_class::<sim::PyReplicaSimulationBuilder>()?;
    m.add_class::<sim::PyReplicaCluster>()?;
    m.add_class::<cluster::PyEngineCluster>()?;
    m.add_class::<cluster::PyClusterNode>()?;
    m.add_class::<net::PyNode>()?;
    m.add_class::<net::PyClient>()?;
    m.add_function(wrap_pyfunction!(net::tls_ca, m)?)?;
    m.add_function(wrap_pyfunction!(net::tls_node, m)?)?;
    m.add_function(wrap_pyfunction!(net::tls_client, m)?)?;
    Ok(())
}
