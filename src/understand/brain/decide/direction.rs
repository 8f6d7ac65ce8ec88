//! Which way a command goes, from the profile's own words: a model that picks one of a pair
//! of opposites often has the topic right and the direction wrong ("turn off my desk lamp"
//! switched the lights on; "make a room darker" brightened them), while the words that tell
//! the pair apart ("off", "down", "quieter") are plain in the sentence.

use crate::profile::{Profile, Rule};
use crate::text::{lexicon, tokenize_with, Lexicon};
use crate::understand::grammar::Matcher;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// Each intent's own words (of its sentences, never of its opposite's) and, of those, its
/// direction words: the comparatives ("darker", "louder": a direction whatever the topic) and
/// the ones that tell apart at least [`PAIRS`] pairs of opposites. That keeps
/// "on", "off", "up", "down", "lower", "stop" and leaves out the words of one pair's topic or
/// phrasing: "warm" is the seat heating's (on) and the climate's (too warm: cooler), and "warm
/// up the car" wants it warmer; "please" happened to be in one intent's sentences only.
#[derive(Debug)]
pub(super) struct Directions {
    own: HashMap<String, BTreeSet<String>>,
    direction: HashMap<String, BTreeSet<String>>,
    /// Intent → the intent that does the reverse.
    opposites: HashMap<String, String>,
    /// The profile language's words: "too", "no more", "off", its comparatives.
    lexicon: Arc<Lexicon>,
}

/// In how many pairs of opposites a word must tell the two apart to be one of direction.
const PAIRS: usize = 3;

