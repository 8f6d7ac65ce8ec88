//! Cabin's integration tests, one binary: each module was once a test binary of its own, and
//! each linked the whole release library (zbus, ort, reqwest, cpal, rodio) again. Run one
//! module with `cargo test --release --test it -- daemon::`.
//!
//! The harness (`common`) starts a private `dbus-daemon`, the simulator and the daemon as real
//! processes; tests that need a model or the recordings fail under CI when they are missing.

mod common;

mod asr;
mod brain;
mod conversation;
mod daemon;
mod demo;
mod fastpath;
mod fuzz;
mod hybrid;
mod integrator;
mod languages;
mod layers;
mod listen;
mod llm;
mod policy;
mod shortlist;
mod speech;
mod tools;
mod wake;
mod wyoming;
