//! The small model's route: the shortlist's classifier decides the commands it is sure of,
//! with their slots read from the words by the grammar, in milliseconds and without the local
//! model; what it is sure is no car command may only be answered.

use super::Brain;
use crate::profile::SlotType;
use crate::runtime::llm::ms;
use crate::understand::brain::Thought;
use crate::understand::shortlist::Ranking;
use crate::understand::turn::Route;
use serde_json::Map;
use std::collections::BTreeMap;
use std::time::Instant;

/// How many times likelier than no command an intent must be for the classifier to decide it
/// below `confident` (with `agreed`). On the first halves of the Mandarin and Indonesian
/// development sets, whose embedding gives flat probabilities, every request that was no
/// command and that the classifier leaned to an intent for was at most 3.5 times likelier
/// that intent; every command the agreement took was at least 5.6 times.
const OVER_NO_COMMAND: f32 = 5.0;

impl Brain {
    /// The shortlist's ranking of `text` and its classifier's class (timed as `shortlist`);
    /// None without a shortlist or while it is still being built.
    pub async fn rank(
        &self,
        text: &str,
        timings: &mut BTreeMap<&'static str, f64>,
    ) -> Option<Ranking> {
        let shortlist = self.shortlist.as_ref()?;
        let started = Instant::now();
        // The polite words around a command only blur what it is close to.
        let core = self.commands.core_words(text);
        let ranked = shortlist
            .rank(if core.is_empty() { text } else { &core })
            .await;
        timings.insert("shortlist", ms(started));
        match ranked {
            Ok(r) => {
                tracing::debug!(
                    "classifier: {:?} at {:.2}; shortlist: {:?}",
                    r.classified.intent,
                    r.classified.probability,
                    &r.intents[..super::SHORTLIST.min(r.intents.len())]
                );
                Some(r)
            }
            Err(e) => {
                tracing::warn!("no shortlist ({e}); the local model may call any intent");
                None
            }
        }
    }

    /// The call of the intent the classifier is sure of, each enum or number slot filled with
    /// the value the words say (read by the grammar; "to twenty one degrees"), the rest left
    /// to defaults, the speaker's zone or a question. None when it is not sure, when it is
    /// sure there is no command, or when the intent takes a text slot (a place, a contact):
    /// picking those words out is the local model's job.
    ///
    /// Words it is sure are no command, whose small talk the answer model is sure of, get that
    /// answer from the profile: no local model to invent the weather.
    pub fn classified(&self, text: &str, ranking: &Ranking) -> Option<Thought> {
        let c = &ranking.classified;
        if let Some((name, p)) = &c.answer {
            if self.not_a_command(ranking) && *p >= self.answer_confident {
                return Some(Thought::Talk { name: name.clone() });
            }
        }
        let intent = self.sure_of(text, ranking)?;
        let mut fired = Vec::new();
        let intent = self.classifier_call(text, intent, &mut fired);
        let mut args = Map::new();
        for slot in self.slots.get(intent)? {
            if matches!(slot.ty, SlotType::Text { .. }) {
                return None;
            }
            // A value in range, else one out of it, for the reply to say the range.
            if let Some(value) = self.said_value(text, slot) {
                args.insert(slot.name.clone(), value);
            }
        }
        Some(Thought::Intent {
            route: Route::Classifier,
            intent: intent.to_string(),
            args,
            rules: fired,
        })
    }

    /// The intent the small models are sure of in `text`: the classifier's at `confident` or
    /// more, or at `agreed` or more where the profile's sentence closest to the words is of
    /// the same intent, the intent is [`OVER_NO_COMMAND`] times likelier than no command, and
    /// the words ask no question. Two models that read the words differently (a regression
    /// over every sentence, the single nearest one) rarely agree by chance. A question ("how
    /// is the weather this week") is close to a read or a command of its topic; only the sure
    /// classifier takes one as a command.
    pub(super) fn sure_of<'r>(&self, text: &str, ranking: &'r Ranking) -> Option<&'r str> {
        let c = &ranking.classified;
        let intent = c.intent.as_deref()?;
        if c.probability >= self.classifier_confident {
            return Some(intent);
        }
        let closest = ranking.intents.first().map(|(i, _)| i.as_str());
        let agreed = c.probability >= self.classifier_agreed
            && c.probability >= OVER_NO_COMMAND * c.no_command
            && closest == Some(intent)
            && !self.asks(text);
        agreed.then_some(intent)
    }

    /// Whether the classifier is sure `ranking`'s words are no car command: the local model
    /// may then only answer them. (Below that, the local model still sees the shortlist's
    /// tools: on `eval/router.jsonl`, answering whatever was likeliest talk lost 11 commands,
    /// most of them calls and routes whose names and places pull towards the negatives.)
    pub fn not_a_command(&self, ranking: &Ranking) -> bool {
        let c = &ranking.classified;
        c.intent.is_none() && c.probability >= self.classifier_confident
    }
}
