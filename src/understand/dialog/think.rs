//! The model routes' side of a turn: what the small models and the local model make of words
//! the grammar did not take, and the answers of the profile's own small talk.

use super::{Assistant, TurnCtx};
use crate::act::vehicle::ResolvedAction;
use crate::profile::SmallTalk;
use crate::understand::brain::{Brain, Thought};
use crate::understand::dialog::words::ms;
use crate::understand::turn::*;
use std::collections::BTreeMap;

impl Assistant {
    /// The answer of `talk`, from the profile: no action, and not a word of chat while the
    /// driver reverses or parks.
    pub(super) async fn talk(&self, t: &TurnCtx<'_>, route: Route, talk: &SmallTalk) -> Outcome {
        let mut outcome = self.answer(t, route, talk.reply.clone()).await;
        outcome.intent = Some(format!("small_talk.{}", talk.name));
        outcome
    }

    /// `text` as the answer, no action; refused while the driver reverses or parks.
    async fn answer(&self, t: &TurnCtx<'_>, route: Route, text: String) -> Outcome {
        let mut outcome = self.outcome(t, route, None, &BTreeMap::new());
        if self.manoeuvring().await {
            outcome.refused = Some("the driver is manoeuvring".into());
        } else {
            outcome.reply = text;
        }
        outcome
    }

    /// The model routes: an intent they propose is checked like any other; an answer is
    /// spoken (not while manoeuvring).
    pub(super) async fn think(
        &self,
        brain: &Brain,
        t: &mut TurnCtx<'_>,
        context: Context,
        go_ahead: impl FnOnce(&ResolvedAction) -> bool,
        on_sentence: &mut (dyn FnMut(&str) + Send),
    ) -> Turn {
        let mut timings = BTreeMap::new();
        let ranking = brain.rank(t.text, &mut timings).await;
        let classification = ranking.as_ref().map(|r| Classification {
            class: r
                .classified
                .intent
                .clone()
                .unwrap_or_else(|| NOT_A_COMMAND.into()),
            probability: r.classified.probability,
            no_command: r.classified.no_command,
            answer: r.classified.answer.clone(),
            closest: r.intents.first().cloned(),
        });
        let classified = ranking.as_ref().and_then(|r| brain.classified(t.text, r));
        let thought = match classified {
            Some(thought) => thought,
            None => {
                // No chat while the driver manoeuvres: nothing is given out to be spoken then.
                let manoeuvring = self.manoeuvring().await;
                let mut quiet = |_: &str| {};
                let on_sentence: &mut (dyn FnMut(&str) + Send) =
                    if manoeuvring { &mut quiet } else { on_sentence };
                brain
                    .think(t.text, ranking.as_ref(), &mut timings, on_sentence)
                    .await
            }
        };
        let understood = ms(t.started.elapsed());
        t.understood = Some(understood);
        let mut turn = match thought {
            Thought::Intent {
                route,
                intent,
                args,
                rules,
            } => {
                let proposal = Proposal {
                    route,
                    intent,
                    args,
                };
                let mut turn = self
                    .propose_gated(t.text, &proposal, t.zone, t.hearing, context, go_ahead)
                    .await;
                turn.outcome.rules = rules;
                turn
            }
            Thought::Answer { route, text } => Turn {
                outcome: self.answer(t, route, text).await,
                context,
                follow_up: true,
            },
            Thought::Talk { name } => {
                let outcome = match self.profile.small_talk.iter().find(|s| s.name == name) {
                    Some(talk) => self.talk(t, Route::Classifier, talk).await,
                    None => {
                        tracing::warn!("the answer model picked '{name}', which is no small talk");
                        let mut outcome = self.outcome(t, Route::Decline, None, &BTreeMap::new());
                        outcome.reply = self.profile.lexicon.replies.decline.clone();
                        outcome
                    }
                };
                Turn {
                    outcome,
                    context,
                    follow_up: false,
                }
            }
            Thought::Unavailable { why } => {
                tracing::warn!("no model route: {why}");
                let mut outcome = self.outcome(t, Route::Decline, None, &BTreeMap::new());
                outcome.reply = self.profile.lexicon.replies.unavailable.clone();
                Turn {
                    outcome,
                    context,
                    follow_up: false,
                }
            }
        };
        turn.outcome.classifier = classification;
        let timings_ms = &mut turn.outcome.timings_ms;
        timings_ms.extend(timings);
        timings_ms.insert("understand", understood);
        timings_ms.insert("total", ms(t.started.elapsed()));
        turn
    }
}
