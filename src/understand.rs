//! The understanding layer: text in, a decision and a reply out. The grammar fast path is the
//! only route today; the local LLM and the cloud slot in as further routes behind it, and
//! every route ends in the same validated action path.

use crate::action::{fill, Failure, ResolvedAction, VehicleBus};
use crate::grammar::{format_number, Matcher};
use crate::profile::{Profile, SlotType, SlotValue};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// Which part of the hybrid layer produced the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    Fast,
    LocalLlm,
    Cloud,
    Decline,
}

/// An executed action, as reported by `cabin say --json` and `ActionExecuted`.
#[derive(Debug, Clone, Serialize)]
pub struct ActionReport {
    #[serde(flatten)]
    pub action: ResolvedAction,
    pub success: bool,
    pub detail: String,
}

/// Everything Cabin did with one utterance.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub text: String,
    pub route: Route,
    pub intent: Option<String>,
    pub slots: BTreeMap<String, serde_json::Value>,
    pub reply: String,
    pub action: Option<ActionReport>,
    pub timings_ms: BTreeMap<&'static str, f64>,
}

/// What the understanding step decided, before anything touches the vehicle.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Nothing understood it.
    Decline,
    /// An intent matched, but a slot value is unusable; the reply says why.
    Reject {
        intent: String,
        slots: BTreeMap<String, SlotValue>,
        reply: String,
    },
    /// An intent matched with valid slots: run its action.
    Act {
        intent: usize,
        slots: BTreeMap<String, SlotValue>,
        action: ResolvedAction,
    },
}

pub const DECLINE_REPLY: &str = "Sorry, I can't do that yet.";

/// The profile, its compiled grammar, and the vehicle bus.
pub struct Assistant {
    profile: Arc<Profile>,
    matcher: Matcher,
    vehicle: VehicleBus,
}

