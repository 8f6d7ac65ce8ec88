//! The decision: what the grammar did not take goes to the local model (offered the
//! shortlist's intents), and answers to the cloud where allowed; what comes back is read,
//! guarded and turned into a [`Thought`].

use crate::profile::MAX_SPOKEN_WORDS;
use crate::profile::{placeholders, ActionKind, Profile, SlotType, SlotValue, SPEAKER};
use crate::runtime::llm::{ms, ChatClient, Completion, LlmError};
use crate::runtime::worker::{LlmWorker, WorkerState};
use crate::understand::brain::cloud::{cloud_client, probe, redact, Cloud};
use crate::understand::brain::guards::{
    asks_a_question, echoes, loops, other_language, recites_instructions, shows_prompt,
    shows_tool_syntax, spoken, spoken_length, within_words,
};
use crate::understand::brain::prompt::{system_prompt, tool_name, tools};
use crate::understand::grammar::Matcher;
use crate::understand::shortlist::{Ranking, Shortlist};
use crate::understand::turn::Route;
use direction::Directions;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the model routes made of an utterance.
#[derive(Debug, Clone, PartialEq)]
pub enum Thought {
    /// A call of a profile intent, to be validated and run.
    Intent {
        route: Route,
        intent: String,
        args: Map<String, Value>,
    },
    /// A spoken answer, no action.
    Answer { route: Route, text: String },
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
    /// The tools the local model may call for words that ask a question: the reads and the
    /// calls whose reply says their result ("how far can I go", "how much air is in the back
    /// left tyre"), and the intents with a text slot ("how do I get to the station").
    question_tools: BTreeSet<String>,
    directions: Directions,
}

/// An intent's refinements, each with the slot types (name and type) only it takes.
type Refinements = Vec<(String, Vec<(String, SlotType)>)>;

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

