//! Words the recogniser was unsure of are said back before they act.

use super::{Assistant, Hearing, TurnCtx};
use crate::act::vehicle::fill;
use crate::profile::{Intent, SlotValue};
use std::collections::BTreeMap;

impl Assistant {
    /// The question asked before `intent` acts, if any: words heard unsure are said back
    /// ("Did you say …?"); otherwise the intent's own question, for those that need a yes.
    pub(super) fn question(
        &self,
        t: &TurnCtx,
        intent: &Intent,
        slots: &BTreeMap<String, SlotValue>,
    ) -> Option<String> {
        match t.hearing {
            Hearing::Unsure => Some(
                self.profile
                    .lexicon
                    .replies
                    .heard_unsure
                    .replace("{heard}", t.text.trim()),
            ),
            Hearing::Sure => intent.confirm.as_ref().map(|prompt| fill(prompt, slots)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::understand::dialog::tests::{assistant, say, REPLIES};
    use crate::understand::turn::{Context, Proposal, Route};

    /// Issue 40: words the recogniser was unsure of are said back before they act; a yes acts, a
    /// no does nothing. Small talk, which takes no action, is answered as it is.
    #[tokio::test]
    async fn words_heard_unsure_are_said_back_before_they_act() {
        let a = assistant();
        let heard = |text: &'static str, ctx: Context| {
            let a = &a;
            async move { a.turn(text, None, Hearing::Unsure, ctx, |_| {}).await }
        };
        let t = heard("switch off the air conditioning", Context::default()).await;
        assert_eq!(t.outcome.intent.as_deref(), Some("climate.ac_off"));
        assert_eq!(
            t.outcome.reply,
            "Did you say \"switch off the air conditioning\"?"
        );
        assert_eq!(t.outcome.awaiting.as_deref(), Some("confirmation"));
        assert!(t.outcome.action.is_none() && t.follow_up);

        let no = say(&a, "no", None, t.context.clone()).await;
        assert_eq!(no.outcome.reply, REPLIES.confirm_cancelled);
        assert!(no.outcome.action.is_none());
        let yes = say(&a, "yes", None, t.context).await;
        assert_eq!(yes.outcome.intent.as_deref(), Some("climate.ac_off"));
        assert!(yes.outcome.action.is_some(), "yes switches it off");

        // A model route's proposal of words heard unsure is said back too (regression: only the
        // grammar's matches were).
        let proposal = Proposal {
            route: Route::Classifier,
            intent: "climate.ac_off".into(),
            args: Default::default(),
        };
        let t = a
            .propose_gated(
                "the air con can go",
                &proposal,
                None,
                Hearing::Unsure,
                Context::default(),
                |_| true,
            )
            .await;
        assert_eq!(t.outcome.awaiting.as_deref(), Some("confirmation"));
        assert!(t.outcome.action.is_none());

        let hello = heard("hello", Context::default()).await;
        assert!(hello.outcome.awaiting.is_none() && hello.outcome.action.is_none());
        // Heard sure, it acts at once.
        let sure = say(
            &a,
            "switch off the air conditioning",
            None,
            Context::default(),
        )
        .await;
        assert!(sure.outcome.action.is_some());
    }
}
