//! Causality for Rhizo: who did something ([`NodeId`]), which event it was ([`Dot`]) and what
//! each node had seen when it did it ([`VectorClock`]).
//!
//! This crate is floor 1 of the workspace. It depends on no other Rhizo crate, does no I/O,
//! reads no clock and uses no randomness: every function is a pure function of its arguments.
//!
//! A vector clock is kept in canonical form — entries sorted by node, no zero entries — so that
//! two clocks that mean the same thing are equal, hash equally and encode to the same bytes.
//!
//! ```
//! use rhizo_clock::{CausalOrder, NodeId, VectorClock};
//!
//! let (a, b) = (NodeId::new("a").unwrap(), NodeId::new("b").unwrap());
//! let mut on_a = VectorClock::new();
//! on_a.tick(a).unwrap();
//! let mut on_b = on_a.clone(); // b received a's event ...
//! on_b.tick(b).unwrap(); // ... and then acted
//! assert_eq!(on_a.compare(&on_b), CausalOrder::Before);
//! on_a.tick(a).unwrap(); // a acts again without hearing from b
//! assert!(on_a.concurrent(&on_b));
//! on_a.merge(&on_b);
//! assert_eq!((on_a.get(a), on_a.get(b)), (2, 1));
//! ```

mod clock;
mod dot;
mod error;
mod lookup;
mod node;
mod quote;

pub use clock::{CausalOrder, VectorClock};
pub use dot::Dot;
pub use error::{ClockError, Result};
pub use lookup::{ClockLookup, LookupSlots};
pub use node::NodeId;
// Every crate of the workspace quotes user input in its error messages through these; they are
// not part of the causality API, so they stay out of its documentation.
#[doc(hidden)]
pub use quote::{Bounded, QUOTE_LIMIT, Quoted};
