//! The model routes of the hybrid layer: what the grammar fast path did not understand goes to
//! the local LLM (the `cabin-llm` worker), and answers that are not vehicle commands go to the
//! cloud when the profile allows it, the cloud is reachable, and it answers within budget.
//!
//! Models only *propose*: a tool call names one of the profile's intents and goes through
//! [`crate::understand::dialog::Assistant::propose`], the same checks as a fast-path match. The tools
//! offered are generated from the profile, so no model can reach a D-Bus method that no intent
//! names.

use crate::profile::{CloudPolicy, CloudSettings, Profile, SlotType};
use crate::runtime::llm::{ms, ChatClient, Completion, LlmError};
use crate::runtime::models::ModelError;
use crate::runtime::worker::{LlmWorker, Worker, WorkerSpec, WorkerState};
use crate::understand::grammar::Matcher;
use crate::understand::shortlist::{EmbeddingModel, IndexCache, Runs, Shortlist};
use crate::understand::turn::{Route, DECLINE_REPLY};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
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
const SHORTLIST: usize = 3;

/// How close a refinement of the closest intent must come to be chosen when the words say a
/// value only it takes ([`Brain::refinement`]); MiniLM's `near`.
const REFINE_NEAR: f32 = 0.05;

pub struct Brain {
    local: LlmWorker,
    cloud: Option<Cloud>,
    tools: Value,
    /// Tool name → intent name.
    intents: HashMap<String, String>,
    /// Intent → the intent that does the reverse.
    opposites: HashMap<String, String>,
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
}

/// An intent's refinements, each with the slot types (name and type) only it takes.
type Refinements = Vec<(String, Vec<(String, SlotType)>)>;

/// What one local completion gave.
struct Generated {
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
}

struct Cloud {
    client: ChatClient,
    budget: Duration,
    redact: bool,
    /// Last known reachability, kept by a background probe and by request outcomes; read
    /// without waiting.
    reachable: Arc<AtomicBool>,
    probe: tokio::task::JoinHandle<()>,
}

