//! The `cabin` daemon: one event loop owns the conversation (state, dialog context, follow-up
//! window) and consumes [`Event`]s; the D-Bus interface ([`api`]) and the turn tasks only send
//! events, and the loop only sends [`Notification`]s, which [`run`] turns into D-Bus signals.

pub mod api;

use crate::action::VehicleBus;
use crate::asr::{AsrChoice, AsrWorker};
use crate::brain::LlmChoice;
use crate::bus::BusAddress;
use crate::listen::{Engines, FrontEnd, Heard, Input};
use crate::playback::Output;
use crate::profile::{Ducking, Profile};
use crate::speaker::{Speaker, SpeechEnd, Spoken};
use crate::systemd::Notifier;
use crate::understand::{Assistant, Context, Outcome, Pending, Turn};
use crate::worker::{WorkerState, SETTLE_LIMIT};
use api::{AssistantApi, OBJECT_PATH, SERVICE_NAME};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use zbus::object_server::SignalEmitter;

/// Where the conversation is. Listening, Transcribing and Speaking come with audio in/out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Idle,
    Listening,
    Transcribing,
    Thinking,
    Acting,
    Speaking,
    /// Waiting a few seconds for a follow-up or an answer, without the wake word.
    FollowUp,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Idle => "Idle",
            State::Listening => "Listening",
            State::Transcribing => "Transcribing",
            State::Thinking => "Thinking",
            State::Acting => "Acting",
            State::Speaking => "Speaking",
            State::FollowUp => "FollowUp",
        }
    }
}

/// Why a request ended without an outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnError {
    Cancelled(&'static str),
    InvalidInput(String),
}

/// Everything that can change the daemon's state.
pub enum Event {
    /// Text from an input (`source` names a profile input, which gives the speaker's zone).
    SubmitText {
        text: String,
        source: Option<String>,
        respond: oneshot::Sender<Result<Outcome, TurnError>>,
    },
    Activate {
        respond: oneshot::Sender<Result<(), &'static str>>,
    },
    Cancel {
        respond: oneshot::Sender<bool>,
    },
    /// A turn is about to touch the vehicle.
    Acting {
        turn: u64,
    },
    /// A whole sentence of a model's answer, before the turn is done.
    ReplySentence {
        turn: u64,
        text: String,
    },
    TurnDone {
        turn: u64,
        result: Box<Turn>,
    },
    /// From the audio front end.
    Heard(Heard),
    /// A spoken command came back from speech recognition (None: nothing intelligible).
    Transcribed {
        text: Option<String>,
    },
    /// Speech recognition failed or is down.
    CantHear(String),
    /// From the speaker.
    Spoken(Spoken),
}

/// What Cabin says when it has a command it can't transcribe.
const CANT_HEAR: &str = "Sorry, I can't hear you right now.";

/// What the event loop tells the outside world.
#[derive(Debug, Clone, PartialEq)]
pub enum Notification {
    State(State),
    Transcript(String),
    Reply(String),
    ActionExecuted {
        intent: String,
        success: bool,
        detail: String,
    },
    /// The loop is alive: sent at half the watchdog interval, so a stuck loop stops it.
    Heartbeat,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot connect to the {bus}: {source} (fix: start a D-Bus daemon, or pass --bus with the address of one)")]
    Connect {
        bus: BusAddress,
        #[source]
        source: zbus::Error,
    },
    #[error("another process already owns {SERVICE_NAME} on the {0} (fix: stop the other Cabin daemon first)")]
    NameTaken(BusAddress),
    #[error("the {0} does not let this user own {SERVICE_NAME} (fix: run as the user the bus policy names, and install systemd/org.cabin.Assistant1.conf, see `cabin profile dbus-policy`)")]
    NotAllowed(BusAddress),
}

struct CurrentTurn {
    id: u64,
    /// None for a spoken command: its answer goes out as signals only.
    respond: Option<oneshot::Sender<Result<Outcome, TurnError>>>,
    task: JoinHandle<()>,
}

/// The microphone side: the front end and the speech recogniser it feeds.
pub struct Audio {
    front_end: FrontEnd,
    asr: Arc<AsrWorker>,
}

