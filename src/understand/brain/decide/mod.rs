//! The decision: what the grammar did not take goes to the local model (offered the
//! shortlist's intents), and answers to the cloud where allowed; what comes back is read,
//! guarded and turned into a [`Thought`].

use crate::profile::MAX_SPOKEN_WORDS;
use crate::profile::{placeholders, ActionKind, Profile, Rule, SlotType};
use crate::runtime::llm::{ms, Completion, LlmError};
use crate::runtime::worker::{LlmWorker, WorkerState};
use crate::understand::brain::cloud::{cloud_client, probe, redact, Cloud};
use crate::understand::brain::guards::{spoken, within_words};
use crate::understand::brain::prompt::{system_prompt, tool_name, tools};
use crate::understand::grammar::Matcher;
use crate::understand::shortlist::{Ranking, Shortlist};
use crate::understand::turn::Route;
use direction::Directions;
use generate::Generated;
use rules::{plains, refinements, Refinements};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the model routes made of an utterance.
#[derive(Debug, Clone, PartialEq)]
pub enum Thought {
    /// A call of a profile intent, to be validated and run, with the rules that changed
    /// what the model route proposed.
    Intent {
        route: Route,
        intent: String,
        args: Map<String, Value>,
        rules: Vec<Rule>,
    },
    /// A spoken answer, no action.
    Answer { route: Route, text: String },
    /// The profile's own answer to small talk, by name, picked by the answer model.
    Talk { name: String },
    /// No model could be asked; `why` is for the log and `cabin say --json`.
    Unavailable { why: String },
}

/// How many of the closest intents the local model may choose from.
pub(super) const SHORTLIST: usize = 3;

/// How close a refinement of the closest intent must come to be chosen when the words say a
/// value only it takes ([`Brain::refinement`]); MiniLM's `near`.
pub(super) const REFINE_NEAR: f32 = 0.05;

pub struct Brain {
    local: LlmWorker,
    cloud: Option<Cloud>,
    tools: Value,
    /// Tool name → intent name.
    intents: HashMap<String, String>,
    system: String,
    max_tokens: u32,
    local_budget: Duration,
    shortlist: Option<Shortlist>,
    /// Tool name → its text slots, whose values must be the driver's words: a model fills
    /// them with whatever its prompt showed.
    text_slots: HashMap<String, Vec<String>>,
    /// The fast path's grammar, to read answers that are commands.
    commands: Matcher,
    /// Tool names by index into the profile's intents (as [`Matcher`] gives them).
    tools_by_index: Vec<String>,
    /// Intent → its refinements, with the slot types only they take.
    refinements: HashMap<String, Refinements>,
    /// Refinement → the intents it refines, each with the slot types only the refinement takes.
    plains: HashMap<String, Refinements>,
    /// Intent → its slots, as the model routes fill them.
    slots: HashMap<String, Vec<Slot>>,
    /// The probability at which the classifier decides.
    classifier_confident: f32,
    /// The probability from which it decides where the closest sentence agrees.
    classifier_agreed: f32,
    /// The probability at which the answer model picks a small-talk answer.
    answer_confident: f32,
    /// The tools the local model may call for words that ask a question: the reads and the
    /// calls whose reply says their result ("how far can I go", "how much air is in the back
    /// left tyre"), and the intents with a text slot ("how do I get to the station").
    question_tools: BTreeSet<String>,
    directions: Directions,
    /// The rules the profile leaves out.
    rules_off: BTreeSet<Rule>,
}

/// A slot of an intent, as the model routes fill it.
#[derive(Debug)]
struct Slot {
    name: String,
    type_name: String,
    ty: SlotType,
    /// Whether the intent fills it without the words: a default, or a question to the driver.
    default: bool,
    asks: bool,
}

