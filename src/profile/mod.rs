//! Vehicle/OEM profiles: loaded raw (`raw.rs`, serde) and validated here into typed
//! intents, so that the rest of Cabin never sees a string it has to re-check.

mod raw;

pub use raw::{CloudPolicy, Gear};

use crate::bus::BusAddress;
use crate::dbus_value::{ArgValue, DbusType};
use crate::grammar::{tokenize, Element, Template};
use raw::{RawAction, RawIntent, RawProfile, RawSlotType, RawWhen};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// The profile compiled into the binary, used when no `--profile` is given.
pub const DEFAULT_PROFILE_TOML: &str = include_str!("../../profiles/default.toml");
pub const DEFAULT_PROFILE_NAME: &str = "profiles/default.toml (embedded)";

/// A validated profile.
#[derive(Debug, Clone)]
pub struct Profile {
    pub file: String,
    pub name: String,
    pub language: String,
    pub description: String,
    pub assistant: Assistant,
    pub models: Models,
    pub audio: Audio,
    pub llm: LlmSettings,
    pub cloud: CloudSettings,
    pub vehicle: VehicleSettings,
    pub dialog: DialogSettings,
    pub listen: ListenSettings,
    pub speech: SpeechSettings,
    pub inputs: Vec<Input>,
    pub slot_types: BTreeMap<String, SlotType>,
    pub intents: Vec<Intent>,
    pub small_talk: Vec<SmallTalk>,
}

/// A small-talk exchange: no action, a short reply in the persona's voice, and silence while
/// the driver is manoeuvring.
#[derive(Debug, Clone)]
pub struct SmallTalk {
    pub name: String,
    pub sentences: Vec<Template>,
    pub reply: String,
}

/// Spoken replies longer than this are refused at load time: the driver is driving.
pub const MAX_SPOKEN_WORDS: usize = 25;

#[derive(Debug, Clone)]
pub struct Assistant {
    pub name: String,
    pub persona: String,
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
}

/// How the always-on front end decides that the driver spoke to Cabin, and when they stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenSettings {
    /// Wake word score (0..1) that counts as a detection; higher: fewer false wakes.
    pub wake_threshold: f32,
    /// No second detection this soon after one.
    pub refractory: Duration,
    /// Speech probability (0..1) that counts as speech.
    pub vad_threshold: f32,
    /// This much silence after speech ends the command.
    pub trailing_silence: Duration,
    /// Give up if no speech starts this soon after the wake word.
    pub no_speech_timeout: Duration,
    /// Cut a command off at this length.
    pub max_utterance: Duration,
    /// Names speech recognition should expect (contacts, favourite places, brand words).
    pub vocabulary: Vec<String>,
}

