//! The `cabin` daemon: every stage wired into one service. One event loop ([`event_loop`])
//! owns the conversation and consumes [`Event`]s; the D-Bus interface ([`api`]) and the turn
//! tasks only send events, and the loop only sends [`Notification`]s, which [`signals`] turns
//! into D-Bus signals. This file starts the parts and hands them to the loop.

pub mod api;
mod event_loop;
pub mod events;
pub mod limit;
pub mod policy;
mod signals;

pub use events::{Event, Notification, State, TurnError};

use crate::act::VehicleBus;
use crate::asr::AsrChoice;
use crate::hear::wake::{WakeError, WakeWord};
use crate::hear::{Input, Playback, Played};
use crate::listening::{Listening, ListeningError};
use crate::profile::Profile;
use crate::runtime::bus::BusAddress;
use crate::runtime::systemd::Notifier;
use crate::runtime::worker::{WorkerState, SETTLE_LIMIT};
use crate::speak::playback::PlaybackError;
use crate::speak::voice::TtsError;
use crate::speak::{Output, Speaker};
use crate::understand::brain::LlmChoice;
use crate::understand::Assistant;
use api::{AssistantApi, OBJECT_PATH, SERVICE_NAME};
use event_loop::{run_loop, AudioIo, Voice};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

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
    #[error("the {0} went away; exiting so that systemd restarts Cabin on the new bus")]
    BusLost(BusAddress),
}