/// What one local completion gave.
pub(super) struct Generated {
    result: Result<Completion, LlmError>,
    /// An offered tool that the words named.
    named: Option<String>,
    /// An offered intent's command that a sentence was: the tool and its arguments.
    command: Option<(String, String)>,
    /// The words named a tool that was not offered, or recited the instructions: not an
    /// answer to speak.
    garbled: bool,
    /// The sentences given out to be spoken, and the words after them.
    said: Vec<String>,
    unsaid: String,
    /// Stopped past [`MAX_SPOKEN_WORDS`]: a driver hears every word, and a worker that
    /// ignores `max_tokens` could otherwise talk on to the byte cap.
    long: bool,
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
            question_tools,
        }
    }

    /// Waits until the intent shortlist, if any, is built: for runs that measure or check the
    /// brain as it will be once started, rather than its first seconds.
    pub async fn shortlist_built(&self) {
        if let Some(shortlist) = &self.shortlist {
            shortlist.built().await;
        }
    }

    /// `auto` over every tool, or, with a shortlist, `allowed_tools` naming the intents closest
    /// to `text` (the prompt still lists every tool, so its cache holds), with those tools'
    /// names; for a question, or words the classifier thinks likeliest no command, only those
    /// of them it may call ([`Brain::for_a_question`]).
    fn tool_choice(&self, text: &str, ranking: Option<&Ranking>) -> (Value, Option<Vec<String>>) {
        let (choice, offered) = self.closest_tools(text, ranking);
        // Unsure but leaning to talk: on the development set of real people's words, every
        // such request the local model turned into an action was wrong (a robot vacuum
        // switched the climate on, "go to sleep" drove home), and none was a command it got
        // right but a read or a call.
        let leans_to_talk = ranking.is_some_and(|r| r.classified.intent.is_none());
        if leans_to_talk
            || asks_a_question(
                &self.commands.core_words(text),
                &self.commands.lexicon().questions,
            )
        {
            return self.for_a_question(choice, offered);
        }
        (choice, offered)
    }

    /// `choice` and `offered` less every tool but [`Brain::question_tools`]: a question gets a
    /// read, a route or a call, or words; the local model, offered the closest intents, once
    /// answered "why is the sky blue" by setting the ambient colour and "what's the speed of
    /// light" by brightening the lights. The grammar and the sure classifier still decide
    /// before this (a question they read as a command is one).
    fn for_a_question(
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
    fn closest_tools(&self, text: &str, ranking: Option<&Ranking>) -> (Value, Option<Vec<String>>) {
        let (Some(shortlist), Some(ranking)) = (&self.shortlist, ranking) else {
            return (json!("auto"), None);
        };
        // Sure there is no command: words only.
        if self.not_a_command(ranking) {
            return (json!("none"), Some(Vec::new()));
        }
        // Sure of an intent the classifier could not fill (a text slot): that call.
        if let Some(intent) = ranking
            .classified
            .intent
            .as_ref()
            .filter(|_| ranking.classified.probability >= self.classifier_confident)
        {
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

    /// A near intent that does what the closest one does with more said, where the words say
    /// it: "seat heater on maximum" is closest to switching the seat heating on, but "maximum"
    /// is a heat level, which only setting the level takes. The embedding ranks such pairs
    /// alike, and given both the model keeps to the plainer.
    fn refinement<'r>(&self, text: &str, ranked: &[&'r (String, f32)]) -> Option<&'r str> {
        let (closest, best) = ranked.first()?;
        let refinements = self.refinements.get(closest)?;
        ranked[1..]
            .iter()
            .take_while(|r| r.1 >= best - REFINE_NEAR)
            .find_map(|(intent, _)| {
                let (_, only_it_takes) = refinements.iter().find(|(r, _)| r == intent)?;
                self.says_a_value_of(text, only_it_takes)
                    .then_some(intent.as_str())
            })
    }

    /// Whether the words say a value of one of `types` (type name and type) within its range.
    fn says_a_value_of(&self, text: &str, types: &[(String, SlotType)]) -> bool {
        types.iter().any(|(name, ty)| {
            let values = self.commands.values_in(name, text);
            values.iter().any(|v| ty.admits(v))
        })
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

    /// One local completion under `choice`, within the local budget. Stops early at words
    /// that name an offered tool, or at a sentence that is an offered intent's command; gives
    /// out the other whole sentences as they come when `stream`.
    async fn generate(
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
    fn unfit_words(&self, request: &str, said: &str) -> bool {
        let lexicon = self.commands.lexicon();
        echoes(request, said, &lexicon.echo.fillers) || other_language(said, lexicon)
    }

    /// The slot of `tool`'s call whose text value has no word of the driver's `text`.
    /// Or the enum or number slot the words say no value of, where the intent has neither a
    /// default nor a question for it ("mobile" became switching the source to Bluetooth). A
    /// refinement's own values are not counted: unsaid, the call is the plainer intent's.
    fn invented(&self, text: &str, tool: &str, arguments: &str) -> Option<String> {
        let args: Map<String, Value> = serde_json::from_str(arguments).ok()?;
        let said: Vec<String> = self
            .commands
            .tokenize(text)
            .into_iter()
            .map(|t| t.norm)
            .collect();
        let text_slot = self.text_slots.get(tool)?.iter().find(|slot| {
            args.get(slot.as_str())
                .and_then(Value::as_str)
                .is_some_and(|value| {
                    !self
                        .commands
                        .tokenize(value)
                        .iter()
                        .any(|word| said.contains(&word.norm))
                })
        });
        if let Some(slot) = text_slot {
            return Some(slot.clone());
        }
        let intent = self.intents.get(tool)?;
        let refines: Vec<&String> = self
            .plains
            .get(intent)
            .into_iter()
            .flatten()
            .flat_map(|(_, only_it_takes)| only_it_takes.iter().map(|(t, _)| t))
            .collect();
        self.slots
            .get(intent)?
            .iter()
            .filter(|s| !matches!(s.ty, SlotType::Text { .. }) && !s.default && !s.asks)
            .filter(|s| !refines.contains(&&s.type_name))
            .find(|s| args.contains_key(&s.name) && self.said_value(text, s).is_none())
            .map(|s| s.name.clone())
    }

    /// `words` as an offered intent's command, read by the fast path's grammar: the tool and
    /// its arguments as JSON.
    fn spoken_command(&self, words: &str, offered: Option<&[String]>) -> Option<(String, String)> {
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
    fn named_tool(&self, words: &str, offered: Option<&[String]>) -> Option<String> {
        self.intents
            .iter()
            .filter(|(tool, _)| offered.is_none_or(|o| o.contains(tool)))
            .filter(|(tool, intent)| {
                words.contains(tool.as_str()) || words.contains(intent.as_str())
            })
            .max_by_key(|(tool, _)| tool.len())
            .map(|(tool, _)| tool.clone())
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

    /// The call of `tool`, on the classifier's side of a pair of opposites unless the words
    /// say the model's, turned to its opposite where the words say the opposite's direction
    /// ([`Directions`]), and as the words say it ([`Brain::as_said`]).
    fn intent(
        &self,
        route: Route,
        tool: &str,
        arguments: &str,
        text: &str,
        ranking: Option<&Ranking>,
    ) -> Thought {
        let Some(intent) = self.intents.get(tool) else {
            return Thought::Unavailable {
                why: format!("the model called '{tool}', which no profile intent offers"),
            };
        };
        match serde_json::from_str::<Value>(arguments) {
            Ok(Value::Object(args)) => {
                let classified = ranking.and_then(|r| r.classified.intent.as_deref());
                let intent = self.directions.sided(text, intent, classified);
                let (intent, args) =
                    self.as_said(text, self.directions.of(text, intent), args, ranking);
                Thought::Intent {
                    route,
                    intent: intent.to_string(),
                    args,
                }
            }
            _ => Thought::Unavailable {
                why: format!("the model's arguments for '{tool}' are not a JSON object"),
            },
        }
    }

    /// The model's call as the words say it. An intent whose refinement's values the words say
    /// is that refinement ("passenger seat heat to medium"), and a refinement whose own values
    /// the words do not say is the intent it refines, the closest one if several, turned the way
    /// the words say ("wind down the window" opens it; the model had it at 50 %). Every enum or
    /// number slot whose value the words say holds that value ("twenty degrees for the
    /// passenger" is 20 whatever the model wrote), and one the words say nothing of, with a
    /// default or a question, is left to it (the model picks a window, or the rear left zone
    /// for "it's freezing in here", that nobody named).
    fn as_said<'a>(
        &'a self,
        text: &str,
        intent: &'a str,
        mut args: Map<String, Value>,
        ranking: Option<&Ranking>,
    ) -> (&'a str, Map<String, Value>) {
        let mut intent = self.refined(text, intent);
        if let Some(plains) = self.plains.get(intent) {
            let rank = |name: &str| {
                ranking
                    .and_then(|r| r.intents.iter().position(|(i, _)| i == name))
                    .unwrap_or(usize::MAX)
            };
            let unsaid = plains
                .iter()
                .filter(|(_, only_it_takes)| !self.says_a_value_of(text, only_it_takes))
                .min_by_key(|(plain, _)| rank(plain));
            if let Some((plain, only_it_takes)) = unsaid {
                tracing::debug!("the words say nothing only {intent} takes: {plain}");
                if let Some(slots) = self.slots.get(intent) {
                    for slot in slots {
                        if only_it_takes.iter().any(|(t, _)| *t == slot.type_name) {
                            args.remove(&slot.name);
                        }
                    }
                }
                intent = self.directions.of(text, plain);
            }
        }
        for slot in self.slots.get(intent).into_iter().flatten() {
            if matches!(slot.ty, SlotType::Text { .. }) {
                continue;
            }
            match self.said_value(text, slot) {
                Some(value) => {
                    args.insert(slot.name.clone(), value);
                }
                None if slot.asks || slot.default => {
                    args.remove(&slot.name);
                }
                None => {}
            }
        }
        (intent, args)
    }

    /// The value of `slot`'s type the words say, in range if one is: read by the grammar
    /// anywhere in them. The speaker's zone is no value said.
    fn said_value(&self, text: &str, slot: &Slot) -> Option<Value> {
        let said: Vec<SlotValue> = self
            .commands
            .values_in(&slot.type_name, text)
            .into_iter()
            .filter(|v| !matches!(v, SlotValue::Enum { key, .. } if key == SPEAKER))
            .collect();
        said.iter()
            .find(|v| slot.ty.admits(v))
            .or(said.first())
            .map(SlotValue::to_json)
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

pub(super) async fn bounded<T>(
    budget: Duration,
    f: impl std::future::Future<Output = Result<T, LlmError>>,
) -> Result<T, LlmError> {
    tokio::time::timeout(budget, f)
        .await
        .unwrap_or(Err(LlmError::Timeout(budget.as_millis() as u64)))
}

/// Each intent's refinements: the intents of the same vehicle interface that take every slot
/// type it takes and more (seat heating on → seat heating level), with the enum and number
/// slot types only they take (a text slot's value cannot be told from other words). An intent
/// without slots has none: every intent of its interface would be one ("turn the climate on"
/// and "defrost the front").
pub(super) fn refinements(profile: &Profile) -> HashMap<String, Refinements> {
    let types = |i: &crate::profile::Intent| -> Vec<String> { i.slots.values().cloned().collect() };
    let mut out: HashMap<String, Refinements> = HashMap::new();
    for plain in profile.intents.iter().filter(|i| !i.slots.is_empty()) {
        let plain_types = types(plain);
        for other in &profile.intents {
            let (a, b) = (&plain.action, &other.action);
            let same_interface =
                (&a.service, &a.path, &a.interface) == (&b.service, &b.path, &b.interface);
            let other_types = types(other);
            if other.name == plain.name
                || !same_interface
                || !plain_types.iter().all(|t| other_types.contains(t))
            {
                continue;
            }
            let only_it_takes: Vec<(String, SlotType)> = other_types
                .iter()
                .filter(|t| !plain_types.contains(t))
                .filter_map(|t| Some((t.clone(), profile.slot_types.get(t)?.clone())))
                .filter(|(_, ty)| !matches!(ty, SlotType::Text { .. }))
                .collect();
            if !only_it_takes.is_empty() {
                out.entry(plain.name.clone())
                    .or_default()
                    .push((other.name.clone(), only_it_takes));
            }
        }
    }
    out
}

/// `refinements` turned round: each refinement with the intents it refines and the slot types
/// only it takes of each.
fn plains(refinements: &HashMap<String, Refinements>) -> HashMap<String, Refinements> {
    let mut out: HashMap<String, Refinements> = HashMap::new();
    for (plain, refined) in refinements {
        for (refinement, only_it_takes) in refined {
            out.entry(refinement.clone())
                .or_default()
                .push((plain.clone(), only_it_takes.clone()));
        }
    }
    // The same order on every start, whatever the map's.
    out.values_mut()
        .for_each(|p| p.sort_by(|a, b| a.0.cmp(&b.0)));
    out
}

mod classify;
mod direction;
#[cfg(test)]
mod tests;
