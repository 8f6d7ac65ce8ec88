//! The listening pipeline, written once: the front end hears a command, speech recognition
//! transcribes it, the wake phrase is stripped, and after the turn the front end listens again
//! (for a follow-up without the wake word, else for the wake word). The daemon, `cabin listen`
//! and `cabin bench` all run this; the turn itself is theirs.
//!
//! The command's audio streams to the recogniser while it is spoken. At each pause the
//! recogniser decodes what it has; when that is a whole command of the grammar, the front end
//! ends the turn after a short pause, and when no speech followed the pause, that transcript
//! is the final one: nothing is left to decode after the end of the turn.

use crate::asr::{AsrError, AsrWorker, Stream};
use crate::hear::{Engines, FrontEnd, FrontEndError, Heard, Input, Judge, Playback};
use crate::profile::Profile;
use crate::runtime::worker::WorkerState;
use crate::understand::grammar::Matcher;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A spoken command, transcribed.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// What the recogniser heard, wake phrase and all.
    pub transcript: String,
    /// The words for the turn, the wake phrase stripped; None: nothing to understand.
    pub text: Option<String>,
    /// How sure the recogniser was of them.
    pub confidence: Option<crate::asr::Confidence>,
    /// From the end of the turn to the transcript, in ms (0 when the transcript of a pause
    /// was the whole command's).
    pub asr_ms: f64,
    /// The turn ended after the short pause of a whole command.
    pub early: bool,
    /// How long the transcript of the pause took, when it was the final one (ms from asking).
    pub partial_ms: Option<f64>,
}

impl Command {
    /// Whether the recogniser was sure enough of the words for them to act without a yes
    /// (the profile's `[listen] confirm_below`).
    pub fn hearing(&self, listen: &crate::profile::ListenSettings) -> crate::understand::Hearing {
        hearing(self.confidence, listen)
    }
}

/// How words heard with `confidence` may act: at once, or said back first when the recogniser
/// was less sure than the profile's `[listen] confirm_below`.
pub fn hearing(
    confidence: Option<crate::asr::Confidence>,
    listen: &crate::profile::ListenSettings,
) -> crate::understand::Hearing {
    if crate::asr::Confidence::sure(confidence, listen.confirm_below) {
        crate::understand::Hearing::Sure
    } else {
        crate::understand::Hearing::Unsure
    }
}