impl Brain {
    /// Uses `local` for the local route; sets up the cloud route if the profile allows it.
    /// With a `shortlist`, the local model may only call the intents closest to the words.
    pub fn new(profile: &Profile, local: LlmWorker, shortlist: Option<Shortlist>) -> Brain {
        let (tools, intents) = tools(profile);
        let cloud = cloud_client(&profile.cloud).map(|client| {
            let reachable = Arc::new(AtomicBool::new(true));
            let probe = tokio::spawn(probe(client.base().to_string(), reachable.clone()));
            Cloud {
                client,
                budget: profile.cloud.budget,
                redact: profile.cloud.redact_names,
                reachable,
                probe,
            }
        });
        let text_slots: HashMap<String, Vec<String>> = profile
            .intents
            .iter()
            .map(|i| {
                let text = i
                    .slots
                    .iter()
                    .filter(|(_, ty)| {
                        matches!(profile.slot_types.get(*ty), Some(SlotType::Text { .. }))
                    })
                    .map(|(slot, _)| slot.clone())
                    .collect();
                (tool_name(&i.name), text)
            })
            .collect();
        let question_tools = profile
            .intents
            .iter()
            .filter_map(|i| {
                let tool = tool_name(&i.name);
                let answers = matches!(i.action.kind, ActionKind::GetProperty { .. })
                    || placeholders(&i.reply).iter().any(|p| p == "result")
                    || text_slots.get(&tool).is_some_and(|slots| !slots.is_empty());
                answers.then_some(tool)
            })
            .collect();
        let commands = Matcher::new(profile);
        let refinements = refinements(profile);
        Brain {
            local,
            cloud,
            tools,
            intents,
            system: system_prompt(profile),
            max_tokens: profile.llm.max_tokens,
            local_budget: profile.llm.budget,
            shortlist,
            text_slots,
            directions: Directions::new(profile, &commands),
            commands,
            tools_by_index: profile.intents.iter().map(|i| tool_name(&i.name)).collect(),
            plains: plains(&refinements),
            refinements,
            slots: profile
                .intents
                .iter()
                .map(|i| {
                    let slots = i
                        .slots
                        .iter()
                        .filter_map(|(slot, ty)| {
                            Some(Slot {
                                name: slot.clone(),
                                type_name: ty.clone(),
                                ty: profile.slot_types.get(ty)?.clone(),
                                default: i.defaults.contains_key(slot),
                                asks: i.ask.contains_key(slot),
                            })
                        })
                        .collect();
                    (i.name.clone(), slots)
                })
                .collect(),
            classifier_confident: profile.classifier.confident,
            classifier_agreed: profile.classifier.agreed,
            answer_confident: profile.classifier.answers,
            question_tools,
            rules_off: profile.rules_off.clone(),
        }
    }

    /// Waits until the intent shortlist, if any, is built: for runs that measure or check the
    /// brain as it will be once started, rather than its first seconds.
    pub async fn shortlist_built(&self) {
        if let Some(shortlist) = &self.shortlist {
            shortlist.built().await;
        }
    }

    /// The system message and one user turn: every request starts with the same system
    /// message (and tools), whose KV cache the worker keeps.
    fn messages(&self, user: &str) -> [Value; 2] {
        [
            json!({"role": "system", "content": self.system}),
            json!({"role": "user", "content": user}),
        ]
    }

    pub fn worker(&self) -> &LlmWorker {
        &self.local
    }

    /// Has a ready local model evaluate the shared prompt prefix, so the first real request
    /// is as fast as the rest (a supervised worker is warmed by its supervisor).
    pub async fn warm_up(&self) -> Result<(), LlmError> {
        let WorkerState::Ready(client) = self.local.state() else {
            return Ok(());
        };
        crate::runtime::worker::warm_up(&client, &self.system, &self.tools).await
    }

