//! The dialog's small readers and writers of words: yes or no, a model's JSON argument as a
//! slot value, a value out of range said as a sentence.

use crate::profile::{SlotType, SlotValue};
use crate::text::{format_number, tokenize_with, Lexicon};

pub(super) fn unit_of(ty: &SlotType) -> &str {
    match ty {
        SlotType::Integer { unit, .. } | SlotType::Decimal { unit, .. } => unit,
        _ => "",
    }
}

pub(super) fn lowercase_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Yes, no, or neither, for a confirmation question: the whole answer, without its fillers
/// and the assistant's `name`, is one of the lexicon's yes or no phrases.
pub fn yes_or_no(text: &str, lexicon: &Lexicon, name: &str) -> Option<bool> {
    let norms = |text: &str| -> Vec<String> {
        tokenize_with(text, &lexicon.numbers)
            .into_iter()
            .map(|t| t.norm)
            .collect()
    };
    let name = norms(name);
    let words: Vec<String> = norms(text)
        .into_iter()
        .filter(|w| !lexicon.fillers.around_answers.contains(w) && !name.contains(w))
        .collect();
    let is = |phrases: &[String]| phrases.iter().any(|p| norms(p) == words);
    if is(&lexicon.answers.yes) {
        Some(true)
    } else if is(&lexicon.answers.no) {
        Some(false)
    } else {
        None
    }
}

/// A model's JSON argument as a slot value of `ty`, or None if it is not one.
pub(super) fn slot_from_json(ty: &SlotType, value: &serde_json::Value) -> Option<SlotValue> {
    match (ty, value) {
        (SlotType::Enum { .. }, serde_json::Value::String(s)) => ty.value_for_key(s),
        (SlotType::Integer { .. }, serde_json::Value::Number(n)) => n
            .as_f64()
            .filter(|v| v.fract() == 0.0)
            .map(SlotValue::Number),
        (SlotType::Decimal { .. }, serde_json::Value::Number(n)) => {
            n.as_f64().map(SlotValue::Number)
        }
        (SlotType::Text { max_words, .. }, serde_json::Value::String(s)) => {
            let words = s.split_whitespace().count();
            (1..=*max_words)
                .contains(&words)
                .then(|| SlotValue::Text(s.trim().to_string()))
        }
        _ => None,
    }
}

pub(super) fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// A reply explaining the allowed range, when a number slot is outside it, or that a text is
/// too long to take, without saying it back.
pub(super) fn out_of_range(name: &str, ty: &SlotType, value: &SlotValue) -> Option<String> {
    if ty.admits(value) {
        return None;
    }
    let what = name.replace('_', " ");
    let (min, max, unit) = match ty {
        SlotType::Integer { min, max, unit, .. } => (*min as f64, *max as f64, unit),
        SlotType::Decimal { min, max, unit, .. } => (*min, *max, unit),
        SlotType::Text { .. } => {
            return Some(format!(
                "Sorry, that {what} is too long for me. Please say it in a few words."
            ))
        }
        SlotType::Enum { .. } => return None,
    };
    let unit = if unit.is_empty() {
        String::new()
    } else {
        format!(" {unit}")
    };
    Some(format!(
        "I can only set the {what} between {} and {}{unit}.",
        format_number(min),
        format_number(max)
    ))
}
