//! The effect at the edge of a turn: the safety policy's verdict on the driving state, then the
//! vehicle call.

use super::*;

impl Assistant {
    /// Runs the action of a filled, checked intent (after a confirmation too: the safety
    /// policy is checked again, since the car may have moved off meanwhile).
    pub(super) async fn act(
        &self,
        t: &mut TurnCtx<'_>,
        route: Route,
        index: usize,
        slots: BTreeMap<String, SlotValue>,
        context: Context,
        go_ahead: impl FnOnce(&ResolvedAction) -> bool,
    ) -> Turn {
        let intent = &self.profile.intents[index];
        if t.understood.is_none() {
            t.understood = Some(ms(t.started.elapsed()));
        }
        if let Some(refused) = self.refused(t, route, index, &slots, &context).await {
            return refused;
        }
        let mut outcome = self.outcome(t, route, Some(index), &slots);
        let action = match ResolvedAction::resolve(&intent.action, &slots) {
            Ok(a) => a,
            Err(problem) => {
                outcome.reply = format!("Sorry, I can't do that: {problem}.");
                return Turn {
                    outcome,
                    context,
                    follow_up: false,
                };
            }
        };
        if !go_ahead(&action) {
            outcome.refused = Some("cancelled before it acted".into());
            return Turn {
                outcome,
                context,
                follow_up: false,
            };
        }
        let acted = Instant::now();
        let result = self.vehicle.execute(&action).await;
        outcome.timings_ms.insert("action", ms(acted.elapsed()));
        let (success, detail) = match result {
            Ok(value) => {
                let reply = intent.reply_for(&slots);
                outcome.reply = match (&value, reply.contains("{result}")) {
                    (Some(v), true) => fill(reply, &slots).replace("{result}", v),
                    (None, true) => Failure::Refused {
                        name: String::new(),
                        message: String::new(),
                    }
                    .reply(&action.target, &self.profile.lexicon.replies),
                    _ => fill(reply, &slots),
                };
                (true, value.unwrap_or_else(|| "ok".into()))
            }
            Err(failure) => {
                tracing::warn!(intent = %intent.name, detail = %failure.log_detail(), "action failed");
                outcome.reply = match &failure {
                    Failure::Refused { name, .. } if intent.error_replies.contains_key(name) => {
                        fill(&intent.error_replies[name], &slots)
                    }
                    _ => failure.reply(&action.target, &self.profile.lexicon.replies),
                };
                (false, failure.detail())
            }
        };
        outcome.action = Some(ActionReport {
            action,
            success,
            detail,
        });
        outcome.timings_ms.insert("total", ms(t.started.elapsed()));
        let context = Context {
            last: Some(Last {
                intent: index,
                slots,
                zone: t.zone.map(str::to_string),
            }),
            pending: None,
        };
        Turn {
            outcome,
            context,
            follow_up: intent.follow_up,
        }
    }

    /// Whether the car is in reverse (unknown state counts as not: small talk is harmless).
    pub(super) async fn manoeuvring(&self) -> bool {
        match &self.profile.vehicle.state {
            Some(source) => self.vehicle.driving_state(source).await.manoeuvring(),
            None => false,
        }
    }

    /// The turn that refuses the intent, if the safety policy does not allow it now.
    pub(super) async fn refused(
        &self,
        t: &TurnCtx<'_>,
        route: Route,
        index: usize,
        slots: &BTreeMap<String, SlotValue>,
        context: &Context,
    ) -> Option<Turn> {
        let intent = &self.profile.intents[index];
        // The call as it would go out: a constraint may hold only for some of its values. One
        // that can't be resolved has no values, and its constraint holds.
        let args = ResolvedAction::resolve(&intent.action, slots)
            .map(|a| a.args)
            .unwrap_or_default();
        let reason = self.refusal(intent, &args).await?;
        let mut outcome = self.outcome(t, route, Some(index), slots);
        outcome.reply = intent
            .when
            .as_ref()
            .map(|w| w.refusal.clone())
            .unwrap_or_default();
        outcome.refused = Some(reason);
        let context = Context {
            last: context.last.clone(),
            pending: None,
        };
        Some(Turn {
            outcome,
            context,
            follow_up: false,
        })
    }

    /// Why the intent's call with `args` may not run in the current driving state, if it may
    /// not.
    pub(super) async fn refusal(&self, intent: &Intent, args: &[ArgValue]) -> Option<String> {
        let constraint = intent.when.as_ref()?;
        let Some(source) = &self.profile.vehicle.state else {
            return Some("no source of vehicle state".into());
        };
        let state = self.vehicle.driving_state(source).await;
        crate::act::safety::check(constraint, &state, args)
            .err()
            .map(|refusal| refusal.to_string())
    }
}
