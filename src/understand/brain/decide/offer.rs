//! What the local model is offered: every tool, the few closest to the words, only the ones
//! that answer a question, or none.

use super::{Brain, SHORTLIST};
use crate::understand::brain::guards::asks_a_question;
use crate::understand::brain::prompt::tool_name;
use crate::understand::shortlist::Ranking;
use serde_json::{json, Value};

impl Brain {
    /// `auto` over every tool, or, with a shortlist, `allowed_tools` naming the intents closest
    /// to `text` (the prompt still lists every tool, so its cache holds), with those tools'
    /// names; for a question, or words the classifier thinks likeliest no command, only those
    /// of them it may call ([`Brain::for_a_question`]).
    pub(super) fn tool_choice(
        &self,
        text: &str,
        ranking: Option<&Ranking>,
    ) -> (Value, Option<Vec<String>>) {
        let (choice, offered) = self.closest_tools(text, ranking);
        // Unsure but leaning to talk: on the development set of real people's words, every
        // such request the local model turned into an action was wrong (a robot vacuum
        // switched the climate on, "go to sleep" drove home), and none was a command it got
        // right but a read or a call.
        let leans_to_talk = ranking.is_some_and(|r| r.classified.intent.is_none());
        if leans_to_talk || self.asks(text) {
            return self.for_a_question(choice, offered);
        }
        (choice, offered)
    }

    /// Whether `text`, its polite words taken off, opens as a question in the profile's
    /// language.
    pub(super) fn asks(&self, text: &str) -> bool {
        asks_a_question(
            &self.commands.core_words(text),
            &self.commands.lexicon().questions,
        )
    }

    /// `choice` and `offered` less every tool but [`Brain::question_tools`]: a question gets a
    /// read, a route or a call, or words; the local model, offered the closest intents, once
    /// answered "why is the sky blue" by setting the ambient colour and "what's the speed of
    /// light" by brightening the lights. The grammar and the sure classifier still decide
    /// before this (a question they read as a command is one).
    pub(super) fn for_a_question(
        &self,
        choice: Value,
        offered: Option<Vec<String>>,
    ) -> (Value, Option<Vec<String>>) {
        let (mode, names) = match (&choice["allowed_tools"]["mode"], offered) {
            (Value::String(mode), Some(names)) => (mode.clone(), names),
            // Every tool was offered.
            (_, None) => (
                "auto".to_string(),
                self.question_tools.iter().cloned().collect(),
            ),
            // Words only already.
            (_, Some(names)) => return (choice, Some(names)),
        };
        let names: Vec<String> = names
            .into_iter()
            .filter(|n| self.question_tools.contains(n))
            .collect();
        if names.is_empty() {
            return (json!("none"), Some(names));
        }
        (allowed_tools(&mode, &names), Some(names))
    }

    /// The tool choice for `text` whatever its form ([`Brain::tool_choice`]).
    pub(super) fn closest_tools(
        &self,
        text: &str,
        ranking: Option<&Ranking>,
    ) -> (Value, Option<Vec<String>>) {
        let (Some(shortlist), Some(ranking)) = (&self.shortlist, ranking) else {
            return (json!("auto"), None);
        };
        // Sure there is no command: words only.
        if self.not_a_command(ranking) {
            return (json!("none"), Some(Vec::new()));
        }
        // Sure of an intent the classifier could not fill (a text slot): that call.
        if let Some(intent) = self.sure_of(text, ranking) {
            let names = vec![tool_name(self.refined(text, intent))];
            return (allowed_tools("required", &names), Some(names));
        }
        let ranked = &ranking.intents;
        // Close enough to an intent's own sentences: a call is required, of that intent or of
        // any that come as close as the embedding model's `near` allows (with MiniLM, near
        // senses such as "warm up" and "turn the heating on" embed alike; the model tells them
        // apart). Otherwise the model may call one of the closest few, or answer. An intent
        // whose opposite is closer is left out: given both, the model follows surface words
        // ("the music is too loud" → volume up, "cool things down" → warmer), where the
        // embedding, close to the profile's own sentences, more often has the direction right.
        let ranked: Vec<&(String, f32)> = ranked
            .iter()
            .enumerate()
            .filter(|(i, (intent, _))| {
                let opposite = self.directions.opposite(intent);
                !ranked[..*i].iter().any(|(o, _)| Some(o) == opposite)
            })
            .map(|(_, r)| r)
            .collect();
        let (mode, take) = match ranked.first() {
            Some((_, best)) if *best >= shortlist.confident() => {
                let near = ranked
                    .iter()
                    .take_while(|r| r.1 >= best - shortlist.near())
                    .count();
                ("required", near.min(SHORTLIST))
            }
            _ => ("auto", SHORTLIST),
        };
        let mut names: Vec<String> = ranked
            .iter()
            .take(take)
            .map(|(intent, _)| tool_name(intent))
            .collect();
        if mode == "required" {
            if let Some(refined) = self.refinement(text, &ranked) {
                tracing::debug!("shortlist: {refined} says what the words say");
                let refined = tool_name(refined);
                names.retain(|n| *n != refined);
                names[0] = refined;
            }
        }
        (allowed_tools(mode, &names), Some(names))
    }
}

/// A `tool_choice` that lets the model call only `names`, under `mode` (`auto` or `required`).
fn allowed_tools(mode: &str, names: &[String]) -> Value {
    let tools: Vec<Value> = names
        .iter()
        .map(|name| json!({"type": "function", "function": {"name": name}}))
        .collect();
    json!({"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": tools}})
}
