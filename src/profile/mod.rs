//! Vehicle/OEM profiles: loaded raw (`raw.rs`, serde), validated once ([`validate`]) into the
//! typed sections and intents here, so that the rest of Cabin never sees a string it has to
//! re-check. The lowest room above `runtime`: every stage reads its own section.

pub mod dbus_value;
mod error;
mod intents;
mod load;
mod raw;
mod sections;
pub mod sentences;
pub mod template;
mod validate;

pub use error::{LoadError, ProfileError};
pub use intents::*;
pub use sections::*;

use crate::text::Lexicon;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The profile compiled into the binary, used when no `--profile` is given.
pub const DEFAULT_PROFILE_TOML: &str = include_str!("../../profiles/default.toml");
pub const DEFAULT_PROFILE_NAME: &str = "profiles/default.toml (embedded)";

/// Cabin's own bus name (and interface): no profile may name it as a vehicle service.
pub const ASSISTANT_SERVICE: &str = "org.cabin.Assistant1";

/// The bus's own name, whose interfaces (`org.freedesktop.DBus.*`) no profile may call.
pub const BUS_NAME: &str = "org.freedesktop.DBus";

/// A validated profile.
#[derive(Debug, Clone)]
pub struct Profile {
    pub file: String,
    pub name: String,
    pub language: String,
    /// The words of `language` the code reads sentences by, shared by every stage.
    pub lexicon: Arc<Lexicon>,
    pub description: String,
    pub persona: Persona,
    pub models: Models,
    pub audio: AudioDevices,
    pub llm: LlmSettings,
    pub cloud: CloudSettings,
    pub vehicle: VehicleSettings,
    pub dialog: DialogSettings,
    pub listen: ListenSettings,
    pub speech: SpeechSettings,
    pub inputs: Vec<InputZone>,
    pub slot_types: BTreeMap<String, SlotType>,
    pub intents: Vec<Intent>,
    pub small_talk: Vec<SmallTalk>,
    pub classifier: ClassifierSettings,
    pub lacks: Vec<Lack>,
    /// The rules over the model routes' proposals left out (`[rules] off`).
    pub rules_off: std::collections::BTreeSet<Rule>,
}

#[cfg(test)]
mod tests;