/// The mouth: the speaker and what the utterance playing now leads to.
pub struct Voice {
    speaker: Speaker,
    /// Media ducking requests, in order: true ducks, false restores.
    ducking: Option<mpsc::UnboundedSender<bool>>,
}

/// A reply being spoken, and what follows its last sample.
struct Speaking {
    utterance: u64,
    /// Sentences of a model's answer spoken while it was still being generated.
    streamed: String,
    /// Where the dialog goes after the last sample (known once the turn is done).
    follow_up: bool,
    context: Context,
    /// When the queued audio will have played (sentences play back to back).
    playing_until: std::time::Instant,
}

/// How long after Cabin's own voice said the wake word the microphone's wake word stays deaf
/// (the room's echo, the detector's window).
const OWN_WAKE_MARGIN: Duration = Duration::from_millis(700);

/// How long a command waits for a speech worker that is still starting (loading its model)
/// before Cabin says it can't hear.
const ASR_START_WAIT: Duration = Duration::from_secs(15);

/// The single owner of conversation state.
struct EventLoop {
    assistant: Arc<Assistant>,
    /// Input name → seat zone.
    inputs: BTreeMap<String, String>,
    follow_up: Duration,
    state: State,
    state_tx: watch::Sender<State>,
    notify: mpsc::Sender<Notification>,
    events_tx: mpsc::Sender<Event>,
    current: Option<CurrentTurn>,
    next_turn: u64,
    /// The dialog session: kept through the follow-up window, cleared when it ends.
    context: Context,
    follow_up_until: Option<Instant>,
    /// None: text and D-Bus only (why, for `Activate`).
    audio: Result<Audio, String>,
    /// None: replies are text (Reply signals) only.
    voice: Option<Voice>,
    speaking: Option<Speaking>,
    /// Cabin's own voice says the wake word until then: a detection is its echo.
    deaf_until: Option<std::time::Instant>,
}

impl EventLoop {
    async fn tell(&self, n: Notification) {
        // The receiver only goes away at shutdown.
        let _ = self.notify.send(n).await;
    }

    async fn set_state(&mut self, state: State) {
        if self.state != state {
            self.state = state;
            self.state_tx.send_replace(state);
            self.tell(Notification::State(state)).await;
        }
    }

    /// Ends the dialog session: no follow-up, nothing remembered.
    async fn end_session(&mut self) {
        self.context = Context::default();
        self.follow_up_until = None;
        self.set_state(State::Idle).await;
    }

