//! The transport's tests: deterministic runs under turmoil, real sockets on 127.0.0.1 with real
//! TLS, and the security properties. Every test talks only to 127.0.0.1 or to turmoil, bounds
//! its loops in count and time, and stops by itself.

mod security;
mod sim;
mod sockets;
mod support;
