//! One completion of the local model, read as it streams: a tool it names, a sentence that is
//! a command, words not to be spoken, and the sentences given out to be spoken.

use super::{bounded, Brain};
use crate::profile::MAX_SPOKEN_WORDS;
use crate::runtime::llm::{ChatClient, Completion, LlmError};
use crate::understand::brain::guards::{
    echoes, loops, other_language, recites_instructions, shows_prompt, shows_tool_syntax, spoken,
    spoken_length,
};
use serde_json::{Map, Value};

/// What one local completion gave.
pub(super) struct Generated {
    pub(super) result: Result<Completion, LlmError>,
    /// An offered tool that the words named.
    pub(super) named: Option<String>,
    /// An offered intent's command that a sentence was: the tool and its arguments.
    pub(super) command: Option<(String, String)>,
    /// The words named a tool that was not offered, or recited the instructions: not an
    /// answer to speak.
    pub(super) garbled: bool,
    /// The sentences given out to be spoken, and the words after them.
    pub(super) said: Vec<String>,
    pub(super) unsaid: String,
    /// Stopped past [`MAX_SPOKEN_WORDS`]: a driver hears every word, and a worker that
    /// ignores `max_tokens` could otherwise talk on to the byte cap.
    pub(super) long: bool,
}

impl Brain {
    /// One local completion under `choice`, within the local budget. Stops early at words
    /// that name an offered tool, or at a sentence that is an offered intent's command; gives
    /// out the other whole sentences as they come when `stream`.
    pub(super) async fn generate(
        &self,
        local: &ChatClient,
        messages: &[Value],
        choice: &Value,
        offered: Option<&[String]>,
        stream: bool,
        on_sentence: &mut (dyn FnMut(&str) + Send),
    ) -> Generated {
        // The driver's words: the last message.
        let request = messages
            .last()
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default();
        let mut named = None;
        let mut command = None;
        let mut garbled = false;
        let mut long = false;
        let mut words = String::new();
        // Generated text not yet a whole sentence, and the sentences already given out.
        let (mut unsaid, mut said) = (String::new(), Vec::new());
        let result = bounded(
            self.local_budget,
            local.complete(
                messages,
                Some((&self.tools, choice)),
                self.max_tokens,
                |piece| {
                    words.push_str(piece);
                    named = self.named_tool(&words, offered);
                    garbled = named.is_none()
                        && (self.named_tool(&words, None).is_some()
                            || recites_instructions(&words)
                            || shows_prompt(&words)
                            || shows_tool_syntax(&words)
                            || loops(&words));
                    if named.is_some() || garbled {
                        return false;
                    }
                    if spoken_length(&words) > MAX_SPOKEN_WORDS {
                        long = true;
                        return false;
                    }
                    if stream {
                        unsaid.push_str(piece);
                        for sentence in crate::text::take_sentences(&mut unsaid, false) {
                            command = self.spoken_command(&sentence, offered);
                            if command.is_some() {
                                return false;
                            }
                            if self.unfit_words(request, &sentence) {
                                garbled = true;
                                return false;
                            }
                            let sentence = spoken(&sentence);
                            on_sentence(&sentence);
                            said.push(sentence);
                        }
                    }
                    true
                },
            ),
        )
        .await;
        Generated {
            result,
            named,
            command,
            garbled,
            said,
            unsaid,
            long,
        }
    }

    /// Whether the model's `said` words are the driver's `request` said back as if done, or
    /// in another language than the profile's: not to be spoken.
    pub(super) fn unfit_words(&self, request: &str, said: &str) -> bool {
        let lexicon = self.commands.lexicon();
        echoes(request, said, &lexicon.echo.fillers) || other_language(said, lexicon)
    }

    /// `words` as an offered intent's command, read by the fast path's grammar: the tool and
    /// its arguments as JSON.
    pub(super) fn spoken_command(
        &self,
        words: &str,
        offered: Option<&[String]>,
    ) -> Option<(String, String)> {
        let found = self.commands.match_text(words)?;
        let tool = self.tools_by_index[found.intent].clone();
        if offered.is_some_and(|o| !o.contains(&tool)) {
            return None;
        }
        let args: Map<String, Value> = found
            .slots
            .iter()
            .map(|(slot, value)| (slot.clone(), value.to_json()))
            .collect();
        Some((tool, Value::Object(args).to_string()))
    }

    /// The longest offered tool name that `words` mention (as offered, or as the intent name);
    /// `offered` None offers every tool.
    pub(super) fn named_tool(&self, words: &str, offered: Option<&[String]>) -> Option<String> {
        self.intents
            .iter()
            .filter(|(tool, _)| offered.is_none_or(|o| o.contains(tool)))
            .filter(|(tool, intent)| {
                words.contains(tool.as_str()) || words.contains(intent.as_str())
            })
            .max_by_key(|(tool, _)| tool.len())
            .map(|(tool, _)| tool.clone())
    }
}
