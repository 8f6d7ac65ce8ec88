//! `cabin bench`: the pipeline measured as a user gets it. A private bus, the simulator and a
//! daemon (always listening, on the null device) are started as real processes; the report
//! gives start-up time to READY, per-stage latency (median, p95) over a corpus of commands, the
//! RSS of every process and the daemon's idle CPU. The speech stages run the front end and the
//! speech worker on the spoken command fixtures (`tests/fixtures`). The daemon speaks on the
//! null device (in real time): a reply's first audio is its first `Reply` signal, which the
//! daemon sends as the sentence starts to play. A second daemon with the local model measures
//! the model route the same way, and the voice's synthesis speed is measured in this process.

use cabin::daemon::api::{OBJECT_PATH, SERVICE_NAME};
use cabin::runtime::bus::PrivateBus;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
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
}

pub async fn exec(args: Args) -> anyhow::Result<std::process::ExitCode> {
    use anyhow::Context;
    anyhow::ensure!(args.rounds > 0, "--rounds must be at least 1");
    let report = run(
        args.rounds,
        Duration::from_secs(args.idle_seconds),
        &args.fixtures,
        !args.no_llm,
    )
    .await?;
    super::print_out(&report.markdown())?;
    if let Some(path) = args.json {
        write(&report, &path).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Commands across the default profile's domains, each a real D-Bus action or read.
pub const CORPUS: &[&str] = &[
    "set the temperature to twenty one degrees on the driver side",
    "make it 19 degrees for the passenger",
    "turn on the air conditioning",
    "set the fan speed to three",
    "open the rear left window to thirty percent",
    "close the rear left window",
    "turn on the passenger seat heating",
    "next track",
    "set the volume to forty percent",
    "tune the radio to ninety eight point five",
    "turn on the cabin lights",
    "navigate to Munich Central Station",
    "cancel the route",
    "what's my range",
    "check the front left tyre pressure",
    "tell me a joke",
];

/// The spoken fixtures and the intent each asks for.
const FIXTURES: &[(&str, &str)] = &[
    ("hey-jarvis-call-jordan", "phone.call"),
    (
        "hey-jarvis-navigate-to-munich-central-station",
        "navigation.navigate_to",
    ),
    (
        "hey-jarvis-set-the-temperature-to-twenty-degrees",
        "climate.set_temperature",
    ),
    ("hey-jarvis-turn-on-the-seat-heating", "seats.heating_on"),
];

#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: String,
    pub rounds: usize,
    pub utterances: usize,
    pub startup_to_ready_ms: f64,
    /// The same for a daemon with the local model: READY waits for the model to load.
    pub startup_to_ready_with_llm_ms: Option<f64>,
    /// Stage → (median, p95) in ms.
    pub latency_ms: BTreeMap<String, (f64, f64)>,
    /// Process → resident memory in MiB.
    pub rss_mib: BTreeMap<String, f64>,
    /// The daemon's CPU use while idle, in percent of one core.
    pub idle_cpu_percent: f64,
    /// Whether the daemon listened (wake word and VAD on the null device) while idle.
    pub idle_listening: bool,
    /// The front end's CPU per second of audio, in percent of one core.
    pub front_end_cpu_percent: Option<f64>,
    /// Spoken fixtures whose command came out as the intent their file names.
    pub speech_correct: Option<(usize, usize)>,
    /// Why the speech stages were left out, if they were.
    pub speech_skipped: Option<String>,
    /// The voice replies were spoken with (none: replies were text only).
    pub voice: Option<String>,
    /// Synthesis time over the audio's length, over the corpus's replies.
    pub tts_real_time_factor: Option<f64>,
    /// CPU while synthesising, per second of speech, in percent of one core.
    pub tts_cpu_percent: Option<f64>,
    /// Why the local model stages were left out, if they were.
    pub llm_skipped: Option<String>,
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "Machine: {}. {} utterances × {} rounds.\n\n| figure | value |\n|---|---|\n",
            self.machine, self.utterances, self.rounds
        );
        s += &format!(
            "| start-up to READY | {:.0} ms |\n",
            self.startup_to_ready_ms
        );
        if let Some(ms) = self.startup_to_ready_with_llm_ms {
            s += &format!("| start-up to READY, with the local model loaded | {ms:.0} ms |\n");
        }
        for (stage, (p50, p95)) in &self.latency_ms {
            s += &format!("| {stage}, median / p95 | {p50:.2} / {p95:.2} ms |\n");
        }
        for (process, mib) in &self.rss_mib {
            s += &format!("| RSS of {process} | {mib:.1} MiB |\n");
        }
        s += &format!(
            "| daemon CPU while idle{} | {:.2} % of one core |\n",
            if self.idle_listening {
                ", always listening"
            } else {
                " (not listening)"
            },
            self.idle_cpu_percent
        );
        if let Some(cpu) = self.front_end_cpu_percent {
            s += &format!("| front end (wake word + VAD) CPU | {cpu:.2} % of one core |\n");
        }
        if let Some((ok, all)) = self.speech_correct {
            s += &format!("| spoken fixtures understood | {ok} of {all} |\n");
        }
        if let (Some(voice), Some(rtf), Some(cpu)) =
            (&self.voice, self.tts_real_time_factor, self.tts_cpu_percent)
        {
            s += &format!("| speech synthesis ({voice}), real-time factor | {rtf:.3} |\n");
            s += &format!(
                "| speech synthesis CPU per second of speech | {cpu:.1} % of one core |\n"
            );
        }
        if let Some(why) = &self.speech_skipped {
            s += &format!("\nSpeech stages skipped: {why}\n");
        }
        if self.voice.is_none() {
            s += "\nSpeech out skipped: no voice could be loaded (run `cabin models fetch`).\n";
        }
        if let Some(why) = &self.llm_skipped {
            s += &format!("\nLocal model stages skipped: {why}\n");
        }
        s
    }
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends `text` to the daemon; the round trip and the outcome it reports.
async fn submit(
    conn: &zbus::Connection,
    text: &str,
) -> anyhow::Result<(Duration, serde_json::Value)> {
    let sent = Instant::now();
    let reply = conn
        .call_method(
            Some(SERVICE_NAME),
            OBJECT_PATH,
            Some(SERVICE_NAME),
            "SubmitTextJson",
            &(text,),
        )
        .await?;
    let round_trip = sent.elapsed();
    let json: String = reply.body().deserialize()?;
    Ok((round_trip, serde_json::from_str(&json)?))
}

