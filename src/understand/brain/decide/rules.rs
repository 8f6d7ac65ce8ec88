//! The named rules over what a model route proposes ([`Rule`], in [`Rule::ALL`]'s order): the
//! classifier's intent and the local model's call are read against the driver's words, the
//! profile's sentences, values and lexicon. Each is a pure function of the words and the
//! candidate; a profile may leave any out (`[rules] off`), and docs/brain.md has what each
//! earns on every development set.

use super::{Brain, Slot, Thought};
use crate::profile::{Profile, Rule, SlotType, SlotValue, SPEAKER};
use crate::understand::shortlist::Ranking;
use crate::understand::turn::{same_value, Route};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// An intent's refinements, each with the slot types (name and type) only it takes.
pub(super) type Refinements = Vec<(String, Vec<(String, SlotType)>)>;

/// What a model route proposes, as the rules read it: an intent of the profile and the values
/// of its slots.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Candidate<'a> {
    pub intent: &'a str,
    pub args: Map<String, Value>,
}

impl Brain {
    /// Whether the profile runs `rule`.
    pub(super) fn on(&self, rule: Rule) -> bool {
        !self.rules_off.contains(&rule)
    }

    /// The classifier's `intent` turned the way the words say and refined by the values they
    /// say, with the rules that changed it.
    pub(super) fn classifier_call<'a>(
        &'a self,
        text: &str,
        intent: &'a str,
        fired: &mut Vec<Rule>,
    ) -> &'a str {
        let intent = self.turned(text, intent, fired);
        self.refined_noted(text, intent, fired)
    }

    /// The local model's call of `tool`, through every rule after [`Rule::Invented`] (which
    /// [`Brain::think`] asks before): on the classifier's side of a pair unless the words say
    /// the model's, turned where the words say the opposite's direction, and as the words say
    /// it ([`Brain::as_said`]).
    pub(super) fn intent(
        &self,
        route: Route,
        tool: &str,
        arguments: &str,
        text: &str,
        ranking: Option<&Ranking>,
    ) -> Thought {
        let Some(intent) = self.intents.get(tool) else {
            return Thought::Unavailable {
                why: format!("the model called '{tool}', which no profile intent offers"),
            };
        };
        let Ok(Value::Object(args)) = serde_json::from_str::<Value>(arguments) else {
            return Thought::Unavailable {
                why: format!("the model's arguments for '{tool}' are not a JSON object"),
            };
        };
        let mut fired = Vec::new();
        let mut intent = intent.as_str();
        if self.on(Rule::ClassifierSide) {
            let classified = ranking.and_then(|r| r.classified.intent.as_deref());
            let sided = self.directions.sided(text, intent, classified);
            if sided != intent {
                fired.push(Rule::ClassifierSide);
                intent = sided;
            }
        }
        let intent = self.turned(text, intent, &mut fired);
        let candidate = self.as_said(text, Candidate { intent, args }, ranking, &mut fired);
        Thought::Intent {
            route,
            intent: candidate.intent.to_string(),
            args: candidate.args,
            rules: fired,
        }
    }

    /// `intent` turned to its opposite where a direction rule fires ([`Directions::of`]).
    ///
    /// [`Directions::of`]: super::direction::Directions::of
    fn turned<'a>(&'a self, text: &str, intent: &'a str, fired: &mut Vec<Rule>) -> &'a str {
        let (turned, rule) = self.directions.of(text, intent, &self.rules_off);
        fired.extend(rule);
        turned
    }

    /// [`Brain::refined`], noting [`Rule::Refined`] where it changed the intent.
    fn refined_noted<'a>(&'a self, text: &str, intent: &'a str, fired: &mut Vec<Rule>) -> &'a str {
        let refined = self.refined(text, intent);
        if refined != intent {
            fired.push(Rule::Refined);
        }
        refined
    }

    /// The model's call as the words say it. An intent whose refinement's values the words say
    /// is that refinement ("passenger seat heat to medium": [`Rule::Refined`]), and a
    /// refinement whose own values the words do not say is the intent it refines, the closest
    /// one if several, turned the way the words say ("wind down the window" opens it; the
    /// model had it at 50 %: [`Rule::Plain`]). Every enum or number slot whose value the words
    /// say holds that value ("twenty degrees for the passenger" is 20 whatever the model
    /// wrote: [`Rule::SaidValues`]), and one the words say nothing of, with a default or a
    /// question, is left to it (the model picks a window, or the rear left zone for "it's
    /// freezing in here", that nobody named: [`Rule::UnsaidValues`]).
    fn as_said<'a>(
        &'a self,
        text: &str,
        candidate: Candidate<'a>,
        ranking: Option<&Ranking>,
        fired: &mut Vec<Rule>,
    ) -> Candidate<'a> {
        let Candidate { intent, mut args } = candidate;
        let mut intent = self.refined_noted(text, intent, fired);
        if let Some(plains) = self.plains.get(intent).filter(|_| self.on(Rule::Plain)) {
            let rank = |name: &str| {
                ranking
                    .and_then(|r| r.intents.iter().position(|(i, _)| i == name))
                    .unwrap_or(usize::MAX)
            };
            let unsaid = plains
                .iter()
                .filter(|(_, only_it_takes)| !self.says_a_value_of(text, only_it_takes))
                .min_by_key(|(plain, _)| rank(plain));
            if let Some((plain, only_it_takes)) = unsaid {
                tracing::debug!("the words say nothing only {intent} takes: {plain}");
                fired.push(Rule::Plain);
                if let Some(slots) = self.slots.get(intent) {
                    for slot in slots {
                        if only_it_takes.iter().any(|(t, _)| *t == slot.type_name) {
                            args.remove(&slot.name);
                        }
                    }
                }
                intent = self.turned(text, plain, fired);
            }
        }
        let (mut said, mut unsaid) = (false, false);
        for slot in self.slots.get(intent).into_iter().flatten() {
            if matches!(slot.ty, SlotType::Text { .. }) {
                continue;
            }
            match self.said_value(text, slot) {
                Some(value) if self.on(Rule::SaidValues) => {
                    said |= !args.get(&slot.name).is_some_and(|v| same_value(v, &value));
                    args.insert(slot.name.clone(), value);
                }
                None if (slot.asks || slot.default) && self.on(Rule::UnsaidValues) => {
                    unsaid |= args.remove(&slot.name).is_some();
                }
                _ => {}
            }
        }
        fired.extend(said.then_some(Rule::SaidValues));
        fired.extend(unsaid.then_some(Rule::UnsaidValues));
        Candidate { intent, args }
    }

    /// The value of `slot`'s type the words say, in range if one is: read by the grammar
    /// anywhere in them. The speaker's zone is no value said.
    pub(super) fn said_value(&self, text: &str, slot: &Slot) -> Option<Value> {
        let said: Vec<SlotValue> = self
            .commands
            .values_in(&slot.type_name, text)
            .into_iter()
            .filter(|v| !matches!(v, SlotValue::Enum { key, .. } if key == SPEAKER))
            .collect();
        said.iter()
            .find(|v| slot.ty.admits(v))
            .or(said.first())
            .map(SlotValue::to_json)
    }

    /// [`Rule::Invented`]: the slot of `tool`'s call whose text value has no word of the
    /// driver's `text`. Or the enum or number slot the words say no value of, where the intent
    /// has neither a default nor a question for it ("mobile" became switching the source to
    /// Bluetooth). A refinement's own values are not counted: unsaid, the call is the plainer
    /// intent's. None when the profile leaves the rule out.
    pub(super) fn invented(&self, text: &str, tool: &str, arguments: &str) -> Option<String> {
        if !self.on(Rule::Invented) {
            return None;
        }
        let args: Map<String, Value> = serde_json::from_str(arguments).ok()?;
        let said: Vec<String> = self
            .commands
            .tokenize(text)
            .into_iter()
            .map(|t| t.norm)
            .collect();
        let text_slot = self.text_slots.get(tool)?.iter().find(|slot| {
            args.get(slot.as_str())
                .and_then(Value::as_str)
                .is_some_and(|value| {
                    !self
                        .commands
                        .tokenize(value)
                        .iter()
                        .any(|word| said.contains(&word.norm))
                })
        });
        if let Some(slot) = text_slot {
            return Some(slot.clone());
        }
        let intent = self.intents.get(tool)?;
        let refines: Vec<&String> = self
            .plains
            .get(intent)
            .into_iter()
            .flatten()
            .flat_map(|(_, only_it_takes)| only_it_takes.iter().map(|(t, _)| t))
            .collect();
        self.slots
            .get(intent)?
            .iter()
            .filter(|s| !matches!(s.ty, SlotType::Text { .. }) && !s.default && !s.asks)
            .filter(|s| !refines.contains(&&s.type_name))
            .find(|s| args.contains_key(&s.name) && self.said_value(text, s).is_none())
            .map(|s| s.name.clone())
    }

    /// [`Rule::Refined`]: the refinement of `intent` whose own values the words say ("seat
    /// heating on low" sets the level), else `intent`: sentences with and without the value
    /// embed alike.
    pub(super) fn refined<'a>(&'a self, text: &str, intent: &'a str) -> &'a str {
        let Some(refinements) = self
            .refinements
            .get(intent)
            .filter(|_| self.on(Rule::Refined))
        else {
            return intent;
        };
        refinements
            .iter()
            .find(|(_, only_it_takes)| self.says_a_value_of(text, only_it_takes))
            .map_or(intent, |(refined, _)| refined.as_str())
    }

    /// [`Rule::Refined`] over the shortlist: a near intent that does what the closest one does
    /// with more said, where the words say it: "seat heater on maximum" is closest to switching
    /// the seat heating on, but "maximum" is a heat level, which only setting the level takes.
    /// The embedding ranks such pairs alike, and given both the model keeps to the plainer.
    pub(super) fn refinement<'r>(
        &self,
        text: &str,
        ranked: &[&'r (String, f32)],
    ) -> Option<&'r str> {
        if !self.on(Rule::Refined) {
            return None;
        }
        let (closest, best) = ranked.first()?;
        let refinements = self.refinements.get(closest)?;
        ranked[1..]
            .iter()
            .take_while(|r| r.1 >= best - super::REFINE_NEAR)
            .find_map(|(intent, _)| {
                let (_, only_it_takes) = refinements.iter().find(|(r, _)| r == intent)?;
                self.says_a_value_of(text, only_it_takes)
                    .then_some(intent.as_str())
            })
    }

    /// Whether the words say a value of one of `types` (type name and type) within its range.
    fn says_a_value_of(&self, text: &str, types: &[(String, SlotType)]) -> bool {
        types.iter().any(|(name, ty)| {
            let values = self.commands.values_in(name, text);
            values.iter().any(|v| ty.admits(v))
        })
    }
}

