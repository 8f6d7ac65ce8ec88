//! The understanding layer: text in, a decision and a reply out, within a dialog.
//!
//! Every route (today the grammar fast path; the local LLM and the cloud propose intents
//! through [`Assistant::propose`]) ends in [`Assistant::proceed`]: slots are filled from the
//! dialog context, the speaker's zone and defaults, checked against their types, the safety
//! policy and the confirmation rule, and only then does the action run.

mod act;
mod heard;
mod objects;
mod slots;
mod think;
mod words;

use crate::act::vehicle::{fill, Failure, ResolvedAction, VehicleBus};
use crate::profile::dbus_value::ArgValue;
use crate::profile::{Intent, Lack, Profile, SlotType, SlotValue, SPEAKER};
use crate::text::format_number;
use crate::understand::brain::Brain;
use crate::understand::dialog::objects::Objects;
use crate::understand::dialog::words::{
    lowercase_first, ms, out_of_range, slot_from_json, unit_of,
};
use crate::understand::grammar::Matcher;
use crate::understand::turn::*;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
pub use words::yes_or_no;

/// How the words of a turn came: typed or sent words, and words the recogniser was sure of,
/// may act; words it was unsure of are said back first, so that a misheard command ("and
/// switch off at lives") never acts unasked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Hearing {
    #[default]
    Sure,
    Unsure,
}

/// The most characters of a number a question about a bare value says back.
const FRAGMENT_NUMBER_CHARS: usize = 8;

/// The normalised words of `text`, numbers read in the profile language's words.
fn norms(matcher: &Matcher, text: &str) -> Vec<String> {
    matcher.tokenize(text).into_iter().map(|t| t.norm).collect()
}

/// The profile, its compiled grammar, and the vehicle bus.
pub struct Assistant {
    profile: Arc<Profile>,
    matcher: Matcher,
    small_talk: Matcher,
    vehicle: VehicleBus,
    /// The model routes, for what the fast path does not understand; none: decline.
    brain: Option<Arc<Brain>>,
    /// What the intents act on, and what the car lacks.
    objects: Objects,
}

/// Per-turn facts that every step needs.
struct TurnCtx<'a> {
    text: &'a str,
    zone: Option<&'a str>,
    hearing: Hearing,
    started: Instant,
    understood: Option<f64>,
}

impl Assistant {
    pub fn new(profile: Arc<Profile>, vehicle: VehicleBus) -> Assistant {
        let matcher = Matcher::new(&profile);
        let small_talk = Matcher::small_talk(&profile);
        Assistant {
            objects: Objects::new(&profile),
            profile,
            matcher,
            small_talk,
            vehicle,
            brain: None,
        }
    }

    /// The model routes, when this assistant has them.
    pub fn brain(&self) -> Option<&Brain> {
        self.brain.as_deref()
    }

