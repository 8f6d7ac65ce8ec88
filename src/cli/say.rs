//! `cabin say`: one utterance, through the running daemon or in this process.

use super::print_out;
use anyhow::{bail, Result};
use cabin::daemon::api;
use cabin::runtime::bus::BusAddress;
use cabin::runtime::worker::SETTLE_LIMIT;
use cabin::speak::{Output, Speaker, SpeechEnd, Spoken};
use cabin::Profile;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// How long `cabin say` and `cabin chat` wait for the daemon's answer: longer than the longest
/// turn a valid profile allows (the local model's budget is at most 120 s, the cloud's 30 s, a
/// vehicle call's 60 s), so a slow turn is waited for and only a stuck daemon given up on.
const SAY_TIMEOUT: Duration = Duration::from_secs(240);

#[derive(clap::Args)]
pub struct Args {
    /// Handle the text in this process with this profile instead of asking the daemon.
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Bus of the daemon (or, with --profile, of the vehicle services).
    #[arg(long)]
    bus: Option<BusAddress>,
    /// Print the whole outcome as one JSON object.
    #[arg(long)]
    json: bool,
    /// The profile input (microphone or push-to-talk source) the text came from; its seat
    /// zone is the speaker's ("open my window").
    #[arg(long, value_name = "INPUT")]
    from: Option<String>,
    /// Speak the reply through the profile's playback device (with the profile's voice).
    #[arg(long)]
    speak: bool,
    /// Speak the reply into this WAV file instead.
    #[arg(long, value_name = "FILE")]
    wav: Option<PathBuf>,
    #[command(flatten)]
    llm: super::LlmArg,
    /// What the driver said.
    #[arg(required = true, num_args = 1..)]
    text: Vec<String>,
}