/// The daemon's `Reply` signals: with a voice, each is a sentence starting to play.
async fn replies(conn: &zbus::Connection) -> anyhow::Result<zbus::MessageStream> {
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .interface(SERVICE_NAME)
        .member("Reply")
        .build()?;
    Ok(zbus::MessageStream::for_match_rule(rule, conn, std::num::NonZeroUsize::new(64)).await?)
}

/// A request's figures: the round trip, the first audio (with a voice), and the outcome.
struct Asked {
    round_trip: Duration,
    first_audio: Option<Duration>,
    outcome: serde_json::Value,
}

/// Sends `text` and, when the daemon speaks, times its first `Reply` signal: with streamed
/// speech it can come before the call returns.
async fn ask(
    conn: &zbus::Connection,
    replies: &mut zbus::MessageStream,
    text: &str,
    speaking: bool,
) -> anyhow::Result<Asked> {
    use futures_util::{FutureExt, StreamExt};
    // Signals of the request before (cancelled mid-reply) are not this one's.
    while let Some(Some(_)) = replies.next().now_or_never() {}
    let sent = Instant::now();
    let first_reply = async {
        replies.next().await;
        sent.elapsed()
    };
    tokio::pin!(first_reply);
    let call = submit(conn, text);
    tokio::pin!(call);
    let mut first_audio = None;
    let (round_trip, outcome) = loop {
        tokio::select! {
            r = &mut call => break r?,
            t = &mut first_reply, if first_audio.is_none() && speaking => first_audio = Some(t),
        }
    };
    let said = outcome["reply"].as_str().is_some_and(|r| !r.is_empty());
    if first_audio.is_none() && speaking && said {
        first_audio = tokio::time::timeout(Duration::from_secs(30), first_reply)
            .await
            .ok();
    }
    Ok(Asked {
        round_trip,
        first_audio,
        outcome,
    })
}

