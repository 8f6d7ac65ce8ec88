//! Intents checked: their sentences, slots, replies, confirmation, driving constraint and
//! opposites.

use super::slots::default_value;
use super::Validator;
use crate::profile::dbus_value::DbusType;
use crate::profile::raw::{RawAction, RawArgumentBound, RawIntent, RawWhen};
use crate::profile::template::{Element, Template};
use crate::profile::*;
use std::collections::{BTreeMap, BTreeSet};

impl Validator<'_> {
    /// Checks each declared opposite and declares it on the other intent too; `names` are all
    /// the intents' names.
    pub(super) fn opposites(
        &mut self,
        raw: &[toml::Spanned<RawIntent>],
        names: &BTreeSet<String>,
        intents: &mut [Intent],
    ) {
        let mut pairs: BTreeMap<String, String> = BTreeMap::new();
        for spanned in raw {
            let (name, Some(opposite)) = (&spanned.get_ref().name, &spanned.get_ref().opposite)
            else {
                continue;
            };
            let here = Some(spanned.span());
            let field = format!("intent '{name}'.opposite");
            if opposite == name {
                self.error(
                    here,
                    &field,
                    "an intent cannot be its own opposite".into(),
                    "name the intent that does the reverse, or remove opposite",
                );
            } else if !names.contains(opposite) {
                self.error(
                    here,
                    &field,
                    format!("there is no intent '{opposite}'"),
                    "name an intent of this profile, or remove opposite",
                );
            } else if let Some(other) = pairs.get(name).filter(|o| *o != opposite) {
                self.error(
                    here,
                    &field,
                    format!("'{other}' already names '{name}' as its opposite"),
                    "an intent has one opposite: make the two declarations agree",
                );
            } else if let Some(other) = pairs.get(opposite).filter(|o| *o != name) {
                self.error(
                    here,
                    &field,
                    format!("'{opposite}' already has the opposite '{other}'"),
                    "an intent has one opposite: make the two declarations agree",
                );
            } else {
                pairs.insert(name.clone(), opposite.clone());
                pairs.insert(opposite.clone(), name.clone());
            }
        }
        for intent in intents {
            intent.opposite = pairs.get(&intent.name).cloned();
        }
    }

    pub(super) fn intent(
        &mut self,
        raw: &RawIntent,
        span: std::ops::Range<usize>,
        types: &BTreeMap<String, SlotType>,
    ) -> Option<Intent> {
        let here = Some(span.clone());
        let name = &raw.name;
        let start = self.errors.len();
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
        if !valid_name {
            self.error(
                here.clone(),
                &format!("intent '{name}'.name"),
                "an intent name may hold only lower-case letters, digits, '_' and '.'".into(),
                "rename it, e.g. \"climate.set_temperature\"",
            );
        }
        let at = |field: &str| format!("intent '{name}'.{field}");

        if raw.sentences.is_empty() {
            self.error(
                here.clone(),
                &at("sentences"),
                "the intent has no sentences".into(),
                "add at least one sentence template",
            );
        }
        let mut templates = Vec::new();
        let mut slots: BTreeMap<String, String> = BTreeMap::new();
        let mut expansions: Vec<Vec<Element>> = Vec::new();
        for (i, sentence) in raw.sentences.iter().enumerate() {
            let field = at(&format!("sentences[{i}]"));
            match Template::parse(sentence) {
                Err(e) => self.error(
                    here.clone(),
                    &field,
                    format!("\"{sentence}\": {}", e.problem),
                    &e.fix,
                ),
                Ok(t) => {
                    for s in t.slots() {
                        if !types.contains_key(&s.type_name) {
                            self.error(
                                here.clone(),
                                &field,
                                format!(
                                    "\"{sentence}\" uses slot {{{}}} of unknown type '{}'",
                                    s.name, s.type_name
                                ),
                                "declare the type under [slot_types], or fix the slot name",
                            );
                        }
                        match slots.get(&s.name) {
                            Some(t) if *t != s.type_name => self.error(
                                here.clone(),
                                &field,
                                format!(
                                    "slot '{}' has type '{t}' in one sentence and '{}' in another",
                                    s.name, s.type_name
                                ),
                                "use one type per slot name",
                            ),
                            _ => {
                                slots.insert(s.name.clone(), s.type_name.clone());
                            }
                        }
                    }
                    match t.expand_with(&self.lexicon.numbers) {
                        Ok(e) => expansions.extend(e),
                        Err(e) => self.error(here.clone(), &field, e.problem, &e.fix),
                    }
                    templates.push(t);
                }
            }
        }

        if templates.len() < raw.sentences.len() {
            // Slot checks against half-parsed sentences would only repeat the parse error.
            return None;
        }

        let mut defaults = BTreeMap::new();
        for (slot, value) in &raw.defaults {
            let field = at(&format!("defaults.{slot}"));
            let Some(type_name) = slots.get(slot) else {
                self.error(
                    here.clone(),
                    &field,
                    format!("'{slot}' is not a slot of any sentence of this intent"),
                    "remove the default or use the slot in a sentence",
                );
                continue;
            };
            let Some(ty) = types.get(type_name) else {
                continue;
            };
            match default_value(ty, value) {
                Ok(v) => {
                    defaults.insert(slot.clone(), v);
                }
                Err(problem) => self.error(
                    here.clone(),
                    &field,
                    problem,
                    "give a value of the slot's type",
                ),
            }
        }

        let mut ask = BTreeMap::new();
        for (slot, question) in &raw.ask {
            let field = at(&format!("ask.{slot}"));
            if !slots.contains_key(slot) {
                self.error(
                    here.clone(),
                    &field,
                    format!("'{slot}' is not a slot of any sentence of this intent"),
                    "ask only for slots the sentences capture",
                );
            } else if question.trim().is_empty() {
                self.error(
                    here.clone(),
                    &field,
                    "the question is empty".into(),
                    "write the question, e.g. \"Which window?\"",
                );
            } else {
                ask.insert(slot.clone(), question.clone());
            }
        }
        if raw.confirm
            && raw
                .confirm_prompt
                .as_deref()
                .is_none_or(|p| p.trim().is_empty())
        {
            self.error(
                here.clone(),
                &at("confirm_prompt"),
                "confirm = true needs a question to ask".into(),
                "add confirm_prompt, e.g. \"Call {contact}?\"",
            );
        }
        for error_name in raw.errors.keys() {
            if zbus::names::ErrorName::try_from(error_name.as_str()).is_err() {
                self.error(
                    here.clone(),
                    &at(&format!("errors.\"{error_name}\"")),
                    format!("'{error_name}' is not a valid D-Bus error name"),
                    "use the full error name, e.g. \"org.example.Phone.Error.UnknownContact\"",
                );
            }
        }

        // Every slot that a reply, the action or the confirmation uses must be captured by
        // every sentence, or have a default or a question to ask for it.
        let action = self.action(&raw.action, name, here.clone(), &slots, types);
        let is_read = matches!(
            raw.action,
            RawAction::GetProperty { .. } | RawAction::Call { .. }
        );
        let replies = self.value_replies(raw, here.clone(), &slots, types);
        let mut uses: Vec<(String, String)> = placeholders(&raw.reply)
            .into_iter()
            .map(|p| (at("reply"), p))
            .collect();
        for (slot, by_value) in &raw.replies {
            for (value, reply) in by_value {
                let field = at(&format!("replies.{slot}.{value}"));
                uses.extend(placeholders(reply).into_iter().map(|p| (field.clone(), p)));
            }
        }
        if let Some(a) = &action {
            uses.extend(action_slots(a).into_iter().map(|p| (at("action"), p)));
        }
        if let Some(prompt) = &raw.confirm_prompt {
            uses.extend(
                placeholders(prompt)
                    .into_iter()
                    .map(|p| (at("confirm_prompt"), p)),
            );
        }
        for (error_name, reply) in &raw.errors {
            uses.extend(
                placeholders(reply)
                    .into_iter()
                    .map(|p| (at(&format!("errors.\"{error_name}\"")), p)),
            );
        }
        let mut needs = BTreeSet::new();
        for (field, slot) in uses {
            if slot == "result"
                && is_read
                && (field == at("reply") || field.starts_with(&at("replies.")))
            {
                continue;
            }
            if !slots.contains_key(&slot) {
                self.error(
                    here.clone(),
                    &field,
                    format!("{{{slot}}} is not a slot of any sentence of this intent"),
                    "use a slot that the sentences capture, or add it to a sentence",
                );
                continue;
            }
            needs.insert(slot.clone());
            if defaults.contains_key(&slot) || ask.contains_key(&slot) {
                continue;
            }
            if let Some(e) = expansions.iter().find(|e| {
                !e.iter()
                    .any(|el| matches!(el, Element::Slot(s) if s.name == slot))
            }) {
                self.error(here.clone(), &at(&format!("defaults.{slot}")), format!("a sentence can leave out {{{slot}}} (\"{}\"), but {field} needs it", render_expansion(e)), "add a default (defaults = { zone = \"driver\" }) or a question (ask = { zone = \"Which side?\" }) for the slot, or make it required in every sentence");
            }
        }

        let when = raw
            .when
            .as_ref()
            .and_then(|w| self.constraint(w, &at("when"), here.clone(), action.as_ref()));

        let spoken = std::iter::once(("reply", &raw.reply))
            .chain(
                raw.replies
                    .values()
                    .flat_map(|r| r.values())
                    .map(|r| ("replies", r)),
            )
            .chain(raw.ask.values().map(|q| ("ask", q)))
            .chain(raw.confirm_prompt.iter().map(|c| ("confirm_prompt", c)))
            .chain(raw.errors.values().map(|r| ("errors", r)))
            .chain(raw.when.iter().map(|w| ("when.refusal", &w.refusal)));
        for (field, text) in spoken {
            self.check_spoken(here.clone(), &at(field), text);
        }

        if self.errors.len() > start {
            return None;
        }
        Some(Intent {
            name: name.clone(),
            description: raw.description.clone(),
            sentences: templates,
            slots,
            defaults,
            reply: raw.reply.clone(),
            replies,
            error_replies: raw.errors.clone(),
            ask,
            confirm: raw
                .confirm
                .then(|| raw.confirm_prompt.clone().unwrap_or_default()),
            follow_up: raw.follow_up.unwrap_or(true),
            needs,
            action: action?,
            when,
            sentence_count: expansions.len(),
            examples: self.plain_sentences(here.clone(), &at("examples"), &raw.examples),
            // Set by `opposites` once every intent is known.
            opposite: None,
        })
    }

    /// The replies for enum values: each for a value of an enum slot of the intent.
    fn value_replies(
        &mut self,
        raw: &RawIntent,
        here: Option<std::ops::Range<usize>>,
        slots: &BTreeMap<String, String>,
        types: &BTreeMap<String, SlotType>,
    ) -> BTreeMap<String, BTreeMap<String, String>> {
        let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (slot, by_value) in &raw.replies {
            let field = format!("intent '{}'.replies.{slot}", raw.name);
            let ty = slots.get(slot).and_then(|t| types.get(t));
            let Some(SlotType::Enum { values, .. }) = ty else {
                self.error(
                    here.clone(),
                    &field,
                    format!("'{slot}' is not an enum slot of any sentence of this intent"),
                    "give replies for the values of an enum slot the sentences capture",
                );
                continue;
            };
            for (value, reply) in by_value {
                if values.iter().any(|v| v.key == *value) {
                    out.entry(slot.clone())
                        .or_default()
                        .insert(value.clone(), reply.clone());
                } else {
                    let keys: Vec<&str> = values.iter().map(|v| v.key.as_str()).collect();
                    self.error(
                        here.clone(),
                        &format!("{field}.{value}"),
                        format!("'{value}' is not one of {}", keys.join(", ")),
                        "name a value of the slot's type",
                    );
                }
            }
        }
        out
    }

    /// The constraint of an intent whose action is `action` (None where it is invalid).
    pub(super) fn constraint(
        &mut self,
        raw: &RawWhen,
        field: &str,
        here: Option<std::ops::Range<usize>>,
        action: Option<&Action>,
    ) -> Option<Constraint> {
        let start = self.errors.len();
        if raw.gear.is_none() && raw.max_speed_kmh.is_none() && raw.parking_brake.is_none() {
            self.error(
                here.clone(),
                field,
                "the constraint sets no condition".into(),
                "set gear, max_speed_kmh or parking_brake, or remove [intents.when]",
            );
        }
        if raw.gear.as_ref().is_some_and(Vec::is_empty) {
            self.error(
                here.clone(),
                &format!("{field}.gear"),
                "no gear is allowed, so the intent could never run".into(),
                "list the gears it may run in, e.g. [\"park\"]",
            );
        }
        if let Some(s) = raw.max_speed_kmh {
            if !(0.0..=400.0).contains(&s) {
                self.error(
                    here.clone(),
                    &format!("{field}.max_speed_kmh"),
                    format!("{s} km/h is not a plausible speed limit"),
                    "use a speed between 0 and 400",
                );
            }
        }
        if raw.refusal.trim().is_empty() {
            self.error(here.clone(), &format!("{field}.refusal"), "the refusal is empty".into(), "say why the driver can't do it now, e.g. \"I can only open the boot when the car is parked.\"");
        }
        let argument = raw.argument.as_ref().and_then(|bound| {
            self.argument_bound(bound, &format!("{field}.argument"), here.clone(), action)
        });
        (self.errors.len() == start).then(|| Constraint {
            gear: raw.gear.clone(),
            max_speed_kmh: raw.max_speed_kmh,
            parking_brake: raw.parking_brake,
            argument,
            refusal: raw.refusal.clone(),
        })
    }

    /// A bound on one of `action`'s arguments: a number argument that exists, and a bound.
    fn argument_bound(
        &mut self,
        raw: &RawArgumentBound,
        field: &str,
        here: Option<std::ops::Range<usize>>,
        action: Option<&Action>,
    ) -> Option<ArgumentBound> {
        if raw.above.is_none() && raw.below.is_none() {
            self.error(
                here.clone(),
                field,
                "the bound sets neither above nor below".into(),
                "say where the constraint holds, e.g. argument = { index = 2, above = 30 }",
            );
            return None;
        }
        let types: Vec<DbusType> = match &action?.kind {
            ActionKind::Call { args, .. } => args.iter().map(|a| a.ty).collect(),
            ActionKind::SetProperty { value, .. } => vec![value.ty],
            ActionKind::GetProperty { .. } => Vec::new(),
        };
        let Some(ty) = raw.index.checked_sub(1).and_then(|i| types.get(i)) else {
            self.error(
                here,
                &format!("{field}.index"),
                format!(
                    "the action has {} argument(s), so there is no argument {}",
                    types.len(),
                    raw.index
                ),
                "count the action's args from 1 (a property's value is 1)",
            );
            return None;
        };
        if matches!(ty, DbusType::String | DbusType::Bool) {
            self.error(
                here,
                &format!("{field}.index"),
                format!(
                    "argument {} is of D-Bus type '{ty}', which has no above or below",
                    raw.index
                ),
                "bound a number argument",
            );
            return None;
        }
        Some(ArgumentBound {
            index: raw.index - 1,
            above: raw.above,
            below: raw.below,
        })
    }
}

pub(super) fn action_slots(a: &Action) -> Vec<String> {
    let specs: Vec<&ArgSpec> = match &a.kind {
        ActionKind::Call { args, .. } => args.iter().collect(),
        ActionKind::SetProperty { value, .. } => vec![value],
        ActionKind::GetProperty { .. } => vec![],
    };
    specs
        .into_iter()
        .flat_map(|s| match &s.source {
            ArgSource::Slot(n) => vec![n.clone()],
            ArgSource::Format(f) => placeholders(f),
            ArgSource::Literal(_) => vec![],
        })
        .collect()
}

pub(super) fn render_expansion(e: &[Element]) -> String {
    e.iter()
        .map(|el| match el {
            Element::Literal(w) => w.clone(),
            Element::Slot(s) => format!("{{{}}}", s.name),
        })
        .collect::<Vec<_>>()
        .join(" ")
}