impl Drop for Cloud {
    fn drop(&mut self) {
        self.probe.abort();
    }
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
        Brain {
            local,
            cloud,
            tools,
            intents,
            opposites: profile
                .intents
                .iter()
                .filter_map(|i| Some((i.name.clone(), i.opposite.clone()?)))
                .collect(),
            system: system_prompt(profile),
            max_tokens: profile.llm.max_tokens,
            local_budget: profile.llm.budget,
            shortlist,
            text_slots: profile
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
                .collect(),
            commands: Matcher::new(profile),
            tools_by_index: profile.intents.iter().map(|i| tool_name(&i.name)).collect(),
            refinements: refinements(profile),
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
    /// names. `timings` gets `shortlist`.
    async fn tool_choice(
        &self,
        text: &str,
        timings: &mut BTreeMap<&'static str, f64>,
    ) -> (Value, Option<Vec<String>>) {
        let Some(shortlist) = &self.shortlist else {
            return (json!("auto"), None);
        };
        let started = Instant::now();
        let ranked = shortlist.rank(text).await;
        timings.insert("shortlist", ms(started));
        let ranked = match ranked {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("no shortlist ({e}); the local model may call any intent");
                return (json!("auto"), None);
            }
        };
        tracing::debug!("shortlist: {:?}", &ranked[..SHORTLIST.min(ranked.len())]);
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
                let opposite = self.opposites.get(intent);
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
        let tools: Vec<Value> = names
            .iter()
            .map(|name| json!({"type": "function", "function": {"name": name}}))
            .collect();
        let choice =
            json!({"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": tools}});
        (choice, Some(names))
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
                only_it_takes
                    .iter()
                    .any(|(name, ty)| {
                        let values = self.commands.values_in(name, text);
                        values.iter().any(|v| ty.admits(v))
                    })
                    .then_some(intent.as_str())
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
        let (choice, offered) = self.tool_choice(text, timings).await;
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
                None => return self.intent(Route::LocalLlm, &call.name, &call.arguments),
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
                return self.intent(Route::LocalLlm, &tool, &arguments);
            }
        }
        // Words about a tool it may not call ("Call the navigation-navigate_to function"), its
        // instructions recited, or the request said back: what was said so far, the cloud's
        // answer, or that Cabin can't do it; never the tool's name, the prompt, or a command
        // as if done.
        let unfit = garbled || echoes(text, rest);
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
                text: DECLINE_REPLY.to_string(),
            };
        }
        match spoken(&completion.content) {
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
                            || recites_instructions(&words));
                    if named.is_some() || garbled {
                        return false;
                    }
                    if stream {
                        unsaid.push_str(piece);
                        for sentence in crate::text::take_sentences(&mut unsaid, false) {
                            command = self.spoken_command(&sentence, offered);
                            if command.is_some() {
                                return false;
                            }
                            if echoes(request, &sentence) {
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
        }
    }

    /// The slot of `tool`'s call whose text value has no word of the driver's `text`.
    fn invented(&self, text: &str, tool: &str, arguments: &str) -> Option<String> {
        let slots = self.text_slots.get(tool)?;
        let args: Map<String, Value> = serde_json::from_str(arguments).ok()?;
        let said: Vec<String> = crate::text::tokenize(text)
            .into_iter()
            .map(|t| t.norm)
            .collect();
        slots
            .iter()
            .find(|slot| {
                args.get(slot.as_str())
                    .and_then(Value::as_str)
                    .is_some_and(|value| {
                        !crate::text::tokenize(value)
                            .iter()
                            .any(|word| said.contains(&word.norm))
                    })
            })
            .cloned()
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
        match result.map(|c| spoken(&c.content)) {
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

    fn intent(&self, route: Route, tool: &str, arguments: &str) -> Thought {
        let Some(intent) = self.intents.get(tool) else {
            return Thought::Unavailable {
                why: format!("the model called '{tool}', which no profile intent offers"),
            };
        };
        match serde_json::from_str::<Value>(arguments) {
            Ok(Value::Object(args)) => Thought::Intent {
                route,
                intent: intent.clone(),
                args,
            },
            _ => Thought::Unavailable {
                why: format!("the model's arguments for '{tool}' are not a JSON object"),
            },
        }
    }
}

async fn bounded<T>(
    budget: Duration,
    f: impl std::future::Future<Output = Result<T, LlmError>>,
) -> Result<T, LlmError> {
    tokio::time::timeout(budget, f)
        .await
        .unwrap_or(Err(LlmError::Timeout(budget.as_millis() as u64)))
}

fn cloud_client(c: &CloudSettings) -> Option<ChatClient> {
    match c.policy {
        CloudPolicy::Off => return None,
        CloudPolicy::OptIn => {
            // The driver's consent is not asked for yet, so opt-in stays off.
            tracing::info!("cloud policy is opt_in and no consent has been given: cloud off");
            return None;
        }
        CloudPolicy::On => {}
    }
    let key = match (&c.api_key_env, &c.api_key_file) {
        (Some(var), _) => match std::env::var(var) {
            Ok(k) => Some(k),
            Err(_) => {
                tracing::warn!("cloud API key variable {var} is not set; sending no key");
                None
            }
        },
        (None, Some(path)) => match read_key_file(path) {
            Ok(k) => Some(k),
            Err(e) => {
                tracing::error!("cloud off: {e}");
                return None;
            }
        },
        (None, None) => None,
    };
    Some(ChatClient::new(&c.base_url, &c.model, key))
}

/// Reads a key file that only its owner can read.
fn read_key_file(path: &std::path::Path) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot read the API key file {}: {e}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "the API key file {} is readable by others; run `chmod 600 {}`",
            path.display(),
            path.display()
        ));
    }
    std::fs::read_to_string(path)
        .map(|k| k.trim().to_string())
        .map_err(|e| format!("cannot read the API key file {}: {e}", path.display()))
}

/// Keeps `reachable` current with a TCP connect to the endpoint every 30 s (5 s while down).
async fn probe(base: String, reachable: Arc<AtomicBool>) {
    let Some(addr) = host_port(&base) else {
        reachable.store(false, Ordering::Relaxed);
        return;
    };
    loop {
        let ok = matches!(
            tokio::time::timeout(
                Duration::from_secs(2),
                tokio::net::TcpStream::connect(&addr)
            )
            .await,
            Ok(Ok(_))
        );
        if ok != reachable.swap(ok, Ordering::Relaxed) {
            tracing::info!(reachable = ok, "cloud endpoint {base}");
        }
        tokio::time::sleep(Duration::from_secs(if ok { 30 } else { 5 })).await;
    }
}