/// Ends the follow-up window, so that the next request starts a fresh dialog.
async fn end_dialog(conn: &zbus::Connection) -> anyhow::Result<()> {
    conn.call_method(
        Some(SERVICE_NAME),
        OBJECT_PATH,
        Some(SERVICE_NAME),
        "Cancel",
        &(),
    )
    .await?;
    Ok(())
}

const END_OF_SPEECH_FAST: &str =
    "end of speech to first audio, fast path (trailing silence + ASR + request)";
const FIRST_AUDIO_FAST: &str = "request to first audio, fast path";
const FIRST_AUDIO_LLM: &str = "request to first audio, local model";

/// Requests for the local model: an indirect command, and two answers.
const LLM_CORPUS: &[&str] = &[
    "it's freezing in here",
    "tell me a joke",
    "tell me something interesting about Munich",
];

/// The speech front end's figures on the spoken fixtures (an error says why they can't run).
struct Speech {
    stages: BTreeMap<String, Vec<f64>>,
    cpu_s: f64,
    audio_s: f64,
    correct: usize,
    runs: usize,
}

/// Runs each fixture through the front end and the speech worker, then its transcript through
/// the daemon on `conn`.
async fn speech(
    conn: &zbus::Connection,
    replies: &mut zbus::MessageStream,
    speaking: bool,
    fixtures: &Path,
    rounds: usize,
) -> anyhow::Result<Speech> {
    use cabin::hear::{Heard, Input};
    use cabin::listening::{Listening, Transcriber};
    let profile = cabin::profile::Profile::embedded_default();
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures)
        .map_err(|e| anyhow::anyhow!("no fixtures in {}: {e}", fixtures.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    files.sort();
    anyhow::ensure!(
        !files.is_empty(),
        "no .wav fixtures in {}",
        fixtures.display()
    );
    cabin::hear::Engines::load(&profile)?;
    let asr = std::sync::Arc::new(
        cabin::asr::start(&profile, &cabin::asr::AsrChoice::Auto)
            .ok_or_else(|| anyhow::anyhow!("the profile names no asr model"))?,
    );
    let transcriber = Transcriber::new(&profile, asr.clone());
    transcriber
        .ready(cabin::runtime::worker::SETTLE_LIMIT)
        .await
        .map_err(|e| anyhow::anyhow!("no speech recognition: {e}"))?;
    let mut out = Speech {
        stages: BTreeMap::new(),
        cpu_s: 0.0,
        audio_s: 0.0,
        correct: 0,
        runs: 0,
    };
    for _ in 0..rounds {
        for file in &files {
            let (tx, mut heard) = tokio::sync::mpsc::channel(16);
            let listening =
                Listening::start(&profile, Input::File(file.clone()), asr.clone(), false, tx)?;
            let mut command = None;
            while let Some(h) = heard.recv().await {
                match h {
                    Heard::Command { audio, .. } => {
                        command = Some(audio);
                        listening.after_turn(false);
                    }
                    Heard::Ended {
                        audio_s,
                        wake_cpu_s,
                        vad_cpu_s,
                        ..
                    } => {
                        out.cpu_s += wake_cpu_s + vad_cpu_s;
                        out.audio_s += audio_s;
                        break;
                    }
                    _ => {}
                }
            }
            out.runs += 1;
            let Some(audio) = command else { continue };
            let heard = transcriber
                .transcribe(&audio, cabin::runtime::worker::SETTLE_LIMIT)
                .await?;
            out.stages
                .entry("speech recognition (cabin-asr, after end-pointing)".into())
                .or_default()
                .push(heard.asr_ms);
            let text = heard.text.unwrap_or_default();
            let asked = ask(conn, replies, &text, speaking).await?;
            let outcome = asked.outcome;
            out.stages
                .entry("transcript to action and reply (daemon round trip)".into())
                .or_default()
                .push(asked.round_trip.as_secs_f64() * 1e3);
            if let Some(first) = asked.first_audio {
                // The end-pointer hears the command end after the trailing silence.
                let silence = profile.listen.trailing_silence.as_secs_f64() * 1e3;
                out.stages
                    .entry(END_OF_SPEECH_FAST.into())
                    .or_default()
                    .push(silence + heard.asr_ms + first.as_secs_f64() * 1e3);
            }
            // "hey-jarvis-set-the-temperature…" names what the command asks for.
            let name = file.file_stem().unwrap_or_default().to_string_lossy();
            let expected = FIXTURES.iter().find(|(n, _)| *n == name).map(|(_, i)| *i);
            if expected.is_some() && outcome["intent"].as_str() == expected {
                out.correct += 1;
            }
            end_dialog(conn).await?;
        }
    }
    Ok(out)
}

pub async fn run(
    rounds: usize,
    idle: Duration,
    fixtures: &Path,
    with_llm: bool,
) -> anyhow::Result<Report> {
    use anyhow::Context;
    let exe = std::env::current_exe()?;
    let sim_exe = exe.with_file_name("cabin-vehicle-sim");
    anyhow::ensure!(
        sim_exe.exists(),
        "{} not found next to cabin; build the whole workspace (cargo build --release --workspace)",
        sim_exe.display()
    );
    let dir = tempfile_dir()?;
    let bus = PrivateBus::start(&dir)?;
    let address = bus.address.clone();

    // Killed, bench takes its children with it.
    let mut sim = cabin::runtime::worker::dies_with_parent(&mut Command::new(&sim_exe))
        .args(["--bus", &address])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(sim.stdout.take().expect("piped")).read_line(&mut line)?;
    anyhow::ensure!(
        line.starts_with("ready"),
        "the simulator did not start: {line}"
    );
    let sim = Proc(sim);

    // Start-up to READY, as systemd sees it.
    let notify = dir.join("notify");
    let socket = UnixDatagram::bind(&notify)?;
    // With the local model, READY waits for it to load (up to the worker's settle limit).
    socket.set_read_timeout(Some(
        cabin::runtime::worker::SETTLE_LIMIT + Duration::from_secs(30),
    ))?;
    // Always listening (on real-time silence) where the front end's models are installed.
    let profile = cabin::profile::Profile::embedded_default();
    let idle_listening = cabin::hear::front_end::Engines::load(&profile).is_ok();
    let input = if idle_listening { "null" } else { "off" };
    // Speaking (on the null device) where the voice loads.
    let voice = {
        let profile = profile.clone();
        tokio::task::spawn_blocking(move || cabin::speak::voice::load(&profile)).await?
    }
    .ok();
    let speaking = voice.is_some();
    let output = if speaking { "null" } else { "off" };
    let start_daemon = |llm: &str| -> anyhow::Result<(Proc, Duration)> {
        socket.set_nonblocking(true)?;
        while socket.recv(&mut [0u8; 256]).is_ok() {}
        socket.set_nonblocking(false)?;
        let started = Instant::now();
        let daemon = Proc(
            cabin::runtime::worker::dies_with_parent(&mut Command::new(&exe))
                .args(["run", "--llm", llm, "--input", input, "--output", output])
                .args(["--bus", &address])
                .env("DBUS_SESSION_BUS_ADDRESS", &address)
                .env("NOTIFY_SOCKET", &notify)
                .env("CABIN_LOG", "warn")
                .spawn()?,
        );
        // STATUS= lines may come first (and after the previous daemon's READY).
        let mut buf = [0u8; 256];
        loop {
            let n = socket
                .recv(&mut buf)
                .context("the daemon never said READY")?;
            if buf[..n].starts_with(b"READY=1") {
                return Ok((daemon, started.elapsed()));
            }
        }
    };
    let (daemon, startup) = start_daemon("off")?;

    let conn = zbus::connection::Builder::address(address.as_str())
        .build()
        .await?;
    let mut replies = replies(&conn).await?;
    let mut stages: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut said = std::collections::BTreeSet::new();
    for _ in 0..rounds {
        for text in CORPUS {
            let Asked {
                round_trip,
                first_audio,
                outcome,
            } = ask(&conn, &mut replies, text, speaking).await?;
            if let (Some(first), Some("fast")) = (first_audio, outcome["route"].as_str()) {
                stages
                    .entry(FIRST_AUDIO_FAST.into())
                    .or_default()
                    .push(first.as_secs_f64() * 1e3);
            }
            if let Some(reply) = outcome["reply"].as_str() {
                said.insert(reply.to_string());
            }
            for (stage, name) in [
                ("understand", "understanding (fast path)"),
                ("action", "D-Bus action"),
                ("total", "daemon total"),
            ] {
                if let Some(v) = outcome["timings_ms"][stage].as_f64() {
                    stages.entry(name.into()).or_default().push(v);
                }
            }
            stages
                .entry("round trip seen by the caller".into())
                .or_default()
                .push(round_trip.as_secs_f64() * 1e3);
            end_dialog(&conn).await?;
        }
    }
    let (mut front_end_cpu_percent, mut speech_correct, mut speech_skipped) = (None, None, None);
    match speech(&conn, &mut replies, speaking, fixtures, rounds).await {
        Ok(sp) => {
            stages.extend(sp.stages);
            front_end_cpu_percent = Some(100.0 * sp.cpu_s / sp.audio_s);
            speech_correct = Some((sp.correct, sp.runs));
        }
        Err(e) => speech_skipped = Some(format!("{e:#}")),
    }
    let (mut tts_real_time_factor, mut tts_cpu_percent) = (None, None);
    let voice_name = voice.as_ref().map(|v| v.name());
    if let Some(mut voice) = voice {
        let replies: Vec<String> = said.into_iter().collect();
        let (rtf, cpu, firsts) =
            tokio::task::spawn_blocking(move || synthesis(&mut *voice, &replies)).await??;
        tts_real_time_factor = Some(rtf);
        tts_cpu_percent = Some(cpu);
        stages.insert("first sentence synthesis".into(), firsts);
    }
    let cpu_before = cpu_ticks(daemon.0.id());
    tokio::time::sleep(idle).await;
    let cpu_after = cpu_ticks(daemon.0.id());
    let idle_cpu_percent = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) => (b - a) as f64 / TICKS_PER_S / idle.as_secs_f64() * 100.0,
        _ => f64::NAN,
    };
    let mut rss_mib = BTreeMap::new();
    let mut processes = vec![
        ("cabin (daemon)".to_string(), daemon.0.id()),
        ("cabin-vehicle-sim".to_string(), sim.0.id()),
        ("dbus-daemon".to_string(), bus.pid()),
    ];
    // The daemon's workers (cabin-asr while it listens).
    for child in children(daemon.0.id()) {
        processes.push((worker_name(child), child));
    }
    for (name, pid) in processes {
        if let Some(kib) = rss_kib(pid) {
            rss_mib.insert(name, kib as f64 / 1024.0);
        }
    }
    drop(daemon);

    // The local model route, on a daemon that supervises cabin-llm.
    let mut startup_to_ready_with_llm_ms = None;
    let llm_skipped = match profile.models.llm.as_deref() {
        _ if !with_llm => Some("--no-llm".to_string()),
        None => Some("the profile names no local model".to_string()),
        Some(name) => match cabin::runtime::models::installed(name, "language model") {
            Err(e) => Some(e.to_string()),
            Ok(_) => {
                let (llm_daemon, ready) = start_daemon("auto")?;
                startup_to_ready_with_llm_ms = Some(ready.as_secs_f64() * 1e3);
                match llm_stages(&conn, &mut replies, speaking, rounds.min(3)).await {
                    Ok(llm) => {
                        for (stage, v) in llm {
                            stages.entry(stage).or_default().extend(v);
                        }
                        for child in children(llm_daemon.0.id()) {
                            if let Some(kib) = rss_kib(child) {
                                rss_mib.insert(worker_name(child), kib as f64 / 1024.0);
                            }
                        }
                        None
                    }
                    Err(e) => Some(format!("{e:#}")),
                }
            }
        },
    };
    let latency_ms = stages
        .into_iter()
        .map(|(k, mut v)| {
            v.sort_by(f64::total_cmp);
            let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
            (k, (at(0.5), at(0.95)))
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Report {
        machine: machine(),
        rounds,
        utterances: CORPUS.len(),
        startup_to_ready_ms: startup.as_secs_f64() * 1e3,
        startup_to_ready_with_llm_ms,
        latency_ms,
        rss_mib,
        idle_cpu_percent,
        idle_listening,
        front_end_cpu_percent,
        speech_correct,
        speech_skipped,
        voice: voice_name,
        tts_real_time_factor,
        tts_cpu_percent,
        llm_skipped,
    })
}

