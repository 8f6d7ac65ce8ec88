//! The profile's settings sections, validated: persona, models, listening, speech, the model
//! routes, the vehicle bus and its driving-state source, dialog and inputs.

use crate::profile::template::Template;
use crate::runtime::bus::BusAddress;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// A small-talk exchange, an entry of the answer bank: no action, a short reply in the
/// persona's voice, and silence while the driver is manoeuvring. The grammar matches its
/// sentences; the answer model learns its examples (and sentences) to pick it for words the
/// sentences do not match, so the local model never has to make up the weather.
#[derive(Debug, Clone)]
pub struct SmallTalk {
    pub name: String,
    pub sentences: Vec<Template>,
    pub examples: Vec<String>,
    pub reply: String,
}

/// Something people ask a car for that this one can't do ("unlock the doors"): a request that
/// names it, and nothing an intent acts on, is answered with `reply`, never acted on with the
/// nearest intent.
#[derive(Debug, Clone)]
pub struct Lack {
    pub name: String,
    /// The words that name it, each tokenized ("door", "central locking").
    pub words: Vec<Vec<String>>,
    pub reply: String,
}

/// A named step over what a model route proposes (the classifier's intent, the local model's
/// call), run in [`Rule::ALL`]'s order; each reads the driver's words against the profile's
/// own sentences, values and lexicon, never a sentence of its own. `[rules] off` in a profile,
/// or `cabin eval --without`, leaves one out, which is how docs/brain.md measures each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// The local model's call whose text slot holds no word of the driver's, or whose value
    /// slot the words never say (with neither a default nor a question): its guess, so the
    /// model is asked for an answer instead.
    Invented,
    /// The classifier's side of a pair of opposites, where the local model picked the other
    /// and the words say neither the pick's own words nor any direction.
    ClassifierSide,
    /// "no more …": the opposite that switches off.
    NoMore,
    /// "too" before a word whose comparative is the pick's own ("too loud" is quieter).
    Too,
    /// The opposite's direction words said, and none of the pick's own.
    OppositeWords,
    /// The refinement whose own values the words say ("seat heating on low" sets the level).
    Refined,
    /// A refinement whose own values the words do not say is the intent it refines.
    Plain,
    /// An enum or number slot holds the value the words say, whatever the model wrote.
    SaidValues,
    /// A value nobody said is left to the slot's default or question.
    UnsaidValues,
}

impl Rule {
    /// Every rule, in the order they run.
    pub const ALL: [Rule; 9] = [
        Rule::Invented,
        Rule::ClassifierSide,
        Rule::NoMore,
        Rule::Too,
        Rule::OppositeWords,
        Rule::Refined,
        Rule::Plain,
        Rule::SaidValues,
        Rule::UnsaidValues,
    ];

    /// The rule's name, as profiles and `cabin eval --without` write it.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Invented => "invented",
            Rule::ClassifierSide => "classifier_side",
            Rule::NoMore => "no_more",
            Rule::Too => "too",
            Rule::OppositeWords => "opposite_words",
            Rule::Refined => "refined",
            Rule::Plain => "plain",
            Rule::SaidValues => "said_values",
            Rule::UnsaidValues => "unsaid_values",
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Written and read by [`Rule::name`], the one table of rule names.
impl serde::Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Rule, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for Rule {
    type Err = String;

    fn from_str(s: &str) -> Result<Rule, String> {
        Rule::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Rule::ALL.iter().map(|r| r.name()).collect();
                format!(
                    "no rule is called '{s}'; the rules are {}",
                    names.join(", ")
                )
            })
    }
}

/// The small intent model ([`crate::understand::shortlist`]): trained on the intents'
/// sentences and examples against these negatives, it decides an intent without the local
/// model when its probability is at least `confident`.
#[derive(Debug, Clone)]
pub struct ClassifierSettings {
    /// Sentences that are not car commands: chat, questions, requests the car can't do.
    pub negatives: Vec<String>,
    pub confident: f32,
    /// The probability from which it decides where the profile's sentence closest to the
    /// words is of the same intent; `confident` unless the profile says otherwise.
    pub agreed: f32,
    /// The answer model's probability at which a small-talk answer is spoken for words the
    /// intent model is sure are no command (`confident`); below it, the local model answers.
    pub answers: f32,
}

