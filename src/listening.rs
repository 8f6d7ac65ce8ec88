//! The listening pipeline, written once: the front end hears a command, speech recognition
//! transcribes it, the wake phrase is stripped, and after the turn the front end listens again
//! (for a follow-up without the wake word, else for the wake word). The daemon, `cabin listen`
//! and `cabin bench` all run this; the turn itself is theirs.

use crate::asr::{AsrError, AsrWorker};
use crate::hear::{Engines, FrontEnd, FrontEndError, Heard, Input};
use crate::profile::Profile;
use crate::runtime::worker::WorkerState;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long one transcription may take once the worker has it.
const TRANSCRIBE_LIMIT: Duration = Duration::from_secs(30);

/// A spoken command, transcribed.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// What the recogniser heard, wake phrase and all.
    pub transcript: String,
    /// The words for the turn, the wake phrase stripped; None: nothing to understand.
    pub text: Option<String>,
    /// How long recognition took, as the worker measured it.
    pub asr_ms: f64,
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
}

impl Transcriber {
    pub fn new(profile: &Profile, asr: Arc<AsrWorker>) -> Transcriber {
        Transcriber {
            asr,
            wake_words: profile.persona.wake_words.clone().into(),
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
        let t = client.transcribe(audio, TRANSCRIBE_LIMIT).await?;
        let text = crate::asr::command_text(&t.text, &self.wake_words);
        Ok(Command {
            text: (!text.is_empty()).then_some(text),
            transcript: t.text,
            asr_ms: t.ms,
        })
    }
}

/// The front end and the recogniser it feeds.
pub struct Listening {
    front_end: FrontEnd,
    transcriber: Transcriber,
}

impl Listening {
    /// Loads the front end's models and opens `input`; what it hears goes to `heard`. With
    /// `push_to_talk` the first command needs no wake word.
    pub fn start(
        profile: &Profile,
        input: Input,
        asr: Arc<AsrWorker>,
        push_to_talk: bool,
        heard: mpsc::Sender<Heard>,
    ) -> Result<Listening, ListeningError> {
        let engines = Engines::load(&profile.models)?;
        let front_end =
            FrontEnd::start(input, engines, profile.listen.clone(), push_to_talk, heard)?;
        Ok(Listening {
            front_end,
            transcriber: Transcriber::new(profile, asr),
        })
    }

    pub fn transcriber(&self) -> Transcriber {
        self.transcriber.clone()
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
