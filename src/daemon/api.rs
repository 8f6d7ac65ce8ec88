//! `org.cabin.Assistant1`: the daemon's D-Bus face. Methods only send events to the event
//! loop and wait for its answer; they never touch state themselves.

use crate::daemon::events::{Caller, Event, State, TurnError};
use crate::understand::Outcome;
use tokio::sync::{mpsc, oneshot, watch};
use zbus::message::Header;
use zbus::object_server::SignalEmitter;

pub const SERVICE_NAME: &str = crate::profile::ASSISTANT_SERVICE;
pub const OBJECT_PATH: &str = "/org/cabin/Assistant1";

/// Longest text `SubmitText` accepts; a spoken command is far shorter.
pub const MAX_TEXT_CHARS: usize = 1000;

/// Longest input name `SubmitTextFrom` accepts; a profile's are a word or two ("mic-driver").
pub const MAX_INPUT_CHARS: usize = 64;

/// The caller of a method: the bus daemon always stamps the sender; a peer-to-peer
/// connection has none.
fn caller(header: &Header<'_>) -> Caller {
    Caller::Bus(header.sender().map(|s| s.to_string()).unwrap_or_default())
}

/// Typed errors of `org.cabin.Assistant1`.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.cabin.Assistant1.Error")]
pub enum ApiError {
    #[zbus(error)]
    ZBus(zbus::Error),
    /// The request was malformed (empty or over-long text).
    InvalidInput(String),
    /// `Cancel()`, a newer request or shutdown ended the request.
    Cancelled(String),
    /// The feature needs something this set-up does not have.
    Unavailable(String),
    /// The caller sent more requests than it may (a burst of 20, then 10 a second).
    RateLimited(String),
}

pub struct AssistantApi {
    events: mpsc::Sender<Event>,
    state: watch::Receiver<State>,
}

impl AssistantApi {
    pub fn new(events: mpsc::Sender<Event>, state: watch::Receiver<State>) -> Self {
        AssistantApi { events, state }
    }

    async fn submit(
        &self,
        header: &Header<'_>,
        text: String,
        source: Option<String>,
    ) -> Result<Outcome, ApiError> {
        let caller = caller(header);
        // Never said back: an error that quoted it would echo whatever a caller sent.
        if source
            .as_ref()
            .is_some_and(|s| s.chars().count() > MAX_INPUT_CHARS)
        {
            return Err(ApiError::InvalidInput(format!(
                "the input name is longer than {MAX_INPUT_CHARS} characters; name one of the profile's [[inputs]]"
            )));
        }
        let text = text.trim().to_string();
        if text.is_empty() {
            return Err(ApiError::InvalidInput("the text is empty; send what the driver said, e.g. \"turn on the air conditioning\"".into()));
        }
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err(ApiError::InvalidInput(format!(
                "the text is longer than {MAX_TEXT_CHARS} characters; send one command at a time"
            )));
        }
        let (respond, answer) = oneshot::channel();
        self.send(Event::SubmitText {
            text,
            source,
            caller,
            respond,
        })
        .await?;
        match answer.await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(TurnError::Cancelled(why))) => Err(ApiError::Cancelled(why.into())),
            Ok(Err(TurnError::InvalidInput(why))) => Err(ApiError::InvalidInput(why)),
            Ok(Err(TurnError::RateLimited(wait))) => Err(ApiError::RateLimited(format!(
                "too many requests from this connection; try again in {} ms",
                wait.as_millis().max(1)
            ))),
            Err(_) => Err(ApiError::Cancelled("the daemon is shutting down".into())),
        }
    }

    async fn send(&self, event: Event) -> Result<(), ApiError> {
        self.events
            .send(event)
            .await
            .map_err(|_| ApiError::Unavailable("the daemon is shutting down".into()))
    }
}

#[zbus::interface(name = "org.cabin.Assistant1")]
impl AssistantApi {
    /// Handles typed or transcribed text; returns the spoken reply.
    async fn submit_text(
        &self,
        #[zbus(header)] header: Header<'_>,
        text: String,
    ) -> Result<String, ApiError> {
        Ok(self.submit(&header, text, None).await?.reply)
    }

    /// Like `SubmitTextJson`, for text from a named input (a microphone or push-to-talk
    /// source of the profile): its seat zone is the speaker's, so "open my window" acts there.
    async fn submit_text_from(
        &self,
        #[zbus(header)] header: Header<'_>,
        text: String,
        source: String,
    ) -> Result<String, ApiError> {
        let outcome = self.submit(&header, text, Some(source)).await?;
        serde_json::to_string(&outcome)
            .map_err(|e| ApiError::ZBus(zbus::Error::Failure(e.to_string())))
    }

    /// Like `SubmitText`, but returns the whole outcome as JSON (route, intent, slots,
    /// action, timings), as `cabin say --json` prints it.
    async fn submit_text_json(
        &self,
        #[zbus(header)] header: Header<'_>,
        text: String,
    ) -> Result<String, ApiError> {
        let outcome = self.submit(&header, text, None).await?;
        serde_json::to_string(&outcome)
            .map_err(|e| ApiError::ZBus(zbus::Error::Failure(e.to_string())))
    }

    /// Push-to-talk: opens the microphone like the wake word does.
    async fn activate(&self) -> Result<(), ApiError> {
        let (respond, answer) = oneshot::channel();
        self.send(Event::Activate { respond }).await?;
        answer
            .await
            .map_err(|_| ApiError::Unavailable("the daemon is shutting down".into()))?
            .map_err(|why| ApiError::Unavailable(why.into()))
    }

    /// Cancels the caller's own request in progress (or the driver's spoken one), the speech
    /// of its reply and the question put to it, unless the request is acting on the vehicle
    /// already: that one finishes, and its caller gets what it did. Returns whether anything
    /// was stopped.
    async fn cancel(&self, #[zbus(header)] header: Header<'_>) -> Result<bool, ApiError> {
        let (respond, answer) = oneshot::channel();
        self.send(Event::Cancel {
            caller: caller(&header),
            respond,
        })
        .await?;
        answer
            .await
            .map_err(|_| ApiError::Unavailable("the daemon is shutting down".into()))
    }

    /// Idle, Listening, Transcribing, Thinking, Acting, Speaking or FollowUp.
    #[zbus(property, name = "State")]
    fn state_property(&self) -> String {
        self.state.borrow().as_str().to_string()
    }

    /// `StateChanged(s)`; the Rust name avoids the `State` property's `state_changed` helper.
    #[zbus(signal, name = "StateChanged")]
    pub async fn emit_state_changed(emitter: &SignalEmitter<'_>, state: &str) -> zbus::Result<()>;

    #[zbus(signal)]
    pub async fn transcript(emitter: &SignalEmitter<'_>, text: &str) -> zbus::Result<()>;

    #[zbus(signal)]
    pub async fn reply(emitter: &SignalEmitter<'_>, text: &str) -> zbus::Result<()>;

    #[zbus(signal)]
    pub async fn action_executed(
        emitter: &SignalEmitter<'_>,
        intent: &str,
        success: bool,
        detail: &str,
    ) -> zbus::Result<()>;

    /// `MicrophoneChanged(b available, s detail)`: the capture device was lost (Cabin hears
    /// nothing and reopens it with back-off) or is back.
    #[zbus(signal)]
    pub async fn microphone_changed(
        emitter: &SignalEmitter<'_>,
        available: bool,
        detail: &str,
    ) -> zbus::Result<()>;
}