/// The probability at which the small intent model decides, unless the profile says otherwise:
/// chosen with the default 0.5B local model, which the classifier beats from 0.4 up (with the
/// 1.5B, 0.5 did better; docs/log/2026-12-03-small-models-default.md).
pub const DEFAULT_CLASSIFIER_CONFIDENT: f32 = 0.4;

/// The answer model's probability at which the answer bank answers, unless the profile says
/// otherwise.
pub const DEFAULT_ANSWER_CONFIDENT: f32 = 0.5;

/// Spoken replies longer than this are refused at load time: the driver is driving.
pub const MAX_SPOKEN_WORDS: usize = 25;

#[derive(Debug, Clone)]
pub struct Persona {
    pub name: String,
    /// How the assistant presents itself (the local model's system prompt opens with it).
    pub description: String,
    pub wake_words: Vec<String>,
}

/// Model names as the profile gives them; the model catalogue (speech/LLM issues) resolves them.
#[derive(Debug, Clone, Default)]
pub struct Models {
    pub asr: Option<String>,
    pub llm: Option<String>,
    pub tts: Option<String>,
    /// An openWakeWord keyword model: a catalogue name, or the path of an `.onnx` file.
    pub wake: Option<String>,
    /// The voice activity model that ends an utterance.
    pub vad: Option<String>,
    /// The sentence-embedding model that shortlists the intents the local model may call.
    pub shortlist: Option<String>,
    /// What `cabin wake train` holds the wake word to on held-apart audio.
    pub wake_targets: WakeTargets,
}

/// A wake word's targets: at most this share of the phrase missed, and at most this many
/// false wakes an hour, at the threshold the model ships with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WakeTargets {
    pub max_false_reject: f64,
    pub max_false_accepts_per_hour: f64,
}

impl Default for WakeTargets {
    /// What the best wake word engines publish: about 5 % misses at under one false wake in
    /// ten hours.
    fn default() -> Self {
        WakeTargets {
            max_false_reject: 0.05,
            max_false_accepts_per_hour: 0.1,
        }
    }
}

/// The voice names `tts = "espeak"` takes; anything else is a Piper voice or Kokoro.
pub const ESPEAK: &str = "espeak";

/// The Kokoro voice's catalogue name (its styles and vocabulary are `-styles` and `-vocab`).
pub const KOKORO: &str = "kokoro-v1.0";

/// Whether the profile's `tts` names a Piper voice (by catalogue name or path).
pub fn is_piper(tts: &str) -> bool {
    tts != ESPEAK && tts != KOKORO
}

impl Models {
    /// The catalogue models a profile needs, each with what it is for: speech and language
    /// models, and for the front end ONNX Runtime, the voice activity model and the wake word's
    /// (a wake word given as a path is the OEM's own file, not the catalogue's).
    pub fn needed(&self) -> Vec<(&'static str, String)> {
        let m = self;
        let mut out = Vec::new();
        let mut add = |what, name: &str| out.push((what, name.to_string()));
        if let Some(asr) = &m.asr {
            add("speech", asr);
        }
        if let Some(llm) = &m.llm {
            add("language", llm);
        }
        let piper = m.tts.as_deref().filter(|t| is_piper(t));
        let kokoro = m.tts.as_deref() == Some(KOKORO);
        let shortlist = m.shortlist.as_ref().filter(|_| m.llm.is_some());
        // A GGUF embedding model runs in `cabin-llm`; the others on ONNX Runtime, with a tokenizer.
        let onnx_shortlist = shortlist
            .filter(|s| crate::runtime::models::find(s).is_ok_and(|m| m.kind == "embedding"));
        if m.vad.is_some()
            || m.wake.is_some()
            || piper.is_some()
            || kokoro
            || onnx_shortlist.is_some()
        {
            add("ONNX Runtime", "onnxruntime");
        }
        if let Some(voice) = piper.filter(|v| !crate::runtime::models::is_path(v)) {
            add("voice", voice);
            add("voice config", &format!("{voice}-config"));
        }
        if kokoro {
            add("voice", KOKORO);
            add("voice styles", &format!("{KOKORO}-styles"));
            add("voice vocabulary", &format!("{KOKORO}-vocab"));
        }
        if let Some(vad) = &m.vad {
            add("voice activity", vad);
        }
        if let Some(shortlist) = shortlist {
            add("intent shortlist", shortlist);
        }
        if let Some(shortlist) = onnx_shortlist {
            add(
                "intent shortlist tokenizer",
                &format!("{shortlist}-tokenizer"),
            );
        }
        if let Some(wake) = &m.wake {
            add("wake word feature", "openwakeword-melspectrogram");
            add("wake word feature", "openwakeword-embedding");
            if !crate::runtime::models::is_path(wake) {
                add("wake word", wake);
            }
        }
        out
    }
}