/// How often the daemon checks that its bus is still there, and how long one check may take.
const BUS_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// Completes when the bus stops answering (two checks in a row fail). A restarted bus is a
/// new bus: the name, the match rules and every peer's view are gone with the old one, so
/// the daemon exits non-zero and systemd (`Restart=on-failure`) starts it afresh, rather than
/// rebuilding all of that inside a process that may hold stale state.
async fn bus_lost(conn: zbus::Connection) {
    let mut failures = 0;
    loop {
        tokio::time::sleep(BUS_CHECK).await;
        let ping = conn.call_method(
            Some("org.freedesktop.DBus"),
            "/org/freedesktop/DBus",
            Some("org.freedesktop.DBus.Peer"),
            "Ping",
            &(),
        );
        match tokio::time::timeout(BUS_CHECK, ping).await {
            Ok(Ok(_)) => failures = 0,
            _ => {
                failures += 1;
                if failures >= 2 {
                    return;
                }
            }
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
    /// A capture of the media the car plays, for the echo canceller (None: Cabin's own
    /// voice is its only reference).
    pub reference: Option<Input>,
    /// Speech recognition for it.
    pub asr: AsrChoice,
    /// Where replies are spoken (None: text only).
    pub output: Option<Output>,
}

/// How long a command waits for a speech worker that is still starting (loading its model)
/// before Cabin says it can't hear.
const ASR_START_WAIT: Duration = Duration::from_secs(15);

/// Starts the listening pipeline on `input`, cancelling what the car plays (`playback`);
/// heard events become [`Event`]s.
fn start_audio(
    profile: &Profile,
    input: Input,
    playback: Playback,
    asr: &AsrChoice,
    events: mpsc::Sender<Event>,
) -> Result<Listening, NoAudio> {
    if matches!(asr, AsrChoice::Off) || profile.models.asr.is_none() {
        return Err(NoAudio::NoAsr);
    }
    let asr = Arc::new(crate::asr::start(profile, asr).ok_or(NoAudio::NoAsr)?);
    let (heard_tx, mut heard) = mpsc::channel(16);
    let listening = Listening::start(
        profile,
        input,
        playback,
        asr,
        false,
        ASR_START_WAIT,
        heard_tx,
    )?;
    tokio::spawn(async move {
        while let Some(h) = heard.recv().await {
            if events.send(Event::Heard(h)).await.is_err() {
                break;
            }
        }
    });
    Ok(listening)
}

/// Starts the speaker on `output` with the profile's voice (and the wake word, to recognise
/// Cabin's own voice saying it), queueing what it plays to `played` (the echo canceller's
/// reference, where there is a microphone); spoken events become [`Event`]s.
fn start_voice(
    profile: &Profile,
    output: Output,
    played: Option<Played>,
    vehicle: VehicleBus,
    events: mpsc::Sender<Event>,
) -> Result<Voice, NoVoice> {
    let voice = crate::speak::voice::load(profile)?;
    let wake = profile.models.wake.as_deref().and_then(|keyword| {
        WakeWord::for_keyword(keyword)
            .inspect_err(|e: &WakeError| {
                tracing::warn!("Cabin's own voice can't be checked for the wake word: {e}")
            })
            .ok()
            .map(|w| {
                let threshold = w.threshold(profile.listen.wake_threshold);
                (w, threshold)
            })
    });
    let (tx, mut spoken) = mpsc::unbounded_channel();
    let speaker = Speaker::start(voice, output, wake, played, tx)?;
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
        .map(|d| crate::speak::ducking::start(d, vehicle));
    Ok(Voice { speaker, ducking })
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
    // The driving state is believed only from the user whose process serves it now (or, if
    // none does yet, at the first read).
    if let Some(source) = &profile.vehicle.state {
        vehicle.driving_state(source).await;
    }
    tracing::info!(profile = %profile.file, intents = profile.intents.len(), bus = %config.bus, "serving {SERVICE_NAME}");
    let systemd = Notifier::from_env().map(Arc::new);
    let heartbeat = systemd
        .as_ref()
        .and(crate::runtime::systemd::heartbeat_interval());
    let (notify_tx, notify_rx) = mpsc::channel(256);
    let forwarder = tokio::spawn(signals::forward(conn.clone(), notify_rx, systemd.clone()));
    let brain = crate::understand::brain::start(&profile, &config.llm).map(Arc::new);
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
                    n.notify(&format!("STATUS=Loading the language model (a first start evaluates its prompt, about a minute; later starts read it back); {status}"));
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
    // What the speaker plays is the echo canceller's reference, with the media's capture.
    let played = (config.input.is_some() && config.output.is_some()).then(Played::new);
    let playback = Playback {
        voice: played.clone(),
        media: config.reference,
    };
    let audio = match config.input {
        None => Err(NoAudio::Off),
        Some(input) => {
            let what = input.to_string();
            start_audio(&profile, input, playback, &config.asr, events_tx.clone()).inspect_err(|why| {
                tracing::warn!("no audio input ({what}): {why}; serving text and push-to-talk requests only");
            }).inspect(|_| tracing::info!("listening on {what}"))
        }
    };
    let voice = config.output.and_then(|output| {
        let what = output.to_string();
        let vehicle = VehicleBus::new(profile.vehicle.bus.clone(), profile.vehicle.timeout);
        start_voice(&profile, output, played, vehicle, events_tx.clone())
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
    let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = {
        let lost = lost.clone();
        let watched = conn.clone();
        async move {
            tokio::select! {
                _ = shutdown => {}
                _ = bus_lost(watched) => {
                    tracing::error!("the bus stopped answering");
                    lost.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            }
        }
    };
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
        stop,
    )
    .await;
    ready.abort();
    if let Some(n) = &systemd {
        n.notify("STOPPING=1\nSTATUS=Shutting down");
    }
    // The loop dropped its sender: the forwarder drains what is left and ends.
    let _ = tokio::time::timeout(BUS_CHECK, forwarder).await;
    if lost.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(DaemonError::BusLost(config.bus));
    }
    tracing::info!("shut down");
    Ok(())
}

/// Why the daemon serves without a microphone (text and D-Bus requests still work).
#[derive(Debug, thiserror::Error)]
pub enum NoAudio {
    #[error("started with --input off")]
    Off,
    #[error("speech recognition is off, or the profile names no asr model")]
    NoAsr,
    #[error(transparent)]
    Listening(#[from] ListeningError),
}

/// Why the daemon's replies are text only.
#[derive(Debug, thiserror::Error)]
pub enum NoVoice {
    #[error(transparent)]
    Voice(#[from] TtsError),
    #[error(transparent)]
    Speaker(#[from] PlaybackError),
}
