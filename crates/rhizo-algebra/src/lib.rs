//! Rhizo's merge algebra: which writes may commit without coordination, and how concurrent
//! effects on one cell combine into the same state on every replica.
//!
//! This crate is floor 2 of the workspace. It depends only on `rhizo-clock`, does no I/O, reads
//! no clock and uses no randomness.
//!
//! The unit of classification is the **column**: a [`Schema`] fixes each (table, column)'s
//! [`MergeType`] and [`ValueType`], and an operation is conflict-free only on a column whose merge
//! type accepts its [`OpType`] (ADD commutes with ADD, not with MULTIPLY). Each cell holds a
//! [`CellState`]; validated effects ([`CellOp`]) are applied with the [`Dot`](rhizo_clock::Dot)
//! of the update that carries them, and two states merge by a lattice join.
//!
//! Convergence is exact: replicas that received the same updates, in any order and grouping,
//! hold bit-identical states (floats included) and read the same value — or the same
//! [`AlgebraError::Overflow`]. See `docs/proofs/convergence.md` and `docs/proofs/edge_cases.md`.
//!
//! ```
//! use rhizo_algebra::{AlgebraicValue, CellOp, CellState, MergeType, OpType, Schema, ValueType};
//! use rhizo_clock::{Dot, NodeId};
//!
//! let schema = Schema::builder()
//!     .table("pages")
//!     .column("views", MergeType::Add, ValueType::Integer)
//!     .build()
//!     .unwrap();
//! let spec = schema
//!     .validate("pages", "views", OpType::AbelianAdd, &AlgebraicValue::Integer(3))
//!     .unwrap();
//! let op = CellOp::new(spec, OpType::AbelianAdd, &AlgebraicValue::Integer(3)).unwrap();
//!
//! let (a, b) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
//! let mut on_a = CellState::new(spec);
//! let mut on_b = CellState::new(spec);
//! on_a.apply(&op, Dot::new(a, 1).unwrap()).unwrap();
//! on_b.apply(&op, Dot::new(b, 1).unwrap()).unwrap();
//! on_a.merge(&on_b).unwrap();
//! on_a.merge(&on_b).unwrap(); // merging twice changes nothing
//! assert_eq!(on_a.value().unwrap(), AlgebraicValue::Integer(6));
//! ```

mod decimal;
mod error;
mod merger;
mod op;
mod schema;
// Bounded decoding of inline vectors, for the serde attributes of rhizo-commit's messages; not
// part of the algebra's API.
#[cfg(feature = "serde")]
#[doc(hidden)]
pub mod serde_bounded;
mod state;
#[cfg(test)]
mod testkit;
mod value;

pub use decimal::Decimal;
pub use error::{AlgebraError, Result};
pub use merger::AlgebraicMerger;
pub use op::{MergeType, OpType};
pub use schema::{ColumnSpec, MAX_NAME_LEN, Schema, SchemaBuilder, TableSchema};
pub use state::{
    CellOp, CellState, ElementRef, Elements, ListedState, ObservedTags, Scalar, StateList,
};
pub use value::{AlgebraicValue, SortedSet, TotalF64, ValueType};