/// How the always-on front end decides that the driver spoke to Cabin, and when they stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenSettings {
    /// Wake word score (0..1) that counts as a detection; higher: fewer false wakes. None:
    /// the threshold `cabin wake train` calibrated for the model (written beside it).
    pub wake_threshold: Option<f32>,
    /// No second detection this soon after one.
    pub refractory: Duration,
    /// Speech probability (0..1) that counts as speech.
    pub vad_threshold: f32,
    /// This much silence after speech ends the command.
    pub trailing_silence: Duration,
    /// This much silence ends it when what was said so far is a whole command of the grammar
    /// (at most `trailing_silence`).
    pub complete_silence: Duration,
    /// Give up if no speech starts this soon after the wake word.
    pub no_speech_timeout: Duration,
    /// Cut a command off at this length.
    pub max_utterance: Duration,
    /// Give up on a transcript after this long (a slow head unit, or one under emulation,
    /// with a big model needs more).
    pub asr_timeout: Duration,
    /// Names speech recognition should expect (contacts, favourite places, brand words).
    pub vocabulary: Vec<String>,
    /// What is taken out of the microphone's signal before it is end-pointed and recognised.
    pub clean: CleanSettings,
    /// Heard words whose mean token probability is below this are said back before they act;
    /// None: heard words always act.
    pub confirm_below: Option<f32>,
}

/// The microphone's cleaning ([`crate::hear::clean`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanSettings {
    /// How hard steady noise is suppressed; `None`: not at all.
    pub noise: Option<NoiseLevel>,
    /// Cancel the echo of what the car plays: Cabin's own voice, and the media where
    /// `[audio] reference` names a capture of it. None: not at all.
    pub echo: Option<EchoSettings>,
}

/// The echo canceller's tuning for a vehicle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EchoSettings {
    /// How long an echo it models: the delay from the reference to the microphone (output
    /// and capture buffers, the air) plus the cabin's reverberation.
    pub tail: Duration,
}

impl Default for EchoSettings {
    fn default() -> Self {
        EchoSettings {
            tail: Duration::from_millis(200),
        }
    }
}

/// WebRTC's noise suppression levels: higher takes out more noise and more of the voice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseLevel {
    Low,
    Moderate,
    High,
    VeryHigh,
}

impl std::str::FromStr for NoiseLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<NoiseLevel, String> {
        Ok(match s {
            "low" => NoiseLevel::Low,
            "moderate" => NoiseLevel::Moderate,
            "high" => NoiseLevel::High,
            "very_high" => NoiseLevel::VeryHigh,
            _ => return Err(format!("'{s}' is not a noise suppression level")),
        })
    }
}

impl Default for ListenSettings {
    fn default() -> Self {
        ListenSettings {
            wake_threshold: None,
            refractory: Duration::from_secs(2),
            vad_threshold: 0.5,
            trailing_silence: Duration::from_millis(600),
            complete_silence: Duration::from_millis(200),
            no_speech_timeout: Duration::from_secs(4),
            max_utterance: Duration::from_secs(10),
            asr_timeout: Duration::from_secs(30),
            vocabulary: Vec::new(),
            clean: CleanSettings::default(),
            confirm_below: None,
        }
    }
}

