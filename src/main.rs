//! The `cabin` command: the daemon and its command-line tools.

mod bench;
mod eval;

use anyhow::{bail, Context, Result};
use cabin::action::VehicleBus;
use cabin::bus::BusAddress;
use cabin::daemon::{self, api};
use cabin::listen::{Engines, FrontEnd, Heard, Input};
use cabin::profile::{ActionKind, Profile};
use cabin::understand::Assistant;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "cabin",
    version,
    about = "Offline-first in-car voice assistant"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: serve org.cabin.Assistant1 until SIGTERM or Ctrl-C.
    Run {
        /// Vehicle profile; the embedded default profile when omitted.
        #[arg(long)]
        profile: Option<PathBuf>,
        /// Bus to serve on: session, system, or a D-Bus address.
        #[arg(long, default_value = "session")]
        bus: BusAddress,
        /// Let what drivers said, replies and vehicle error messages into the logs (debugging
        /// only: they can hold names and places).
        #[arg(long)]
        log_private: bool,
        #[command(flatten)]
        llm: LlmArg,
        /// Audio input: `mic` (the profile's capture device), `mic:NAME`, a recording, `-`
        /// (raw 16 kHz mono s16le on standard input), `null` (silence), or `off`.
        #[arg(long, env = "CABIN_INPUT", default_value = "mic")]
        input: String,
        /// Speech recognition: auto (the supervised worker), off, or a Wyoming service's
        /// tcp:// or unix:// address.
        #[arg(long, env = "CABIN_ASR", default_value = "auto")]
        asr: cabin::asr::AsrChoice,
        /// Where replies are spoken: `speaker` (the profile's playback device),
        /// `speaker:NAME`, `null` (real-time silence), a FILE.wav (the last reply), or `off`.
        #[arg(long, env = "CABIN_OUTPUT", default_value = "speaker")]
        output: String,
    },
    /// Send text to the running daemon (or, with --profile, handle it in-process) and print
    /// the reply.
    Say {
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
        llm: LlmArg,
        /// What the driver said.
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
    },
    /// Run a labelled JSONL set of utterances through the router (in this process) and print
    /// accuracy per route and intent, confusions and latency percentiles.
    Eval {
        /// One JSON object per line: {"text", "route", "intent", "slots"}.
        file: PathBuf,
        #[arg(long)]
        profile: Option<PathBuf>,
        /// Bus of the vehicle services (actions run; their failure does not change the score).
        #[arg(long)]
        bus: Option<BusAddress>,
        #[command(flatten)]
        llm: LlmArg,
        /// Also write every result as JSON here.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// Transcribe a recording (WAV of any rate and channels, or raw 16 kHz mono s16le; `-`
    /// reads standard input) and print the text and timings.
    Transcribe {
        file: PathBuf,
        #[arg(long)]
        profile: Option<PathBuf>,
        /// Speech recognition: auto (supervise cabin-asr with the profile's model), or the
        /// address of a running Wyoming ASR service (tcp://HOST:PORT, unix://PATH).
        #[arg(long, env = "CABIN_ASR", default_value = "auto")]
        asr: cabin::asr::AsrChoice,
        /// Send no vocabulary prompt (to measure what it changes).
        #[arg(long)]
        no_prompt: bool,
        /// Print JSON: {"text", "audio_s", "asr_ms"}.
        #[arg(long)]
        json: bool,
    },
    /// Run the speech front end on a recording: find the speech in it, transcribe it, check for
    /// the wake word, then understand and act as `say` does (in this process).
    Listen {
        /// WAV file (any rate and channels) or raw 16 kHz mono s16le; `-` reads raw audio
        /// from standard input, `mic` (or `mic:NAME`) a capture device, `null` silence.
        #[arg(long)]
        input: String,
        #[arg(long)]
        profile: Option<PathBuf>,
        /// Bus of the vehicle services (default: the profile's).
        #[arg(long)]
        bus: Option<BusAddress>,
        #[arg(long, env = "CABIN_ASR", default_value = "auto")]
        asr: cabin::asr::AsrChoice,
        /// Capture the first command without a wake word (push-to-talk).
        #[arg(long)]
        push_to_talk: bool,
        #[command(flatten)]
        llm: LlmArg,
        /// Print the whole outcome as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Install and list model files.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Check the set-up: profile, buses, vehicle services, driving state, CPU and memory.
    /// Prints each problem with its fix; exits non-zero when something is broken.
    Doctor {
        /// Profile to check; the embedded default profile when omitted.
        #[arg(long)]
        profile: Option<PathBuf>,
        /// Bus the daemon serves on: session, system, or a D-Bus address.
        #[arg(long, default_value = "session")]
        bus: BusAddress,
    },
    /// Measure the pipeline end to end: start-up to READY, per-stage latency (text, speech
    /// in, speech out, the local model), RSS and idle CPU, with a private bus, the simulator
    /// and daemons of this build.
    Bench {
        /// Leave out the local model's stages (loading it takes over a minute).
        #[arg(long)]
        no_llm: bool,
        /// How many times to run the command corpus.
        #[arg(long, default_value_t = 10)]
        rounds: usize,
        /// Seconds to measure the idle daemon's CPU over.
        #[arg(long, default_value_t = 5)]
        idle_seconds: u64,
        /// Also write the report as JSON here.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Spoken command recordings for the speech stages.
        #[arg(long, default_value = "tests/fixtures")]
        fixtures: PathBuf,
    },
    /// Profile tools.
    Profile {
        #[command(subcommand)]
        command: ProfileCommand,
    },
}

#[derive(clap::Args)]
struct LlmArg {
    /// The local model route: auto (supervise cabin-llm with the profile's model), off (fast
    /// path only), or the base URL of a running OpenAI-compatible endpoint.
    #[arg(long, env = "CABIN_LLM", default_value = "auto")]
    llm: cabin::brain::LlmChoice,
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Install the models a profile needs (sha256-checked; a second run does nothing).
    Fetch {
        /// Profile whose models to install; the embedded default profile when omitted.
        #[arg(long)]
        profile: Option<PathBuf>,
        /// Install this model (see `cabin models list`) instead of the profile's.
        #[arg(long, value_name = "NAME")]
        model: Vec<String>,
        /// Models directory (default: $CABIN_MODELS_DIR, else ~/.local/share/cabin/models).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Print where the profile's language model is (installed or not).
    Path {
        #[arg(long)]
        profile: Option<PathBuf>,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Convert a CTranslate2 (faster-whisper) Whisper model to whisper.cpp's ggml format (what
    /// `fetch` does for the models it knows; this is for other whisper models).
    ImportCt2 {
        /// The CTranslate2 model directory, or its model.bin
        model: PathBuf,
        /// The openai-whisper source package (.tar.gz), for the mel filters and vocabulary:
        /// `pip download --no-deps --no-binary=:all: openai-whisper==20250625`
        #[arg(long)]
        assets: PathBuf,
        /// Where to write the ggml model
        #[arg(long)]
        out: PathBuf,
    },
    /// Show the models Cabin knows, whether each is installed, its size and checksum.
    List {
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Hash installed files and compare with the expected sha256 (slow on big models).
        #[arg(long)]
        verify: bool,
    },
}

#[derive(Subcommand)]
enum ProfileCommand {
    /// Validate a profile and list its intents and how many sentences each expands to.
    Check {
        file: PathBuf,
        /// Also print every sentence template.
        #[arg(long)]
        sentences: bool,
    },
    /// Print the system-bus policy for a profile (for /usr/share/dbus-1/system.d/).
    DbusPolicy {
        file: PathBuf,
        /// The user the daemon runs as.
        #[arg(long, default_value = "cabin")]
        user: String,
        /// The group whose members (the HMI) may call the assistant.
        #[arg(long, default_value = "cabin-hmi")]
        hmi_group: String,
    },
}

/// How long `cabin say` waits for the daemon.
const SAY_TIMEOUT: Duration = Duration::from_secs(30);

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("cannot start the async runtime");
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> Result<std::process::ExitCode> {
    match cli.command {
        Command::Run {
            profile,
            bus,
            log_private,
            llm,
            input,
            asr,
            output,
        } => {
            cabin::logging::log_private(log_private);
            // Handlers go in before the bus name is taken: a stop request during start-up must
            // shut down cleanly too, not kill the process.
            let shutdown = shutdown_signal()?;
            let profile = Arc::new(Profile::load_or_default(profile.as_deref())?);
            let output = match output.as_str() {
                "off" => None,
                other => Some(
                    cabin::playback::Output::parse(other, &profile.audio.output)
                        .map_err(anyhow::Error::msg)?,
                ),
            };
            daemon::run(
                daemon::DaemonConfig {
                    input: match input.as_str() {
                        "off" => None,
                        "mic" => Some(Input::Device(profile.audio.input.clone())),
                        other => Some(Input::parse(other)),
                    },
                    profile,
                    bus,
                    llm: llm.llm,
                    asr,
                    output,
                },
                shutdown,
            )
            .await?;
        }
        Command::Say {
            profile,
            bus,
            json,
            from,
            speak,
            wav,
            llm,
            text,
        } => {
            let text = text.join(" ");
            // Checked before the turn runs, so a bad device fails before the car acts.
            let voice_profile = Profile::load_or_default(profile.as_deref())?;
            let output = match (&wav, speak) {
                (Some(path), _) => Some(cabin::playback::Output::Wav(path.clone())),
                (None, true) => Some(cabin::playback::Output::Device(
                    voice_profile.audio.output.clone(),
                )),
                (None, false) => None,
            };
            let mut outcome = match profile {
                Some(path) => {
                    let profile = Profile::load(&path)?;
                    let zone = match &from {
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
                    one_turn(profile, bus, &llm.llm, &text, zone.as_deref()).await?
                }
                None => ask_daemon(&bus.unwrap_or_default(), &text, from.as_deref()).await?,
            };
            if let Some(output) = output {
                let reply = outcome["reply"].as_str().unwrap_or_default().to_string();
                outcome["speech"] = speak_reply(&voice_profile, &reply, output).await?;
            }
            if json {
                print_out(&format!("{outcome}\n"))?;
            } else {
                print_out(&format!(
                    "{}\n",
                    outcome["reply"].as_str().unwrap_or_default()
                ))?;
            }
        }
        Command::Eval {
            file,
            profile,
            bus,
            llm,
            json,
        } => {
            let profile = Arc::new(Profile::load_or_default(profile.as_deref())?);
            let set = eval::load(&file)?;
            let bus = bus.unwrap_or_else(|| profile.vehicle.bus.clone());
            let vehicle = VehicleBus::new(bus, profile.vehicle.timeout);
            // A measurement waits as long as the model takes to warm up on a busy machine;
            // starting before it is ready would score every case a decline.
            let assistant = with_brain(profile, vehicle, &llm.llm, EVAL_SETTLE_LIMIT).await;
            if let Some(cabin::worker::WorkerState::Starting) =
                assistant.brain().map(|b| b.worker().state())
            {
                bail!(
                    "the local model was not ready after {} s; nothing to measure",
                    EVAL_SETTLE_LIMIT.as_secs()
                );
            }
            let results = eval::run(&assistant, &set, |done, total| {
                eprint!("\reval: {done}/{total}");
            })
            .await;
            eprintln!();
            print_out(&eval::report(&results))?;
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&results)?)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
        }
        Command::Models {
            command:
                ModelsCommand::Fetch {
                    profile,
                    model,
                    dir,
                },
        } => {
            let dir = dir.unwrap_or_else(cabin::models::default_dir);
            let names = if model.is_empty() {
                let profile = Profile::load_or_default(profile.as_deref())?;
                let mut names: Vec<String> = Vec::new();
                for (_, name) in cabin::models::needed(&profile.models) {
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
                names
            } else {
                model
            };
            for name in names {
                let model = cabin::models::find(&name)?;
                let target = dir.clone();
                tokio::task::spawn_blocking(move || {
                    cabin::models::fetch(&target, model, &mut |line| eprintln!("{line}"))
                })
                .await??;
                print_out(&format!(
                    "{}: {}\n",
                    model.name,
                    dir.join(model.file).display()
                ))?;
            }
        }
        Command::Models {
            command: ModelsCommand::Path { profile, dir },
        } => {
            let profile = Profile::load_or_default(profile.as_deref())?;
            let name = profile
                .models
                .llm
                .as_deref()
                .context("the profile names no language model ([models] llm)")?;
            let dir = dir.unwrap_or_else(cabin::models::default_dir);
            print_out(&format!(
                "{}\n",
                dir.join(cabin::models::find(name)?.file).display()
            ))?;
        }
        Command::Transcribe {
            file,
            profile,
            asr,
            no_prompt,
            json,
        } => {
            let profile = Profile::load_or_default(profile.as_deref())?;
            let samples = tokio::task::spawn_blocking(move || cabin::audio::read(&file)).await??;
            let (_worker, client) = asr_client(&profile, &asr).await?;
            let client = if no_prompt {
                cabin::asr::AsrClient::new(client.address().clone(), None)
            } else {
                client
            };
            let audio_s = samples.len() as f64 / cabin::audio::RATE as f64;
            let t = client
                .transcribe(&samples, std::time::Duration::from_secs(60))
                .await?;
            let out = if json {
                serde_json::json!({"text": t.text, "audio_s": audio_s, "asr_ms": t.ms}).to_string()
                    + "\n"
            } else {
                format!(
                    "{}\n({audio_s:.1} s of audio, recognised in {:.0} ms)\n",
                    t.text, t.ms
                )
            };
            print_out(&out)?;
        }
        Command::Listen {
            input,
            profile,
            bus,
            asr,
            push_to_talk,
            llm,
            json,
        } => {
            let profile = Arc::new(Profile::load_or_default(profile.as_deref())?);
            let out = listen(
                profile,
                Input::parse(&input),
                bus,
                &asr,
                push_to_talk,
                &llm.llm,
            )
            .await?;
            if json {
                print_out(&format!("{out}\n"))?;
            } else {
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
            }
        }
        Command::Models {
            command: ModelsCommand::ImportCt2 { model, assets, out },
        } => {
            let bin = if model.is_dir() {
                model.join("model.bin")
            } else {
                model
            };
            let summary = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let bytes = std::fs::read(&bin)
                    .with_context(|| format!("cannot read {}", bin.display()))?;
                let sdist = std::fs::File::open(&assets)
                    .with_context(|| format!("cannot read {}", assets.display()))?;
                let assets = cabin::ct2::Assets::from_sdist(std::io::BufReader::new(sdist))?;
                let partial = out.with_extension("partial");
                let file = std::fs::File::create(&partial)
                    .with_context(|| format!("cannot write {}", partial.display()))?;
                let summary = cabin::ct2::convert(&bytes, &assets, file)
                    .with_context(|| format!("cannot convert {}", bin.display()))?;
                std::fs::rename(&partial, &out)?;
                let sha = cabin::models::sha256_file(&out)?;
                Ok(format!(
                    "{}: {} tensors, {} vocabulary tokens, {:?}\nsha256 {sha}\n",
                    out.display(),
                    summary.tensors,
                    summary.vocab,
                    summary.hparams
                ))
            })
            .await??;
            print_out(&summary)?;
        }
        Command::Models {
            command: ModelsCommand::List { dir, verify },
        } => {
            let dir = dir.unwrap_or_else(cabin::models::default_dir);
            let mut out = format!("models in {}\n", dir.display());
            for m in cabin::models::MODELS {
                use cabin::models::Installed;
                let state = match cabin::models::status(&dir, m) {
                    Installed::Missing => "not installed (run `cabin models fetch`)".to_string(),
                    Installed::WrongSize(n) => {
                        format!("WRONG SIZE {n} bytes (run `cabin models fetch`)")
                    }
                    Installed::Ok if verify => {
                        match cabin::models::sha256_file(&dir.join(m.file)) {
                            Ok(h) if h == m.sha256 => "installed, sha256 OK".into(),
                            Ok(h) => format!("CORRUPT: sha256 {h} (run `cabin models fetch`)"),
                            Err(e) => format!("unreadable: {e}"),
                        }
                    }
                    Installed::Ok => "installed".into(),
                };
                out.push_str(&format!(
                    "  {} [{}] {} MB, sha256 {}: {state}\n    licence: {}\n",
                    m.name,
                    m.kind,
                    m.size / 1_000_000,
                    &m.sha256[..16],
                    m.licence
                ));
            }
            print_out(&out)?;
        }
        Command::Doctor { profile, bus } => {
            let profile = Profile::load_or_default(profile.as_deref())?;
            let checks = cabin::doctor::run(&profile, &bus).await;
            let mut report = String::new();
            for c in &checks {
                let mark = match c.status {
                    cabin::doctor::Status::Ok => "ok  ",
                    cabin::doctor::Status::Warn => "warn",
                    cabin::doctor::Status::Fail => "FAIL",
                };
                report.push_str(&format!("{mark}  {}\n", c.what));
                if !c.fix.is_empty() {
                    report.push_str(&format!("      fix: {}\n", c.fix));
                }
            }
            let failed = checks
                .iter()
                .filter(|c| c.status == cabin::doctor::Status::Fail)
                .count();
            report.push_str(&match failed {
                0 => "all checks passed\n".to_string(),
                n => format!("{n} problem(s) found\n"),
            });
            print_out(&report)?;
            if failed > 0 {
                return Ok(std::process::ExitCode::FAILURE);
            }
        }
        Command::Bench {
            no_llm,
            rounds,
            idle_seconds,
            json,
            fixtures,
        } => {
            anyhow::ensure!(rounds > 0, "--rounds must be at least 1");
            let report = bench::run(
                rounds,
                Duration::from_secs(idle_seconds),
                &fixtures,
                !no_llm,
            )
            .await?;
            print_out(&report.markdown())?;
            if let Some(path) = json {
                bench::write(&report, &path)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
        }
        Command::Profile {
            command:
                ProfileCommand::DbusPolicy {
                    file,
                    user,
                    hmi_group,
                },
        } => {
            let profile = Profile::load(&file)?;
            print_out(&cabin::policy::dbus_policy(&profile, &user, &hmi_group))?;
        }
        Command::Profile {
            command: ProfileCommand::Check { file, sentences },
        } => {
            let profile = Profile::load(&file)?;
            print_out(&profile_listing(&profile, sentences))?;
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Handles one utterance in this process (no daemon) and returns its outcome as JSON. The
/// vehicle services are on `bus`, else the profile's.
async fn one_turn(
    profile: Profile,
    bus: Option<BusAddress>,
    llm: &cabin::brain::LlmChoice,
    text: &str,
    zone: Option<&str>,
) -> anyhow::Result<serde_json::Value> {
    let bus = bus.unwrap_or_else(|| profile.vehicle.bus.clone());
    let vehicle = VehicleBus::new(bus, profile.vehicle.timeout);
    let assistant = with_brain(Arc::new(profile), vehicle, llm, cabin::worker::SETTLE_LIMIT).await;
    let turn = assistant.turn(text, zone, Default::default(), |_| {}).await;
    Ok(serde_json::to_value(&turn.outcome)?)
}

/// Speaks `reply` with the profile's voice into `output`; returns figures as JSON: the voice,
/// time to first audio, audio length, synthesis time and real-time factor.
async fn speak_reply(
    profile: &Profile,
    reply: &str,
    output: cabin::playback::Output,
) -> anyhow::Result<serde_json::Value> {
    use cabin::speaker::{SpeechEnd, Spoken};
    let profile = profile.clone();
    let reply = reply.to_string();
    // Loading the voice and joining the speaker's threads block: off the runtime.
    tokio::task::spawn_blocking(move || {
        let voice = cabin::tts::load(&profile)?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let speaker = cabin::speaker::Speaker::start(voice, output, None, tx)?;
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
                    synthesis += s.as_secs_f64();
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

/// The speech recogniser `choice` names, started and ready; the worker (which stops when
/// dropped) and its client.
async fn asr_client(
    profile: &Profile,
    choice: &cabin::asr::AsrChoice,
) -> anyhow::Result<(cabin::asr::AsrWorker, cabin::asr::AsrClient)> {
    let worker = cabin::asr::start(profile, choice)
        .context("speech recognition is off, or the profile names no asr model")?;
    match worker.settled(cabin::worker::SETTLE_LIMIT).await {
        cabin::worker::WorkerState::Ready(c) => Ok((worker, c)),
        cabin::worker::WorkerState::Down(why) => bail!("no speech recognition: {why}"),
        cabin::worker::WorkerState::Starting => bail!(
            "the speech recognition worker was not ready within {} s",
            cabin::worker::SETTLE_LIMIT.as_secs()
        ),
    }
}

/// Runs the front end over `input` until it ends: every command heard after the wake word
/// (or, with `push_to_talk`, the first one without it) is transcribed and handled in this
/// process. Returns a JSON report.
async fn listen(
    profile: Arc<Profile>,
    input: Input,
    bus: Option<BusAddress>,
    asr: &cabin::asr::AsrChoice,
    push_to_talk: bool,
    llm: &cabin::brain::LlmChoice,
) -> Result<serde_json::Value> {
    let engines = Engines::load(&profile)?;
    let (_worker, client) = asr_client(&profile, asr).await?;
    let bus = bus.unwrap_or_else(|| profile.vehicle.bus.clone());
    let vehicle = VehicleBus::new(bus, profile.vehicle.timeout);
    let assistant = with_brain(profile.clone(), vehicle, llm, cabin::worker::SETTLE_LIMIT).await;
    let (heard_tx, mut heard) = tokio::sync::mpsc::channel(16);
    let front_end = FrontEnd::start(
        input,
        engines,
        profile.listen.clone(),
        push_to_talk,
        heard_tx,
    )?;
    let mut out = serde_json::json!({"wakes": [], "commands": [], "no_speech": []});
    let mut context = Default::default();
    while let Some(h) = heard.recv().await {
        match h {
            Heard::Wake { at, score } => {
                out["wakes"]
                    .as_array_mut()
                    .expect("an array")
                    .push(serde_json::json!({"at": at, "score": score}));
            }
            Heard::NoSpeech { at } => {
                out["no_speech"]
                    .as_array_mut()
                    .expect("an array")
                    .push(at.into());
            }
            Heard::Command { audio, at, cut_off } => {
                let t = client
                    .transcribe(&audio, std::time::Duration::from_secs(60))
                    .await?;
                let text = cabin::asr::command_text(&t.text, &profile.assistant.wake_words);
                let mut c = serde_json::json!({
                    "at": at,
                    "speech_s": audio.len() as f64 / cabin::audio::RATE as f64,
                    "cut_off": cut_off,
                    "transcript": t.text,
                    "asr_ms": t.ms,
                    "outcome": null,
                });
                let mut follow_up = false;
                if !text.is_empty() {
                    let turn = assistant.turn(&text, None, context, |_| {}).await;
                    c["outcome"] = serde_json::to_value(&turn.outcome)?;
                    follow_up = turn.follow_up;
                    context = if follow_up {
                        turn.context
                    } else {
                        Default::default()
                    };
                }
                if follow_up {
                    // A question or a confirmation: the answer needs no wake word.
                    front_end.listen();
                } else {
                    front_end.resume();
                }
                out["commands"].as_array_mut().expect("an array").push(c);
            }
            Heard::Ended {
                audio_s,
                wake_cpu_s,
                vad_cpu_s,
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
                });
                break;
            }
        }
    }
    Ok(out)
}

const EVAL_SETTLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(900);

/// An assistant with the model routes `llm` asks for, waiting (at most `settle`) for a worker
/// it starts, and for its intent shortlist.
async fn with_brain(
    profile: Arc<Profile>,
    vehicle: VehicleBus,
    llm: &cabin::brain::LlmChoice,
    settle: std::time::Duration,
) -> Assistant {
    let assistant = Assistant::new(profile.clone(), vehicle);
    let Some(brain) = cabin::brain::start(&profile, llm) else {
        return assistant;
    };
    brain.shortlist_built().await;
    if let cabin::worker::WorkerState::Down(why) = brain.worker().settled(settle).await {
        eprintln!("warning: no local model: {why}");
    } else if let cabin::brain::LlmChoice::Url(url) = llm {
        if let Err(e) = brain.warm_up().await {
            eprintln!("warning: the model endpoint {url} failed: {e}");
        }
    }
    assistant.with_brain(Arc::new(brain))
}

/// Asks the running daemon; returns the outcome JSON it sends.
async fn ask_daemon(bus: &BusAddress, text: &str, from: Option<&str>) -> Result<serde_json::Value> {
    let conn = bus.connect().await.with_context(|| {
        format!(
            "cannot connect to the {bus} (is a D-Bus daemon running? pass --bus with its address)"
        )
    })?;
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
        Err(_) => bail!(
            "the Cabin daemon did not answer within {} s",
            SAY_TIMEOUT.as_secs()
        ),
        Ok(Err(zbus::Error::FDO(e)))
            if matches!(
                *e,
                zbus::fdo::Error::ServiceUnknown(_) | zbus::fdo::Error::NameHasNoOwner(_)
            ) =>
        {
            bail!("no Cabin daemon is running on the {bus} ({}); start one with `cabin run`, or handle the text in-process with `cabin say --profile FILE`", api::SERVICE_NAME)
        }
        Ok(r) => r.context("the Cabin daemon refused the request")?,
    };
    let json: String = reply.body().deserialize()?;
    serde_json::from_str(&json)
        .context("the daemon sent an outcome this cabin cannot read (are both the same version?)")
}

/// Installs SIGTERM (systemd stop) and SIGINT (Ctrl-C) handlers now; the returned future
/// completes when either arrives.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}

/// The listing `cabin profile check` prints.
fn profile_listing(p: &Profile, sentences: bool) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let total: usize = p.intents.iter().map(|i| i.sentence_count).sum();
    let _ = writeln!(
        out,
        "{}: OK: \"{}\" ({}), {} intents, {} sentences, vehicle on the {} (timeout {} ms)",
        p.file,
        p.name,
        p.language,
        p.intents.len(),
        total,
        p.vehicle.bus,
        p.vehicle.timeout.as_millis()
    );
    let width = p.intents.iter().map(|i| i.name.len()).max().unwrap_or(0);
    for i in &p.intents {
        let a = &i.action;
        let target = match &a.kind {
            ActionKind::Call { method, args } => {
                let sig: String = args.iter().map(|s| s.ty.as_char()).collect();
                format!("call {}.{method}({sig})", a.interface)
            }
            ActionKind::SetProperty { property, value } => {
                format!("set {}.{property} ({})", a.interface, value.ty.as_char())
            }
            ActionKind::GetProperty { property } => format!("get {}.{property}", a.interface),
        };
        let mut notes = Vec::new();
        if i.confirm.is_some() {
            notes.push("confirm");
        }
        if i.when.is_some() {
            notes.push("constrained");
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!(" [{}]", notes.join(", "))
        };
        let _ = writeln!(
            out,
            "  {:width$}  {:5} sentences  {} {}{}",
            i.name, i.sentence_count, a.service, target, notes
        );
        if sentences {
            for t in &i.sentences {
                let _ = writeln!(out, "      {}", t.source);
            }
        }
    }
    if !p.small_talk.is_empty() {
        let names: Vec<&str> = p.small_talk.iter().map(|t| t.name.as_str()).collect();
        let _ = writeln!(out, "  small talk: {}", names.join(", "));
    }
    if !p.inputs.is_empty() {
        let inputs: Vec<String> = p
            .inputs
            .iter()
            .map(|i| format!("{} ({})", i.name, i.zone))
            .collect();
        let _ = writeln!(out, "  inputs: {}", inputs.join(", "));
    }
    out
}

/// Writes to stdout; a reader that went away (`| head`) ends the output, not the program.
fn print_out(text: &str) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Logs to journald when systemd connected stderr to the journal (`JOURNAL_STREAM`), to
/// stderr otherwise. The level comes from `CABIN_LOG` (default `info`).
fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("CABIN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,zbus=warn"));
    let journald = std::env::var_os("JOURNAL_STREAM")
        .and_then(|_| tracing_journald::layer().ok())
        .map(|l| l.with_syslog_identifier("cabin".into()));
    let stderr = journald.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(journald)
        .with(stderr)
        .init();
}
