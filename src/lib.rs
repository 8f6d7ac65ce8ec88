//! Cabin: an offline-first conversational assistant for car head units.
//!
//! Text (typed, or later transcribed) goes through the understanding layer
//! ([`understand::Assistant`]): the grammar fast path ([`grammar`]) matches it against the
//! profile's intents ([`profile`]), and a match becomes a typed D-Bus call on a vehicle service
//! ([`action`]). The daemon ([`daemon`]) owns the conversation state in one event loop and
//! serves `org.cabin.Assistant1`.

pub mod action;
pub mod asr;
pub mod audio;
pub mod brain;
pub mod bus;
pub mod ct2;
pub mod daemon;
pub mod dbus_value;
pub mod doctor;
pub mod grammar;
pub mod listen;
pub mod llm;
pub mod logging;
pub mod mic;
pub mod models;
pub mod onnx;
pub mod playback;
pub mod policy;
pub mod profile;
pub mod safety;
pub mod semantic;
pub mod speakable;
pub mod speaker;
pub mod systemd;
pub mod tts;
pub mod understand;
pub mod vad;
pub mod wake;
pub mod worker;