/// `host:port` of an http(s) URL.
fn host_port(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?.rsplit('@').next()?;
    if authority.contains(':') && !authority.ends_with(']') {
        return Some(authority.to_string());
    }
    let port = if scheme == "https" { 443 } else { 80 };
    Some(format!("{authority}:{port}"))
}

/// Replaces what could name a person or a place (capitalised words after the first, digits)
/// before text leaves the vehicle.
pub fn redact(text: &str) -> String {
    text.split_whitespace()
        .enumerate()
        .map(|(i, w)| {
            if w.chars().any(|c| c.is_ascii_digit()) {
                "[number]".to_string()
            } else if i > 0 && w.chars().next().is_some_and(char::is_uppercase) && w != "I" {
                "[name]".to_string()
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One spoken paragraph: no markup, no line breaks.
fn spoken(text: &str) -> String {
    text.replace(['*', '#', '`', '|'], "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn system_prompt(p: &Profile) -> String {
    let persona = if p.persona.description.is_empty() {
        format!("You are {}, an in-car voice assistant.", p.persona.name)
    } else {
        p.persona.description.clone()
    };
    format!("{persona}\n{INSTRUCTIONS}\n{}", few_shot(p))
}

/// What the system prompt asks of the model, after the persona.
const INSTRUCTIONS: &str = "When the driver asks the car to do something, or asks about the car's state, call the one function that does exactly that. \
    Otherwise answer: your words are spoken while driving, so one or two short sentences, no lists, no markdown, numbers in words; \
    if asked for something no function can do, say so briefly.";

/// The words of `s`, lower-cased, without punctuation (an apostrophe stays: "can't").
fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Words that say nothing of their own in an answer that repeats the driver ([`echoes`]).
const ECHO_FILLERS: &[&str] = &[
    "a", "an", "the", "my", "your", "me", "you", "i", "to", "for", "of", "on", "in", "at", "and",
    "is", "it", "this", "that", "please", "now", "all", "some", "with", "up", "down",
];

/// Whether a sentence of `answer` is the driver's `request` said back as a command: given
/// "send twenty euros to my brother", a small model answers "send twenty euros to my brother."
/// or "set alarm for six tomorrow." for "set an alarm for six tomorrow". Spoken, that sounds as
/// if Cabin had done it. Such a sentence starts with the request's first word, has two words or
/// more, and none of its own (a plural aside); a question is not one.
fn echoes(request: &str, answer: &str) -> bool {
    fn stem(w: &str) -> &str {
        w.strip_suffix('s').filter(|s| s.len() > 2).unwrap_or(w)
    }
    let request = words(request);
    let Some(first) = request.first() else {
        return false;
    };
    crate::text::take_sentences(&mut answer.to_string(), true)
        .iter()
        .filter(|sentence| !sentence.trim_end().ends_with('?'))
        .map(|sentence| words(sentence))
        .any(|said| {
            said.len() >= 2
                && said[0] == *first
                && said.iter().all(|w| {
                    ECHO_FILLERS.contains(&w.as_str()) || request.iter().any(|r| stem(r) == stem(w))
                })
        })
}

/// How many words in a row of [`INSTRUCTIONS`] make an answer a recital of them.
const RECITAL_WORDS: usize = 6;

/// Whether `words` repeat the instructions: a small model sometimes answers with them ("Your
/// words are spoken while driving, so one or two short sentences, …").
fn recites_instructions(text: &str) -> bool {
    // Checked on every generated piece: the instructions are split once.
    static INSTRUCTION_WORDS: std::sync::LazyLock<Vec<String>> =
        std::sync::LazyLock::new(|| words(INSTRUCTIONS));
    let instructions = &*INSTRUCTION_WORDS;
    words(text)
        .windows(RECITAL_WORDS)
        .any(|run| instructions.windows(RECITAL_WORDS).any(|i| i == run))
}

/// "sentence -> function" lines from the profile's own templates, so the model sees indirect
/// phrasings ("its cold in here") that mean a call, not a chat.
fn few_shot(p: &Profile) -> String {
    let mut out = String::from("What the driver says, and the function it calls:");
    for (i, intent) in p.intents.iter().enumerate() {
        for sentence in crate::profile::sentences::few_shot_sentences(p, i) {
            out.push_str(&format!("\n{sentence} -> {}", tool_name(&intent.name)));
        }
    }
    out
}

/// The tool an intent is offered as: its name with `.` as `-` (OpenAI tool names allow no `.`).
pub fn tool_name(intent: &str) -> String {
    intent.replace('.', "-")
}

/// OpenAI tools from the profile's intents (named by [`tool_name`]), and the map back to
/// intent names.
pub fn tools(p: &Profile) -> (Value, HashMap<String, String>) {
    let mut tools = Vec::new();
    let mut names = HashMap::new();
    for intent in &p.intents {
        let name = tool_name(&intent.name);
        let mut properties = Map::new();
        let mut required = Vec::new();
        for (slot, type_name) in &intent.slots {
            let Some(ty) = p.slot_types.get(type_name) else {
                continue;
            };
            properties.insert(slot.clone(), schema(ty));
            let filled = intent.defaults.contains_key(slot)
                || matches!(ty, SlotType::Enum { zones: true, .. });
            if intent.needs.contains(slot) && !filled {
                required.push(slot.clone());
            }
        }
        tools.push(json!({"type": "function", "function": {
            "name": name,
            "description": intent.description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        }}));
        names.insert(name, intent.name.clone());
    }
    (Value::Array(tools), names)
}

fn schema(ty: &SlotType) -> Value {
    match ty {
        SlotType::Enum { values, .. } => {
            json!({"type": "string", "enum": values.iter().map(|v| v.key.clone()).collect::<Vec<_>>()})
        }
        SlotType::Integer { min, max, .. } => {
            json!({"type": "integer", "minimum": min, "maximum": max})
        }
        SlotType::Decimal { min, max, .. } => {
            json!({"type": "number", "minimum": min, "maximum": max})
        }
        SlotType::Text { max_words } => {
            json!({"type": "string", "maxLength": max_words * 12})
        }
    }
}

#[cfg(test)]
mod tests;

/// Where the local model route comes from (`cabin run --llm`, `$CABIN_LLM`).
#[derive(Debug, Clone, PartialEq)]
pub enum LlmChoice {
    /// Start and supervise `cabin-llm` with the profile's model.
    Auto,
    /// No model routes: what the fast path does not understand is declined.
    Off,
    /// A running OpenAI-compatible endpoint (base URL up to `/v1`).
    Url(String),
}

impl std::str::FromStr for LlmChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(LlmChoice::Auto),
            "off" => Ok(LlmChoice::Off),
            u if u.starts_with("http://") || u.starts_with("https://") => {
                Ok(LlmChoice::Url(u.to_string()))
            }
            other => Err(format!(
                "'{other}' is not auto, off or an http(s) URL of an OpenAI-compatible endpoint"
            )),
        }
    }
}

/// The brain for `profile`, or none when there are no model routes.
pub fn start(profile: &Profile, choice: &LlmChoice) -> Option<Brain> {
    let worker = match choice {
        LlmChoice::Off => return None,
        LlmChoice::Url(url) => LlmWorker::remote(ChatClient::new(
            url,
            profile.models.llm.as_deref().unwrap_or("default"),
            None,
        )),
        LlmChoice::Auto => match local_worker(profile)? {
            Ok(spec) => LlmWorker::supervise(spec),
            Err(why) => LlmWorker::down(why.to_string()),
        },
    };
    Some(Brain::new(profile, worker, shortlist(profile)))
}

/// How to run the profile's `cabin-llm` (none without `[models] llm`), or why it can't run.
pub fn local_worker(profile: &Profile) -> Option<Result<WorkerSpec<ChatClient>, ModelError>> {
    let name = profile.models.llm.as_ref()?;
    Some(
        crate::runtime::models::installed(name, "model")
            .map(|path| worker_spec(profile, name, path)),
    )
}

/// Each intent's refinements: the intents of the same vehicle interface that take every slot
/// type it takes and more (seat heating on → seat heating level), with the enum and number
/// slot types only they take (a text slot's value cannot be told from other words). An intent
/// without slots has none: every intent of its interface would be one ("turn the climate on"
/// and "defrost the front").
fn refinements(profile: &Profile) -> HashMap<String, Refinements> {
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

/// The profile's intent shortlist, its index building in the background; none (with a warning
/// that names the fix) when its model is not installed.
fn shortlist(profile: &Profile) -> Option<Shortlist> {
    let name = profile.models.shortlist.as_ref()?;
    let started = EmbeddingModel::named(name).and_then(|model| {
        let path = crate::runtime::models::installed(name, "intent shortlist model")?;
        let cache = crate::runtime::models::find(name).ok().and_then(|m| {
            let dir = crate::runtime::models::cache_dir()?;
            Some(IndexCache::new(
                &dir,
                m.sha256,
                model.prefix,
                &crate::understand::shortlist::intent_texts(profile),
            ))
        });
        Ok(match model.runs {
            Runs::Onnx => {
                let tokenizer = crate::runtime::models::installed(
                    &format!("{name}-tokenizer"),
                    "intent shortlist tokenizer",
                )?;
                Shortlist::onnx(profile, &path, &tokenizer, model, cache)
            }
            Runs::Worker => Shortlist::remote(
                profile,
                Worker::supervise(worker_spec_embedding(profile, name, path)),
                model,
                cache,
            ),
        })
    });
    match started {
        Ok(shortlist) => Some(shortlist),
        Err(why) => {
            tracing::warn!("{why}; until then the local model chooses among every intent");
            None
        }
    }
}

/// How to run the profile's embedding worker (none unless its shortlist model runs in one), or
/// why it can't run.
pub fn embedding_worker(profile: &Profile) -> Option<Result<WorkerSpec<ChatClient>, ModelError>> {
    profile.models.llm.as_ref()?;
    let name = profile.models.shortlist.as_ref()?;
    let model = EmbeddingModel::named(name).ok()?;
    (model.runs == Runs::Worker).then(|| {
        crate::runtime::models::installed(name, "intent shortlist model")
            .map(|path| worker_spec_embedding(profile, name, path))
    })
}

/// `cabin-llm serve --embedding` with the model at `model`.
fn worker_spec_embedding(
    p: &Profile,
    name: &str,
    model: std::path::PathBuf,
) -> WorkerSpec<ChatClient> {
    let mut args: Vec<std::ffi::OsString> = vec![
        "serve".into(),
        "--embedding".into(),
        "--model".into(),
        model.into(),
        "--name".into(),
        name.into(),
    ];
    if let Some(t) = p.llm.threads {
        args.push("--threads".into());
        args.push(t.to_string().into());
    }
    let name = name.to_string();
    WorkerSpec {
        program: crate::runtime::worker::program("cabin-llm", "CABIN_LLM_WORKER"),
        args,
        what: "the embedding worker",
        program_env: "CABIN_LLM_WORKER",
        connect: Arc::new(move |url: String| {
            let client = ChatClient::new(&url, &name, None);
            Box::pin(async move { client })
        }),
        // On a turn's path like the language model, and as ready to give way.
        yields: crate::runtime::worker::Yields {
            nice: 10,
            oom_score_adj: 500,
        },
    }
}

fn worker_spec(p: &Profile, name: &str, model: std::path::PathBuf) -> WorkerSpec<ChatClient> {
    let s = &p.llm;
    let mut args: Vec<std::ffi::OsString> = vec!["serve".into(), "--model".into(), model.into()];
    for (flag, value) in [
        ("--context", s.context.to_string()),
        ("--batch", s.batch.to_string()),
        ("--max-tokens", s.max_tokens.to_string()),
        ("--name", name.to_string()),
    ] {
        args.push(flag.into());
        args.push(value.into());
    }
    if let Some(t) = s.threads {
        args.push("--threads".into());
        args.push(t.to_string().into());
    }
    WorkerSpec {
        program: crate::runtime::worker::program("cabin-llm", "CABIN_LLM_WORKER"),
        args,
        what: "the language model worker",
        program_env: "CABIN_LLM_WORKER",
        connect: crate::runtime::worker::llm_connect(
            name.to_string(),
            system_prompt(p),
            tools(p).0,
        ),
        // The largest process by far, and the least urgent: the first to give way.
        yields: crate::runtime::worker::Yields {
            nice: 10,
            oom_score_adj: 500,
        },
    }
}
