//! What the daemon's event loop consumes and what it tells: the words shared by the loop, its
//! D-Bus face and the signal forwarder.

use crate::listening::Listened;
use crate::speak::Spoken;
use crate::understand::{Outcome, Turn};
use tokio::sync::oneshot;

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
    /// The caller used up its allowance of requests ([`crate::daemon::limit`]); one is left
    /// again after this long.
    RateLimited(std::time::Duration),
}

/// Who asked: a question Cabin puts (a confirmation, a missing value) is answered only by the
/// one it was put to, so another HMI process's "yes" never confirms the driver's call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The driver, through the microphone.
    Speech,
    /// A D-Bus client, by its unique connection name (`:1.42`).
    Bus(String),
}

/// Everything that can change the daemon's state.
pub enum Event {
    /// Text from an input (`source` names a profile input, which gives the speaker's zone).
    SubmitText {
        text: String,
        source: Option<String>,
        caller: Caller,
        respond: oneshot::Sender<Result<Outcome, TurnError>>,
    },
    Activate {
        respond: oneshot::Sender<Result<(), &'static str>>,
    },
    /// `Cancel()` from `caller`: its own turn, speech and question, or the driver's.
    Cancel {
        caller: Caller,
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
    /// From the listening pipeline: the front end and speech recognition.
    Heard(Listened),
    /// From the speaker.
    Spoken(Spoken),
}

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
    /// The microphone was lost (Cabin hears nothing until it is back) or is back.
    Microphone {
        available: bool,
        detail: String,
    },
    /// The loop is alive: sent at half the watchdog interval, so a stuck loop stops it.
    Heartbeat,
}