    /// Asks the local model; a call of an intent's tool is proposed, words are the answer,
    /// which the cloud may replace (where allowed and reachable, within its budget).
    /// `timings` gets `local_llm` and `cloud` in milliseconds.
    ///
    /// Small models sometimes describe a call instead of making it ("you can call the
    /// climate-warmer function"): when the words name an offered tool, generation stops there
    /// and the model is asked for that tool's arguments, under its grammar. The prompt is the
    /// same, so its cache still holds. Or they say the command ("Call your sister."): a
    /// sentence that the fast path's grammar reads as an offered intent is that call.
    ///
    /// A call whose text slot holds no word the driver said (a destination, a contact) is
    /// the model's invention; the model is asked again for an answer, with no call allowed.
    ///
    /// `on_sentence` gets each whole sentence of a local answer as it is generated, so speech
    /// can start before the answer is complete; not while the cloud may still replace it, nor
    /// a sentence that names a tool or is a command. The answer returned always starts with
    /// those sentences.
    pub async fn think(
        &self,
        text: &str,
        ranking: Option<&Ranking>,
        timings: &mut BTreeMap<&'static str, f64>,
        on_sentence: &mut (dyn FnMut(&str) + Send),
    ) -> Thought {
        let local = match self.local.state() {
            WorkerState::Ready(client) => client,
            WorkerState::Starting => {
                return Thought::Unavailable {
                    why: "the local model is still loading".into(),
                }
            }
            WorkerState::Down(why) => return Thought::Unavailable { why },
        };
        let messages = self.messages(text);
        let (choice, offered) = self.tool_choice(text, ranking);
        let started = Instant::now();
        let stream = self
            .cloud
            .as_ref()
            .is_none_or(|c| !c.reachable.load(Ordering::Relaxed));
        let mut generated = self
            .generate(
                &local,
                &messages,
                &choice,
                offered.as_deref(),
                stream,
                on_sentence,
            )
            .await;
        timings.insert("local_llm", ms(started));
        let mut call = match &generated.result {
            Ok(c) => c.tool_call.clone(),
            Err(_) => None,
        };
        if let (None, Some(tool)) = (&call, &generated.named) {
            let choice = json!({"type": "function", "function": {"name": tool}});
            let second = bounded(
                self.local_budget,
                local.complete(&messages, Some((&self.tools, &choice)), 48, |_| true),
            )
            .await;
            timings.insert("local_llm", ms(started));
            call = match second {
                Ok(Completion {
                    tool_call: Some(call),
                    ..
                }) => Some(call),
                Ok(_) => {
                    return Thought::Unavailable {
                        why: format!("the local model named '{tool}' but gave no arguments"),
                    }
                }
                Err(e) => {
                    return Thought::Unavailable {
                        why: format!("the local model failed: {e}"),
                    }
                }
            };
        }
        if let Some(call) = call {
            match self.invented(text, &call.name, &call.arguments) {
                None => {
                    return self.intent(Route::LocalLlm, &call.name, &call.arguments, text, ranking)
                }
                // "drive the car for me" became a route to Alex (a name the prompt's examples
                // once showed). An answer is better than an action nobody asked for.
                Some(slot) => {
                    tracing::info!(
                        "the local model made up the {slot} of {}; asking it for an answer instead",
                        call.name
                    );
                    generated = self
                        .generate(
                            &local,
                            &messages,
                            &json!("none"),
                            Some(&[]),
                            stream,
                            on_sentence,
                        )
                        .await;
                    timings.insert("local_llm", ms(started));
                }
            }
        }
        let Generated {
            result,
            command,
            garbled,
            said,
            unsaid,
            long,
            ..
        } = generated;
        let completion = match result {
            Ok(c) => c,
            // Out of time mid-answer: what was already said is the answer.
            Err(e) if !said.is_empty() => {
                tracing::warn!("the local model stopped mid-answer ({e}); keeping what it said");
                return Thought::Answer {
                    route: Route::LocalLlm,
                    text: said.join(" "),
                };
            }
            Err(e) => {
                return Thought::Unavailable {
                    why: format!("the local model failed: {e}"),
                }
            }
        };
        // Only from an endpoint that ignored `tool_choice: none`.
        if completion.tool_call.is_some() {
            return Thought::Unavailable {
                why: "the local model called a tool where none was allowed".into(),
            };
        }
        // The words were a command the grammar knows ("Call your sister."): the model meant
        // to make that call, and the grammar has read its arguments.
        let rest = if stream { &unsaid } else { &completion.content };
        let command = command.or_else(|| self.spoken_command(rest, offered.as_deref()));
        if let Some((tool, arguments)) = command {
            if self.invented(text, &tool, &arguments).is_none() {
                return self.intent(Route::LocalLlm, &tool, &arguments, text, ranking);
            }
        }
        // Words about a tool it may not call ("Call the navigation-navigate_to function"), its
        // instructions recited, or the request said back: what was said so far, the cloud's
        // answer, or that Cabin can't do it; never the tool's name, the prompt, or a command
        // as if done.
        let unfit = garbled || self.unfit_words(text, rest);
        if unfit {
            tracing::info!(
                "the local model named a tool it was not offered, recited its instructions or said the request back; not speaking it"
            );
            if !said.is_empty() {
                return Thought::Answer {
                    route: Route::LocalLlm,
                    text: said.join(" "),
                };
            }
        }
        // Once the local answer is being spoken, it is the answer.
        if said.is_empty() {
            if let Some(text) = self.cloud_answer(text, timings).await {
                return Thought::Answer {
                    route: Route::Cloud,
                    text,
                };
            }
        }
        if unfit {
            return Thought::Answer {
                route: Route::LocalLlm,
                text: self.commands.lexicon().replies.decline.clone(),
            };
        }
        let answer = match (long, said.is_empty()) {
            (false, _) => spoken(&completion.content),
            // What was already spoken, without the sentence the limit cut.
            (true, false) => said.join(" "),
            (true, true) => within_words(&spoken(&completion.content), MAX_SPOKEN_WORDS),
        };
        match answer {
            t if t.is_empty() => Thought::Unavailable {
                why: "the local model gave an empty answer".into(),
            },
            t => Thought::Answer {
                route: Route::LocalLlm,
                text: t,
            },
        }
    }

