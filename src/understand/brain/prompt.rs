//! What the local model is shown: the persona, the instructions, each intent's phrasings, and
//! the tools generated from the profile (so no model can name a method no intent names).

use crate::profile::{Profile, SlotType};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

pub(super) fn system_prompt(p: &Profile) -> String {
    let persona = if p.persona.description.is_empty() {
        format!("You are {}, an in-car voice assistant.", p.persona.name)
    } else {
        p.persona.description.clone()
    };
    format!("{persona}\n{INSTRUCTIONS}\n{}", few_shot(p))
}

/// What the system prompt asks of the model, after the persona.
pub(super) const INSTRUCTIONS: &str = "When the driver asks the car to do something, or asks about the car's state, call the one function that does exactly that. \
    Otherwise answer: your words are spoken while driving, so one or two short sentences, no lists, no markdown, numbers in words; \
    if asked for something no function can do, say so briefly. \
    You have no internet, clock or calendar: you cannot know the weather, the time or date, the news, prices, scores or where the car is, so say you can't know that here. Never make up such facts, or who made you.";

/// "sentence -> function" lines from the profile's own templates, so the model sees indirect
/// phrasings ("its cold in here") that mean a call, not a chat.
pub(super) fn few_shot(p: &Profile) -> String {
    let mut out = String::from("What the driver says, and the function it calls:");
    for (i, intent) in p.intents.iter().enumerate() {
        for sentence in crate::profile::sentences::few_shot_sentences(p, i) {
            out.push_str(&format!("\n{sentence} -> {}", tool_name(&intent.name)));
        }
    }
    out
}

/// The tool an intent is offered as: its name with `.` as `-` (OpenAI tool names allow no `.`).
pub fn tool_name(intent: &str) -> String {
    intent.replace('.', "-")
}

/// OpenAI tools from the profile's intents (named by [`tool_name`]), and the map back to
/// intent names.
pub fn tools(p: &Profile) -> (Value, HashMap<String, String>) {
    let mut tools = Vec::new();
    let mut names = HashMap::new();
    for intent in &p.intents {
        let name = tool_name(&intent.name);
        let mut properties = Map::new();
        let mut required = Vec::new();
        for (slot, type_name) in &intent.slots {
            let Some(ty) = p.slot_types.get(type_name) else {
                continue;
            };
            properties.insert(slot.clone(), schema(ty));
            let filled = intent.defaults.contains_key(slot)
                || matches!(ty, SlotType::Enum { zones: true, .. });
            if intent.needs.contains(slot) && !filled {
                required.push(slot.clone());
            }
        }
        tools.push(json!({"type": "function", "function": {
            "name": name,
            "description": intent.description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        }}));
        names.insert(name, intent.name.clone());
    }
    (Value::Array(tools), names)
}

pub(super) fn schema(ty: &SlotType) -> Value {
    match ty {
        SlotType::Enum { values, .. } => {
            json!({"type": "string", "enum": values.iter().map(|v| v.key.clone()).collect::<Vec<_>>()})
        }
        SlotType::Integer { min, max, .. } => {
            json!({"type": "integer", "minimum": min, "maximum": max})
        }
        SlotType::Decimal { min, max, .. } => {
            json!({"type": "number", "minimum": min, "maximum": max})
        }
        SlotType::Text { max_chars, .. } => {
            json!({"type": "string", "maxLength": max_chars})
        }
    }
}
