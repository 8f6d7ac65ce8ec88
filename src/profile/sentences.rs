//! The profile's sentences written out: its templates expanded and their slots filled, for
//! the shortlist, the speech recogniser's prompt, the local model's examples and the checks
//! that every intent is reachable.

use crate::profile::template::Element;
use crate::profile::{Profile, SlotType};
use crate::text::{format_number, join_words};

/// One sentence per template expansion of every intent, each slot filled with a value of its
/// type (first enum synonym, mid-range number, "Alex" for text), paired with the intent index.
/// Used to check reachability and to benchmark the matcher over the whole profile.
pub fn example_sentences(profile: &Profile) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, intent) in profile.intents.iter().enumerate() {
        for t in &intent.sentences {
            for e in t.expand().unwrap_or_default() {
                out.push((i, render(profile, &e)));
            }
        }
    }
    out
}

/// Sentences of each of an intent's templates, in expansion order, for the semantic shortlist:
/// each expansion once per value of its enum slots (up to `variants`), numbers mid-range, and a
/// free-text slot as "a" and its type's name ("navigate to a place"), which says what it holds.
pub fn template_sentences(profile: &Profile, intent: usize, variants: usize) -> Vec<Vec<String>> {
    profile.intents[intent]
        .sentences
        .iter()
        .map(|t| {
            let mut out: Vec<String> = Vec::new();
            for e in t.expand().unwrap_or_default() {
                for pick in 0..variants {
                    let s = render_with(profile, &e, Fill::Variant(pick));
                    if !out.contains(&s) {
                        out.push(s);
                    }
                }
            }
            out
        })
        .collect()
}

/// The shortest sentence of each of an intent's templates, a text slot shown as its name
/// ("navigate to <place>"): the few-shot examples that show the local model the intent's
/// phrasings, indirect ones ("its cold in here") included. A name there would be copied into
/// calls and answers ("drive the car for me" became a route to Alex).
pub fn few_shot_sentences(profile: &Profile, intent: usize) -> Vec<String> {
    profile.intents[intent]
        .sentences
        .iter()
        .filter_map(|t| {
            t.expand()
                .unwrap_or_default()
                .iter()
                .map(|e| render_with(profile, e, Fill::Placeholder))
                .min_by_key(|s| s.len())
        })
        .collect()
}

fn render(profile: &Profile, expansion: &[Element]) -> String {
    render_with(profile, expansion, Fill::Example)
}

/// How a rendered sentence fills its slots.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fill {
    /// Enum slots with their first value, text slots with "Alex".
    Example,
    /// Enum slots with value `n` (cycling), a text slot as "a" and its type's name ("a place").
    Variant(usize),
    /// Enum slots with their first value, a text slot as its name ("<place>").
    Placeholder,
}

/// Numbers are always mid-range.
fn render_with(profile: &Profile, expansion: &[Element], fill: Fill) -> String {
    let words: Vec<String> = expansion
        .iter()
        .map(|el| match el {
            Element::Literal(w) => w.clone(),
            Element::Slot(s) => match (&profile.slot_types[&s.type_name], fill) {
                (SlotType::Enum { values, .. }, Fill::Variant(n)) => join_words(
                    values[n % values.len()].synonyms[0]
                        .iter()
                        .map(String::as_str),
                ),
                (SlotType::Enum { values, .. }, _) => {
                    join_words(values[0].synonyms[0].iter().map(String::as_str))
                }
                (SlotType::Text { .. }, Fill::Example) => "Alex".to_string(),
                (SlotType::Text { .. }, Fill::Variant(_)) => {
                    format!("a {}", s.type_name.replace('_', " "))
                }
                (SlotType::Text { .. }, Fill::Placeholder) => format!("<{}>", s.name),
                (SlotType::Integer { min, max, .. }, _) => ((min + max) / 2).to_string(),
                (SlotType::Decimal { min, max, .. }, _) => {
                    format_number(((min + max) / 2.0).round())
                }
            },
        })
        .collect();
    join_words(words.iter().map(String::as_str))
}
