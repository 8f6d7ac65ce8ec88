//! Raw profile → validated [`Profile`], in one place: every cross-reference checked, every
//! problem collected with its line and fix. Split by concern: settings sections, slot types,
//! intents and their actions.

mod actions;
mod calls;
mod intents;
mod lexicon;
mod settings;
mod slots;

use crate::profile::error::{line_of, LoadError, ProfileError};
use crate::profile::raw::RawProfile;
use crate::profile::*;
use crate::runtime::bus::BusAddress;
use crate::text::Lexicon;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;

pub(super) struct Validator<'a> {
    pub(super) file: &'a str,
    pub(super) text: &'a str,
    pub(super) errors: Vec<ProfileError>,
    /// The profile language's words, set first: templates and words are read in them.
    pub(super) lexicon: Lexicon,
}

impl Validator<'_> {
    fn error(
        &mut self,
        span: Option<std::ops::Range<usize>>,
        field: &str,
        problem: String,
        fix: &str,
    ) {
        self.errors.push(ProfileError {
            file: self.file.to_string(),
            line: span.map(|s| line_of(self.text, s.start)),
            field: field.to_string(),
            problem,
            fix: fix.to_string(),
        });
    }

    /// The value if it is given and within `range`; an error naming the range if it is not.
    fn within<T>(
        &mut self,
        v: &Option<Spanned<T>>,
        field: &str,
        range: std::ops::RangeInclusive<T>,
        fix: &str,
    ) -> Option<T>
    where
        T: PartialOrd + Copy + std::fmt::Display + std::fmt::Debug,
    {
        let v = v.as_ref()?;
        if range.contains(v.get_ref()) {
            return Some(*v.get_ref());
        }
        self.error(
            Some(v.span()),
            field,
            format!("{} is outside {range:?}", v.get_ref()),
            fix,
        );
        None
    }

    pub(super) fn profile(mut self, raw: RawProfile) -> Result<Profile, LoadError> {
        self.lexicon = self.language(&raw.profile);
        if raw.assistant.name.trim().is_empty() {
            self.error(
                None,
                "assistant.name",
                "the assistant has no name".into(),
                "set assistant.name, e.g. \"Cabin\"",
            );
        }

        let bus = match &raw.vehicle.bus {
            None => BusAddress::Session,
            Some(b) => match b.get_ref().parse::<BusAddress>() {
                Ok(bus) => bus,
                Err(e) => {
                    self.error(Some(b.span()), "vehicle.bus", e.to_string(), "use \"session\", \"system\" or a D-Bus address such as \"unix:path=/run/dbus/system_bus_socket\"");
                    BusAddress::Session
                }
            },
        };
        let timeout_ms = match &raw.vehicle.timeout_ms {
            None => 2000,
            Some(t) if (50..=60_000).contains(t.get_ref()) => *t.get_ref(),
            Some(t) => {
                self.error(
                    Some(t.span()),
                    "vehicle.timeout_ms",
                    format!("{} ms is outside 50..=60000", t.get_ref()),
                    "use a timeout between 50 and 60000 ms (default 2000)",
                );
                2000
            }
        };

        let mut slot_types = BTreeMap::new();
        for (name, spanned) in &raw.slot_types {
            let span = spanned.span();
            if let Some(t) = self.slot_type(name, spanned.get_ref(), span) {
                slot_types.insert(name.clone(), t);
            }
        }

        let state = raw
            .vehicle
            .state
            .as_ref()
            .and_then(|st| self.state_source(st.get_ref(), st.span()));
        let dialog = self.dialog(&raw.dialog);
        let listen = self.listen(&raw.listen);
        let speech = self.speech(&raw.speech);
        let models = self.models(&raw.models);
        let llm = self.llm(&raw.llm);
        let cloud = self.cloud(&raw.cloud);
        let inputs = self.inputs(&raw.inputs, &slot_types);

        let mut intents = Vec::new();
        let mut names = BTreeSet::new();
        for spanned in &raw.intents {
            let span = spanned.span();
            let raw_intent = spanned.get_ref();
            if !names.insert(raw_intent.name.clone()) {
                self.error(
                    Some(span.clone()),
                    &format!("intent '{}'", raw_intent.name),
                    "two intents have this name".into(),
                    "give every intent a unique name",
                );
            }
            if raw_intent.when.is_some() && raw.vehicle.state.is_none() {
                self.error(Some(span.clone()), &format!("intent '{}'.when", raw_intent.name), "the intent has a vehicle-state constraint, but the profile does not say where the vehicle state comes from".into(), "add a [vehicle.state] table (see profiles/default.toml)");
            }
            if let Some(intent) = self.intent(raw_intent, span, &slot_types) {
                intents.push(intent);
            }
        }
        self.opposites(&raw.intents, &names, &mut intents);
        self.same_calls(&raw.intents, &intents, &slot_types);
        let small_talk = self.small_talk(&raw.small_talk);
        let classifier = self.classifier(&raw.classifier);
        let lacks = self.lacks(&raw.lacks, &intents, &slot_types);
        if raw
            .dialog
            .follow_up_seconds
            .as_ref()
            .is_some_and(|f| *f.get_ref() == 0.0)
        {
            if let Some(i) = intents
                .iter()
                .find(|i| !i.ask.is_empty() || i.confirm.is_some())
            {
                self.error(
                    raw.dialog.follow_up_seconds.as_ref().map(|f| f.span()),
                    "dialog.follow_up_seconds",
                    format!(
                        "0 leaves no time to answer the questions intents ask (e.g. '{}')",
                        i.name
                    ),
                    "use a window of a few seconds, or remove ask and confirm from the intents",
                );
            }
        }
        if raw.intents.is_empty() {
            self.error(
                None,
                "intents",
                "the profile has no intents".into(),
                "add at least one [[intents]] table",
            );
        }

        if !self.errors.is_empty() {
            return Err(LoadError::Invalid(self.errors));
        }
        Ok(Profile {
            file: self.file.to_string(),
            name: raw.profile.name,
            language: raw.profile.language.into_inner(),
            lexicon: Arc::new(self.lexicon),
            description: raw.profile.description,
            persona: Persona {
                name: raw.assistant.name,
                description: raw.assistant.persona,
                wake_words: raw.assistant.wake_words,
            },
            models,
            audio: AudioDevices {
                input: raw.audio.input.unwrap_or_else(|| "default".into()),
                output: raw.audio.output.unwrap_or_else(|| "default".into()),
                reference: raw
                    .audio
                    .reference
                    .filter(|r| !r.trim().is_empty() && r != "off"),
            },
            llm,
            cloud,
            vehicle: VehicleSettings {
                bus,
                timeout: Duration::from_millis(timeout_ms),
                state,
            },
            dialog,
            listen,
            speech,
            inputs,
            slot_types,
            intents,
            small_talk,
            classifier,
            lacks,
            rules_off: raw.rules.off.into_iter().collect(),
        })
    }
}