    async fn handle(&mut self, event: Event) {
        match event {
            Event::SubmitText {
                text,
                source,
                respond,
            } => {
                let zone = match &source {
                    None => None,
                    Some(s) => match self.inputs.get(s) {
                        Some(z) => Some(z.clone()),
                        None => {
                            let known: Vec<&str> = self.inputs.keys().map(String::as_str).collect();
                            let _ = respond.send(Err(TurnError::InvalidInput(format!(
                                "unknown input '{s}'; the profile's inputs are: {}",
                                known.join(", ")
                            ))));
                            return;
                        }
                    },
                };
                self.start_turn(text, zone, Some(respond)).await;
            }
            Event::Acting { turn } => {
                if self.current.as_ref().is_some_and(|t| t.id == turn) {
                    self.set_state(State::Acting).await;
                }
            }
            Event::TurnDone { turn, result } => {
                // A cancelled turn that finished anyway has nobody left to answer.
                let Some(current) = self.current.take_if(|t| t.id == turn) else {
                    return;
                };
                let Turn {
                    outcome,
                    context,
                    follow_up,
                } = *result;
                tracing::info!(route = ?outcome.route, intent = outcome.intent.as_deref().unwrap_or("-"), awaiting = outcome.awaiting.as_deref().unwrap_or("-"), "turn done");
                // Spoken, the reply goes out sentence by sentence as it plays; what was
                // streamed is already on its way.
                let streamed = self
                    .speaking
                    .take_if(|s| s.utterance == turn)
                    .map(|s| s.streamed);
                let spoken = match &self.voice {
                    Some(voice) if !outcome.reply.is_empty() || streamed.is_some() => {
                        let rest = match &streamed {
                            Some(said) => outcome
                                .reply
                                .strip_prefix(said.trim_end())
                                .unwrap_or(&outcome.reply),
                            None => &outcome.reply,
                        };
                        voice.speaker.say(turn, rest);
                        voice.speaker.end(turn);
                        true
                    }
                    _ => false,
                };
                if !spoken && !outcome.reply.is_empty() {
                    self.tell(Notification::Reply(outcome.reply.clone())).await;
                }
                if let (Some(intent), Some(action)) = (&outcome.intent, &outcome.action) {
                    self.tell(Notification::ActionExecuted {
                        intent: intent.clone(),
                        success: action.success,
                        detail: action.detail.clone(),
                    })
                    .await;
                }
                if spoken {
                    self.speaking = Some(Speaking {
                        utterance: turn,
                        streamed: streamed.unwrap_or_default(),
                        follow_up,
                        context,
                        playing_until: std::time::Instant::now(),
                    });
                    self.start_speaking().await;
                } else {
                    self.after_reply(follow_up, context).await;
                }
                // Answered last: a caller that looks at `State` next sees where the turn left it.
                if let Some(respond) = current.respond {
                    let _ = respond.send(Ok(outcome));
                }
            }
            Event::ReplySentence { turn, text } => {
                let Some(voice) = &self.voice else { return };
                if self.current.as_ref().is_none_or(|t| t.id != turn) {
                    return;
                }
                voice.speaker.say(turn, &format!("{text} "));
                match &mut self.speaking {
                    Some(s) if s.utterance == turn => {
                        s.streamed.push_str(&text);
                        s.streamed.push(' ');
                    }
                    _ => {
                        self.speaking = Some(Speaking {
                            utterance: turn,
                            streamed: format!("{text} "),
                            follow_up: false,
                            context: Context::default(),
                            playing_until: std::time::Instant::now(),
                        });
                        self.start_speaking().await;
                    }
                }
            }
            Event::Spoken(spoken) => self.spoken(spoken).await,
            Event::Cancel { respond } => {
                let had = self.stop_speaking() | self.cancel_current("cancelled").await
                    || self.context.pending.is_some();
                if let Ok(audio) = &self.audio {
                    audio.front_end.cancel();
                }
                self.end_session().await;
                let _ = respond.send(had);
            }
            Event::Activate { respond } => {
                if self.audio.is_err() {
                    let _ = respond.send(Err(
                        "no audio input: the daemon runs without a microphone (see its log)",
                    ));
                    return;
                }
                // Push-to-talk interrupts whatever Cabin is doing, like the wake word.
                self.stop_speaking();
                self.cancel_current("push-to-talk").await;
                if let Ok(audio) = &self.audio {
                    audio.front_end.listen();
                }
                self.set_state(State::Listening).await;
                let _ = respond.send(Ok(()));
            }
            Event::Heard(heard) => self.heard(heard).await,
            Event::Transcribed { text } => {
                if self.state != State::Transcribing {
                    return;
                }
                match text {
                    Some(text) => self.start_turn(text, None, None).await,
                    None => {
                        self.end_session().await;
                        self.resume_audio();
                    }
                }
            }
            Event::CantHear(why) => {
                tracing::error!("speech recognition: {why}");
                self.tell(Notification::Reply(CANT_HEAR.into())).await;
                self.end_session().await;
                self.resume_audio();
            }
        }
    }

    /// Lets a recording go on (a live microphone never waits).
    fn resume_audio(&self) {
        if let Ok(audio) = &self.audio {
            audio.front_end.resume();
        }
    }