const TICKS_PER_S: f64 = 100.0; // USER_HZ on Linux

fn worker_name(pid: u32) -> String {
    let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let args = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let embedding = args.split(|&b| b == 0).any(|a| a == b"--embedding");
    format!(
        "{}{} (worker)",
        name.trim(),
        if embedding { " --embedding" } else { "" }
    )
}

/// The local model's requests: round trip and first audio. Waits (up to two minutes) for the
/// model to load first.
async fn llm_stages(
    conn: &zbus::Connection,
    replies: &mut zbus::MessageStream,
    speaking: bool,
    rounds: usize,
) -> anyhow::Result<BTreeMap<String, Vec<f64>>> {
    let loading = Instant::now();
    loop {
        let asked = ask(conn, replies, LLM_CORPUS[1], false).await?;
        end_dialog(conn).await?;
        if asked.outcome["route"] == "local_llm" {
            break;
        }
        anyhow::ensure!(
            loading.elapsed() < Duration::from_secs(120),
            "the local model did not answer within two minutes: {}",
            asked.outcome
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut stages: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for _ in 0..rounds {
        for text in LLM_CORPUS {
            let asked = ask(conn, replies, text, speaking).await?;
            if asked.outcome["route"] == "local_llm" {
                // An answer is spoken as it is generated; an action's reply after the action.
                let kind = if asked.outcome["intent"].is_null() {
                    "answer"
                } else {
                    "action"
                };
                stages
                    .entry(format!("round trip, local model {kind}"))
                    .or_default()
                    .push(asked.round_trip.as_secs_f64() * 1e3);
                if let Some(first) = asked.first_audio {
                    stages
                        .entry(format!("{FIRST_AUDIO_LLM} {kind}"))
                        .or_default()
                        .push(first.as_secs_f64() * 1e3);
                }
            }
            end_dialog(conn).await?;
        }
    }
    Ok(stages)
}

/// Synthesises every reply: the real-time factor, the CPU per second of speech (percent of
/// one core), and each reply's first-sentence synthesis time in ms.
fn synthesis(
    voice: &mut dyn cabin::speak::voice::Voice,
    replies: &[String],
) -> anyhow::Result<(f64, f64, Vec<f64>)> {
    let (mut took, mut audio, mut firsts) = (0.0, 0.0, Vec::new());
    let cpu_before = cpu_ticks(std::process::id());
    for reply in replies {
        let mut text = reply.clone();
        for (i, sentence) in cabin::text::take_sentences(&mut text, true)
            .iter()
            .enumerate()
        {
            let started = Instant::now();
            let samples = voice.synthesize(&cabin::speak::speakable::speakable(sentence))?;
            let t = started.elapsed().as_secs_f64();
            if i == 0 {
                firsts.push(t * 1e3);
            }
            took += t;
            audio += samples.len() as f64 / f64::from(voice.sample_rate());
        }
    }
    let cpu_s = match (cpu_before, cpu_ticks(std::process::id())) {
        (Some(a), Some(b)) => (b - a) as f64 / TICKS_PER_S,
        _ => f64::NAN,
    };
    anyhow::ensure!(audio > 0.0, "no reply to synthesise");
    Ok((took / audio, 100.0 * cpu_s / audio, firsts))
}

/// The worker processes of `pid` (children of any of its threads: workers are spawned from
/// the runtime's), not the short-lived eSpeak NG runs.
fn children(pid: u32) -> Vec<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten();
    tasks
        .flat_map(|t| {
            std::fs::read_to_string(t.path().join("children"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|c| c.parse().ok())
                .collect::<Vec<u32>>()
        })
        .filter(|child| worker_name(*child).starts_with("cabin"))
        .collect()
}

fn tempfile_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("cabin-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(str::trim)
        .unwrap_or(std::env::consts::ARCH);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!("{model}, {cores} cores")
}

/// Writes the JSON report next to the Markdown table.
pub fn write(report: &Report, json: &Path) -> std::io::Result<()> {
    std::fs::write(
        json,
        serde_json::to_string_pretty(report).map_err(std::io::Error::other)?,
    )
}
