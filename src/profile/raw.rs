//! The profile file as written: syntax and simple types only. `super::validate` turns this
//! into a `Profile` once all cross-references are checked.

use crate::profile::intents::Gear;
use crate::profile::sections::{CloudPolicy, Ducking, StateSource};
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    pub profile: RawMeta,
    pub assistant: RawAssistant,
    #[serde(default)]
    pub models: RawModels,
    #[serde(default)]
    pub audio: RawAudio,
    #[serde(default)]
    pub llm: RawLlm,
    #[serde(default)]
    pub cloud: RawCloud,
    #[serde(default)]
    pub vehicle: RawVehicle,
    #[serde(default)]
    pub dialog: RawDialog,
    #[serde(default)]
    pub listen: RawListen,
    #[serde(default)]
    pub speech: RawSpeech,
    #[serde(default)]
    pub inputs: Vec<Spanned<RawInput>>,
    #[serde(default)]
    pub slot_types: BTreeMap<String, Spanned<RawSlotType>>,
    #[serde(default)]
    pub intents: Vec<Spanned<RawIntent>>,
    #[serde(default)]
    pub small_talk: Vec<Spanned<RawSmallTalk>>,
    #[serde(default)]
    pub classifier: RawClassifier,
    #[serde(default)]
    pub lacks: Vec<Spanned<RawLack>>,
    #[serde(default)]
    pub rules: RawRules,
}

/// The rules over the model routes' proposals that this profile leaves out.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRules {
    #[serde(default)]
    pub off: Vec<crate::profile::sections::Rule>,
}

/// Something people ask a car for that this one can't do, the words that name it, and how
/// Cabin says so.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLack {
    pub name: String,
    pub words: Vec<String>,
    pub reply: String,
}

