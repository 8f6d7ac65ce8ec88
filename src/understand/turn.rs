//! The words every route of a turn shares: which route decided, what a model proposed, what
//! the dialog remembers, what the turn did, and the stock replies. The fast path, the model
//! routes and the daemon all import these; this file imports none of them.

use crate::act::vehicle::ResolvedAction;
use crate::profile::{Rule, SlotValue};
use serde::Serialize;
use std::collections::BTreeMap;

/// Which part of the hybrid layer produced the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    Fast,
    /// The small intent model (the shortlist's classifier), sure of a command.
    Classifier,
    LocalLlm,
    Cloud,
    Decline,
}

/// An executed action, as reported by `cabin say --json` and `ActionExecuted`.
#[derive(Debug, Clone, Serialize)]
pub struct ActionReport {
    #[serde(flatten)]
    pub action: ResolvedAction,
    pub success: bool,
    pub detail: String,
}

/// Everything Cabin did with one utterance.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub text: String,
    pub route: Route,
    pub intent: Option<String>,
    pub slots: BTreeMap<String, serde_json::Value>,
    pub reply: String,
    pub action: Option<ActionReport>,
    /// What Cabin waits for: `"slot:<name>"` after a question, `"confirmation"` after
    /// "Call Mum?", or null.
    pub awaiting: Option<String>,
    /// Why the safety policy refused the intent, or null.
    pub refused: Option<String>,
    /// The small intent model's likeliest class and its probability, when a model route was
    /// asked.
    pub classifier: Option<Classification>,
    /// The named rules that changed what a model route proposed ([`Rule`]), in the order they
    /// ran.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    pub timings_ms: BTreeMap<&'static str, f64>,
}

/// What the small intent model made of the words.
#[derive(Debug, Clone, Serialize)]
pub struct Classification {
    /// An intent's name, or [`NOT_A_COMMAND`].
    pub class: String,
    pub probability: f32,
    /// For no command: the small talk the answer model found likeliest, and its probability.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<(String, f32)>,
    /// The intent model's probability that the words are no car command.
    pub no_command: f32,
    /// The intent of the profile's sentence closest to the words, and its cosine similarity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closest: Option<(String, f32)>,
}

/// The small intent model's class for words that are no car command.
pub const NOT_A_COMMAND: &str = "not_a_command";

/// What the dialog remembers between turns of one session.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The last intent acted on, for relative follow-ups ("and the passenger side too").
    pub last: Option<Last>,
    /// A question Cabin asked and waits an answer for.
    pub pending: Option<Pending>,
}

#[derive(Debug, Clone)]
pub struct Last {
    pub intent: usize,
    pub slots: BTreeMap<String, SlotValue>,
    /// Whose request it was: context carries over only to the same seat's next request.
    pub zone: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Pending {
    /// "Which window?": the answer fills `missing`.
    Slot {
        intent: usize,
        slots: BTreeMap<String, SlotValue>,
        missing: String,
        tries: u8,
    },
    /// "Call Mum?": yes runs the intent, anything else drops it.
    Confirm {
        intent: usize,
        slots: BTreeMap<String, SlotValue>,
    },
}

/// An intent a model route chose, with its arguments as the model gave them (JSON).
#[derive(Debug, Clone)]
pub struct Proposal {
    pub route: Route,
    pub intent: String,
    pub args: serde_json::Map<String, serde_json::Value>,
}

/// The result of one turn: what to say, what to remember, and whether to keep listening.
#[derive(Debug, Clone)]
pub struct Turn {
    pub outcome: Outcome,
    pub context: Context,
    pub follow_up: bool,
}

/// Whether two slot values are the same value: numbers within rounding (20 and 20.0 are).
pub fn same_value(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() < 1e-9,
        _ => a == b,
    }
}
