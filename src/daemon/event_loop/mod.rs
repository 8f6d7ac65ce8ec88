//! The single owner of conversation state: state, dialog context, follow-up window, the turn
//! in flight and the reply being spoken. It consumes [`Event`]s and sends [`Notification`]s;
//! each kind of event has its own method.

use crate::daemon::events::{Caller, Event, Notification, State, TurnError};
use crate::daemon::limit::Limits;
use crate::daemon::NoAudio;
use crate::listening::{Command, Listened, Listening};
use crate::speak::{Speaker, SpeechEnd, Spoken};
use crate::understand::turn::Pending;
use crate::understand::{Assistant, Context, Hearing, Outcome, Turn};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

struct CurrentTurn {
    id: u64,
    /// Whose request it is: a D-Bus caller cancels only its own, or the driver's.
    caller: Caller,
    /// None for a spoken command: its answer goes out as signals only.
    respond: Option<oneshot::Sender<Result<Outcome, TurnError>>>,
    task: JoinHandle<()>,
    /// [`RUNNING`], then either [`ACTING`] (set by the turn just before it calls the vehicle)
    /// or [`STOPPED`] (set by the loop when it cancels the turn), whichever comes first: a turn
    /// that acts was not cancelled, and a cancelled one never acts.
    phase: Arc<AtomicU8>,
}

const RUNNING: u8 = 0;
const ACTING: u8 = 1;
const STOPPED: u8 = 2;

/// Who may cancel a turn, its speech or its question: its own caller, or anyone for the
/// driver's spoken request (the HMI shows it and offers to cancel it).
fn may_cancel(owner: &Caller, by: &Caller) -> bool {
    owner == by || *owner == Caller::Speech
}

/// The mouth: the speaker and what the utterance playing now leads to.
pub(super) struct Voice {
    pub(super) speaker: Speaker,
    /// Media ducking requests, in order: true ducks, false restores.
    pub(super) ducking: Option<mpsc::UnboundedSender<bool>>,
}

