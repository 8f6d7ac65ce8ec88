//! The hybrid understanding layer: text in, a decision and a reply out, within a dialog.
//!
//! [`grammar`] is the fast path compiled from the profile; [`brain`] holds the model routes
//! (the local LLM with its [`shortlist`], the cloud); [`dialog`] runs a turn and sends every
//! route's proposal through the same checks before anything acts. [`turn`] holds the words
//! they share.

pub mod brain;
pub mod dialog;
pub mod grammar;
pub mod shortlist;
pub mod turn;

pub use dialog::{Assistant, Hearing};
pub use turn::{Context, Outcome, Proposal, Route, Turn};
