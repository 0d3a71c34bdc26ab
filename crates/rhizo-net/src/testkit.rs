//! Helpers the crate's tests share.

/// The seeds a seeded sweep runs: the one seed named by the variable `one` (to replay a
/// failure), else seeds `0..N` with `N` from the variable `count`, else `0..default`.
pub(crate) fn sweep_seeds(one: &str, count: &str, default: u64) -> Vec<u64> {
    if let Some(seed) = std::env::var(one).ok().and_then(|s| s.parse().ok()) {
        return vec![seed];
    }
    let count = std::env::var(count)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    (0..count).collect()
}
