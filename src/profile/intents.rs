//! The profile's intents, validated: slot types and values, the vehicle action each intent
//! names, and its driving constraint.

use crate::profile::dbus_value::{ArgValue, DbusType};
use crate::profile::template::Template;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq)]
pub enum SlotType {
    /// `zones`: the values are seat zones ("my" means the speaker's).
    Enum { values: Vec<EnumValue>, zones: bool },
    Integer {
        min: i64,
        max: i64,
        unit: String,
        /// Words that say a value ("halfway", "a quarter"), each tokenized, with the value.
        words: Vec<(i64, Vec<String>)>,
    },
    Decimal {
        min: f64,
        max: f64,
        unit: String,
        /// Said digit by digit ("nine three seven") or without its point ("nine hundred and
        /// seventy one"): the grammar reads the digits into the range (93.7, 97.1).
        digits: bool,
    },
    Text {
        max_words: usize,
        /// A value longer than this is refused before any reply or question says it back: a
        /// reply echoes at most this much of the request ("call" and 160 digits).
        max_chars: usize,
    },
}

impl SlotType {
    /// Whether `value` is within the type's range (numbers) or length (text); every other
    /// value is.
    pub fn admits(&self, value: &SlotValue) -> bool {
        match (self, value) {
            (SlotType::Integer { min, max, .. }, SlotValue::Number(v)) => {
                (*min as f64..=*max as f64).contains(v)
            }
            (SlotType::Decimal { min, max, .. }, SlotValue::Number(v)) => (*min..=*max).contains(v),
            (SlotType::Text { max_chars, .. }, SlotValue::Text(t)) => {
                t.chars().count() <= *max_chars
            }
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
            SlotValue::Number(n) => crate::text::format_number(*n),
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
    /// Enum slot → value key → the reply when the slot holds that value.
    pub replies: BTreeMap<String, BTreeMap<String, String>>,
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
    /// Plain sentences for the small intent model only (indirect phrasings).
    pub examples: Vec<String>,
    /// The intent that does the reverse, declared on either of the two. Words that embed alike
    /// ("too loud", "too quiet") rank both; the shortlist offers the local model only the closer.
    pub opposite: Option<String>,
}

impl Intent {
    /// The reply template for `slots`: the one for a value they hold, else the intent's own.
    pub fn reply_for(&self, slots: &BTreeMap<String, SlotValue>) -> &str {
        self.replies
            .iter()
            .find_map(|(slot, by_value)| match slots.get(slot) {
                Some(SlotValue::Enum { key, .. }) => by_value.get(key),
                _ => None,
            })
            .map_or(&self.reply, |r| r)
    }
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

/// Vehicle-state conditions an intent needs, checked by the safety policy before each call.
#[derive(Debug, Clone)]
pub struct Constraint {
    pub gear: Option<Vec<Gear>>,
    pub max_speed_kmh: Option<f64>,
    pub parking_brake: Option<bool>,
    /// Where the conditions hold only for some calls: those whose argument is beyond a bound
    /// ("a window more than 30 percent open"). None: every call.
    pub argument: Option<ArgumentBound>,
    pub refusal: String,
}

impl Constraint {
    /// Whether the two hold under the same conditions (their refusals may be worded apart):
    /// intents that can make the same call must, or one phrasing would bypass the other's.
    pub fn same_conditions(&self, other: &Constraint) -> bool {
        let gears = |c: &Constraint| {
            c.gear
                .as_ref()
                .map(|g| g.iter().map(|g| *g as u8).collect::<BTreeSet<u8>>())
        };
        gears(self) == gears(other)
            && self.max_speed_kmh == other.max_speed_kmh
            && self.parking_brake == other.parking_brake
            && self.argument == other.argument
    }
}

/// A bound on one argument of a call, beyond which a constraint holds.
#[derive(Debug, Clone, PartialEq)]
pub struct ArgumentBound {
    /// The argument's position, from 0 (a property's value is its only argument).
    pub index: usize,
    /// The constraint holds where the argument is above this...
    pub above: Option<f64>,
    /// ...or below this.
    pub below: Option<f64>,
}

impl ArgumentBound {
    /// Whether a call with `args` is beyond the bound. An argument that is missing or no
    /// number counts as beyond it: the constraint holds (validation allows only numbers).
    pub fn holds(&self, args: &[ArgValue]) -> bool {
        let Some(v) = args.get(self.index).and_then(ArgValue::as_number) else {
            return true;
        };
        self.above.is_some_and(|a| v > a) || self.below.is_some_and(|b| v < b)
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Gear {
    Park,
    Reverse,
    Neutral,
    Drive,
}