impl Directions {
    /// From `profile`'s opposites and the words of its sentences, as `commands` (the profile's
    /// matcher) holds them.
    pub(super) fn new(profile: &Profile, commands: &Matcher) -> Directions {
        let lexicon = profile.lexicon.clone();
        let language = &lexicon.directions;
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
                    .filter(|w| {
                        pairs.values().filter(|p| p.contains(w)).count() >= PAIRS
                            || comparative(w, language)
                            || language.words.contains(w)
                    })
                    .cloned()
                    .collect();
                (intent.clone(), kept)
            })
            .collect();
        Directions {
            own,
            direction,
            opposites,
            lexicon,
        }
    }

    /// The intent that does the reverse of `intent`, if it has one.
    pub(super) fn opposite(&self, intent: &str) -> Option<&String> {
        self.opposites.get(intent)
    }

    /// `intent`'s opposite where the words say "no more" and the opposite switches off
    /// ([`Rule::NoMore`]), say "too" before a word whose comparative is `intent`'s own ("too
    /// loud" picked louder, "too bright" brighter: [`Rule::Too`]), or say one of the opposite's
    /// direction words and none of `intent`'s own ("open it up" stays open:
    /// [`Rule::OppositeWords`]); else `intent`. The first of them that is on and fires decides,
    /// and is returned with it.
    pub(super) fn of<'a>(
        &'a self,
        text: &str,
        intent: &'a str,
        off: &BTreeSet<Rule>,
    ) -> (&'a str, Option<Rule>) {
        let Some(opposite) = self.opposites.get(intent) else {
            return (intent, None);
        };
        let tokens = self.norms(text);
        let fired = [Rule::NoMore, Rule::Too, Rule::OppositeWords]
            .into_iter()
            .filter(|rule| !off.contains(rule))
            .find(|rule| match rule {
                Rule::NoMore => self.no_more(&tokens, opposite),
                Rule::Too => self.too_much(&tokens, intent),
                _ => self.opposite_words(tokens.iter().cloned().collect(), intent, opposite),
            });
        match fired {
            Some(rule) => {
                tracing::debug!("direction: {rule} turns {intent} to {opposite}");
                (opposite, Some(rule))
            }
            None => (intent, None),
        }
    }

    /// "no more seat heat": switching off, whatever words of the pick's follow.
    fn no_more(&self, tokens: &[String], opposite: &str) -> bool {
        let words = &self.lexicon.directions;
        let no_more = words.no_more.iter().any(|phrase| {
            let phrase = self.norms(phrase);
            !phrase.is_empty() && tokens.windows(phrase.len()).any(|w| w == phrase)
        });
        no_more
            && self
                .direction
                .get(opposite)
                .is_some_and(|d| words.off.iter().any(|off| d.contains(off)))
    }

    /// "too" before a word whose comparative is one of `intent`'s own words.
    fn too_much(&self, tokens: &[String], intent: &str) -> bool {
        let words = &self.lexicon.directions;
        self.own.get(intent).is_some_and(|own| {
            tokens.windows(2).any(|w| {
                words.too.contains(&w[0])
                    && !own.contains(&w[1])
                    && comparatives(&w[1], &words.comparative_suffix).any(|c| own.contains(&c))
            })
        })
    }

    /// A direction word of `opposite` said, and none of `intent`'s own words.
    fn opposite_words(&self, said: BTreeSet<String>, intent: &str, opposite: &str) -> bool {
        let says = |words: &HashMap<String, BTreeSet<String>>, name: &str| {
            words
                .get(name)
                .is_some_and(|w| w.intersection(&said).next().is_some())
        };
        says(&self.direction, opposite) && !says(&self.own, intent)
    }

    /// The classifier's side of a pair where the local model picked the other and the words
    /// say neither the model's own words nor any direction: the small model, trained on the
    /// profile's sentences, has the direction right more often than a model that follows
    /// surface words ("the front glass is misty" → defrost off, "I can barely hear" → quieter).
    pub(super) fn sided<'a>(
        &'a self,
        text: &str,
        picked: &'a str,
        classified: Option<&'a str>,
    ) -> &'a str {
        let Some(classified) = classified else {
            return picked;
        };
        if self.opposites.get(classified).map(String::as_str) != Some(picked) {
            return picked;
        }
        // Its own words, or a direction whichever the pair ("lower the heat", "bring it down").
        let words = self.norms(text);
        let own = self.own.get(picked);
        let says = words.iter().any(|w| {
            own.is_some_and(|own| own.contains(w)) || self.direction.values().any(|d| d.contains(w))
        });
        if says {
            return picked;
        }
        tracing::debug!("direction: the classifier's {classified}, not {picked}");
        classified
    }

    /// The normalised words of `text`, numbers read in the profile language's words.
    fn norms(&self, text: &str) -> Vec<String> {
        tokenize_with(text, &self.lexicon.numbers)
            .into_iter()
            .map(|t| t.norm)
            .collect()
    }

    #[cfg(test)]
    pub(super) fn words_of(&self, intent: &str) -> Vec<&str> {
        self.direction
            .get(intent)
            .map(|w| w.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

/// Whether an own word reads as a comparative: "darker", "quieter", "colder" (not "up"); none
/// where the language makes no comparatives with an ending.
fn comparative(word: &str, words: &lexicon::Directions) -> bool {
    let suffix = &words.comparative_suffix;
    !suffix.is_empty()
        && word.len() >= words.comparative_min_letters
        && word.ends_with(suffix.as_str())
}

/// The comparative forms an ending `suffix` makes of `adjective` (English "er": loud → louder,
/// loose → looser, hot → hotter, noisy → noisier); none without one.
fn comparatives<'a>(adjective: &'a str, suffix: &'a str) -> impl Iterator<Item = String> + 'a {
    let last = adjective.chars().last();
    let first = suffix.chars().next();
    let forms = [
        Some(format!("{adjective}{suffix}")),
        (last.is_some() && last == first)
            .then(|| format!("{adjective}{}", &suffix[first.map_or(0, char::len_utf8)..])),
        last.map(|c| format!("{adjective}{c}{suffix}")),
        adjective
            .strip_suffix('y')
            .map(|stem| format!("{stem}i{suffix}")),
    ];
    forms
        .into_iter()
        .flatten()
        .filter(move |_| !suffix.is_empty())
}
