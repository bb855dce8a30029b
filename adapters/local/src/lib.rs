//! The reference local queue: queue server, local and remote agents, durable state, and its adapter.
//!
//! Not implemented yet.