/// Each intent's refinements: the intents of the same vehicle interface that take every slot
/// type it takes and more (seat heating on → seat heating level), with the enum and number
/// slot types only they take (a text slot's value cannot be told from other words). An intent
/// without slots has none: every intent of its interface would be one ("turn the climate on"
/// and "defrost the front").
pub(super) fn refinements(profile: &Profile) -> HashMap<String, Refinements> {
    let types = |i: &crate::profile::Intent| -> Vec<String> { i.slots.values().cloned().collect() };
    let mut out: HashMap<String, Refinements> = HashMap::new();
    for plain in profile.intents.iter().filter(|i| !i.slots.is_empty()) {
        let plain_types = types(plain);
        for other in &profile.intents {
            let (a, b) = (&plain.action, &other.action);
            let same_interface =
                (&a.service, &a.path, &a.interface) == (&b.service, &b.path, &b.interface);
            let other_types = types(other);
            if other.name == plain.name
                || !same_interface
                || !plain_types.iter().all(|t| other_types.contains(t))
            {
                continue;
            }
            let only_it_takes: Vec<(String, SlotType)> = other_types
                .iter()
                .filter(|t| !plain_types.contains(t))
                .filter_map(|t| Some((t.clone(), profile.slot_types.get(t)?.clone())))
                .filter(|(_, ty)| !matches!(ty, SlotType::Text { .. }))
                .collect();
            if !only_it_takes.is_empty() {
                out.entry(plain.name.clone())
                    .or_default()
                    .push((other.name.clone(), only_it_takes));
            }
        }
    }
    out
}

/// `refinements` turned round: each refinement with the intents it refines and the slot types
/// only it takes of each.
pub(super) fn plains(refinements: &HashMap<String, Refinements>) -> HashMap<String, Refinements> {
    let mut out: HashMap<String, Refinements> = HashMap::new();
    for (plain, refined) in refinements {
        for (refinement, only_it_takes) in refined {
            out.entry(refinement.clone())
                .or_default()
                .push((plain.clone(), only_it_takes.clone()));
        }
    }
    // The same order on every start, whatever the map's.
    out.values_mut()
        .for_each(|p| p.sort_by(|a, b| a.0.cmp(&b.0)));
    out
}

#[cfg(test)]
mod tests;