    async fn heard(&mut self, heard: Heard) {
        match heard {
            Heard::Wake { score, .. } => {
                if self
                    .deaf_until
                    .is_some_and(|until| std::time::Instant::now() < until)
                {
                    tracing::info!(score, "wake word ignored: Cabin's own voice said it");
                    if let Ok(audio) = &self.audio {
                        audio.front_end.cancel();
                        audio.front_end.resume();
                    }
                    return;
                }
                tracing::info!(score, "wake word");
                // The wake word interrupts whatever Cabin is doing, speech included.
                self.stop_speaking();
                self.cancel_current("the wake word").await;
                self.follow_up_until = None;
                self.set_state(State::Listening).await;
            }
            Heard::NoSpeech { .. } => {
                if matches!(self.state, State::Listening | State::FollowUp) {
                    self.end_session().await;
                }
            }
            Heard::Command { audio, .. } => {
                let Ok(a) = &self.audio else { return };
                let asr = a.asr.clone();
                self.follow_up_until = None;
                self.set_state(State::Transcribing).await;
                let wake_words = self.assistant.profile().assistant.wake_words.clone();
                let events = self.events_tx.clone();
                tokio::spawn(async move {
                    let event = match asr.settled(ASR_START_WAIT).await {
                        crate::worker::WorkerState::Ready(client) => {
                            match client.transcribe(&audio, Duration::from_secs(30)).await {
                                Ok(t) => {
                                    let text = crate::asr::command_text(&t.text, &wake_words);
                                    Event::Transcribed {
                                        text: (!text.is_empty()).then_some(text),
                                    }
                                }
                                Err(e) => Event::CantHear(e.to_string()),
                            }
                        }
                        crate::worker::WorkerState::Starting => Event::CantHear(
                            "the speech recognition worker is still starting".into(),
                        ),
                        crate::worker::WorkerState::Down(why) => Event::CantHear(why),
                    };
                    let _ = events.send(event).await;
                });
            }
            Heard::Ended { error, .. } => match error {
                Some(e) => tracing::error!("the audio front end stopped: {e}"),
                None => tracing::info!("the audio input ended"),
            },
        }
    }

    /// After a reply (spoken or not): the follow-up window, or the end of the session; the
    /// microphone listens again.
    async fn after_reply(&mut self, follow_up: bool, context: Context) {
        if follow_up && !self.follow_up.is_zero() {
            self.context = context;
            self.follow_up_until = Some(Instant::now() + self.follow_up);
            self.set_state(State::FollowUp).await;
        } else {
            self.end_session().await;
        }
        if let Ok(audio) = &self.audio {
            if self.state == State::FollowUp {
                // An answer or a follow-up needs no wake word.
                audio.front_end.listen();
            } else {
                audio.front_end.resume();
            }
        }
    }

    async fn spoken(&mut self, spoken: Spoken) {
        match spoken {
            Spoken::Sentence {
                utterance,
                text,
                audio,
                synthesis,
                own_wake,
                first_audio,
            } => {
                let Some(speaking) = self.speaking.as_mut().filter(|s| s.utterance == utterance)
                else {
                    return;
                };
                let now = std::time::Instant::now();
                speaking.playing_until = speaking.playing_until.max(now) + audio;
                if own_wake {
                    self.deaf_until = Some(speaking.playing_until + OWN_WAKE_MARGIN);
                }
                if let Some(first) = first_audio {
                    tracing::info!(first_audio_ms = first.as_secs_f64() * 1000.0, "speaking");
                }
                tracing::debug!(
                    audio_s = audio.as_secs_f64(),
                    synthesis_ms = synthesis.as_secs_f64() * 1000.0,
                    own_wake,
                    "sentence"
                );
                self.tell(Notification::Reply(text)).await;
            }
            Spoken::Done { utterance, end } => {
                if let SpeechEnd::Failed(why) = &end {
                    tracing::error!("speaking the reply failed: {why}");
                }
                let Some(speaking) = self.speaking.take_if(|s| s.utterance == utterance) else {
                    return;
                };
                self.duck(false);
                self.after_reply(speaking.follow_up, speaking.context).await;
            }
        }
    }

    /// Cabin starts to speak: the media goes down, and the wake word stays live so the driver
    /// can barge in.
    async fn start_speaking(&mut self) {
        self.duck(true);
        self.set_state(State::Speaking).await;
        self.resume_audio();
    }

    /// Silences Cabin mid-reply (barge-in); true if it was speaking.
    fn stop_speaking(&mut self) -> bool {
        let Some(speaking) = self.speaking.take() else {
            return false;
        };
        if let Some(voice) = &self.voice {
            voice.speaker.stop();
        }
        self.duck(false);
        tracing::info!(utterance = speaking.utterance, "stopped speaking");
        true
    }