    /// The cloud's answer, if the profile allows the cloud, it is reachable, and it answers
    /// within budget. No tools are offered: the cloud only talks, it never actuates.
    async fn cloud_answer(
        &self,
        text: &str,
        timings: &mut BTreeMap<&'static str, f64>,
    ) -> Option<String> {
        let cloud = self.cloud.as_ref()?;
        if !cloud.reachable.load(Ordering::Relaxed) {
            tracing::info!("cloud unreachable; answering locally");
            return None;
        }
        let sent = if cloud.redact {
            redact(text)
        } else {
            text.to_string()
        };
        let messages = self.messages(&sent);
        let started = Instant::now();
        let result = bounded(
            cloud.budget,
            cloud
                .client
                .complete(&messages, None, self.max_tokens, |_| true),
        )
        .await;
        timings.insert("cloud", ms(started));
        match result.map(|c| within_words(&spoken(&c.content), MAX_SPOKEN_WORDS)) {
            Ok(answer) if !answer.is_empty() => Some(answer),
            Ok(_) => {
                tracing::warn!("the cloud answered with nothing; using the local answer");
                None
            }
            Err(e) => {
                if matches!(e, LlmError::Unreachable(_) | LlmError::Timeout(_)) {
                    cloud.reachable.store(false, Ordering::Relaxed);
                }
                tracing::warn!("cloud failed ({e}); using the local answer");
                None
            }
        }
    }
}

pub(super) async fn bounded<T>(
    budget: Duration,
    f: impl std::future::Future<Output = Result<T, LlmError>>,
) -> Result<T, LlmError> {
    tokio::time::timeout(budget, f)
        .await
        .unwrap_or(Err(LlmError::Timeout(budget.as_millis() as u64)))
}

mod classify;
mod direction;
mod generate;
mod offer;
mod rules;
#[cfg(test)]
mod tests;