/// A reply being spoken, and what follows its last sample.
struct Speaking {
    utterance: u64,
    /// Whose turn's reply it is.
    caller: Caller,
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
    /// Turns replaced or cancelled while they acted on the vehicle: they finish, their
    /// action is reported and their caller (if any) gets what they did.
    finishing: BTreeMap<u64, Option<oneshot::Sender<Result<Outcome, TurnError>>>>,
    /// Each D-Bus caller's allowance of requests.
    limits: Limits,
    next_turn: u64,
    /// The dialog session: kept through the follow-up window, cleared when it ends.
    context: Context,
    /// Whom the session's last turn answered: only they continue it.
    context_for: Option<Caller>,
    follow_up_until: Option<Instant>,
    /// None: text and D-Bus only (why, for `Activate`).
    audio: Result<Listening, NoAudio>,
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
            // The media is down from the wake word (the driver speaks over the music) through
            // the reply; it comes back when Cabin is idle or only waits for a follow-up.
            let ducked = |s: State| !matches!(s, State::Idle | State::FollowUp);
            if ducked(self.state) != ducked(state) {
                self.duck(ducked(state));
            }
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
                caller,
                respond,
            } => self.submit_text(text, source, caller, respond).await,
            Event::Acting { turn } => self.acting(turn).await,
            Event::TurnDone { turn, result } => self.turn_done(turn, result).await,
            Event::ReplySentence { turn, text } => self.reply_sentence(turn, text).await,
            Event::Spoken(spoken) => self.spoken(spoken).await,
            Event::Cancel { caller, respond } => self.cancel(caller, respond).await,
            Event::Activate { respond } => self.activate(respond).await,
            Event::Heard(heard) => self.heard(heard).await,
        }
    }

    /// A D-Bus caller's text: a turn, in the speaker's zone where `source` names an input.
    async fn submit_text(
        &mut self,
        text: String,
        source: Option<String>,
        caller: Caller,
        respond: oneshot::Sender<Result<Outcome, TurnError>>,
    ) {
        if let Caller::Bus(name) = &caller {
            if let Err(wait) = self.limits.take(name, Instant::now()) {
                let _ = respond.send(Err(TurnError::RateLimited(wait)));
                return;
            }
        }
        let zone = match &source {
            None => None,
            Some(s) => match self.inputs.get(s) {
                Some(z) => Some(z.clone()),
                None => {
                    // The name is not said back: it is whatever the caller sent.
                    let known: Vec<&str> = self.inputs.keys().map(String::as_str).collect();
                    let _ = respond.send(Err(TurnError::InvalidInput(format!(
                        "no input of the profile has that name; its inputs are: {}",
                        known.join(", ")
                    ))));
                    return;
                }
            },
        };
        self.start_turn(text, zone, Hearing::Sure, caller, Some(respond))
            .await;
    }

    /// A turn is about to touch the vehicle.
    async fn acting(&mut self, turn: u64) {
        if self.current.as_ref().is_some_and(|t| t.id == turn) {
            self.set_state(State::Acting).await;
        }
    }

    /// A turn finished: its reply is spoken or signalled, its action reported, and the dialog goes on or ends.
    async fn turn_done(&mut self, turn: u64, result: Box<Turn>) {
        let Some(current) = self.current.take_if(|t| t.id == turn) else {
            // A turn replaced or cancelled while it acted: the HMI and its caller learn what
            // happened to the car.
            if let Some(respond) = self.finishing.remove(&turn) {
                self.report_action(&result.outcome).await;
                if let Some(respond) = respond {
                    let _ = respond.send(Ok(result.outcome));
                }
            }
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
        self.report_action(&outcome).await;
        if spoken {
            self.speaking = Some(Speaking {
                utterance: turn,
                caller: current.caller.clone(),
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

    /// A whole sentence of a model's answer, spoken while the rest is generated.
    async fn reply_sentence(&mut self, turn: u64, text: String) {
        let Some(voice) = &self.voice else { return };
        let Some(caller) = self
            .current
            .as_ref()
            .filter(|t| t.id == turn)
            .map(|t| t.caller.clone())
        else {
            return;
        };
        voice.speaker.say(turn, &format!("{text} "));
        match &mut self.speaking {
            Some(s) if s.utterance == turn => {
                s.streamed.push_str(&text);
                s.streamed.push(' ');
            }
            _ => {
                self.speaking = Some(Speaking {
                    utterance: turn,
                    caller,
                    streamed: format!("{text} "),
                    follow_up: false,
                    context: Context::default(),
                    playing_until: std::time::Instant::now(),
                });
                self.start_speaking().await;
            }
        }
    }

    /// `Cancel()` from `caller`: its (or the driver's) speech, turn and question end, and the
    /// session with them; another caller's are left alone. Answers whether anything stopped:
    /// a turn that acts already is not stopped, and its caller gets what it did.
    async fn cancel(&mut self, caller: Caller, respond: oneshot::Sender<bool>) {
        let speech = self
            .speaking
            .as_ref()
            .is_some_and(|s| may_cancel(&s.caller, &caller))
            && self.stop_speaking();
        let turn = self.cancel_current("cancelled", Some(&caller)).await;
        let session = self
            .context_for
            .as_ref()
            .is_none_or(|owner| may_cancel(owner, &caller));
        let question = session && self.context.pending.is_some();
        if session && self.current.is_none() {
            if let Ok(audio) = &self.audio {
                audio.cancel();
            }
            self.end_session().await;
        }
        let _ = respond.send(speech || turn || question);
    }

    /// Push-to-talk: the next command needs no wake word.
    async fn activate(&mut self, respond: oneshot::Sender<Result<(), &'static str>>) {
        if self.audio.is_err() {
            let _ = respond.send(Err(
                "no audio input: the daemon runs without a microphone (see its log)",
            ));
            return;
        }
        // Push-to-talk interrupts whatever Cabin is doing, like the wake word.
        self.stop_speaking();
        self.cancel_current("push-to-talk", None).await;
        if let Ok(audio) = &self.audio {
            audio.listen();
        }
        self.set_state(State::Listening).await;
        let _ = respond.send(Ok(()));
    }

    /// A spoken command's words (None: nothing intelligible).
    async fn transcribed(&mut self, command: Command) {
        if self.state != State::Transcribing {
            return;
        }
        let hearing = command.hearing(&self.assistant.profile().listen);
        match command.text {
            Some(text) => {
                self.start_turn(text, None, hearing, Caller::Speech, None)
                    .await
            }
            None => {
                self.end_session().await;
                self.resume_audio();
            }
        }
    }

    /// Speech recognition failed or is down.
    async fn cant_hear(&mut self, why: String) {
        tracing::error!("speech recognition: {why}");
        let reply = self.assistant.profile().lexicon.replies.cant_hear.clone();
        self.tell(Notification::Reply(reply)).await;
        self.end_session().await;
        self.resume_audio();
    }

    /// Lets a recording go on (a live microphone never waits).
    fn resume_audio(&self) {
        if let Ok(audio) = &self.audio {
            audio.resume();
        }
    }

    async fn heard(&mut self, heard: Listened) {
        match heard {
            Listened::Wake { score, .. } => {
                if self
                    .deaf_until
                    .is_some_and(|until| std::time::Instant::now() < until)
                {
                    tracing::info!(score, "wake word ignored: Cabin's own voice said it");
                    if let Ok(audio) = &self.audio {
                        audio.cancel();
                        audio.resume();
                    }
                    return;
                }
                tracing::info!(score, "wake word");
                // The wake word interrupts whatever Cabin is doing, speech included.
                self.stop_speaking();
                self.cancel_current("the wake word", None).await;
                self.follow_up_until = None;
                self.set_state(State::Listening).await;
            }
            Listened::NoSpeech { .. } => {
                if matches!(self.state, State::Listening | State::FollowUp) {
                    self.end_session().await;
                }
            }
            Listened::Partial { text, whole } => {
                tracing::debug!(%text, whole, "heard so far");
            }
            Listened::EndOfTurn { early, .. } => {
                tracing::debug!(early, "end of turn");
                self.follow_up_until = None;
                self.set_state(State::Transcribing).await;
            }
            Listened::Transcribed(Ok(command)) => self.transcribed(command).await,
            Listened::Transcribed(Err(e)) => self.cant_hear(e.to_string()).await,
            Listened::Microphone { available, detail } => {
                self.tell(Notification::Microphone { available, detail })
                    .await;
            }
            Listened::Ended { error, .. } => match error {
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
            // An answer or a follow-up needs no wake word.
            audio.after_turn(self.state == State::FollowUp);
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
                    synthesis_ms = synthesis.map(|s| s.as_secs_f64() * 1000.0),
                    heard_before = synthesis.is_none(),
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
                self.after_reply(speaking.follow_up, speaking.context).await;
            }
        }
    }

    /// Cabin starts to speak; the wake word stays live so the driver can barge in.
    async fn start_speaking(&mut self) {
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
        hearing: Hearing,
        caller: Caller,
        respond: Option<oneshot::Sender<Result<Outcome, TurnError>>>,
    ) {
        // The newest request wins: a driver who speaks again means the new thing.
        self.stop_speaking();
        self.cancel_current("a newer request replaced it", None)
            .await;
        self.follow_up_until = None;
        let id = self.next_turn;
        self.next_turn += 1;
        self.set_state(State::Thinking).await;
        self.tell(Notification::Transcript(text.clone())).await;
        let assistant = self.assistant.clone();
        let events = self.events_tx.clone();
        // Another caller starts afresh: what was asked of the last one is not theirs to answer.
        let context = if self.context_for.as_ref() == Some(&caller) {
            self.context.clone()
        } else {
            if self.context.pending.is_some() {
                tracing::info!(
                    ?caller,
                    "a request from another caller drops the open question"
                );
            }
            Context::default()
        };
        self.context_for = Some(caller.clone());
        // With a voice, a model's answer is spoken sentence by sentence as it is generated.
        let stream = self.voice.is_some();
        let phase = Arc::new(AtomicU8::new(RUNNING));
        let task = tokio::spawn({
            let phase = phase.clone();
            async move {
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
                    hearing,
                    context,
                    |_| {
                        // Cancelled first: no call goes out.
                        if phase
                            .compare_exchange(RUNNING, ACTING, Ordering::SeqCst, Ordering::SeqCst)
                            .is_err()
                        {
                            return false;
                        }
                        // A full queue only delays the Acting state; the result still arrives.
                        let _ = acting.try_send(Event::Acting { turn: id });
                        true
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
            }
        });
        self.current = Some(CurrentTurn {
            id,
            caller,
            respond,
            task,
            phase,
        });
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

    /// `ActionExecuted` for a turn that called the vehicle.
    async fn report_action(&self, outcome: &Outcome) {
        if let (Some(intent), Some(action)) = (&outcome.intent, &outcome.action) {
            self.tell(Notification::ActionExecuted {
                intent: intent.clone(),
                success: action.success,
                detail: action.detail.clone(),
            })
            .await;
        }
    }

    /// Ends the turn in flight (`by` a caller: only one it may cancel) and answers whether it
    /// was stopped. A turn that has not acted is stopped, and its caller gets `Cancelled`:
    /// nothing was done. One that acts already is left to finish (the vehicle call is bounded
    /// by the profile's timeout): `ActionExecuted` goes out and its caller gets the outcome.
    async fn cancel_current(&mut self, why: &'static str, by: Option<&Caller>) -> bool {
        let Some(turn) = self
            .current
            .take_if(|t| by.is_none_or(|c| may_cancel(&t.caller, c)))
        else {
            return false;
        };
        let stopped = turn
            .phase
            .compare_exchange(RUNNING, STOPPED, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if stopped {
            turn.task.abort();
            if let Some(respond) = turn.respond {
                let _ = respond.send(Err(TurnError::Cancelled(why)));
            }
        } else {
            self.finishing.insert(turn.id, turn.respond);
        }
        stopped
    }
}

/// The loop's audio ends: the microphone front end (or why there is none) and the voice.
pub(super) struct AudioIo {
    pub(super) input: Result<Listening, NoAudio>,
    pub(super) voice: Option<Voice>,
}

/// Runs the event loop until `shutdown` completes.
pub(super) async fn run_loop(
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
        finishing: BTreeMap::new(),
        limits: Limits::default(),
        next_turn: 0,
        context: Context::default(),
        context_for: None,
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
        .cancel_current("the daemon is shutting down", None)
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

#[cfg(test)]
mod tests;