    /// Asks for the media to be ducked (or restored).
    fn duck(&self, down: bool) {
        if let Some(tx) = self.voice.as_ref().and_then(|v| v.ducking.as_ref()) {
            let _ = tx.send(down);
        }
    }

    /// Starts a turn on `text`; `respond` gets its outcome (a D-Bus caller), or nobody (speech).
    async fn start_turn(
        &mut self,
        text: String,
        zone: Option<String>,
        respond: Option<oneshot::Sender<Result<Outcome, TurnError>>>,
    ) {
        // The newest request wins: a driver who speaks again means the new thing.
        self.stop_speaking();
        self.cancel_current("a newer request replaced it").await;
        self.follow_up_until = None;
        let id = self.next_turn;
        self.next_turn += 1;
        self.set_state(State::Thinking).await;
        self.tell(Notification::Transcript(text.clone())).await;
        let assistant = self.assistant.clone();
        let events = self.events_tx.clone();
        let context = self.context.clone();
        // With a voice, a model's answer is spoken sentence by sentence as it is generated.
        let stream = self.voice.is_some();
        let task = tokio::spawn(async move {
            let acting = events.clone();
            let (sentences_tx, mut sentences) = mpsc::unbounded_channel::<String>();
            let mut on_sentence = move |s: &str| {
                if stream {
                    let _ = sentences_tx.send(s.to_string());
                }
            };
            let turn = assistant.turn_streaming(
                &text,
                zone.as_deref(),
                context,
                |_| {
                    // A full queue only delays the Acting state; the result still arrives.
                    let _ = acting.try_send(Event::Acting { turn: id });
                },
                &mut on_sentence,
            );
            tokio::pin!(turn);
            let result = loop {
                tokio::select! {
                    result = &mut turn => break result,
                    Some(text) = sentences.recv() => {
                        let _ = events.send(Event::ReplySentence { turn: id, text }).await;
                    }
                }
            };
            // Every sentence is in before the turn is done.
            while let Ok(text) = sentences.try_recv() {
                let _ = events.send(Event::ReplySentence { turn: id, text }).await;
            }
            let _ = events
                .send(Event::TurnDone {
                    turn: id,
                    result: Box::new(result),
                })
                .await;
        });
        self.current = Some(CurrentTurn { id, respond, task });
    }

    /// The follow-up window passed in silence: a pending question or confirmation lapses.
    async fn follow_up_expired(&mut self) {
        if let Some(pending) = &self.context.pending {
            let what = match pending {
                Pending::Slot { missing, .. } => format!("the question for '{missing}'"),
                Pending::Confirm { .. } => "the confirmation".to_string(),
            };
            tracing::info!("no answer within the follow-up window; dropping {what}");
        }
        self.end_session().await;
    }

    async fn cancel_current(&mut self, why: &'static str) -> bool {
        match self.current.take() {
            Some(turn) => {
                turn.task.abort();
                if let Some(respond) = turn.respond {
                    let _ = respond.send(Err(TurnError::Cancelled(why)));
                }
                true
            }
            None => false,
        }
    }
}

/// The loop's audio ends: the microphone front end (or why there is none) and the voice.
struct AudioIo {
    input: Result<Audio, String>,
    voice: Option<Voice>,
}

