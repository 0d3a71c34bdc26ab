//! Python bindings for Rhizo: the `_rhizo` extension module behind the `rhizo` package.
//!
//! This crate's one responsibility is translation. Each function converts its arguments, calls
//! a Rhizo crate, and converts the result or maps the error onto the `RhizoError` hierarchy
//! (module `errors`); no behaviour lives only here. Class names follow the roadmap (`PyNodeId`,
//! `PyVectorClock`, …); the pure-Python package `rhizo` adds friendlier aliases.
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
mod sim;

use pyo3::prelude::*;

/// The native module. Registered classes are listed in `_rhizo.pyi`.
#[pymodule]
fn _rhizo(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    m.add_class::<clock::PyNodeId>()?;
    m.add_class::<clock::PyDot>()?;
    m.add_class::<clock::PyVectorClock>()?;
    m.add_class::<clock::PyCausalOrder>()?;
    m.add_class::<algebra::PyOpType>()?;
    m.add_class::<algebra::PyMergeType>()?;
    m.add_class::<algebra::PyValueType>()?;
    m.add_class::<algebra::PyAlgebraicValue>()?;
    m.add_class::<algebra::PySchema>()?;
    m.add_class::<algebra::PyAlgebraicMerger>()?;
    m.add_class::<commit::PyAlgebraicOperation>()?;
    m.add_class::<commit::PyAlgebraicTransaction>()?;
    m.add_class::<commit::PyVersionedUpdate>()?;
    m.add_class::<commit::PyMergedState>()?;
    m.add_class::<commit::PyLocalCommitProtocol>()?;
    m.add_class::<engine::PyEngine>()?;
    m.add_class::<engine::PyTransaction>()?;
    m.add_class::<engine::PyCommitOutcome>()?;
    m.add_class::<sim::PySimulationBuilder>()?;
    m.add_class::<sim::PySimulatedCluster>()?;
    m.add_class::<cluster::PyEngineCluster>()?;
    m.add_class::<cluster::PyClusterNode>()?;
    Ok(())
}