/// Greetings, thanks and the like: sentences and a short reply in the persona's voice.
/// The small intent model: what it learns is not a command, and how sure it must be.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClassifier {
    pub negatives: Option<Spanned<Vec<String>>>,
    pub confident: Option<Spanned<f32>>,
    pub agreed: Option<Spanned<f32>>,
    pub answers: Option<Spanned<f32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSmallTalk {
    pub name: String,
    #[serde(default)]
    pub sentences: Vec<String>,
    /// Plain phrasings of the same request, for the answer model to learn from.
    #[serde(default)]
    pub examples: Vec<String>,
    /// Empty only with `silent`.
    #[serde(default)]
    pub reply: String,
    /// Cabin stops talking and says nothing ("be quiet").
    #[serde(default)]
    pub silent: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMeta {
    pub name: String,
    pub language: Spanned<String>,
    /// A lexicon file of the OEM's own, in place of the one shipped for `language`.
    pub lexicon: Option<Spanned<String>>,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAssistant {
    pub name: String,
    #[serde(default)]
    pub persona: String,
    #[serde(default)]
    pub wake_words: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModels {
    pub asr: Option<Spanned<String>>,
    pub llm: Option<Spanned<String>>,
    pub tts: Option<Spanned<String>>,
    pub wake: Option<Spanned<String>>,
    pub vad: Option<Spanned<String>>,
    pub shortlist: Option<Spanned<String>>,
    #[serde(default)]
    pub wake_targets: RawWakeTargets,
}

/// What `cabin wake train` holds a wake word to before accepting it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWakeTargets {
    pub max_false_reject: Option<Spanned<f64>>,
    pub max_false_accepts_per_hour: Option<Spanned<f64>>,
}

/// The always-on front end: wake word and end-pointing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListen {
    pub wake_threshold: Option<Spanned<f32>>,
    pub refractory_ms: Option<Spanned<u64>>,
    pub vad_threshold: Option<Spanned<f32>>,
    pub trailing_silence_ms: Option<Spanned<u64>>,
    pub complete_silence_ms: Option<Spanned<u64>>,
    pub no_speech_timeout_ms: Option<Spanned<u64>>,
    pub max_utterance_ms: Option<Spanned<u64>>,
    pub asr_timeout_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub vocabulary: Vec<String>,
    pub noise_suppression: Option<Spanned<String>>,
    pub echo_cancellation: Option<bool>,
    pub echo_tail_ms: Option<Spanned<u64>>,
    pub confirm_below: Option<Spanned<f32>>,
}

/// How Cabin speaks.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpeech {
    pub rate: Option<Spanned<f32>>,
    pub volume: Option<Spanned<f32>>,
    pub threads: Option<Spanned<u32>>,
    pub ducking: Option<Spanned<Ducking>>,
    pub style: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudio {
    pub input: Option<String>,
    pub output: Option<String>,
    pub reference: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCloud {
    #[serde(default)]
    pub policy: CloudPolicy,
    pub base_url: Option<Spanned<String>>,
    pub model: Option<String>,
    pub api_key_env: Option<String>,
    pub api_key_file: Option<String>,
    /// Present only to give a clear error: keys never go in a profile.
    pub api_key: Option<Spanned<toml::Value>>,
    pub budget_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub redact_names: bool,
}

/// The local LLM worker's settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLlm {
    pub context: Option<Spanned<u32>>,
    pub threads: Option<Spanned<u32>>,
    pub batch: Option<Spanned<u32>>,
    pub max_tokens: Option<Spanned<u32>>,
    pub budget_ms: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVehicle {
    pub bus: Option<Spanned<String>>,
    pub timeout_ms: Option<Spanned<u64>>,
    pub state: Option<Spanned<StateSource>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDialog {
    pub follow_up_seconds: Option<Spanned<f64>>,
    pub max_clarifications: Option<Spanned<u8>>,
}

/// A microphone or push-to-talk source and the seat zone it serves.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInput {
    pub name: String,
    pub zone: String,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RawSlotType {
    /// Canonical value → spoken synonyms (the first synonym is how replies say it).
    Enum {
        values: BTreeMap<String, Vec<String>>,
        /// The values are seat zones: "my" means the speaker's zone, and a missing value is
        /// taken from the speaker's zone.
        #[serde(default)]
        zones: bool,
    },
    Integer {
        min: i64,
        max: i64,
        #[serde(default)]
        unit: String,
        /// Words that say a value ("halfway" for 50 percent), by the value.
        #[serde(default)]
        words: BTreeMap<String, Vec<String>>,
    },
    Decimal {
        min: f64,
        max: f64,
        #[serde(default)]
        unit: String,
        /// The value may be said digit by digit or without its decimal point.
        #[serde(default)]
        digits: bool,
    },
    Text {
        #[serde(default = "default_max_words")]
        max_words: usize,
        /// The most characters a value may have; default 12 a word.
        max_chars: Option<usize>,
    },
}

fn default_max_words() -> usize {
    6
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIntent {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub sentences: Vec<String>,
    /// Plain sentences the small intent model learns from, beside the templates' own: the
    /// indirect ways people ask ("it's freezing in here"). The grammar does not match them.
    #[serde(default)]
    pub examples: Vec<String>,
    #[serde(default)]
    pub defaults: BTreeMap<String, toml::Value>,
    pub reply: String,
    /// Enum slot → value → the reply when the slot holds that value, where `reply` would not
    /// read ("Opening all the windows.", not "Opening the all window.").
    #[serde(default)]
    pub replies: BTreeMap<String, BTreeMap<String, String>>,
    /// D-Bus error name → reply, for failures worth explaining ("I couldn't find {contact}").
    #[serde(default)]
    pub errors: BTreeMap<String, String>,
    /// Slot → question asked when the slot is missing ("Which window?").
    #[serde(default)]
    pub ask: BTreeMap<String, String>,
    #[serde(default)]
    pub confirm: bool,
    pub confirm_prompt: Option<String>,
    /// Whether Cabin keeps listening for a follow-up after this intent (default true).
    pub follow_up: Option<bool>,
    /// The intent that does the reverse ("climate.cooler" for "climate.warmer").
    pub opposite: Option<String>,
    pub action: RawAction,
    pub when: Option<RawWhen>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RawAction {
    Call {
        service: String,
        path: String,
        interface: String,
        method: String,
        #[serde(default)]
        signature: String,
        #[serde(default)]
        args: Vec<String>,
        target: String,
    },
    SetProperty {
        service: String,
        path: String,
        interface: String,
        property: String,
        signature: String,
        value: String,
        target: String,
    },
    GetProperty {
        service: String,
        path: String,
        interface: String,
        property: String,
        target: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWhen {
    pub gear: Option<Vec<Gear>>,
    pub max_speed_kmh: Option<f64>,
    pub parking_brake: Option<bool>,
    /// The conditions hold only for calls whose argument is beyond a bound.
    pub argument: Option<RawArgumentBound>,
    pub refusal: String,
}

/// `argument = { index = 2, above = 30 }`: the call's second argument above 30.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawArgumentBound {
    /// From 1, in the order of the action's `args` (a property's value is 1).
    pub index: usize,
    pub above: Option<f64>,
    pub below: Option<f64>,
}