/// Runs the event loop until `shutdown` completes.
async fn run_loop(
    assistant: Arc<Assistant>,
    (events_tx, mut events_rx): (mpsc::Sender<Event>, mpsc::Receiver<Event>),
    notify: mpsc::Sender<Notification>,
    state_tx: watch::Sender<State>,
    heartbeat: Option<Duration>,
    AudioIo {
        input: audio,
        voice,
    }: AudioIo,
    shutdown: impl Future<Output = ()>,
) {
    let profile = assistant.profile();
    let inputs = profile
        .inputs
        .iter()
        .map(|i| (i.name.clone(), i.zone.clone()))
        .collect();
    let follow_up = profile.dialog.follow_up;
    let mut event_loop = EventLoop {
        assistant,
        inputs,
        follow_up,
        state: State::Idle,
        state_tx,
        notify,
        events_tx,
        current: None,
        next_turn: 0,
        context: Context::default(),
        follow_up_until: None,
        audio,
        voice,
        speaking: None,
        deaf_until: None,
    };
    tokio::pin!(shutdown);
    let mut beat = heartbeat.map(|every| {
        let mut i = tokio::time::interval(every);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    loop {
        let deadline = event_loop.follow_up_until;
        tokio::select! {
            _ = &mut shutdown => break,
            Some(event) = events_rx.recv() => event_loop.handle(event).await,
            _ = sleep_until(deadline) => event_loop.follow_up_expired().await,
            _ = tick(beat.as_mut()) => event_loop.tell(Notification::Heartbeat).await,
        }
    }
    event_loop
        .cancel_current("the daemon is shutting down")
        .await;
    event_loop.stop_speaking();
    if let Some(voice) = event_loop.voice.take() {
        // The speaker's Drop joins its threads; the ducking task finishes what is queued.
        let _ = tokio::task::spawn_blocking(move || drop(voice)).await;
    }
    if let Ok(audio) = event_loop.audio {
        // Joining the front end's thread blocks until its source returns (standard input may
        // not): give it a moment off the runtime, then go on.
        let join = tokio::task::spawn_blocking(move || drop(audio));
        let _ = tokio::time::timeout(Duration::from_secs(1), join).await;
    }
}

async fn tick(interval: Option<&mut tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Emits notifications as D-Bus signals (and `PropertiesChanged` for `State`), and
/// heartbeats as systemd watchdog pings.
async fn forward_signals(
    conn: zbus::Connection,
    mut notifications: mpsc::Receiver<Notification>,
    systemd: Option<Arc<Notifier>>,
) {
    let emitter =
        SignalEmitter::new(&conn, OBJECT_PATH).expect("OBJECT_PATH is a valid object path");
    while let Some(n) = notifications.recv().await {
        let sent = match &n {
            Notification::State(state) => {
                let changed = match conn
                    .object_server()
                    .interface::<_, AssistantApi>(OBJECT_PATH)
                    .await
                {
                    Ok(iface) => iface.get().await.state_changed(&emitter).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = changed {
                    tracing::warn!("cannot emit PropertiesChanged: {e}");
                }
                AssistantApi::emit_state_changed(&emitter, state.as_str()).await
            }
            Notification::Transcript(text) => AssistantApi::transcript(&emitter, text).await,
            Notification::Reply(text) => AssistantApi::reply(&emitter, text).await,
            Notification::ActionExecuted {
                intent,
                success,
                detail,
            } => AssistantApi::action_executed(&emitter, intent, *success, detail).await,
            Notification::Heartbeat => {
                if let Some(n) = &systemd {
                    n.notify("WATCHDOG=1");
                }
                Ok(())
            }
        };
        if let Err(e) = sent {
            let what = match &n {
                Notification::State(s) => format!("StateChanged({})", s.as_str()),
                Notification::Transcript(_) => "Transcript".into(),
                Notification::Reply(_) => "Reply".into(),
                Notification::ActionExecuted { intent, .. } => format!("ActionExecuted({intent})"),
                Notification::Heartbeat => "watchdog ping".into(),
            };
            tracing::warn!("cannot emit {what}: {e}");
        }
    }
}

/// Settings for [`run`].
pub struct DaemonConfig {
    pub profile: Arc<Profile>,
    /// The bus `org.cabin.Assistant1` is served on.
    pub bus: BusAddress,
    /// Where the model routes come from.
    pub llm: LlmChoice,
    /// The microphone (None: text and D-Bus only).
    pub input: Option<Input>,
    /// Speech recognition for it.
    pub asr: AsrChoice,
    /// Where replies are spoken (None: text only).
    pub output: Option<Output>,
}

/// Starts the front end on `input` and the speech recogniser; heard events become [`Event`]s.
fn start_audio(
    profile: &Profile,
    input: Input,
    asr: &AsrChoice,
    events: mpsc::Sender<Event>,
) -> Result<Audio, String> {
    if matches!(asr, AsrChoice::Off) || profile.models.asr.is_none() {
        return Err("speech recognition is off, or the profile names no asr model".into());
    }
    let engines = Engines::load(profile).map_err(|e| e.to_string())?;
    let (heard_tx, mut heard) = mpsc::channel(16);
    let front_end = FrontEnd::start(input, engines, profile.listen.clone(), false, heard_tx)
        .map_err(|e| e.to_string())?;
    let asr = Arc::new(crate::asr::start(profile, asr).ok_or("speech recognition is off")?);
    tokio::spawn(async move {
        while let Some(h) = heard.recv().await {
            if events.send(Event::Heard(h)).await.is_err() {
                break;
            }
        }
    });
    Ok(Audio { front_end, asr })
}

/// Starts the speaker on `output` with the profile's voice (and the wake word, to recognise
/// Cabin's own voice saying it); spoken events become [`Event`]s.
fn start_voice(
    profile: &Profile,
    output: Output,
    vehicle: VehicleBus,
    events: mpsc::Sender<Event>,
) -> Result<Voice, String> {
    let voice = crate::tts::load(profile).map_err(|e| e.to_string())?;
    let wake = match &profile.models.wake {
        Some(keyword) => crate::wake::WakeModels::resolve(keyword)
            .and_then(|m| crate::wake::WakeWord::load(&m).map_err(|e| e.to_string()))
            .map(|w| Some((w, profile.listen.wake_threshold)))
            .inspect_err(|e| {
                tracing::warn!("Cabin's own voice can't be checked for the wake word: {e}")
            })
            .unwrap_or(None),
        None => None,
    };
    let (tx, mut spoken) = mpsc::unbounded_channel();
    let speaker = Speaker::start(voice, output, wake, tx).map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        while let Some(s) = spoken.recv().await {
            if events.send(Event::Spoken(s)).await.is_err() {
                break;
            }
        }
    });
    let ducking = profile
        .speech
        .ducking
        .clone()
        .map(|d| start_ducking(d, vehicle));
    Ok(Voice { speaker, ducking })
}

/// The task that ducks and restores the media, in the order asked, skipping repeats. It
/// restores once at start-up: a daemon that crashed mid-reply leaves the media ducked.
fn start_ducking(ducking: Ducking, vehicle: VehicleBus) -> mpsc::UnboundedSender<bool> {
    let (tx, mut rx) = mpsc::unbounded_channel::<bool>();
    tokio::spawn(async move {
        let call = |down: bool| crate::action::ResolvedAction {
            kind: "call",
            service: ducking.service.clone(),
            path: ducking.path.clone(),
            interface: ducking.interface.clone(),
            member: if down {
                ducking.duck.clone()
            } else {
                ducking.restore.clone()
            },
            args: if down {
                vec![crate::dbus_value::ArgValue::Uint32(ducking.level)]
            } else {
                vec![]
            },
            target: "the media".into(),
        };
        let mut ducked = None;
        let mut startup = Some(false);
        loop {
            let down = match startup.take() {
                Some(down) => down,
                None => match rx.recv().await {
                    Some(down) => down,
                    None => break,
                },
            };
            if ducked == Some(down) {
                continue;
            }
            match vehicle.execute(&call(down)).await {
                Ok(_) => ducked = Some(down),
                Err(e) => {
                    tracing::warn!(
                        "cannot {} the media: {}",
                        if down { "duck" } else { "restore" },
                        e.log_detail()
                    );
                    // Unknown now: the next request is sent whatever it is.
                    ducked = None;
                }
            }
        }
    });
    tx
}

/// Serves `org.cabin.Assistant1` until `shutdown` completes.
pub async fn run(
    config: DaemonConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let (events_tx, events_rx) = mpsc::channel(64);
    let (state_tx, state_rx) = watch::channel(State::Idle);
    let api = AssistantApi::new(events_tx.clone(), state_rx);
    // Serve the interface before taking the name, so no caller ever finds the name without it.
    let conn = config
        .bus
        .builder()
        .serve_at(OBJECT_PATH, api)
        .name(SERVICE_NAME)
        // zbus would otherwise let a second daemon silently take the name from a running one.
        .allow_name_replacements(false)
        .replace_existing_names(false)
        .build()
        .await
        .map_err(|source| match source {
            zbus::Error::NameTaken => DaemonError::NameTaken(config.bus.clone()),
            zbus::Error::FDO(e) if matches!(*e, zbus::fdo::Error::AccessDenied(_)) => {
                DaemonError::NotAllowed(config.bus.clone())
            }
            source => DaemonError::Connect {
                bus: config.bus.clone(),
                source,
            },
        })?;
    let profile = config.profile;
    let vehicle = if profile.vehicle.bus == config.bus {
        VehicleBus::with_connection(config.bus.clone(), profile.vehicle.timeout, conn.clone())
    } else {
        VehicleBus::new(profile.vehicle.bus.clone(), profile.vehicle.timeout)
    };
    tracing::info!(profile = %profile.file, intents = profile.intents.len(), bus = %config.bus, "serving {SERVICE_NAME}");
    let systemd = Notifier::from_env().map(Arc::new);
    let heartbeat = systemd.as_ref().and(crate::systemd::heartbeat_interval());
    let (notify_tx, notify_rx) = mpsc::channel(256);
    let forwarder = tokio::spawn(forward_signals(conn.clone(), notify_rx, systemd.clone()));
    let brain = crate::brain::start(&profile, &config.llm).map(Arc::new);
    let status = format!(
        "Serving {SERVICE_NAME}: {} intents from {}",
        profile.intents.len(),
        profile.file
    );
    // READY once the model routes are up (or known to be down): the fast path serves meanwhile.
    let ready = tokio::spawn({
        let systemd = systemd.clone();
        let brain = brain.clone();
        async move {
            if let Some(brain) = &brain {
                if let Some(n) = &systemd {
                    n.notify(&format!("STATUS=Loading the language model; {status}"));
                }
                match brain.worker().settled(SETTLE_LIMIT).await {
                    WorkerState::Ready(_) => tracing::info!("local LLM ready"),
                    WorkerState::Starting => tracing::warn!(
                        "local LLM not ready after {} s; serving without it meanwhile",
                        SETTLE_LIMIT.as_secs()
                    ),
                    WorkerState::Down(why) => tracing::error!("local LLM unavailable: {why}"),
                }
            }
            if let Some(n) = &systemd {
                n.notify(&format!("READY=1\nSTATUS={status}"));
            }
        }
    });
    let audio = match config.input {
        None => Err("started with --input off".to_string()),
        Some(input) => {
            let what = input.to_string();
            start_audio(&profile, input, &config.asr, events_tx.clone()).inspect_err(|why| {
                tracing::warn!("no audio input ({what}): {why}; serving text and push-to-talk requests only");
            }).inspect(|_| tracing::info!("listening on {what}"))
        }
    };
    let voice = config.output.and_then(|output| {
        let what = output.to_string();
        let vehicle = VehicleBus::new(profile.vehicle.bus.clone(), profile.vehicle.timeout);
        start_voice(&profile, output, vehicle, events_tx.clone())
            .inspect_err(|why| {
                tracing::warn!("no speech output ({what}): {why}; replies are text only")
            })
            .inspect(|v| tracing::info!("speaking on {what} with {}", v.speaker.voice_name()))
            .ok()
    });
    let mut assistant = Assistant::new(profile, vehicle);
    if let Some(b) = brain {
        assistant = assistant.with_brain(b);
    }
    run_loop(
        Arc::new(assistant),
        (events_tx, events_rx),
        notify_tx,
        state_tx,
        heartbeat,
        AudioIo {
            input: audio,
            voice,
        },
        shutdown,
    )
    .await;
    ready.abort();
    if let Some(n) = &systemd {
        n.notify("STOPPING=1\nSTATUS=Shutting down");
    }
    // The loop dropped its sender: the forwarder drains what is left and ends.
    let _ = forwarder.await;
    tracing::info!("shut down");
    Ok(())
}

#[cfg(test)]
mod tests;
