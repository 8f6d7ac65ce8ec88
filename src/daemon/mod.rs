//! The `cabin` daemon: one event loop owns the conversation state and consumes [`Event`]s;
//! the D-Bus interface ([`api`]) and the turn tasks only send events.

pub mod api;

use crate::action::VehicleBus;
use crate::bus::BusAddress;
use crate::profile::Profile;
use crate::understand::{Assistant, Outcome};
use api::{AssistantApi, OBJECT_PATH, SERVICE_NAME};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use zbus::object_server::SignalEmitter;

/// Where the conversation is. Listening and Speaking arrive with audio in/out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Idle,
    Listening,
    Thinking,
    Acting,
    Speaking,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Idle => "Idle",
            State::Listening => "Listening",
            State::Thinking => "Thinking",
            State::Acting => "Acting",
            State::Speaking => "Speaking",
        }
    }
}

/// Why a turn ended without an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnError {
    Cancelled(&'static str),
}

/// Everything that can change the daemon's state.
pub enum Event {
    SubmitText {
        text: String,
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
    TurnDone {
        turn: u64,
        outcome: Box<Outcome>,
    },
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
}

struct Turn {
    id: u64,
    respond: oneshot::Sender<Result<Outcome, TurnError>>,
    task: JoinHandle<()>,
}

/// The single owner of conversation state.
struct EventLoop {
    assistant: Arc<Assistant>,
    state: State,
    state_tx: watch::Sender<State>,
    events_tx: mpsc::Sender<Event>,
    current: Option<Turn>,
    next_turn: u64,
    conn: zbus::Connection,
}

impl EventLoop {
    fn emitter(&self) -> SignalEmitter<'static> {
        SignalEmitter::new(&self.conn, OBJECT_PATH).expect("OBJECT_PATH is a valid object path")
    }

    async fn set_state(&mut self, state: State) {
        if self.state == state {
            return;
        }
        self.state = state;
        self.state_tx.send_replace(state);
        let emitter = self.emitter();
        if let Err(e) = AssistantApi::emit_state_changed(&emitter, state.as_str()).await {
            tracing::warn!("cannot emit StateChanged: {e}");
        }
        match self
            .conn
            .object_server()
            .interface::<_, AssistantApi>(OBJECT_PATH)
            .await
        {
            Ok(iface) => {
                if let Err(e) = iface.get().await.state_changed(&emitter).await {
                    tracing::warn!("cannot emit PropertiesChanged: {e}");
                }
            }
            Err(e) => tracing::warn!("interface not served: {e}"),
        }
    }

    async fn handle(&mut self, event: Event) {
        match event {
            Event::SubmitText { text, respond } => {
                // The newest request wins: a driver who speaks again means the new thing.
                self.cancel_current("a newer request replaced it").await;
                let id = self.next_turn;
                self.next_turn += 1;
                self.set_state(State::Thinking).await;
                if let Err(e) = AssistantApi::transcript(&self.emitter(), &text).await {
                    tracing::warn!("cannot emit Transcript: {e}");
                }
                let assistant = self.assistant.clone();
                let events = self.events_tx.clone();
                let task = tokio::spawn(async move {
                    let acting = events.clone();
                    let outcome = assistant
                        .handle(&text, |_| {
                            // A full queue only delays the Acting state; the result still arrives.
                            let _ = acting.try_send(Event::Acting { turn: id });
                        })
                        .await;
                    let _ = events
                        .send(Event::TurnDone {
                            turn: id,
                            outcome: Box::new(outcome),
                        })
                        .await;
                });
                self.current = Some(Turn { id, respond, task });
            }
            Event::Acting { turn } => {
                if self.current.as_ref().is_some_and(|t| t.id == turn) {
                    self.set_state(State::Acting).await;
                }
            }
            Event::TurnDone { turn, outcome } => {
                // A cancelled turn that finished anyway has nobody left to answer.
                let Some(current) = self.current.take_if(|t| t.id == turn) else {
                    return;
                };
                let emitter = self.emitter();
                tracing::info!(route = ?outcome.route, intent = outcome.intent.as_deref().unwrap_or("-"), "turn done");
                if let Err(e) = AssistantApi::reply(&emitter, &outcome.reply).await {
                    tracing::warn!("cannot emit Reply: {e}");
                }
                if let (Some(intent), Some(action)) = (&outcome.intent, &outcome.action) {
                    if let Err(e) = AssistantApi::action_executed(
                        &emitter,
                        intent,
                        action.success,
                        &action.detail,
                    )
                    .await
                    {
                        tracing::warn!("cannot emit ActionExecuted: {e}");
                    }
                }
                self.set_state(State::Idle).await;
                let _ = current.respond.send(Ok(*outcome));
            }
            Event::Cancel { respond } => {
                let had = self.cancel_current("cancelled").await;
                self.set_state(State::Idle).await;
                let _ = respond.send(had);
            }
            Event::Activate { respond } => {
                let _ = respond.send(Err(
                    "push-to-talk needs an audio input, which this build does not have yet",
                ));
            }
        }
    }

    async fn cancel_current(&mut self, why: &'static str) -> bool {
        match self.current.take() {
            Some(turn) => {
                turn.task.abort();
                let _ = turn.respond.send(Err(TurnError::Cancelled(why)));
                true
            }
            None => false,
        }
    }
}

/// Settings for [`run`].
pub struct DaemonConfig {
    pub profile: Arc<Profile>,
    /// The bus `org.cabin.Assistant1` is served on.
    pub bus: BusAddress,
}

/// Serves `org.cabin.Assistant1` until `shutdown` completes.
pub async fn run(
    config: DaemonConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let (events_tx, mut events_rx) = mpsc::channel(64);
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
    let mut event_loop = EventLoop {
        assistant: Arc::new(Assistant::new(profile, vehicle)),
        state: State::Idle,
        state_tx,
        events_tx,
        current: None,
        next_turn: 0,
        conn,
    };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(event) = events_rx.recv() => event_loop.handle(event).await,
        }
    }
    event_loop
        .cancel_current("the daemon is shutting down")
        .await;
    tracing::info!("shut down");
    Ok(())
}