/// What the listening pipeline reports. Times are seconds of audio since the input opened.
#[derive(Debug)]
pub enum Listened {
    Wake {
        at: f64,
        score: f32,
    },
    /// Listening timed out without speech.
    NoSpeech {
        at: f64,
    },
    /// The driver's turn ended; [`Listened::Transcribed`] follows.
    EndOfTurn {
        at: f64,
        /// Length of the command's audio.
        speech_s: f64,
        /// After the short pause of a whole command.
        early: bool,
        /// Cut off at the maximum length.
        cut_off: bool,
    },
    /// What the recogniser made of the command so far, at a pause.
    Partial {
        text: String,
        /// A whole command: the turn ends after a short pause.
        whole: bool,
    },
    /// The command's transcript.
    Transcribed(Result<Command, HearingError>),
    /// The capture device was lost or is back.
    Microphone {
        available: bool,
        detail: String,
    },
    /// The input ended (a recording) or failed.
    Ended {
        audio_s: f64,
        wake_cpu_s: f64,
        vad_cpu_s: f64,
        clean_cpu_s: f64,
        error: Option<String>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ListeningError {
    #[error(transparent)]
    FrontEnd(#[from] FrontEndError),
}

/// Why a command could not be transcribed.
#[derive(Debug, thiserror::Error)]
pub enum HearingError {
    #[error("the speech recognition worker is still starting")]
    Starting,
    #[error("{0}")]
    Down(String),
    #[error(transparent)]
    Asr(#[from] AsrError),
}

/// Speech recognition for commands: the worker and the wake words to strip. Cheap to clone,
/// so a task can transcribe while the front end goes on.
#[derive(Clone)]
pub struct Transcriber {
    asr: Arc<AsrWorker>,
    wake_words: Arc<[String]>,
    /// How long one transcription may take once the worker has it.
    limit: Duration,
}

impl Transcriber {
    pub fn new(profile: &Profile, asr: Arc<AsrWorker>) -> Transcriber {
        Transcriber {
            asr,
            wake_words: profile.persona.wake_words.clone().into(),
            limit: profile.listen.asr_timeout,
        }
    }

    /// Waits at most `wait` for the worker to be ready.
    pub async fn ready(&self, wait: Duration) -> Result<(), HearingError> {
        match self.asr.settled(wait).await {
            WorkerState::Ready(_) => Ok(()),
            WorkerState::Starting => Err(HearingError::Starting),
            WorkerState::Down(why) => Err(HearingError::Down(why)),
        }
    }

    /// Transcribes a command's audio, waiting at most `wait` for a worker still starting.
    pub async fn transcribe(&self, audio: &[i16], wait: Duration) -> Result<Command, HearingError> {
        let client = match self.asr.settled(wait).await {
            WorkerState::Ready(client) => client,
            WorkerState::Starting => return Err(HearingError::Starting),
            WorkerState::Down(why) => return Err(HearingError::Down(why)),
        };
        let t = client.transcribe(audio, self.limit).await?;
        Ok(self.command(t.text, t.ms, t.confidence))
    }

    fn command(
        &self,
        transcript: String,
        asr_ms: f64,
        confidence: Option<crate::asr::Confidence>,
    ) -> Command {
        let text = self.command_text(&transcript);
        Command {
            text: (!text.is_empty()).then_some(text),
            transcript,
            confidence,
            asr_ms,
            early: false,
            partial_ms: None,
        }
    }

    /// The words for the turn: the wake phrase stripped.
    fn command_text(&self, transcript: &str) -> String {
        crate::asr::command_text(transcript, &self.wake_words)
    }

    /// A stream for the next command, when the worker is ready now.
    async fn stream(&self) -> Option<Stream> {
        let WorkerState::Ready(client) = self.asr.state() else {
            return None;
        };
        match client.stream().await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("cannot stream the command to speech recognition: {e}");
                None
            }
        }
    }
}

/// The front end and the recogniser it feeds.
pub struct Listening {
    front_end: FrontEnd,
    relay: tokio::task::JoinHandle<()>,
}

impl Listening {
    /// Loads the front end's models and opens `input`; what it hears goes to `heard`. With
    /// `push_to_talk` the first command needs no wake word. What the car plays (`playback`)
    /// is cancelled from the microphone. A command waits at most `wait` for a recogniser
    /// that is still starting. Runs on a tokio runtime.
    pub fn start(
        profile: &Profile,
        input: Input,
        playback: Playback,
        asr: Arc<AsrWorker>,
        push_to_talk: bool,
        wait: Duration,
        heard: mpsc::Sender<Listened>,
    ) -> Result<Listening, ListeningError> {
        let engines = Engines::load(&profile.models)?;
        let (raw_tx, raw) = mpsc::channel(64);
        let front_end = FrontEnd::start(
            input,
            engines,
            profile.listen.clone(),
            push_to_talk,
            playback,
            raw_tx,
        )?;
        let relay = Relay {
            transcriber: Transcriber::new(profile, asr),
            grammar: Matcher::new(profile),
            judge: front_end.judge(),
            out: heard,
            wait,
        };
        Ok(Listening {
            front_end,
            relay: tokio::spawn(relay.run(raw)),
        })
    }

    /// After a turn: a question or a confirmation waits for its answer without the wake word;
    /// anything else goes back to waiting for the wake word.
    pub fn after_turn(&self, follow_up: bool) {
        if follow_up {
            self.front_end.listen();
        } else {
            self.front_end.resume();
        }
    }

    /// Captures the next command without the wake word (push-to-talk).
    pub fn listen(&self) {
        self.front_end.listen();
    }

    /// Drops a command being captured.
    pub fn cancel(&self) {
        self.front_end.cancel();
    }

    /// Lets a recording go on (a live microphone never waits).
    pub fn resume(&self) {
        self.front_end.resume();
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.relay.abort();
    }
}

/// Between the front end and the consumer: streams each command to the recogniser, judges its
/// pauses, and turns the end of a turn into a transcript.
struct Relay {
    transcriber: Transcriber,
    /// The fast path's templates: whether a pause follows a whole command.
    grammar: Matcher,
    judge: Judge,
    out: mpsc::Sender<Listened>,
    wait: Duration,
}

/// The command being spoken, as the recogniser has it.
#[derive(Default)]
struct Spoken {
    /// None before speech, or once streaming failed (the command is then sent whole).
    stream: Option<Stream>,
    /// Pauses asked about and not yet answered, oldest first, with when they were asked.
    asked: VecDeque<(usize, Instant)>,
    /// The last pause's transcript: where its speech ended, the text, and how long it took.
    last: Option<(usize, crate::asr::Partial, f64)>,
}

impl Relay {
    async fn run(self, mut raw: mpsc::Receiver<Heard>) {
        let mut spoken = Spoken::default();
        loop {
            let waiting = !spoken.asked.is_empty() && spoken.stream.is_some();
            tokio::select! {
                heard = raw.recv() => {
                    let Some(heard) = heard else { return };
                    if !self.heard(heard, &mut spoken).await {
                        return;
                    }
                }
                partial = next_partial(&mut spoken.stream), if waiting => {
                    if !self.partial(partial, &mut spoken).await {
                        return;
                    }
                }
            }
        }
    }

    /// False once nobody listens any more.
    async fn tell(&self, l: Listened) -> bool {
        self.out.send(l).await.is_ok()
    }

    async fn heard(&self, heard: Heard, spoken: &mut Spoken) -> bool {
        match heard {
            Heard::Speech { audio, first } => {
                if first {
                    *spoken = Spoken {
                        stream: self.transcriber.stream().await,
                        ..Spoken::default()
                    };
                }
                if let Some(s) = &mut spoken.stream {
                    if let Err(e) = s.audio(&audio).await {
                        tracing::warn!("streaming the command: {e}; it is sent whole at its end");
                        spoken.stream = None;
                    }
                }
                true
            }
            Heard::Pause { speech_end, pad } => {
                let asked = match &mut spoken.stream {
                    Some(s) => s.ask_partial(pad).await.unwrap_or_else(|e| {
                        tracing::warn!("asking for a partial transcript: {e}");
                        false
                    }),
                    None => false,
                };
                if asked {
                    spoken.asked.push_back((speech_end, Instant::now()));
                } else {
                    self.judge.judge(speech_end, false);
                }
                true
            }
            Heard::Command {
                audio,
                at,
                speech_end,
                early,
                cut_off,
            } => {
                let speech_s = audio.len() as f64 / 16_000.0;
                if !self
                    .tell(Listened::EndOfTurn {
                        at,
                        speech_s,
                        early,
                        cut_off,
                    })
                    .await
                {
                    return false;
                }
                // A pause asked about at this very end: its transcript is the command's.
                while spoken.stream.is_some()
                    && spoken.asked.iter().any(|(end, _)| *end == speech_end)
                {
                    let partial = next_partial(&mut spoken.stream).await;
                    if !self.partial(partial, spoken).await {
                        return false;
                    }
                }
                let spoken = std::mem::take(spoken);
                let ended = Instant::now();
                if let Some((_, partial, ms)) = spoken.last.filter(|(end, ..)| *end == speech_end) {
                    let mut command =
                        self.transcriber
                            .command(partial.text, 0.0, partial.confidence);
                    command.early = early;
                    command.partial_ms = Some(ms);
                    return self.tell(Listened::Transcribed(Ok(command))).await;
                }
                let transcriber = self.transcriber.clone();
                let out = self.out.clone();
                let wait = self.wait;
                tokio::spawn(async move {
                    let streamed = match spoken.stream {
                        Some(s) => match s.finish(transcriber.limit).await {
                            Ok(t) => Some(transcriber.command(t.text, t.ms, t.confidence)),
                            Err(e) => {
                                tracing::warn!("the streamed command: {e}; sending it whole");
                                None
                            }
                        },
                        None => None,
                    };
                    let command = match streamed {
                        Some(c) => Ok(c),
                        None => transcriber.transcribe(&audio, wait).await,
                    };
                    let command = command.map(|mut c| {
                        c.early = early;
                        c.asr_ms = ended.elapsed().as_secs_f64() * 1e3;
                        c
                    });
                    let _ = out.send(Listened::Transcribed(command)).await;
                });
                true
            }
            Heard::Wake { at, score } => self.tell(Listened::Wake { at, score }).await,
            Heard::NoSpeech { at } => {
                *spoken = Spoken::default();
                self.tell(Listened::NoSpeech { at }).await
            }
            Heard::Microphone { available, detail } => {
                self.tell(Listened::Microphone { available, detail }).await
            }
            Heard::Ended {
                audio_s,
                wake_cpu_s,
                vad_cpu_s,
                clean_cpu_s,
                error,
            } => {
                self.tell(Listened::Ended {
                    audio_s,
                    wake_cpu_s,
                    vad_cpu_s,
                    clean_cpu_s,
                    error,
                })
                .await
            }
        }
    }

    /// The answer to the oldest pause asked about: is what was said a whole command?
    async fn partial(
        &self,
        partial: Result<crate::asr::Partial, AsrError>,
        spoken: &mut Spoken,
    ) -> bool {
        let Some((speech_end, asked)) = spoken.asked.pop_front() else {
            return true;
        };
        let partial = match partial {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("partial transcript: {e}; the command is sent whole at its end");
                spoken.stream = None;
                self.judge.judge(speech_end, false);
                for (end, _) in spoken.asked.drain(..) {
                    self.judge.judge(end, false);
                }
                return true;
            }
        };
        let ms = asked.elapsed().as_secs_f64() * 1e3;
        let text = self.transcriber.command_text(&partial.text);
        let whole = self.grammar.is_whole_command(&text);
        self.judge.judge(speech_end, whole);
        tracing::debug!(text = %partial.text, whole, ms, "partial transcript");
        spoken.last = Some((speech_end, partial, ms));
        self.tell(Listened::Partial { text, whole }).await
    }
}

/// The next partial transcript of the stream (never ready without one).
async fn next_partial(stream: &mut Option<Stream>) -> Result<crate::asr::Partial, AsrError> {
    match stream {
        Some(s) => s.partial().await,
        None => std::future::pending().await,
    }
}
