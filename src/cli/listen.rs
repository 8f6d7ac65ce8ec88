//! `cabin listen`: the speech front end over a recording (or a device), every command heard
//! understood and acted on in this process.

use super::print_out;
use anyhow::{bail, Context, Result};
use cabin::asr::AsrChoice;
use cabin::hear::Input;
use cabin::listening::{Listened, Listening, Transcriber};
use cabin::runtime::bus::BusAddress;
use cabin::runtime::worker::SETTLE_LIMIT;
use cabin::Profile;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    /// WAV file (any rate and channels) or raw 16 kHz mono s16le; `-` reads raw audio
    /// from standard input, `mic` (or `mic:NAME`) a capture device, `null` silence.
    #[arg(long)]
    input: String,
    /// What the car played meanwhile, for the echo canceller: a recording as long as the
    /// input (the media's capture, sample for sample), or `mic:NAME` (a monitor device).
    #[arg(long)]
    reference: Option<String>,
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Bus of the vehicle services (default: the profile's).
    #[arg(long)]
    bus: Option<BusAddress>,
    #[arg(long, env = "CABIN_ASR", default_value = "auto")]
    asr: AsrChoice,
    /// Capture the first command without a wake word (push-to-talk).
    #[arg(long)]
    push_to_talk: bool,
    #[command(flatten)]
    llm: super::LlmArg,
    /// Print the whole outcome as one JSON object.
    #[arg(long)]
    json: bool,
}

pub async fn exec(args: Args) -> Result<ExitCode> {
    let profile = Arc::new(Profile::load_or_default(args.profile.as_deref())?);
    let out = listen(profile, &args).await?;
    if args.json {
        print_out(&format!("{out}\n"))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut text = String::new();
    for c in out["commands"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            "{:6.2} s  heard: {}\n          {}\n",
            c["at"].as_f64().unwrap_or_default(),
            c["transcript"].as_str().unwrap_or_default(),
            c["outcome"]["reply"].as_str().unwrap_or("(nothing to do)")
        ));
    }
    if text.is_empty() {
        text = "nothing to do: no wake word, or no speech after it (--push-to-talk listens without one)\n".into();
    }
    print_out(&text)?;
    let f = &out["front_end"];
    eprintln!(
        "{:.1} s of audio; wake word {:.1} % and voice activity {:.1} % of one core",
        out["audio_s"].as_f64().unwrap_or_default(),
        f["wake_cpu_percent"].as_f64().unwrap_or_default(),
        f["vad_cpu_percent"].as_f64().unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs the listening pipeline over the input until it ends: every command heard after the
/// wake word (or, with `--push-to-talk`, the first one without it) is transcribed and handled
/// in this process. Returns a JSON report.
async fn listen(profile: Arc<Profile>, args: &Args) -> Result<serde_json::Value> {
    cabin::hear::Engines::load(&profile.models)?;
    let asr = Arc::new(
        cabin::asr::start(&profile, &args.asr)
            .context("speech recognition is off, or the profile names no asr model")?,
    );
    Transcriber::new(&profile, asr.clone())
        .ready(SETTLE_LIMIT)
        .await
        .context("no speech recognition")?;
    let assistant = super::in_process::assistant(
        profile.clone(),
        args.bus.clone(),
        &args.llm.llm,
        SETTLE_LIMIT,
    )
    .await;
    let (heard_tx, mut heard) = tokio::sync::mpsc::channel(16);
    let playback = cabin::hear::Playback {
        voice: None,
        media: args.reference.as_deref().map(Input::parse),
    };
    let listening = Listening::start(
        &profile,
        Input::parse(&args.input),
        playback,
        asr,
        args.push_to_talk,
        SETTLE_LIMIT,
        heard_tx,
    )?;
    let mut out = serde_json::json!({"wakes": [], "commands": [], "no_speech": []});
    let mut context = Default::default();
    // The end of the turn being transcribed.
    let mut ended = None;
    // What the recogniser made of the command at its pauses.
    let mut partials = Vec::new();
    while let Some(h) = heard.recv().await {
        match h {
            Listened::Wake { at, score } => {
                out["wakes"]
                    .as_array_mut()
                    .expect("an array")
                    .push(serde_json::json!({"at": at, "score": score}));
            }
            // Logged by the front end; `cabin listen` goes on hearing silence meanwhile.
            Listened::Microphone { .. } => {}
            Listened::Partial { text, whole } => {
                partials.push(serde_json::json!({"text": text, "whole": whole}));
            }
            Listened::NoSpeech { at } => {
                out["no_speech"]
                    .as_array_mut()
                    .expect("an array")
                    .push(at.into());
            }
            Listened::EndOfTurn {
                at,
                speech_s,
                early,
                cut_off,
            } => {
                ended = Some(serde_json::json!({
                    "at": at,
                    "speech_s": speech_s,
                    "early": early,
                    "cut_off": cut_off,
                    "partials": std::mem::take(&mut partials),
                }));
            }
            Listened::Transcribed(command) => {
                let command = command?;
                let mut c = ended.take().unwrap_or_else(|| serde_json::json!({}));
                c["transcript"] = command.transcript.clone().into();
                c["asr_ms"] = command.asr_ms.into();
                c["outcome"] = serde_json::Value::Null;
                let mut follow_up = false;
                if let Some(text) = &command.text {
                    let hearing = command.hearing(&assistant.profile().listen);
                    let turn = assistant.turn(text, None, hearing, context, |_| {}).await;
                    c["outcome"] = serde_json::to_value(&turn.outcome)?;
                    follow_up = turn.follow_up;
                    context = if follow_up {
                        turn.context
                    } else {
                        Default::default()
                    };
                }
                listening.after_turn(follow_up);
                out["commands"].as_array_mut().expect("an array").push(c);
            }
            Listened::Ended {
                audio_s,
                wake_cpu_s,
                vad_cpu_s,
                clean_cpu_s,
                error,
            } => {
                if let Some(e) = error {
                    bail!("the front end stopped: {e}");
                }
                let percent = |cpu: f64| {
                    if audio_s > 0.0 {
                        100.0 * cpu / audio_s
                    } else {
                        0.0
                    }
                };
                out["audio_s"] = audio_s.into();
                out["front_end"] = serde_json::json!({
                    "wake_cpu_s": wake_cpu_s,
                    "vad_cpu_s": vad_cpu_s,
                    "wake_cpu_percent": percent(wake_cpu_s),
                    "vad_cpu_percent": percent(vad_cpu_s),
                    "clean_cpu_s": clean_cpu_s,
                    "clean_cpu_percent": percent(clean_cpu_s),
                });
                break;
            }
        }
    }
    Ok(out)
}