    pub fn with_brain(mut self, brain: Arc<Brain>) -> Assistant {
        self.brain = Some(brain);
        self
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// One utterance with no dialog around it (`cabin say --profile`).
    pub async fn handle(&self, text: &str, on_action: impl FnOnce(&ResolvedAction)) -> Outcome {
        self.turn(text, None, Hearing::Sure, Context::default(), on_action)
            .await
            .outcome
    }

    /// One turn of a dialog: `zone` is the speaker's seat zone when the input is known.
    pub async fn turn(
        &self,
        text: &str,
        zone: Option<&str>,
        hearing: Hearing,
        context: Context,
        on_action: impl FnOnce(&ResolvedAction),
    ) -> Turn {
        self.turn_streaming(
            text,
            zone,
            hearing,
            context,
            |a| {
                on_action(a);
                true
            },
            &mut |_| {},
        )
        .await
    }

    /// A turn whose model answer is given out to `on_sentence` sentence by sentence as it is
    /// generated (see [`Brain::think`]), so it can be spoken before it is complete. The
    /// outcome's reply starts with what was given out, unless a model's words led to an
    /// action, whose reply then follows them. `go_ahead` is asked just before the action goes
    /// out: false (the turn was cancelled meanwhile) and nothing is called.
    pub async fn turn_streaming(
        &self,
        text: &str,
        zone: Option<&str>,
        hearing: Hearing,
        mut context: Context,
        go_ahead: impl FnOnce(&ResolvedAction) -> bool,
        on_sentence: &mut (dyn FnMut(&str) + Send),
    ) -> Turn {
        let mut t = TurnCtx {
            text,
            zone,
            hearing,
            started: Instant::now(),
            understood: None,
        };
        // The fast-path match, computed once by whichever step needs it first.
        let mut matched = None;
        match context.pending.take() {
            Some(Pending::Confirm { intent, slots }) => {
                match yes_or_no(text, &self.profile.lexicon, &self.profile.persona.name) {
                    Some(true) => {
                        return self
                            .act(&mut t, Route::Fast, intent, slots, context, go_ahead)
                            .await
                    }
                    Some(false) => {
                        let mut outcome = self.outcome(&t, Route::Fast, Some(intent), &slots);
                        outcome.reply = self.profile.lexicon.replies.confirm_cancelled.clone();
                        return Turn {
                            outcome,
                            context: Context::default(),
                            follow_up: false,
                        };
                    }
                    None => {} // something else entirely: handle it as a new request
                }
            }
            Some(Pending::Slot {
                intent,
                mut slots,
                missing,
                tries,
            }) => {
                let type_name = &self.profile.intents[intent].slots[&missing];
                if let Some(value) = self.matcher.parse_slot_value(
                    type_name,
                    unit_of(&self.profile.slot_types[type_name]),
                    text,
                ) {
                    t.understood = Some(ms(t.started.elapsed()));
                    slots.insert(missing, value);
                    return self
                        .proceed(&mut t, Route::Fast, intent, slots, context, go_ahead)
                        .await;
                }
                let m = self.matcher.match_text(text);
                if m.is_none() {
                    let intent_ref = &self.profile.intents[intent];
                    let mut outcome = self.outcome(&t, Route::Fast, Some(intent), &slots);
                    if tries + 1 >= self.profile.dialog.max_clarifications {
                        outcome.reply = self.profile.lexicon.replies.give_up.clone();
                        return Turn {
                            outcome,
                            context: Context {
                                last: context.last,
                                pending: None,
                            },
                            follow_up: false,
                        };
                    }
                    outcome.reply = format!(
                        "Sorry, {}",
                        lowercase_first(&fill(&intent_ref.ask[&missing], &slots))
                    );
                    outcome.awaiting = Some(format!("slot:{missing}"));
                    context.pending = Some(Pending::Slot {
                        intent,
                        slots,
                        missing,
                        tries: tries + 1,
                    });
                    return Turn {
                        outcome,
                        context,
                        follow_up: true,
                    };
                }
                matched = Some(m);
            }
            None => {}
        }

        if let Some(m) = matched.unwrap_or_else(|| self.matcher.match_text(text)) {
            t.understood = Some(ms(t.started.elapsed()));
            // The grammar may drop a word or two about what a command names ("the bedroom
            // lights"), but not one that names what the car lacks ("the fog lights").
            let core = norms(&self.matcher, &self.matcher.core_words(text));
            if let Some(lack) = self.objects.unfounded(&core, m.intent) {
                return Turn {
                    outcome: self.lacking(&t, Route::Fast, lack),
                    context,
                    follow_up: false,
                };
            }
            let slots = m.slots.into_iter().collect();
            return self
                .proceed(&mut t, Route::Fast, m.intent, slots, context, go_ahead)
                .await;
        }
        // A relative follow-up that only names a new value: "and the passenger side too".
        if let Some(last) = context.last.as_ref().filter(|l| l.zone.as_deref() == zone) {
            if let Some((name, value)) = self.elliptic(last, text) {
                t.understood = Some(ms(t.started.elapsed()));
                let mut slots = last.slots.clone();
                slots.insert(name, value);
                let intent = last.intent;
                return self
                    .proceed(&mut t, Route::Fast, intent, slots, context, go_ahead)
                    .await;
            }
        }
        if let Some(m) = self.small_talk.match_text(text) {
            t.understood = Some(ms(t.started.elapsed()));
            let talk = &self.profile.small_talk[m.intent];
            return Turn {
                outcome: self.talk(&t, Route::Fast, talk).await,
                context,
                follow_up: false,
            };
        }
        // A value and nothing else, with no question open and no request to follow up ("to
        // twenty", "the rear left one"): what it is for is asked, never guessed.
        if let Some(question) = self.fragment(text) {
            t.understood = Some(ms(t.started.elapsed()));
            let mut outcome = self.outcome(&t, Route::Fast, None, &BTreeMap::new());
            outcome.reply = question;
            return Turn {
                outcome,
                context,
                follow_up: true,
            };
        }
        // Something the car lacks, and nothing it has ("unlock the doors"): said so, before
        // any model can pick the nearest thing it has. A question about it is the model's.
        let core = self.matcher.core_words(text);
        if !crate::understand::brain::asks_a_question(&core, &self.profile.lexicon.questions) {
            if let Some(lack) = self.objects.lacked(&norms(&self.matcher, &core)) {
                t.understood = Some(ms(t.started.elapsed()));
                return Turn {
                    outcome: self.lacking(&t, Route::Fast, lack),
                    context,
                    follow_up: false,
                };
            }
        }
        if let Some(brain) = &self.brain {
            return self
                .think(brain, &mut t, context, go_ahead, on_sentence)
                .await;
        }
        t.understood = Some(ms(t.started.elapsed()));
        let mut outcome = self.outcome(&t, Route::Decline, None, &BTreeMap::new());
        outcome.reply = self.profile.lexicon.replies.decline.clone();
        Turn {
            outcome,
            context,
            follow_up: false,
        }
    }

    /// An intent proposed by a model route (local LLM or cloud), with arguments as JSON. It
    /// goes through exactly the checks a fast-path match does; an unknown intent or a bad
    /// argument is declined, never executed, and an intent the words give no evidence for
    /// (they name something the car lacks, and nothing it acts on) is answered with what the
    /// car lacks.
    pub async fn propose(
        &self,
        text: &str,
        proposal: &Proposal,
        zone: Option<&str>,
        context: Context,
        on_action: impl FnOnce(&ResolvedAction),
    ) -> Turn {
        self.propose_gated(text, proposal, zone, Hearing::Sure, context, |a| {
            on_action(a);
            true
        })
        .await
    }

    /// [`Assistant::propose`] of words heard as `hearing` says, asking `go_ahead` before the
    /// action goes out.
    async fn propose_gated(
        &self,
        text: &str,
        proposal: &Proposal,
        zone: Option<&str>,
        hearing: Hearing,
        context: Context,
        go_ahead: impl FnOnce(&ResolvedAction) -> bool,
    ) -> Turn {
        let Proposal {
            route,
            intent,
            args,
        } = proposal;
        let route = *route;
        let mut t = TurnCtx {
            text,
            zone,
            hearing,
            started: Instant::now(),
            understood: None,
        };
        let decline = |t: &TurnCtx, why: String| {
            tracing::warn!(route = ?route, "declined a proposed intent: {}", crate::runtime::logging::private(&why));
            let mut outcome = self.outcome(t, Route::Decline, None, &BTreeMap::new());
            outcome.reply = self.profile.lexicon.replies.decline.clone();
            outcome.refused = Some(why);
            Turn {
                outcome,
                context: Context::default(),
                follow_up: false,
            }
        };
        let Some(index) = self.profile.intents.iter().position(|i| i.name == *intent) else {
            return decline(&t, format!("no intent named '{intent}'"));
        };
        // The nearest intent to a request for something the car lacks is not what was asked.
        let core = norms(&self.matcher, &self.matcher.core_words(text));
        if let Some(lack) = self.objects.unfounded(&core, index) {
            tracing::info!(%intent, "the words name the {}, which it does not act on", lack.name);
            return Turn {
                outcome: self.lacking(&t, route, lack),
                context,
                follow_up: false,
            };
        }
        let mut slots = BTreeMap::new();
        for (name, value) in args {
            if value.is_null() {
                continue; // an optional slot the model left out: defaults and context fill it
            }
            let Some(ty) = self.profile.intents[index]
                .slots
                .get(name)
                .and_then(|t| self.profile.slot_types.get(t))
            else {
                return decline(&t, format!("intent '{intent}' has no slot '{name}'"));
            };
            match slot_from_json(ty, value) {
                Some(v) => slots.insert(name.clone(), v),
                None => {
                    return decline(
                        &t,
                        format!("{value} is not a valid value for slot '{name}'"),
                    )
                }
            };
        }
        t.understood = Some(ms(t.started.elapsed()));
        self.proceed(&mut t, route, index, slots, context, go_ahead)
            .await
    }

    /// Fills, checks and (if all is well) runs an intent.
    async fn proceed(
        &self,
        t: &mut TurnCtx<'_>,
        route: Route,
        index: usize,
        mut slots: BTreeMap<String, SlotValue>,
        mut context: Context,
        go_ahead: impl FnOnce(&ResolvedAction) -> bool,
    ) -> Turn {
        let intent = &self.profile.intents[index];
        self.fill_slots(intent, &mut slots, &context, t.zone);
        // Out of range or too long to say back: refused before a question or reply says it.
        for (name, value) in &slots {
            let Some(ty) = intent
                .slots
                .get(name)
                .and_then(|t| self.profile.slot_types.get(t))
            else {
                continue;
            };
            if let Some(reply) = out_of_range(name, ty, value) {
                let mut outcome = self.outcome(t, route, Some(index), &slots);
                outcome.reply = reply;
                return Turn {
                    outcome,
                    context,
                    follow_up: intent.follow_up,
                };
            }
        }
        for name in &intent.needs {
            if slots.contains_key(name) {
                continue;
            }
            let mut outcome = self.outcome(t, route, Some(index), &slots);
            let Some(question) = intent.ask.get(name) else {
                // Only a "my" that no known seat could resolve gets here (validation makes every
                // other needed slot captured, defaulted or asked for).
                outcome.reply = self.profile.lexicon.replies.unknown_seat.clone();
                return Turn {
                    outcome,
                    context,
                    follow_up: false,
                };
            };
            outcome.reply = fill(question, &slots);
            outcome.awaiting = Some(format!("slot:{name}"));
            context.pending = Some(Pending::Slot {
                intent: index,
                slots,
                missing: name.clone(),
                tries: 0,
            });
            return Turn {
                outcome,
                context,
                follow_up: true,
            };
        }
        let question = self.question(t, intent, &slots);
        if let Some(question) = question {
            // No point asking "Call Mum?" for something the policy refuses anyway.
            if let Some(refused) = self.refused(t, route, index, &slots, &context).await {
                return refused;
            }
            let mut outcome = self.outcome(t, route, Some(index), &slots);
            outcome.reply = question;
            outcome.awaiting = Some("confirmation".into());
            context.pending = Some(Pending::Confirm {
                intent: index,
                slots,
            });
            return Turn {
                outcome,
                context,
                follow_up: true,
            };
        }
        self.act(t, route, index, slots, context, go_ahead).await
    }

    /// The turn that says the car lacks `lack`: no action, the profile's words for it.
    fn lacking(&self, t: &TurnCtx, route: Route, lack: &Lack) -> Outcome {
        let mut outcome = self.outcome(t, route, None, &BTreeMap::new());
        outcome.reply = lack.reply.clone();
        outcome.refused = Some(format!("the profile has no intent for the {}", lack.name));
        outcome
    }

    fn outcome(
        &self,
        t: &TurnCtx,
        route: Route,
        intent: Option<usize>,
        slots: &BTreeMap<String, SlotValue>,
    ) -> Outcome {
        let mut timings = BTreeMap::new();
        timings.insert(
            "understand",
            t.understood.unwrap_or_else(|| ms(t.started.elapsed())),
        );
        timings.insert("total", ms(t.started.elapsed()));
        Outcome {
            text: t.text.to_string(),
            route,
            intent: intent.map(|i| self.profile.intents[i].name.clone()),
            slots: slots
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect(),
            reply: String::new(),
            action: None,
            awaiting: None,
            refused: None,
            classifier: None,
            rules: Vec::new(),
            timings_ms: timings,
        }
    }
}

#[cfg(test)]
mod tests;
