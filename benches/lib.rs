//! Rhizo's benchmark suite lives in `benches/`: one criterion target per crate, each with the
//! peer implementation it is compared against (the `crdts` crate) measured in the same run.
//! This library is empty on purpose: the package exists to hold the `[[bench]]` targets and
//! their peer dev-dependencies, so that no Rhizo crate depends on a peer.