impl Default for ListenSettings {
    fn default() -> Self {
        ListenSettings {
            wake_threshold: 0.5,
            refractory: Duration::from_secs(2),
            vad_threshold: 0.5,
            trailing_silence: Duration::from_millis(600),
            no_speech_timeout: Duration::from_secs(4),
            max_utterance: Duration::from_secs(10),
            vocabulary: Vec::new(),
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
}

impl Default for SpeechSettings {
    fn default() -> Self {
        SpeechSettings {
            rate: 1.0,
            volume: 0.9,
            threads: 1,
            ducking: None,
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
pub struct Audio {
    pub input: String,
    pub output: String,
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
pub struct Input {
    pub name: String,
    pub zone: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SlotType {
    /// `zones`: the values are seat zones ("my" means the speaker's).
    Enum {
        values: Vec<EnumValue>,
        zones: bool,
    },
    Integer {
        min: i64,
        max: i64,
        unit: String,
    },
    Decimal {
        min: f64,
        max: f64,
        unit: String,
    },
    Text {
        max_words: usize,
    },
}

impl SlotType {
    /// Whether `value` is within the type's range (numbers); every other value is.
    pub fn admits(&self, value: &SlotValue) -> bool {
        let SlotValue::Number(v) = value else {
            return true;
        };
        match self {
            SlotType::Integer { min, max, .. } => (*min as f64..=*max as f64).contains(v),
            SlotType::Decimal { min, max, .. } => (*min..=*max).contains(v),
            _ => true,
        }
    }

    /// The value of an enum slot type whose canonical key is `key`.
    pub fn value_for_key(&self, key: &str) -> Option<SlotValue> {
        let SlotType::Enum { values, .. } = self else {
            return None;
        };
        values
            .iter()
            .find(|v| v.key == key)
            .map(|v| SlotValue::Enum {
                key: v.key.clone(),
                spoken: v.spoken.clone(),
            })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct EnumValue {
    /// What the action receives ("rear_left").
    pub key: String,
    /// How a reply says it: the first synonym ("rear left").
    pub spoken: String,
    /// Tokenised synonyms, matched against speech.
    pub synonyms: Vec<Vec<String>>,
}

/// The enum key a zones slot holds when the driver said "my": resolved to the speaker's zone.
pub const SPEAKER: &str = "@speaker";

/// A slot's value after matching.
#[derive(Debug, Clone, PartialEq)]
pub enum SlotValue {
    Enum { key: String, spoken: String },
    Number(f64),
    Text(String),
}

impl SlotValue {
    /// How a reply template renders the value.
    pub fn spoken(&self) -> String {
        match self {
            SlotValue::Enum { spoken, .. } => spoken.clone(),
            SlotValue::Number(n) => crate::grammar::format_number(*n),
            SlotValue::Text(t) => t.clone(),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            SlotValue::Enum { key, .. } => serde_json::Value::from(key.clone()),
            SlotValue::Number(n) => serde_json::Value::from(*n),
            SlotValue::Text(t) => serde_json::Value::from(t.clone()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Intent {
    pub name: String,
    pub description: String,
    pub sentences: Vec<Template>,
    /// Slot name → slot type name, for every slot any sentence mentions.
    pub slots: BTreeMap<String, String>,
    pub defaults: BTreeMap<String, SlotValue>,
    pub reply: String,
    /// Replies for specific D-Bus errors of the action, by error name.
    pub error_replies: BTreeMap<String, String>,
    /// Questions for missing slots ("Which window?").
    pub ask: BTreeMap<String, String>,
    /// The question asked before acting ("Call {contact}?"), for intents that need a yes.
    pub confirm: Option<String>,
    /// Whether Cabin listens for a follow-up after this intent.
    pub follow_up: bool,
    /// Slots the reply, action, confirmation or error replies use.
    pub needs: BTreeSet<String>,
    pub action: Action,
    pub when: Option<Constraint>,
    /// How many plain sentences the templates expand to.
    pub sentence_count: usize,
    /// The intent that does the reverse, declared on either of the two. Words that embed alike
    /// ("too loud", "too quiet") rank both; the shortlist offers the local model only the closer.
    pub opposite: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Action {
    pub service: String,
    pub path: String,
    pub interface: String,
    /// Spoken name of the device in failure replies ("the climate control").
    pub target: String,
    pub kind: ActionKind,
}

#[derive(Debug, Clone)]
pub enum ActionKind {
    Call { method: String, args: Vec<ArgSpec> },
    SetProperty { property: String, value: ArgSpec },
    GetProperty { property: String },
}

#[derive(Debug, Clone)]
pub struct ArgSpec {
    pub ty: DbusType,
    pub source: ArgSource,
}

#[derive(Debug, Clone)]
pub enum ArgSource {
    Slot(String),
    /// A string with `{slot}` placeholders.
    Format(String),
    Literal(ArgValue),
}

/// Vehicle-state conditions an intent needs (enforced by the conversation issue).
#[derive(Debug, Clone)]
pub struct Constraint {
    pub gear: Option<Vec<Gear>>,
    pub max_speed_kmh: Option<f64>,
    pub parking_brake: Option<bool>,
    pub refusal: String,
}

/// One problem in a profile: where, what, and how to fix it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileError {
    pub file: String,
    pub line: Option<usize>,
    pub field: String,
    pub problem: String,
    pub fix: String,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: ", self.file, line)?,
            None => write!(f, "{}: ", self.file)?,
        }
        write!(f, "{}: {}\n  fix: {}", self.field, self.problem, self.fix)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read profile {file}: {source} (fix: check the path and permissions)")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render_errors(.0))]
    Invalid(Vec<ProfileError>),
}

fn render_errors(errors: &[ProfileError]) -> String {
    let mut s = format!(
        "profile has {} problem{}:",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
    for e in errors {
        s.push('\n');
        s.push_str(&e.to_string());
    }
    s
}

impl Profile {
    /// Loads and validates a profile file.
    pub fn load(path: &Path) -> Result<Profile, LoadError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
            file: file.clone(),
            source,
        })?;
        Profile::parse(&text, &file)
    }

    /// The profile compiled into the binary.
    pub fn embedded_default() -> Profile {
        Profile::parse(DEFAULT_PROFILE_TOML, DEFAULT_PROFILE_NAME)
            .expect("the embedded default profile is validated by the test suite")
    }

    /// Loads `path` if given, else the embedded default.
    pub fn load_or_default(path: Option<&Path>) -> Result<Profile, LoadError> {
        match path {
            Some(p) => Profile::load(p),
            None => Ok(Profile::embedded_default()),
        }
    }

    /// Parses and validates profile text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Profile, LoadError> {
        let raw: RawProfile = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            LoadError::Invalid(vec![ProfileError {
                file: file.to_string(),
                line,
                field: "syntax".into(),
                problem: e.message().trim().to_string(),
                fix: syntax_fix(e.message()),
            }])
        })?;
        Validator {
            file,
            text,
            errors: Vec::new(),
        }
        .profile(raw)
    }
}

fn line_of(text: &str, byte: usize) -> usize {
    text[..byte.min(text.len())].matches('\n').count() + 1
}

fn syntax_fix(message: &str) -> String {
    if message.contains("missing field") {
        "add the missing field (see profiles/default.toml for a complete example)".into()
    } else if message.contains("unknown field") {
        "check the spelling; the message lists the fields allowed here".into()
    } else if message.contains("unknown variant") {
        "use one of the values the message lists".into()
    } else if message.contains("invalid type") {
        "give the value the type the message asks for".into()
    } else {
        "fix the TOML syntax at that line".into()
    }
}

struct Validator<'a> {
    file: &'a str,
    text: &'a str,
    errors: Vec<ProfileError>,
}

impl Validator<'_> {
    fn error(
        &mut self,
        span: Option<std::ops::Range<usize>>,
        field: &str,
        problem: String,
        fix: &str,
    ) {
        self.errors.push(ProfileError {
            file: self.file.to_string(),
            line: span.map(|s| line_of(self.text, s.start)),
            field: field.to_string(),
            problem,
            fix: fix.to_string(),
        });
    }

    /// The model names, each a catalogue model of its kind (or, where a file may stand in, a
    /// path or "espeak"): a typo is reported here, not when the daemon starts that engine.
    fn models(&mut self, raw: &raw::RawModels) -> Models {
        /// Names a field takes besides its catalogue models, and how the fix says so.
        struct Besides {
            takes: fn(&str) -> bool,
            hint: &'static str,
        }
        const NOTHING: Besides = Besides {
            takes: |_| false,
            hint: "",
        };
        let mut model = |v: &Option<Spanned<String>>,
                         field: &str,
                         what: &str,
                         kinds: &[&str],
                         besides: Besides| {
            let v = v.as_ref()?;
            let name = v.get_ref();
            let known = |m: &crate::models::Model| kinds.contains(&m.kind);
            if (besides.takes)(name)
                || crate::models::MODELS
                    .iter()
                    .any(|m| known(m) && m.name == name)
            {
                return Some(name.clone());
            }
            let names: Vec<&str> = crate::models::MODELS
                .iter()
                .filter(|m| known(m))
                .map(|m| m.name)
                .collect();
            self.error(
                Some(v.span()),
                &format!("models.{field}"),
                format!("'{name}' is not {what} (known: {})", names.join(", ")),
                &format!(
                    "name one of them{}; `cabin models list` shows them all",
                    besides.hint
                ),
            );
            None
        };
        Models {
            asr: model(
                &raw.asr,
                "asr",
                "a speech recognition model",
                &["asr"],
                NOTHING,
            ),
            llm: model(&raw.llm, "llm", "a language model", &["llm"], NOTHING),
            tts: model(
                &raw.tts,
                "tts",
                "a voice",
                &["tts"],
                Besides {
                    takes: |name| !crate::tts::is_piper(name) || crate::wake::is_path(name),
                    hint: ", \"espeak\", or the path of a Piper voice (.onnx)",
                },
            ),
            wake: model(
                &raw.wake,
                "wake",
                "a wake word model",
                &["wake"],
                Besides {
                    takes: crate::wake::is_path,
                    hint: ", or the path of a keyword model (.onnx)",
                },
            ),
            vad: model(&raw.vad, "vad", "a voice activity model", &["vad"], NOTHING),
            shortlist: model(
                &raw.shortlist,
                "shortlist",
                "an intent shortlist model",
                &["embedding", "embedding-gguf"],
                NOTHING,
            ),
        }
    }

    /// The value if it is given and within `range`; an error naming the range if it is not.
    fn within<T>(
        &mut self,
        v: &Option<Spanned<T>>,
        field: &str,
        range: std::ops::RangeInclusive<T>,
        fix: &str,
    ) -> Option<T>
    where
        T: PartialOrd + Copy + std::fmt::Display + std::fmt::Debug,
    {
        let v = v.as_ref()?;
        if range.contains(v.get_ref()) {
            return Some(*v.get_ref());
        }
        self.error(
            Some(v.span()),
            field,
            format!("{} is outside {range:?}", v.get_ref()),
            fix,
        );
        None
    }

    fn profile(mut self, raw: RawProfile) -> Result<Profile, LoadError> {
        if raw.profile.language.get_ref() != "en" {
            self.error(
                Some(raw.profile.language.span()),
                "profile.language",
                format!(
                    "language '{}' is not supported yet",
                    raw.profile.language.get_ref()
                ),
                "use language = \"en\"",
            );
        }
        if raw.assistant.name.trim().is_empty() {
            self.error(
                None,
                "assistant.name",
                "the assistant has no name".into(),
                "set assistant.name, e.g. \"Cabin\"",
            );
        }

        let bus = match &raw.vehicle.bus {
            None => BusAddress::Session,
            Some(b) => match b.get_ref().parse::<BusAddress>() {
                Ok(bus) => bus,
                Err(e) => {
                    self.error(Some(b.span()), "vehicle.bus", e.to_string(), "use \"session\", \"system\" or a D-Bus address such as \"unix:path=/run/dbus/system_bus_socket\"");
                    BusAddress::Session
                }
            },
        };
        let timeout_ms = match &raw.vehicle.timeout_ms {
            None => 2000,
            Some(t) if (50..=60_000).contains(t.get_ref()) => *t.get_ref(),
            Some(t) => {
                self.error(
                    Some(t.span()),
                    "vehicle.timeout_ms",
                    format!("{} ms is outside 50..=60000", t.get_ref()),
                    "use a timeout between 50 and 60000 ms (default 2000)",
                );
                2000
            }
        };

        let mut slot_types = BTreeMap::new();
        for (name, spanned) in &raw.slot_types {
            let span = spanned.span();
            if let Some(t) = self.slot_type(name, spanned.get_ref(), span) {
                slot_types.insert(name.clone(), t);
            }
        }

        let state = raw
            .vehicle
            .state
            .as_ref()
            .and_then(|st| self.state_source(st.get_ref(), st.span()));
        let dialog = self.dialog(&raw.dialog);
        let listen = self.listen(&raw.listen);
        let speech = self.speech(&raw.speech);
        let models = self.models(&raw.models);
        let llm = self.llm(&raw.llm);
        let cloud = self.cloud(&raw.cloud);
        let inputs = self.inputs(&raw.inputs, &slot_types);

        let mut intents = Vec::new();
        let mut names = BTreeSet::new();
        for spanned in &raw.intents {
            let span = spanned.span();
            let raw_intent = spanned.get_ref();
            if !names.insert(raw_intent.name.clone()) {
                self.error(
                    Some(span.clone()),
                    &format!("intent '{}'", raw_intent.name),
                    "two intents have this name".into(),
                    "give every intent a unique name",
                );
            }
            if raw_intent.when.is_some() && raw.vehicle.state.is_none() {
                self.error(Some(span.clone()), &format!("intent '{}'.when", raw_intent.name), "the intent has a vehicle-state constraint, but the profile does not say where the vehicle state comes from".into(), "add a [vehicle.state] table (see profiles/default.toml)");
            }
            if let Some(intent) = self.intent(raw_intent, span, &slot_types) {
                intents.push(intent);
            }
        }
        self.opposites(&raw.intents, &names, &mut intents);
        let small_talk = self.small_talk(&raw.small_talk);
        if raw
            .dialog
            .follow_up_seconds
            .as_ref()
            .is_some_and(|f| *f.get_ref() == 0.0)
        {
            if let Some(i) = intents
                .iter()
                .find(|i| !i.ask.is_empty() || i.confirm.is_some())
            {
                self.error(
                    raw.dialog.follow_up_seconds.as_ref().map(|f| f.span()),
                    "dialog.follow_up_seconds",
                    format!(
                        "0 leaves no time to answer the questions intents ask (e.g. '{}')",
                        i.name
                    ),
                    "use a window of a few seconds, or remove ask and confirm from the intents",
                );
            }
        }
        if raw.intents.is_empty() {
            self.error(
                None,
                "intents",
                "the profile has no intents".into(),
                "add at least one [[intents]] table",
            );
        }

        if !self.errors.is_empty() {
            return Err(LoadError::Invalid(self.errors));
        }
        Ok(Profile {
            file: self.file.to_string(),
            name: raw.profile.name,
            language: raw.profile.language.into_inner(),
            description: raw.profile.description,
            assistant: Assistant {
                name: raw.assistant.name,
                persona: raw.assistant.persona,
                wake_words: raw.assistant.wake_words,
            },
            models,
            audio: Audio {
                input: raw.audio.input.unwrap_or_else(|| "default".into()),
                output: raw.audio.output.unwrap_or_else(|| "default".into()),
            },
            llm,
            cloud,
            vehicle: VehicleSettings {
                bus,
                timeout: Duration::from_millis(timeout_ms),
                state,
            },
            dialog,
            listen,
            speech,
            inputs,
            slot_types,
            intents,
            small_talk,
        })
    }

    /// Checks each declared opposite and declares it on the other intent too; `names` are all
    /// the intents' names.
    fn opposites(
        &mut self,
        raw: &[toml::Spanned<RawIntent>],
        names: &BTreeSet<String>,
        intents: &mut [Intent],
    ) {
        let mut pairs: BTreeMap<String, String> = BTreeMap::new();
        for spanned in raw {
            let (name, Some(opposite)) = (&spanned.get_ref().name, &spanned.get_ref().opposite)
            else {
                continue;
            };
            let here = Some(spanned.span());
            let field = format!("intent '{name}'.opposite");
            if opposite == name {
                self.error(
                    here,
                    &field,
                    "an intent cannot be its own opposite".into(),
                    "name the intent that does the reverse, or remove opposite",
                );
            } else if !names.contains(opposite) {
                self.error(
                    here,
                    &field,
                    format!("there is no intent '{opposite}'"),
                    "name an intent of this profile, or remove opposite",
                );
            } else if let Some(other) = pairs.get(name).filter(|o| *o != opposite) {
                self.error(
                    here,
                    &field,
                    format!("'{other}' already names '{name}' as its opposite"),
                    "an intent has one opposite: make the two declarations agree",
                );
            } else if let Some(other) = pairs.get(opposite).filter(|o| *o != name) {
                self.error(
                    here,
                    &field,
                    format!("'{opposite}' already has the opposite '{other}'"),
                    "an intent has one opposite: make the two declarations agree",
                );
            } else {
                pairs.insert(name.clone(), opposite.clone());
                pairs.insert(opposite.clone(), name.clone());
            }
        }
        for intent in intents {
            intent.opposite = pairs.get(&intent.name).cloned();
        }
    }

    fn slot_type(
        &mut self,
        name: &str,
        raw: &RawSlotType,
        span: std::ops::Range<usize>,
    ) -> Option<SlotType> {
        let field = format!("slot_types.{name}");
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid_name {
            self.error(
                Some(span.clone()),
                &field,
                format!("'{name}' is not a valid slot type name"),
                "use lower-case letters, digits and '_'",
            );
            return None;
        }
        match raw {
            RawSlotType::Enum { values, zones } => {
                if values.is_empty() {
                    self.error(
                        Some(span),
                        &field,
                        "the enumeration has no values".into(),
                        "add values, e.g. values = { driver = [\"driver\", \"left\"] }",
                    );
                    return None;
                }
                let mut seen: BTreeMap<Vec<String>, String> = BTreeMap::new();
                let mut out = Vec::new();
                for (key, synonyms) in values {
                    let mut toks = Vec::new();
                    for syn in synonyms {
                        let t: Vec<String> = tokenize(syn).into_iter().map(|t| t.norm).collect();
                        if t.is_empty() {
                            self.error(
                                Some(span.clone()),
                                &format!("{field}.values.{key}"),
                                format!("synonym '{syn}' has no words"),
                                "remove it or write a word",
                            );
                            continue;
                        }
                        if let Some(other) = seen.insert(t.clone(), key.clone()) {
                            if other != *key {
                                self.error(
                                    Some(span.clone()),
                                    &format!("{field}.values.{key}"),
                                    format!("synonym '{syn}' also belongs to '{other}'"),
                                    "give each synonym to one value only",
                                );
                            }
                        }
                        toks.push(t);
                    }
                    if toks.is_empty() {
                        // No synonyms at all, or only ones without words ("!!!").
                        self.error(
                            Some(span.clone()),
                            &format!("{field}.values.{key}"),
                            "the value has no synonyms with words, so nobody can say it".into(),
                            "list how drivers say it, e.g. [\"rear left\", \"back left\"]",
                        );
                        continue;
                    }
                    // Longest synonyms first, so "front left" wins over "front".
                    toks.sort_by_key(|t| std::cmp::Reverse(t.len()));
                    out.push(EnumValue {
                        key: key.clone(),
                        spoken: synonyms[0].clone(),
                        synonyms: toks,
                    });
                }
                Some(SlotType::Enum {
                    values: out,
                    zones: *zones,
                })
            }
            RawSlotType::Integer { min, max, unit } => {
                if min > max {
                    self.error(
                        Some(span),
                        &field,
                        format!("min {min} is larger than max {max}"),
                        "swap min and max",
                    );
                    return None;
                }
                Some(SlotType::Integer {
                    min: *min,
                    max: *max,
                    unit: unit.clone(),
                })
            }
            RawSlotType::Decimal { min, max, unit } => {
                if !(min.is_finite() && max.is_finite()) || min > max {
                    self.error(
                        Some(span),
                        &field,
                        format!("range {min}..{max} is not a valid range"),
                        "use finite numbers with min <= max",
                    );
                    return None;
                }
                Some(SlotType::Decimal {
                    min: *min,
                    max: *max,
                    unit: unit.clone(),
                })
            }
            RawSlotType::Text { max_words } => {
                if !(1..=12).contains(max_words) {
                    self.error(
                        Some(span),
                        &field,
                        format!("max_words = {max_words} is outside 1..=12"),
                        "use a small number of words, e.g. 6",
                    );
                    return None;
                }
                Some(SlotType::Text {
                    max_words: *max_words,
                })
            }
        }
    }

    fn intent(
        &mut self,
        raw: &RawIntent,
        span: std::ops::Range<usize>,
        types: &BTreeMap<String, SlotType>,
    ) -> Option<Intent> {
        let here = Some(span.clone());
        let name = &raw.name;
        let start = self.errors.len();
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
        if !valid_name {
            self.error(
                here.clone(),
                &format!("intent '{name}'.name"),
                "an intent name may hold only lower-case letters, digits, '_' and '.'".into(),
                "rename it, e.g. \"climate.set_temperature\"",
            );
        }
        let at = |field: &str| format!("intent '{name}'.{field}");

        if raw.sentences.is_empty() {
            self.error(
                here.clone(),
                &at("sentences"),
                "the intent has no sentences".into(),
                "add at least one sentence template",
            );
        }
        let mut templates = Vec::new();
        let mut slots: BTreeMap<String, String> = BTreeMap::new();
        let mut expansions: Vec<Vec<Element>> = Vec::new();
        for (i, sentence) in raw.sentences.iter().enumerate() {
            let field = at(&format!("sentences[{i}]"));
            match Template::parse(sentence) {
                Err(e) => self.error(
                    here.clone(),
                    &field,
                    format!("\"{sentence}\": {}", e.problem),
                    &e.fix,
                ),
                Ok(t) => {
                    for s in t.slots() {
                        if !types.contains_key(&s.type_name) {
                            self.error(
                                here.clone(),
                                &field,
                                format!(
                                    "\"{sentence}\" uses slot {{{}}} of unknown type '{}'",
                                    s.name, s.type_name
                                ),
                                "declare the type under [slot_types], or fix the slot name",
                            );
                        }
                        match slots.get(&s.name) {
                            Some(t) if *t != s.type_name => self.error(
                                here.clone(),
                                &field,
                                format!(
                                    "slot '{}' has type '{t}' in one sentence and '{}' in another",
                                    s.name, s.type_name
                                ),
                                "use one type per slot name",
                            ),
                            _ => {
                                slots.insert(s.name.clone(), s.type_name.clone());
                            }
                        }
                    }
                    match t.expand() {
                        Ok(e) => expansions.extend(e),
                        Err(e) => self.error(here.clone(), &field, e.problem, &e.fix),
                    }
                    templates.push(t);
                }
            }
        }

        if templates.len() < raw.sentences.len() {
            // Slot checks against half-parsed sentences would only repeat the parse error.
            return None;
        }

        let mut defaults = BTreeMap::new();
        for (slot, value) in &raw.defaults {
            let field = at(&format!("defaults.{slot}"));
            let Some(type_name) = slots.get(slot) else {
                self.error(
                    here.clone(),
                    &field,
                    format!("'{slot}' is not a slot of any sentence of this intent"),
                    "remove the default or use the slot in a sentence",
                );
                continue;
            };
            let Some(ty) = types.get(type_name) else {
                continue;
            };
            match default_value(ty, value) {
                Ok(v) => {
                    defaults.insert(slot.clone(), v);
                }
                Err(problem) => self.error(
                    here.clone(),
                    &field,
                    problem,
                    "give a value of the slot's type",
                ),
            }
        }

        let mut ask = BTreeMap::new();
        for (slot, question) in &raw.ask {
            let field = at(&format!("ask.{slot}"));
            if !slots.contains_key(slot) {
                self.error(
                    here.clone(),
                    &field,
                    format!("'{slot}' is not a slot of any sentence of this intent"),
                    "ask only for slots the sentences capture",
                );
            } else if question.trim().is_empty() {
                self.error(
                    here.clone(),
                    &field,
                    "the question is empty".into(),
                    "write the question, e.g. \"Which window?\"",
                );
            } else {
                ask.insert(slot.clone(), question.clone());
            }
        }
        if raw.confirm
            && raw
                .confirm_prompt
                .as_deref()
                .is_none_or(|p| p.trim().is_empty())
        {
            self.error(
                here.clone(),
                &at("confirm_prompt"),
                "confirm = true needs a question to ask".into(),
                "add confirm_prompt, e.g. \"Call {contact}?\"",
            );
        }
        for error_name in raw.errors.keys() {
            if zbus::names::ErrorName::try_from(error_name.as_str()).is_err() {
                self.error(
                    here.clone(),
                    &at(&format!("errors.\"{error_name}\"")),
                    format!("'{error_name}' is not a valid D-Bus error name"),
                    "use the full error name, e.g. \"org.example.Phone.Error.UnknownContact\"",
                );
            }
        }

        // Every slot that a reply, the action or the confirmation uses must be captured by
        // every sentence, or have a default or a question to ask for it.
        let action = self.action(&raw.action, name, here.clone(), &slots, types);
        let is_read = matches!(
            raw.action,
            RawAction::GetProperty { .. } | RawAction::Call { .. }
        );
        let mut uses: Vec<(String, String)> = placeholders(&raw.reply)
            .into_iter()
            .map(|p| (at("reply"), p))
            .collect();
        if let Some(a) = &action {
            uses.extend(action_slots(a).into_iter().map(|p| (at("action"), p)));
        }
        if let Some(prompt) = &raw.confirm_prompt {
            uses.extend(
                placeholders(prompt)
                    .into_iter()
                    .map(|p| (at("confirm_prompt"), p)),
            );
        }
        for (error_name, reply) in &raw.errors {
            uses.extend(
                placeholders(reply)
                    .into_iter()
                    .map(|p| (at(&format!("errors.\"{error_name}\"")), p)),
            );
        }
        let mut needs = BTreeSet::new();
        for (field, slot) in uses {
            if slot == "result" && is_read && field == at("reply") {
                continue;
            }
            if !slots.contains_key(&slot) {
                self.error(
                    here.clone(),
                    &field,
                    format!("{{{slot}}} is not a slot of any sentence of this intent"),
                    "use a slot that the sentences capture, or add it to a sentence",
                );
                continue;
            }
            needs.insert(slot.clone());
            if defaults.contains_key(&slot) || ask.contains_key(&slot) {
                continue;
            }
            if let Some(e) = expansions.iter().find(|e| {
                !e.iter()
                    .any(|el| matches!(el, Element::Slot(s) if s.name == slot))
            }) {
                self.error(here.clone(), &at(&format!("defaults.{slot}")), format!("a sentence can leave out {{{slot}}} (\"{}\"), but {field} needs it", render_expansion(e)), "add a default (defaults = { zone = \"driver\" }) or a question (ask = { zone = \"Which side?\" }) for the slot, or make it required in every sentence");
            }
        }

        let when = raw
            .when
            .as_ref()
            .and_then(|w| self.constraint(w, &at("when"), here.clone()));

        let spoken = std::iter::once(("reply", &raw.reply))
            .chain(raw.ask.values().map(|q| ("ask", q)))
            .chain(raw.confirm_prompt.iter().map(|c| ("confirm_prompt", c)))
            .chain(raw.errors.values().map(|r| ("errors", r)))
            .chain(raw.when.iter().map(|w| ("when.refusal", &w.refusal)));
        for (field, text) in spoken {
            self.check_spoken(here.clone(), &at(field), text);
        }

        if self.errors.len() > start {
            return None;
        }
        Some(Intent {
            name: name.clone(),
            description: raw.description.clone(),
            sentences: templates,
            slots,
            defaults,
            reply: raw.reply.clone(),
            error_replies: raw.errors.clone(),
            ask,
            confirm: raw
                .confirm
                .then(|| raw.confirm_prompt.clone().unwrap_or_default()),
            follow_up: raw.follow_up.unwrap_or(true),
            needs,
            action: action?,
            when,
            sentence_count: expansions.len(),
            // Set by `opposites` once every intent is known.
            opposite: None,
        })
    }

    fn action(
        &mut self,
        raw: &RawAction,
        intent: &str,
        here: Option<std::ops::Range<usize>>,
        slots: &BTreeMap<String, String>,
        types: &BTreeMap<String, SlotType>,
    ) -> Option<Action> {
        let at = |field: &str| format!("intent '{intent}'.action.{field}");
        let (service, path, interface, target) = match raw {
            RawAction::Call {
                service,
                path,
                interface,
                target,
                ..
            }
            | RawAction::SetProperty {
                service,
                path,
                interface,
                target,
                ..
            }
            | RawAction::GetProperty {
                service,
                path,
                interface,
                target,
                ..
            } => (service, path, interface, target),
        };
        let start = self.errors.len();
        self.endpoint(
            here.clone(),
            &format!("intent '{intent}'.action"),
            service,
            path,
            interface,
        );
        if target.trim().is_empty() {
            self.error(
                here.clone(),
                &at("target"),
                "target is empty".into(),
                "name the device as a reply would say it, e.g. \"the climate control\"",
            );
        }
        let member_ok = |m: &str| zbus::names::MemberName::try_from(m).is_ok();
        let kind = match raw {
            RawAction::Call {
                method,
                signature,
                args,
                ..
            } => {
                if !member_ok(method) {
                    self.error(
                        here.clone(),
                        &at("method"),
                        format!("'{method}' is not a valid method name"),
                        "use a D-Bus member name such as \"SetTemperature\"",
                    );
                }
                let specs = self.args(signature, args, &at("args"), here.clone(), slots, types);
                ActionKind::Call {
                    method: method.clone(),
                    args: specs.unwrap_or_default(),
                }
            }
            RawAction::SetProperty {
                property,
                signature,
                value,
                ..
            } => {
                if !member_ok(property) {
                    self.error(
                        here.clone(),
                        &at("property"),
                        format!("'{property}' is not a valid property name"),
                        "use a D-Bus member name such as \"Volume\"",
                    );
                }
                if signature.chars().count() != 1 {
                    self.error(
                        here.clone(),
                        &at("signature"),
                        format!("a property has one value, but the signature is \"{signature}\""),
                        "give the single type of the property, e.g. \"u\"",
                    );
                }
                let specs = self.args(
                    signature,
                    std::slice::from_ref(value),
                    &at("value"),
                    here.clone(),
                    slots,
                    types,
                );
                match specs.and_then(|mut s| s.pop()) {
                    Some(value) => ActionKind::SetProperty {
                        property: property.clone(),
                        value,
                    },
                    None => return None,
                }
            }
            RawAction::GetProperty { property, .. } => {
                if !member_ok(property) {
                    self.error(
                        here.clone(),
                        &at("property"),
                        format!("'{property}' is not a valid property name"),
                        "use a D-Bus member name such as \"Range\"",
                    );
                }
                ActionKind::GetProperty {
                    property: property.clone(),
                }
            }
        };
        if self.errors.len() > start {
            return None;
        }
        Some(Action {
            service: service.clone(),
            path: path.clone(),
            interface: interface.clone(),
            target: target.clone(),
            kind,
        })
    }

    fn args(
        &mut self,
        signature: &str,
        args: &[String],
        field: &str,
        here: Option<std::ops::Range<usize>>,
        slots: &BTreeMap<String, String>,
        types: &BTreeMap<String, SlotType>,
    ) -> Option<Vec<ArgSpec>> {
        let sig_field = field
            .rsplit_once('.')
            .map(|(a, _)| format!("{a}.signature"))
            .unwrap_or_default();
        let tys = match DbusType::parse_signature(signature) {
            Ok(t) => t,
            Err(e) => {
                self.error(
                    here,
                    &sig_field,
                    format!("signature \"{signature}\": {e}"),
                    "write one basic type per argument, e.g. \"sd\"",
                );
                return None;
            }
        };
        if tys.len() != args.len() {
            self.error(
                here,
                &sig_field,
                format!(
                    "signature \"{signature}\" has {} argument(s) but {} value(s) are given",
                    tys.len(),
                    args.len()
                ),
                "give one type per argument, in order",
            );
            return None;
        }
        let mut out = Vec::new();
        for (i, (ty, arg)) in tys.iter().zip(args).enumerate() {
            let f = format!("{field}[{i}]");
            let ph = placeholders(arg);
            let whole_slot = ph.len() == 1 && arg.trim() == format!("{{{}}}", ph[0]);
            if ph.is_empty() {
                match ty.literal(arg) {
                    Ok(v) => out.push(ArgSpec {
                        ty: *ty,
                        source: ArgSource::Literal(v),
                    }),
                    Err(e) => self.error(
                        here.clone(),
                        &f,
                        e,
                        "write a literal of the signature's type, or a {slot}",
                    ),
                }
                continue;
            }
            for p in &ph {
                if !slots.contains_key(p) {
                    self.error(
                        here.clone(),
                        &f,
                        format!("{{{p}}} is not a slot of any sentence of this intent"),
                        "use a slot that the sentences capture",
                    );
                }
            }
            if !whole_slot {
                if *ty != DbusType::String {
                    self.error(here.clone(), &f, format!("\"{arg}\" mixes text and slots, which only a string ('s') argument can take, but the signature says '{ty}'"), "use exactly \"{slot}\" for a non-string argument");
                } else {
                    out.push(ArgSpec {
                        ty: *ty,
                        source: ArgSource::Format(arg.clone()),
                    });
                }
                continue;
            }
            let slot = &ph[0];
            let Some(slot_type) = slots.get(slot).and_then(|t| types.get(t)) else {
                continue;
            };
            if let Err(problem) = check_slot_fits(slot_type, *ty) {
                self.error(here.clone(), &f, format!("slot {{{slot}}} cannot be passed as D-Bus type '{ty}': {problem}"), "change the signature to match the slot type, or the slot type to match the method");
                continue;
            }
            out.push(ArgSpec {
                ty: *ty,
                source: ArgSource::Slot(slot.clone()),
            });
        }
        Some(out)
    }

    fn check_spoken(&mut self, here: Option<std::ops::Range<usize>>, field: &str, text: &str) {
        let words = text.split_whitespace().count();
        if words > MAX_SPOKEN_WORDS {
            self.error(
                here,
                field,
                format!("the spoken text has {words} words"),
                &format!(
                    "keep it under {MAX_SPOKEN_WORDS} words: the driver hears it while driving"
                ),
            );
        }
    }

    fn small_talk(&mut self, raw: &[Spanned<raw::RawSmallTalk>]) -> Vec<SmallTalk> {
        let mut out: Vec<SmallTalk> = Vec::new();
        for spanned in raw {
            let st = spanned.get_ref();
            let here = Some(spanned.span());
            let field = format!("small_talk '{}'", st.name);
            let start = self.errors.len();
            if out.iter().any(|o| o.name == st.name) || st.name.is_empty() {
                self.error(
                    here.clone(),
                    &field,
                    "small-talk names must be unique and not empty".into(),
                    "give each entry its own name",
                );
            }
            if st.reply.trim().is_empty() {
                self.error(
                    here.clone(),
                    &format!("{field}.reply"),
                    "the reply is empty".into(),
                    "write a short reply in the persona's voice",
                );
            }
            self.check_spoken(here.clone(), &format!("{field}.reply"), &st.reply);
            let mut sentences = Vec::new();
            for (i, sentence) in st.sentences.iter().enumerate() {
                match Template::parse(sentence) {
                    Ok(t) if !t.slots().is_empty() => self.error(
                        here.clone(),
                        &format!("{field}.sentences[{i}]"),
                        format!("\"{sentence}\" has a slot, but small talk takes none"),
                        "remove the slot, or make this an intent",
                    ),
                    Ok(t) => match t.expand() {
                        Ok(_) => sentences.push(t),
                        Err(e) => self.error(
                            here.clone(),
                            &format!("{field}.sentences[{i}]"),
                            e.problem,
                            &e.fix,
                        ),
                    },
                    Err(e) => self.error(
                        here.clone(),
                        &format!("{field}.sentences[{i}]"),
                        format!("\"{sentence}\": {}", e.problem),
                        &e.fix,
                    ),
                }
            }
            if st.sentences.is_empty() {
                self.error(
                    here,
                    &format!("{field}.sentences"),
                    "no sentences".into(),
                    "add at least one sentence",
                );
            }
            if self.errors.len() == start {
                out.push(SmallTalk {
                    name: st.name.clone(),
                    sentences,
                    reply: st.reply.clone(),
                });
            }
        }
        out
    }

    /// Checks the bus name, object path and interface of a D-Bus endpoint the profile names.
    fn endpoint(
        &mut self,
        here: Option<std::ops::Range<usize>>,
        field: &str,
        service: &str,
        path: &str,
        interface: &str,
    ) {
        if let Err(e) = zbus::names::BusName::try_from(service) {
            self.error(
                here.clone(),
                &format!("{field}.service"),
                format!("'{service}' is not a valid bus name: {e}"),
                "use a well-known name such as \"org.example.Climate\"",
            );
        }
        if let Err(e) = zbus::ObjectPath::try_from(path) {
            self.error(
                here.clone(),
                &format!("{field}.path"),
                format!("'{path}' is not a valid object path: {e}"),
                "use a path such as \"/org/example/Climate\"",
            );
        }
        if let Err(e) = zbus::names::InterfaceName::try_from(interface) {
            self.error(
                here,
                &format!("{field}.interface"),
                format!("'{interface}' is not a valid interface name: {e}"),
                "use a name such as \"org.example.Climate1\"",
            );
        }
    }

    fn state_source(
        &mut self,
        raw: &StateSource,
        span: std::ops::Range<usize>,
    ) -> Option<StateSource> {
        let start = self.errors.len();
        let here = Some(span);
        self.endpoint(
            here.clone(),
            "vehicle.state",
            &raw.service,
            &raw.path,
            &raw.interface,
        );
        for (field, prop) in [
            ("speed", &raw.speed),
            ("gear", &raw.gear),
            ("parking_brake", &raw.parking_brake),
        ] {
            if zbus::names::MemberName::try_from(prop.as_str()).is_err() {
                self.error(
                    here.clone(),
                    &format!("vehicle.state.{field}"),
                    format!("'{prop}' is not a valid property name"),
                    "name the D-Bus property, e.g. \"Speed\"",
                );
            }
        }
        (self.errors.len() == start).then(|| raw.clone())
    }

    fn speech(&mut self, raw: &raw::RawSpeech) -> SpeechSettings {
        let mut s = SpeechSettings::default();
        if let Some(r) = self.within(
            &raw.rate,
            "speech.rate",
            0.5..=2.0,
            "use 1.0, the voice's own pace; 1.1 is a little brisker",
        ) {
            s.rate = r;
        }
        if let Some(v) = self.within(&raw.volume, "speech.volume", 0.05..=1.0, "use 0.9") {
            s.volume = v;
        }
        if let Some(t) = self.within(
            &raw.threads,
            "speech.threads",
            1..=8,
            "use 1, or 2 on a SoC with cores to spare",
        ) {
            s.threads = t as usize;
        }
        if let Some(d) = &raw.ducking {
            let here = Some(d.span());
            let duck = d.get_ref();
            let start = self.errors.len();
            self.endpoint(
                here.clone(),
                "speech.ducking",
                &duck.service,
                &duck.path,
                &duck.interface,
            );
            for (field, method) in [("duck", &duck.duck), ("restore", &duck.restore)] {
                if zbus::names::MemberName::try_from(method.as_str()).is_err() {
                    self.error(
                        here.clone(),
                        &format!("speech.ducking.{field}"),
                        format!("'{method}' is not a valid method name"),
                        "name the media service's method, e.g. \"Duck\"",
                    );
                }
            }
            if duck.level > 100 {
                self.error(
                    here,
                    "speech.ducking.level",
                    format!("{} is over 100", duck.level),
                    "give the media's volume while Cabin speaks as a percentage of its own, e.g. 30",
                );
            }
            if self.errors.len() == start {
                s.ducking = Some(duck.clone());
            }
        }
        s
    }

    fn listen(&mut self, raw: &raw::RawListen) -> ListenSettings {
        let mut s = ListenSettings::default();
        let mut share = |v: &Option<Spanned<f32>>, field: &str, fix: &str| {
            let v = v.as_ref()?;
            if (0.05..=0.99).contains(v.get_ref()) {
                return Some(*v.get_ref());
            }
            self.error(
                Some(v.span()),
                field,
                format!("{} is outside 0.05..=0.99", v.get_ref()),
                fix,
            );
            None
        };
        if let Some(t) = share(
            &raw.wake_threshold,
            "listen.wake_threshold",
            "use 0.5; raise it for fewer false wakes, lower it if the wake word is missed",
        ) {
            s.wake_threshold = t;
        }
        if let Some(t) = share(&raw.vad_threshold, "listen.vad_threshold", "use 0.5") {
            s.vad_threshold = t;
        }
        let mut millis = |v: &Option<Spanned<u64>>,
                          field: &str,
                          range: std::ops::RangeInclusive<u64>,
                          fix: &str| {
            let v = v.as_ref()?;
            if range.contains(v.get_ref()) {
                return Some(Duration::from_millis(*v.get_ref()));
            }
            self.error(
                Some(v.span()),
                field,
                format!("{} ms is outside {range:?}", v.get_ref()),
                fix,
            );
            None
        };
        if let Some(d) = millis(
            &raw.refractory_ms,
            "listen.refractory_ms",
            0..=10_000,
            "use 2000",
        ) {
            s.refractory = d;
        }
        if let Some(d) = millis(
            &raw.trailing_silence_ms,
            "listen.trailing_silence_ms",
            200..=3000,
            "use 600: shorter cuts drivers off mid-sentence, longer makes Cabin feel slow",
        ) {
            s.trailing_silence = d;
        }
        if let Some(d) = millis(
            &raw.no_speech_timeout_ms,
            "listen.no_speech_timeout_ms",
            1000..=30_000,
            "use 4000",
        ) {
            s.no_speech_timeout = d;
        }
        if let Some(d) = millis(
            &raw.max_utterance_ms,
            "listen.max_utterance_ms",
            2000..=30_000,
            "use 10000 (the speech recogniser takes at most 30 s)",
        ) {
            s.max_utterance = d;
        }
        s.vocabulary = raw
            .vocabulary
            .iter()
            .map(|w| w.trim().to_string())
            .filter(|w| !w.is_empty())
            .collect();
        s
    }

    fn dialog(&mut self, raw: &raw::RawDialog) -> DialogSettings {
        let mut settings = DialogSettings {
            follow_up: Duration::from_secs(5),
            max_clarifications: 2,
        };
        if let Some(f) = &raw.follow_up_seconds {
            if (0.0..=30.0).contains(f.get_ref()) {
                settings.follow_up = Duration::from_secs_f64(*f.get_ref());
            } else {
                self.error(
                    Some(f.span()),
                    "dialog.follow_up_seconds",
                    format!("{} s is outside 0..=30", f.get_ref()),
                    "use a window of a few seconds (default 5), or 0 to turn follow-ups off",
                );
            }
        }
        if let Some(m) = &raw.max_clarifications {
            if (1..=5).contains(m.get_ref()) {
                settings.max_clarifications = *m.get_ref();
            } else {
                self.error(
                    Some(m.span()),
                    "dialog.max_clarifications",
                    format!("{} is outside 1..=5", m.get_ref()),
                    "ask at most a few times (default 2)",
                );
            }
        }
        settings
    }

    fn llm(&mut self, raw: &raw::RawLlm) -> LlmSettings {
        let mut s = LlmSettings {
            context: 6144,
            threads: None,
            batch: 512,
            max_tokens: 64,
            budget: Duration::from_secs(20),
        };
        if let Some(c) = self.within(
            &raw.context,
            "llm.context",
            1024..=32768,
            "use 6144 (the persona and tool list take about 3,000 tokens)",
        ) {
            s.context = c;
        }
        s.threads = self.within(
            &raw.threads,
            "llm.threads",
            1..=64,
            "leave it out to use one thread per core",
        );
        if let Some(b) = self.within(&raw.batch, "llm.batch", 16..=4096, "use 512") {
            s.batch = b;
        }
        if let Some(m) = self.within(
            &raw.max_tokens,
            "llm.max_tokens",
            16..=1024,
            "use 64: replies are spoken while driving",
        ) {
            s.max_tokens = m;
        }
        if let Some(b) = &raw.budget_ms {
            if (500..=120_000).contains(b.get_ref()) {
                s.budget = Duration::from_millis(*b.get_ref());
            } else {
                self.error(
                    Some(b.span()),
                    "llm.budget_ms",
                    format!("{} ms is outside 500..=120000", b.get_ref()),
                    "use 20000",
                );
            }
        }
        s
    }

    fn cloud(&mut self, raw: &raw::RawCloud) -> CloudSettings {
        let mut s = CloudSettings {
            policy: raw.policy,
            base_url: String::new(),
            model: raw.model.clone().unwrap_or_default(),
            api_key_env: raw.api_key_env.clone(),
            api_key_file: raw.api_key_file.as_ref().map(PathBuf::from),
            budget: Duration::from_millis(2500),
            redact_names: raw.redact_names,
        };
        if let Some(k) = &raw.api_key {
            self.error(
                Some(k.span()),
                "cloud.api_key",
                "an API key in the profile would be readable by anyone who can read the profile".into(),
                "remove it; set api_key_env = \"NAME\" (an environment variable) or api_key_file = \"/etc/cabin/cloud-key\" (mode 0600, root-owned)",
            );
        }
        if let Some(b) = &raw.budget_ms {
            if (100..=30_000).contains(b.get_ref()) {
                s.budget = Duration::from_millis(*b.get_ref());
            } else {
                self.error(
                    Some(b.span()),
                    "cloud.budget_ms",
                    format!("{} ms is outside 100..=30000", b.get_ref()),
                    "use 2500: past that the local answer is used",
                );
            }
        }
        match &raw.base_url {
            Some(u) => {
                let url = u.get_ref().trim_end_matches('/');
                if url.starts_with("https://") || url.starts_with("http://") {
                    s.base_url = url.to_string();
                } else {
                    self.error(Some(u.span()), "cloud.base_url", format!("'{url}' is not an http(s) URL"), "give the endpoint's base URL, e.g. \"https://api.example.com/v1\"");
                }
            }
            None if raw.policy != CloudPolicy::Off => self.error(
                None,
                "cloud.base_url",
                "the cloud policy is not off, but no endpoint is given".into(),
                "set base_url (an OpenAI-compatible endpoint up to /v1) and model, or policy = \"off\"",
            ),
            None => {}
        }
        if raw.policy != CloudPolicy::Off && s.model.is_empty() {
            self.error(
                None,
                "cloud.model",
                "the cloud policy is not off, but no model is named".into(),
                "set model = \"...\" to the endpoint's model name",
            );
        }
        s
    }

    fn inputs(
        &mut self,
        raw: &[Spanned<raw::RawInput>],
        types: &BTreeMap<String, SlotType>,
    ) -> Vec<Input> {
        let zones: BTreeSet<&str> = types
            .values()
            .filter_map(|t| match t {
                SlotType::Enum {
                    values,
                    zones: true,
                } => Some(values.iter().map(|v| v.key.as_str())),
                _ => None,
            })
            .flatten()
            .collect();
        let mut out: Vec<Input> = Vec::new();
        for spanned in raw {
            let input = spanned.get_ref();
            let field = format!("inputs '{}'", input.name);
            if input.name.trim().is_empty() || out.iter().any(|i| i.name == input.name) {
                self.error(
                    Some(spanned.span()),
                    &field,
                    "input names must be unique and not empty".into(),
                    "name each microphone or push-to-talk source once",
                );
                continue;
            }
            if !zones.contains(input.zone.as_str()) {
                let known: Vec<&str> = zones.iter().copied().collect();
                self.error(Some(spanned.span()), &format!("{field}.zone"), format!("'{}' is not a zone of any slot type with zones = true (known: {})", input.zone, if known.is_empty() { "none".into() } else { known.join(", ") }), "use a seat zone such as \"driver\", and mark the zone slot types with zones = true");
                continue;
            }
            out.push(Input {
                name: input.name.clone(),
                zone: input.zone.clone(),
            });
        }
        out
    }

    fn constraint(
        &mut self,
        raw: &RawWhen,
        field: &str,
        here: Option<std::ops::Range<usize>>,
    ) -> Option<Constraint> {
        let start = self.errors.len();
        if raw.gear.is_none() && raw.max_speed_kmh.is_none() && raw.parking_brake.is_none() {
            self.error(
                here.clone(),
                field,
                "the constraint sets no condition".into(),
                "set gear, max_speed_kmh or parking_brake, or remove [intents.when]",
            );
        }
        if raw.gear.as_ref().is_some_and(Vec::is_empty) {
            self.error(
                here.clone(),
                &format!("{field}.gear"),
                "no gear is allowed, so the intent could never run".into(),
                "list the gears it may run in, e.g. [\"park\"]",
            );
        }
        if let Some(s) = raw.max_speed_kmh {
            if !(0.0..=400.0).contains(&s) {
                self.error(
                    here.clone(),
                    &format!("{field}.max_speed_kmh"),
                    format!("{s} km/h is not a plausible speed limit"),
                    "use a speed between 0 and 400",
                );
            }
        }
        if raw.refusal.trim().is_empty() {
            self.error(here, &format!("{field}.refusal"), "the refusal is empty".into(), "say why the driver can't do it now, e.g. \"I can only open the boot when the car is parked.\"");
        }
        (self.errors.len() == start).then(|| Constraint {
            gear: raw.gear.clone(),
            max_speed_kmh: raw.max_speed_kmh,
            parking_brake: raw.parking_brake,
            refusal: raw.refusal.clone(),
        })
    }
}

fn check_slot_fits(slot: &SlotType, ty: DbusType) -> Result<(), String> {
    match slot {
        SlotType::Enum { .. } | SlotType::Text { .. } if ty == DbusType::String => Ok(()),
        SlotType::Enum { .. } | SlotType::Text { .. } => Err("the slot holds text".into()),
        SlotType::Decimal { .. } if ty == DbusType::Double => Ok(()),
        SlotType::Decimal { .. } => Err("the slot holds decimals, which need 'd'".into()),
        SlotType::Integer { min, max, .. } => {
            if ty == DbusType::Double {
                return Ok(());
            }
            let Some((lo, hi)) = ty.integer_range() else {
                return Err("the slot holds numbers".into());
            };
            if (*min as f64) < lo || (*max as f64) > hi {
                return Err(format!("the slot range {min}..={max} does not fit"));
            }
            Ok(())
        }
    }
}

fn default_value(ty: &SlotType, value: &toml::Value) -> Result<SlotValue, String> {
    match (ty, value) {
        (SlotType::Enum { values, .. }, toml::Value::String(s)) => {
            ty.value_for_key(s).ok_or_else(|| {
                let keys: Vec<&str> = values.iter().map(|v| v.key.as_str()).collect();
                format!("'{s}' is not one of {}", keys.join(", "))
            })
        }
        (SlotType::Integer { min, max, .. }, toml::Value::Integer(n))
            if (*min..=*max).contains(n) =>
        {
            Ok(SlotValue::Number(*n as f64))
        }
        (SlotType::Decimal { min, max, .. }, toml::Value::Float(f))
            if (*min..=*max).contains(f) =>
        {
            Ok(SlotValue::Number(*f))
        }
        (SlotType::Decimal { min, max, .. }, toml::Value::Integer(n))
            if (*min..=*max).contains(&(*n as f64)) =>
        {
            Ok(SlotValue::Number(*n as f64))
        }
        (SlotType::Text { .. }, toml::Value::String(s)) if !s.trim().is_empty() => {
            Ok(SlotValue::Text(s.clone()))
        }
        (_, v) => Err(format!(
            "{v} is not a valid value for this slot (wrong type or out of range)"
        )),
    }
}

/// The `{name}` placeholders of a reply or argument template.
pub fn placeholders(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        out.push(after[..close].trim().to_string());
        rest = &after[close + 1..];
    }
    out
}

fn action_slots(a: &Action) -> Vec<String> {
    let specs: Vec<&ArgSpec> = match &a.kind {
        ActionKind::Call { args, .. } => args.iter().collect(),
        ActionKind::SetProperty { value, .. } => vec![value],
        ActionKind::GetProperty { .. } => vec![],
    };
    specs
        .into_iter()
        .flat_map(|s| match &s.source {
            ArgSource::Slot(n) => vec![n.clone()],
            ArgSource::Format(f) => placeholders(f),
            ArgSource::Literal(_) => vec![],
        })
        .collect()
}

fn render_expansion(e: &[Element]) -> String {
    e.iter()
        .map(|el| match el {
            Element::Literal(w) => w.clone(),
            Element::Slot(s) => format!("{{{}}}", s.name),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests;