/// How Cabin speaks ([models] tts names the voice).
#[derive(Debug, Clone, PartialEq)]
pub struct SpeechSettings {
    /// Speaking rate: 1.0 is the voice's own, 1.2 a fifth faster.
    pub rate: f32,
    /// Loudness, 0..1 of full scale.
    pub volume: f32,
    /// Threads synthesis may use (it runs between the driver's turns, not while listening).
    pub threads: usize,
    /// Turns the media down while Cabin speaks.
    pub ducking: Option<Ducking>,
    /// The Kokoro voice's style (one of its file's); None: [`DEFAULT_STYLE`].
    pub style: Option<String>,
}

/// Kokoro's style where the profile names none: of the five on the registries (all
/// Japanese), the one whisper base understood best reading Mandarin (docs/speech.md).
pub const DEFAULT_STYLE: &str = "jf_nezumi";

impl Default for SpeechSettings {
    fn default() -> Self {
        SpeechSettings {
            rate: 1.0,
            volume: 0.9,
            threads: 1,
            ducking: None,
            style: None,
        }
    }
}

/// The media service's calls that turn the media down while Cabin speaks and back up after:
/// `duck(level: u32)`, a percentage of the media's own volume, and `restore()`. Both must be
/// idempotent: Cabin restores after every reply however it ended, and once at start-up (after
/// a crash).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ducking {
    pub service: String,
    pub path: String,
    pub interface: String,
    pub duck: String,
    pub restore: String,
    #[serde(default = "default_duck_level")]
    pub level: u32,
}

fn default_duck_level() -> u32 {
    30
}

/// How the local LLM worker runs, and how long the router waits for it.
#[derive(Debug, Clone)]
pub struct LlmSettings {
    pub context: u32,
    /// None: one per core.
    pub threads: Option<u32>,
    pub batch: u32,
    pub max_tokens: u32,
    pub budget: Duration,
}

/// Whether and how the cloud model is used. The API key is named (an environment variable or
/// a root-only file), never written in the profile.
#[derive(Debug, Clone)]
pub struct CloudSettings {
    pub policy: CloudPolicy,
    /// Base URL up to `/v1`; set whenever the policy is not `off`.
    pub base_url: String,
    pub model: String,
    pub api_key_env: Option<String>,
    pub api_key_file: Option<PathBuf>,
    pub budget: Duration,
    /// Replace capitalised names and numbers in what is sent with placeholders.
    pub redact_names: bool,
}

#[derive(Debug, Clone)]
pub struct AudioDevices {
    pub input: String,
    pub output: String,
    /// The capture device that hears what goes to the loudspeakers (a monitor or loopback
    /// of the media mix): the echo canceller's reference for the media. None: Cabin's own
    /// voice is the only reference.
    pub reference: Option<String>,
}

#[derive(Debug, Clone)]
pub struct VehicleSettings {
    /// The bus the vehicle services are on.
    pub bus: BusAddress,
    /// How long a vehicle service may take to answer before Cabin gives up.
    pub timeout: Duration,
    /// Where the driving state comes from; None leaves constrained intents always refused.
    pub state: Option<StateSource>,
}

/// The interface whose properties give the driving state. Read straight from the profile;
/// validation checks the names.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSource {
    pub service: String,
    pub path: String,
    pub interface: String,
    /// Property of type `d`, km/h.
    pub speed: String,
    /// Property of type `s`: park, reverse, neutral or drive.
    pub gear: String,
    /// Property of type `b`.
    pub parking_brake: String,
}

#[derive(Debug, Clone)]
pub struct DialogSettings {
    /// How long Cabin listens for a follow-up without the wake word; zero turns it off.
    pub follow_up: Duration,
    /// How many times Cabin asks for a missing slot before giving up.
    pub max_clarifications: u8,
}

/// A microphone or push-to-talk source and the seat zone of whoever uses it.
#[derive(Debug, Clone)]
pub struct InputZone {
    pub name: String,
    pub zone: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloudPolicy {
    /// Never send anything off the vehicle.
    #[default]
    Off,
    /// Only after the driver has agreed (a later issue asks for the consent).
    OptIn,
    /// Use the cloud where the router finds it worth it.
    On,
}
