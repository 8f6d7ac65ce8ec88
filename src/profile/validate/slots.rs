//! Slot types checked: enums and their synonyms, numbers and their ranges, text, defaults.

use super::Validator;
use crate::profile::raw::RawSlotType;
use crate::profile::*;
use crate::text::tokenize_with;
use std::collections::BTreeMap;

impl Validator<'_> {
    pub(super) fn slot_type(
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
                        let t: Vec<String> = tokenize_with(syn, &self.lexicon.numbers)
                            .into_iter()
                            .map(|t| t.norm)
                            .collect();
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
            RawSlotType::Integer {
                min,
                max,
                unit,
                words,
            } => {
                if min > max {
                    self.error(
                        Some(span),
                        &field,
                        format!("min {min} is larger than max {max}"),
                        "swap min and max",
                    );
                    return None;
                }
                let mut said = Vec::new();
                for (value, phrases) in words {
                    let at = format!("{field}.words.{value}");
                    let Some(n) = value
                        .parse::<i64>()
                        .ok()
                        .filter(|n| (*min..=*max).contains(n))
                    else {
                        self.error(
                            Some(span.clone()),
                            &at,
                            format!("'{value}' is not a whole number within {min}..={max}"),
                            "key each list of words by the value they say, e.g. 50 = [\"halfway\"]",
                        );
                        continue;
                    };
                    for phrase in phrases {
                        let toks: Vec<String> = tokenize_with(phrase, &self.lexicon.numbers)
                            .into_iter()
                            .map(|t| t.norm)
                            .collect();
                        if toks.is_empty() {
                            self.error(
                                Some(span.clone()),
                                &at,
                                format!("'{phrase}' has no words"),
                                "write the words drivers say for the value",
                            );
                            continue;
                        }
                        said.push((n, toks));
                    }
                }
                // Longest first, so "three quarters" wins over "quarters".
                said.sort_by_key(|(_, t)| std::cmp::Reverse(t.len()));
                Some(SlotType::Integer {
                    min: *min,
                    max: *max,
                    unit: unit.clone(),
                    words: said,
                })
            }
            RawSlotType::Decimal {
                min,
                max,
                unit,
                digits,
            } => {
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
                    digits: *digits,
                })
            }
            RawSlotType::Text {
                max_words,
                max_chars,
            } => {
                if !(1..=12).contains(max_words) {
                    self.error(
                        Some(span),
                        &field,
                        format!("max_words = {max_words} is outside 1..=12"),
                        "use a small number of words, e.g. 6",
                    );
                    return None;
                }
                let max_chars = max_chars.unwrap_or(max_words * CHARS_A_WORD);
                if !(1..=MAX_TEXT_CHARS).contains(&max_chars) {
                    self.error(
                        Some(span),
                        &field,
                        format!("max_chars = {max_chars} is outside 1..={MAX_TEXT_CHARS}"),
                        "a reply says the value back: keep it short, e.g. 48",
                    );
                    return None;
                }
                Some(SlotType::Text {
                    max_words: *max_words,
                    max_chars,
                })
            }
        }
    }
}

/// A text value's characters a word, unless the profile says `max_chars`.
const CHARS_A_WORD: usize = 12;

/// The most characters a text slot may allow: its value is said back in replies.
const MAX_TEXT_CHARS: usize = 120;

pub(super) fn default_value(ty: &SlotType, value: &toml::Value) -> Result<SlotValue, String> {
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
