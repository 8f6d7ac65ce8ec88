//! Which way a command goes, from the profile's own words: a model that picks one of a pair
//! of opposites often has the topic right and the direction wrong ("turn off my desk lamp"
//! switched the lights on; "make a room darker" brightened them), while the words that tell
//! the pair apart ("off", "down", "quieter") are plain in the sentence.

use crate::profile::Profile;
use crate::understand::grammar::Matcher;
use std::collections::{BTreeSet, HashMap};

/// Each intent's own words (of its sentences, never of its opposite's) and, of those, its
/// direction words: the ones that tell apart at least [`PAIRS`] pairs of opposites. That keeps
/// "on", "off", "up", "down", "lower", "stop" and leaves out the words of one pair's topic or
/// phrasing: "warm" is the seat heating's (on) and the climate's (too warm: cooler), and "warm
/// up the car" wants it warmer; "please" happened to be in one intent's sentences only.
#[derive(Debug)]
pub(super) struct Directions {
    own: HashMap<String, BTreeSet<String>>,
    direction: HashMap<String, BTreeSet<String>>,
    /// Intent → the intent that does the reverse.
    opposites: HashMap<String, String>,
}

/// In how many pairs of opposites a word must tell the two apart to be one of direction.
const PAIRS: usize = 3;

impl Directions {
    /// From `profile`'s opposites and the words of its sentences, as `commands` (the profile's
    /// matcher) holds them.
    pub(super) fn new(profile: &Profile, commands: &Matcher) -> Directions {
        let mut literals: HashMap<&str, BTreeSet<String>> = HashMap::new();
        for (intent, word) in commands.literals() {
            literals
                .entry(profile.intents[intent].name.as_str())
                .or_default()
                .insert(word.to_string());
        }
        let opposites: HashMap<String, String> = profile
            .intents
            .iter()
            .filter_map(|i| Some((i.name.clone(), i.opposite.clone()?)))
            .collect();
        let own: HashMap<String, BTreeSet<String>> = opposites
            .iter()
            .map(|(intent, opposite)| {
                let words = match (
                    literals.get(intent.as_str()),
                    literals.get(opposite.as_str()),
                ) {
                    (Some(a), Some(b)) => a.difference(b).cloned().collect(),
                    _ => BTreeSet::new(),
                };
                (intent.clone(), words)
            })
            .collect();
        // Each pair once (by the lesser of its two names), with the words that tell it apart.
        let mut pairs: HashMap<&str, BTreeSet<&String>> = HashMap::new();
        for (intent, words) in &own {
            let pair = intent.as_str().min(opposites[intent].as_str());
            pairs.entry(pair).or_default().extend(words);
        }
        let direction = own
            .iter()
            .map(|(intent, words)| {
                let kept = words
                    .iter()
                    .filter(|w| pairs.values().filter(|p| p.contains(w)).count() >= PAIRS)
                    .cloned()
                    .collect();
                (intent.clone(), kept)
            })
            .collect();
        Directions {
            own,
            direction,
            opposites,
        }
    }

    /// The intent that does the reverse of `intent`, if it has one.
    pub(super) fn opposite(&self, intent: &str) -> Option<&String> {
        self.opposites.get(intent)
    }

    /// `intent`'s opposite where the words say one of the opposite's direction words and none
    /// of `intent`'s own words ("open it up" stays open), else `intent`.
    pub(super) fn of<'a>(&'a self, text: &str, intent: &'a str) -> &'a str {
        let Some(opposite) = self.opposites.get(intent) else {
            return intent;
        };
        let said: BTreeSet<String> = crate::text::tokenize(text)
            .into_iter()
            .map(|t| t.norm)
            .collect();
        let says = |words: &HashMap<String, BTreeSet<String>>, name: &str| {
            words
                .get(name)
                .is_some_and(|w| w.intersection(&said).next().is_some())
        };
        if says(&self.direction, opposite) && !says(&self.own, intent) {
            tracing::debug!("direction: the words say {opposite}, not {intent}");
            return opposite;
        }
        intent
    }

    #[cfg(test)]
    pub(super) fn words_of(&self, intent: &str) -> Vec<&str> {
        self.direction
            .get(intent)
            .map(|w| w.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }
}
