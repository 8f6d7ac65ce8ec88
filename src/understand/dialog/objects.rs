//! Evidence that the words name what an intent acts on, from the profile's own words: the
//! words its sentences always say (not their optional ones: "in the car" only says where) and
//! its slot values, less those that intents of another vehicle interface use ("boot",
//! "tailgate"; not "open", not "driver"), and what the car lacks
//! (`[[lacks]]`). A model picks the nearest intent it is offered: "open the driver door",
//! "unlock the doors" and "unlock the car" opened the boot.

use crate::profile::{Lack, Profile, SlotType};
use std::collections::{HashMap, HashSet};

pub(super) struct Objects {
    /// Intent index → the words that name what it acts on.
    own: Vec<HashSet<String>>,
    lacks: Vec<Lack>,
}

/// What the words of a request name.
struct Named<'l, 'w> {
    /// The first thing the car lacks that they name.
    lack: Option<&'l Lack>,
    /// Their words outside what the car lacks ("fog lights" is no word of the cabin lights).
    rest: Vec<&'w str>,
}

impl Objects {
    pub(super) fn new(profile: &Profile) -> Objects {
        let words: Vec<HashSet<String>> = profile
            .intents
            .iter()
            .map(|intent| {
                let mut words: HashSet<String> = intent
                    .sentences
                    .iter()
                    .flat_map(|t| t.required_words())
                    .collect();
                for type_name in intent.slots.values() {
                    if let Some(SlotType::Enum { values, .. }) = profile.slot_types.get(type_name) {
                        words.extend(
                            values
                                .iter()
                                .flat_map(|v| v.synonyms.iter().flatten().cloned()),
                        );
                    }
                }
                words
            })
            .collect();
        // Each word with the interfaces whose intents say it.
        let mut devices: HashMap<&str, HashSet<(&str, &str, &str)>> = HashMap::new();
        for (intent, words) in profile.intents.iter().zip(&words) {
            let a = &intent.action;
            for w in words {
                devices.entry(w.as_str()).or_default().insert((
                    a.service.as_str(),
                    a.path.as_str(),
                    a.interface.as_str(),
                ));
            }
        }
        let own = words
            .iter()
            .map(|words| {
                words
                    .iter()
                    .filter(|w| devices.get(w.as_str()).is_some_and(|d| d.len() == 1))
                    .cloned()
                    .collect()
            })
            .collect();
        Objects {
            own,
            lacks: profile.lacks.clone(),
        }
    }

    /// The reply for words that name something the car lacks and nothing any intent acts on,
    /// before any model is asked.
    pub(super) fn lacked(&self, tokens: &[String]) -> Option<&Lack> {
        let named = self.named(tokens);
        let lack = named.lack?;
        let acts_on = named
            .rest
            .iter()
            .any(|w| self.own.iter().any(|own| own.contains(*w)));
        (!acts_on).then_some(lack)
    }

    /// What the car lacks that the words name, where they name nothing `intent` acts on: a
    /// model's pick that must not act ("open the driver door" is not the boot).
    pub(super) fn unfounded(&self, tokens: &[String], intent: usize) -> Option<&Lack> {
        let named = self.named(tokens);
        let lack = named.lack?;
        let own = &self.own[intent];
        (!named.rest.iter().any(|w| own.contains(*w))).then_some(lack)
    }

    fn named<'w>(&self, tokens: &'w [String]) -> Named<'_, 'w> {
        let mut lack = None;
        let mut rest = Vec::new();
        let mut i = 0;
        while i < tokens.len() {
            // The longest phrase of what the car lacks that starts here.
            let found = self
                .lacks
                .iter()
                .flat_map(|l| l.words.iter().map(move |w| (l, w)))
                .filter(|(_, w)| tokens[i..].starts_with(w))
                .max_by_key(|(_, w)| w.len());
            match found {
                Some((l, w)) => {
                    lack = lack.or(Some(l));
                    i += w.len();
                }
                None => {
                    rest.push(tokens[i].as_str());
                    i += 1;
                }
            }
        }
        Named { lack, rest }
    }

    #[cfg(test)]
    pub(super) fn of(&self, intent: usize) -> &HashSet<String> {
        &self.own[intent]
    }
}