pub async fn exec(args: Args) -> Result<ExitCode> {
    let text = args.text.join(" ");
    // Checked before the turn runs, so a bad device fails before the car acts.
    let voice_profile = Profile::load_or_default(args.profile.as_deref())?;
    let output = match (&args.wav, args.speak) {
        (Some(path), _) => Some(Output::Wav(path.clone())),
        (None, true) => Some(Output::Device(voice_profile.audio.output.clone())),
        (None, false) => None,
    };
    let mut outcome = match &args.profile {
        Some(path) => {
            let profile = Profile::load(path)?;
            let zone = match &args.from {
                None => None,
                Some(name) => match profile.inputs.iter().find(|i| &i.name == name) {
                    Some(input) => Some(input.zone.clone()),
                    None => bail!(
                        "the profile has no input '{name}' (its inputs: {})",
                        profile
                            .inputs
                            .iter()
                            .map(|i| i.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                },
            };
            let assistant = super::in_process::assistant(
                Arc::new(profile),
                args.bus,
                &args.llm.llm,
                SETTLE_LIMIT,
            )
            .await;
            let turn = assistant
                .turn(
                    &text,
                    zone.as_deref(),
                    cabin::understand::Hearing::Sure,
                    Default::default(),
                    |_| {},
                )
                .await;
            serde_json::to_value(&turn.outcome)?
        }
        None => ask_daemon(&args.bus.unwrap_or_default(), &text, args.from.as_deref()).await?,
    };
    if let Some(output) = output {
        let reply = outcome["reply"].as_str().unwrap_or_default().to_string();
        outcome["speech"] = speak_reply(&voice_profile, &reply, output).await?;
    }
    if args.json {
        print_out(&format!("{outcome}\n"))?;
    } else {
        print_out(&format!(
            "{}\n",
            outcome["reply"].as_str().unwrap_or_default()
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Speaks `reply` with the profile's voice into `output`; returns figures as JSON: the voice,
/// time to first audio, audio length, synthesis time and real-time factor.
async fn speak_reply(
    profile: &Profile,
    reply: &str,
    output: Output,
) -> anyhow::Result<serde_json::Value> {
    let profile = profile.clone();
    let reply = reply.to_string();
    // Loading the voice and joining the speaker's threads block: off the runtime.
    tokio::task::spawn_blocking(move || {
        let voice = cabin::speak::voice::load(&profile)?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let speaker = Speaker::start(voice, output, None, None, tx)?;
        speaker.say(0, &reply);
        speaker.end(0);
        let (mut first, mut audio, mut synthesis, mut sentences) = (None, 0.0, 0.0, 0);
        let end = loop {
            match rx.blocking_recv() {
                Some(Spoken::Sentence {
                    audio: a,
                    synthesis: s,
                    first_audio,
                    ..
                }) => {
                    first = first.or(first_audio);
                    audio += a.as_secs_f64();
                    synthesis += s.map_or(0.0, |s| s.as_secs_f64());
                    sentences += 1;
                }
                Some(Spoken::Done { end, .. }) => break end,
                None => break SpeechEnd::Failed("the speaker stopped".into()),
            }
        };
        if let SpeechEnd::Failed(why) = end {
            bail!("cannot speak the reply: {why}");
        }
        Ok(serde_json::json!({
            "voice": speaker.voice_name(),
            "sentences": sentences,
            "first_audio_ms": first.map(|d| d.as_secs_f64() * 1000.0),
            "audio_s": audio,
            "synthesis_ms": synthesis * 1000.0,
            "real_time_factor": if audio > 0.0 { synthesis / audio } else { 0.0 },
        }))
    })
    .await?
}

/// Why the daemon gave no outcome for a text.
#[derive(Debug, thiserror::Error)]
pub(super) enum AskError {
    #[error(
        "cannot connect to the {0} (is a D-Bus daemon running? pass --bus with its address): {1}"
    )]
    NoBus(BusAddress, zbus::Error),
    #[error("no Cabin daemon is running on the {0} ({name}); start one with `cabin run`", name = api::SERVICE_NAME)]
    NoDaemon(BusAddress),
    /// The daemon went away in the middle of the call (it crashed or was stopped).
    #[error("the Cabin daemon on the {0} stopped before it answered (see its log); start it again with `cabin run`")]
    DaemonStopped(BusAddress),
    #[error("the connection to the {0} was lost: {1}")]
    BusLost(BusAddress, zbus::Error),
    #[error("the Cabin daemon did not answer within {} s", SAY_TIMEOUT.as_secs())]
    Timeout,
    #[error("the Cabin daemon refused the request: {0}")]
    Refused(zbus::Error),
    #[error("the daemon sent an outcome this cabin cannot read (are both the same version?): {0}")]
    Unreadable(String),
}

impl AskError {
    /// Whether nothing more can be asked on this connection: the daemon or the bus is gone.
    pub(super) fn is_fatal(&self) -> bool {
        matches!(
            self,
            AskError::NoBus(..)
                | AskError::NoDaemon(_)
                | AskError::DaemonStopped(_)
                | AskError::BusLost(..)
        )
    }
}

/// Connects to `bus`, where the daemon serves.
pub(super) async fn connect(bus: &BusAddress) -> Result<zbus::Connection, AskError> {
    bus.connect()
        .await
        .map_err(|e| AskError::NoBus(bus.clone(), e))
}

/// Asks the running daemon once on a connection of its own: one turn, no dialog before it.
async fn ask_daemon(bus: &BusAddress, text: &str, from: Option<&str>) -> Result<serde_json::Value> {
    let conn = connect(bus).await?;
    match ask(&conn, bus, text, from).await {
        Err(e @ AskError::NoDaemon(_)) => {
            bail!("{e}, or handle the text in-process with `cabin say --profile FILE`")
        }
        other => Ok(other?),
    }
}

/// Sends `text` (from the profile input `from`) to the daemon on `conn`; returns the outcome
/// JSON it sends. The daemon binds a dialog (a question, the last zone) to the connection, so
/// asking again on the same `conn` continues it.
pub(super) async fn ask(
    conn: &zbus::Connection,
    bus: &BusAddress,
    text: &str,
    from: Option<&str>,
) -> Result<serde_json::Value, AskError> {
    let call = async {
        match from {
            None => {
                conn.call_method(
                    Some(api::SERVICE_NAME),
                    api::OBJECT_PATH,
                    Some(api::SERVICE_NAME),
                    "SubmitTextJson",
                    &(text,),
                )
                .await
            }
            Some(source) => {
                conn.call_method(
                    Some(api::SERVICE_NAME),
                    api::OBJECT_PATH,
                    Some(api::SERVICE_NAME),
                    "SubmitTextFrom",
                    &(text, source),
                )
                .await
            }
        }
    };
    let reply = match tokio::time::timeout(SAY_TIMEOUT, call).await {
        Err(_) => return Err(AskError::Timeout),
        Ok(Ok(reply)) => reply,
        Ok(Err(zbus::Error::FDO(e))) => {
            return Err(match *e {
                zbus::fdo::Error::ServiceUnknown(_) | zbus::fdo::Error::NameHasNoOwner(_) => {
                    AskError::NoDaemon(bus.clone())
                }
                // The bus answers a call whose callee left without a reply with NoReply.
                zbus::fdo::Error::NoReply(_) => AskError::DaemonStopped(bus.clone()),
                e => AskError::Refused(zbus::Error::FDO(Box::new(e))),
            });
        }
        Ok(Err(e @ (zbus::Error::InputOutput(_) | zbus::Error::Handshake(_)))) => {
            return Err(AskError::BusLost(bus.clone(), e))
        }
        Ok(Err(e)) => return Err(AskError::Refused(e)),
    };
    let json: String = reply
        .body()
        .deserialize()
        .map_err(|e| AskError::Unreadable(e.to_string()))?;
    serde_json::from_str(&json).map_err(|e| AskError::Unreadable(e.to_string()))
}