impl Assistant {
    pub fn new(profile: Arc<Profile>, vehicle: VehicleBus) -> Assistant {
        let matcher = Matcher::new(&profile);
        Assistant {
            profile,
            matcher,
            vehicle,
        }
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Decides what to do with `text` (microseconds, no I/O).
    pub fn decide(&self, text: &str) -> Decision {
        let Some(m) = self.matcher.match_text(text) else {
            return Decision::Decline;
        };
        let intent = &self.profile.intents[m.intent];
        let mut slots = intent.defaults.clone();
        slots.extend(m.slots);
        for (name, value) in &slots {
            let Some(ty) = intent
                .slots
                .get(name)
                .and_then(|t| self.profile.slot_types.get(t))
            else {
                continue;
            };
            if let Some(reply) = out_of_range(name, ty, value) {
                return Decision::Reject {
                    intent: intent.name.clone(),
                    slots,
                    reply,
                };
            }
        }
        match ResolvedAction::resolve(&intent.action, &slots) {
            Ok(action) => Decision::Act {
                intent: m.intent,
                slots,
                action,
            },
            Err(problem) => Decision::Reject {
                intent: intent.name.clone(),
                reply: format!("Sorry, I can't do that: {problem}."),
                slots,
            },
        }
    }

    /// Understands `text`, runs its action, and builds the reply. `on_action` is told just
    /// before the vehicle is touched (the daemon moves to `Acting`).
    pub async fn handle(&self, text: &str, on_action: impl FnOnce(&ResolvedAction)) -> Outcome {
        let start = Instant::now();
        let decision = self.decide(text);
        let understood = start.elapsed();
        let mut timings = BTreeMap::new();
        timings.insert("understand", ms(understood));
        let slots_json = |slots: &BTreeMap<String, SlotValue>| {
            slots
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect()
        };
        let mut outcome = Outcome {
            text: text.to_string(),
            route: Route::Decline,
            intent: None,
            slots: BTreeMap::new(),
            reply: DECLINE_REPLY.to_string(),
            action: None,
            timings_ms: BTreeMap::new(),
        };
        match decision {
            Decision::Decline => {}
            Decision::Reject {
                intent,
                slots,
                reply,
            } => {
                outcome.route = Route::Fast;
                outcome.intent = Some(intent);
                outcome.slots = slots_json(&slots);
                outcome.reply = reply;
            }
            Decision::Act {
                intent,
                slots,
                action,
            } => {
                let intent = &self.profile.intents[intent];
                on_action(&action);
                let acted = Instant::now();
                let result = self.vehicle.execute(&action).await;
                timings.insert("action", ms(acted.elapsed()));
                outcome.route = Route::Fast;
                outcome.intent = Some(intent.name.clone());
                outcome.slots = slots_json(&slots);
                let (success, detail) = match result {
                    Ok(value) => {
                        let needs_result = intent.reply.contains("{result}");
                        outcome.reply = match (&value, needs_result) {
                            (Some(v), true) => fill(&intent.reply, &slots).replace("{result}", v),
                            (None, true) => Failure::Refused {
                                name: String::new(),
                                message: String::new(),
                            }
                            .reply(&action.target),
                            _ => fill(&intent.reply, &slots),
                        };
                        (true, value.unwrap_or_else(|| "ok".into()))
                    }
                    Err(failure) => {
                        tracing::warn!(intent = %intent.name, detail = %failure.detail(), "action failed");
                        outcome.reply = match &failure {
                            Failure::Refused { name, .. }
                                if intent.error_replies.contains_key(name) =>
                            {
                                fill(&intent.error_replies[name], &slots)
                            }
                            _ => failure.reply(&action.target),
                        };
                        (false, failure.detail())
                    }
                };
                outcome.action = Some(ActionReport {
                    action,
                    success,
                    detail,
                });
            }
        }
        timings.insert("total", ms(start.elapsed()));
        outcome.timings_ms = timings;
        outcome
    }
}

fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// A reply explaining the allowed range, when a number slot is outside it.
fn out_of_range(name: &str, ty: &SlotType, value: &SlotValue) -> Option<String> {
    let SlotValue::Number(v) = value else {
        return None;
    };
    let (min, max, unit) = match ty {
        SlotType::Integer { min, max, unit } => (*min as f64, *max as f64, unit),
        SlotType::Decimal { min, max, unit } => (*min, *max, unit),
        _ => return None,
    };
    if (min..=max).contains(v) {
        return None;
    }
    let what = name.replace('_', " ");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::BusAddress;
    use std::time::Duration;

    fn assistant() -> Assistant {
        let bus = BusAddress::Address("unix:path=/nonexistent/cabin-test-bus".into());
        Assistant::new(
            Arc::new(Profile::embedded_default()),
            VehicleBus::new(bus, Duration::from_millis(200)),
        )
    }

    #[test]
    fn out_of_range_numbers_are_explained_not_clamped() {
        let a = assistant();
        match a.decide("set the temperature to forty degrees") {
            Decision::Reject { intent, reply, .. } => {
                assert_eq!(intent, "climate.set_temperature");
                assert_eq!(
                    reply,
                    "I can only set the temperature between 16 and 28 degrees."
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_fill_missing_slots() {
        let a = assistant();
        let Decision::Act { slots, action, .. } = a.decide("set the temperature to 22") else {
            panic!()
        };
        assert_eq!(
            slots["zone"],
            SlotValue::Enum {
                key: "driver".into(),
                spoken: "driver".into()
            }
        );
        assert_eq!(
            action.args,
            vec![
                crate::dbus_value::ArgValue::String("driver".into()),
                crate::dbus_value::ArgValue::Double(22.0)
            ]
        );
    }

    #[tokio::test]
    async fn unreachable_bus_gives_a_spoken_failure_not_an_error() {
        let a = assistant();
        let o = a.handle("turn on the air conditioning", |_| {}).await;
        assert_eq!(o.route, Route::Fast);
        assert_eq!(o.reply, "Sorry, I couldn't reach the climate control.");
        let action = o.action.unwrap();
        assert!(!action.success);
        assert!(
            action.detail.contains("vehicle bus unavailable"),
            "{}",
            action.detail
        );
    }

    #[tokio::test]
    async fn declines_politely() {
        let o = assistant()
            .handle("tell me a joke", |_| panic!("no action"))
            .await;
        assert_eq!(o.route, Route::Decline);
        assert_eq!(o.reply, DECLINE_REPLY);
        assert!(o.intent.is_none() && o.action.is_none());
    }
}
