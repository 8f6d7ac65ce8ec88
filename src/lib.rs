//! Cabin: an offline-first conversational assistant for car head units.
//!
//! The folders follow an utterance: [`hear`] (audio, wake word, end of speech) → [`asr`]
//! (speech recognition) → [`understand`] (grammar fast path, model routes, dialog) → [`act`]
//! (vehicle calls behind the safety policy) → [`speak`] (the voice). [`listening`] joins the
//! first two into one pipeline; [`daemon`] wires every stage into the service on D-Bus.
//! Underneath: [`profile`] (the validated vehicle profile), [`runtime`] (buses, workers,
//! models) and [`text`] (words and sentences). Imports only run down this list's layers:
//! `tests/it/layers.rs` checks it.

pub mod act;
pub mod asr;
pub mod daemon;
pub mod hear;
pub mod listening;
pub mod profile;
pub mod runtime;
pub mod speak;
pub mod text;
pub mod understand;

pub use daemon::{run, DaemonConfig, DaemonError};
pub use profile::Profile;
pub use runtime::bus::BusAddress;
pub use understand::{Assistant, Outcome, Route};
