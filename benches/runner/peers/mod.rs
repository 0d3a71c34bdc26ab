//! Production systems measured beside Rhizo in the same run, each in a module of its own that
//! finds (or installs) the system, starts it on 127.0.0.1, stops it by process id, and speaks
//! its client protocol.

pub(crate) mod etcd;
