//! Family labels (the development set's `expect`): which of a profile's intents do what each
//! family asks, and the families that must take no action at all.

use anyhow::{bail, Context, Result};
use cabin::understand::Outcome;
use cabin::Profile;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// The mapping for `profiles/default.toml`.
const DEFAULT_FAMILIES: &str = include_str!("../../../eval/families.toml");

/// Requests that are no car command: right when Cabin answers (or declines) and acts on
/// nothing; a read of a vehicle value is not an action.
pub const NO_ACTION: &[&str] = &["chat", "question", "out_of_scope"];

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Target {
    Intent(String),
    WithSlots {
        intent: String,
        slots: BTreeMap<String, Value>,
    },
}

/// Family → the outcomes that do what it asks.
pub struct Families(BTreeMap<String, Vec<Target>>);

impl Families {
    /// From `path`, or the default profile's mapping; every intent it names must be the
    /// profile's (or one of its small talk).
    pub fn load(path: Option<&Path>, profile: &Profile) -> Result<Families> {
        let (text, name) = match path {
            Some(p) => (
                std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read {}", p.display()))?,
                p.display().to_string(),
            ),
            None => (
                DEFAULT_FAMILIES.to_string(),
                "eval/families.toml".to_string(),
            ),
        };
        let map: BTreeMap<String, Vec<Target>> = toml::from_str(&text)
            .with_context(|| format!("{name}: not a family → [intent, …] table"))?;
        for targets in map.values() {
            for t in targets {
                let intent = t.intent();
                let known = profile.intents.iter().any(|i| i.name == intent)
                    || profile
                        .small_talk
                        .iter()
                        .any(|s| format!("small_talk.{}", s.name) == intent);
                if !known {
                    bail!(
                        "{name} names '{intent}', which profile {} has not; give this profile's mapping with --families",
                        profile.file
                    );
                }
            }
        }
        Ok(Families(map))
    }

    /// Whether `family` is known here (mapped, or one of [`NO_ACTION`]).
    pub fn knows(&self, family: &str) -> bool {
        NO_ACTION.contains(&family) || self.0.contains_key(family)
    }

    /// Whether `outcome` does what `family` asks (strict scoring).
    pub fn right(&self, family: &str, outcome: &Outcome, profile: &Profile) -> bool {
        if NO_ACTION.contains(&family) {
            return !acted(outcome, profile);
        }
        let Some(intent) = outcome.intent.as_deref() else {
            return false;
        };
        self.0.get(family).into_iter().flatten().any(|t| match t {
            Target::Intent(i) => i == intent,
            Target::WithSlots { intent: i, slots } => {
                i == intent && slots.iter().all(|(k, v)| outcome.slots.get(k) == Some(v))
            }
        })
    }
}

impl Target {
    fn intent(&self) -> &str {
        match self {
            Target::Intent(i) | Target::WithSlots { intent: i, .. } => i,
        }
    }
}

/// Whether the outcome acted on the car: an intent other than a read of a vehicle value, not
/// held back by a question to the driver ("Which source?", "Call Mum?"), which runs nothing.
pub fn acted(outcome: &Outcome, profile: &Profile) -> bool {
    let Some(name) = outcome.intent.as_deref() else {
        return false;
    };
    if outcome.awaiting.is_some() {
        return false;
    }
    profile.intents.iter().any(|i| {
        i.name == name
            && !matches!(
                i.action.kind,
                cabin::profile::ActionKind::GetProperty { .. }
            )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_mapping_names_only_the_default_profiles_intents() {
        let p = Profile::load_or_default(None).unwrap();
        let f = Families::load(None, &p).unwrap();
        for family in [
            "lights.off",
            "lights.brighter",
            "media.mute",
            "media.radio",
            "chat",
        ] {
            assert!(f.knows(family), "{family}");
        }
        // A question back runs nothing; the same intent without one acts.
        let mut asked = Outcome {
            text: "mobile".into(),
            route: cabin::understand::Route::LocalLlm,
            intent: Some("media.source".into()),
            slots: Default::default(),
            reply: "Which source?".into(),
            action: None,
            awaiting: Some("slot:source".into()),
            refused: None,
            classifier: None,
            rules: Vec::new(),
            timings_ms: Default::default(),
        };
        assert!(!acted(&asked, &p));
        asked.awaiting = None;
        assert!(acted(&asked, &p));
        asked.intent = Some("info.fuel".into());
        assert!(!acted(&asked, &p));
        let mut other = p.clone();
        other.intents.retain(|i| i.name != "lights.cabin_off");
        let e = Families::load(None, &other).err().unwrap().to_string();
        assert!(
            e.contains("lights.cabin_off") && e.contains("--families"),
            "{e}"
        );
    }
}
