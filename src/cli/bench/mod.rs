//! `cabin bench`: the pipeline measured as a user gets it. A private bus, the simulator and a
//! daemon (always listening, on the null device) are started as real processes; the report
//! gives start-up time to READY, per-stage latency (median, p95) over a corpus of commands, the
//! RSS of every process and the daemon's idle CPU. The speech stages run the front end and the
//! speech worker on the spoken command fixtures (`tests/fixtures`). The daemon speaks on the
//! null device (in real time): a reply's first audio is its first `Reply` signal, which the
//! daemon sends as the sentence starts to play. A second daemon with the local model measures
//! the model route the same way, and the voice's synthesis speed is measured in this process.

use crate::cli::percentile;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod daemon;
mod procs;
pub mod soak;
mod stages;

use daemon::*;
use procs::*;
use stages::*;

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
    /// Spoken command recordings for the speech stages; for a profile in another language,
    /// those whose names say its language (`kokoro-zh-…` for zh-CN).
    #[arg(long, default_value = "tests/fixtures")]
    fixtures: PathBuf,
    /// The profile to measure; without it the built-in default, with its English corpus.
    /// Another profile is asked one sentence of each of sixteen of its intents, and its
    /// negatives and examples on the local model's route.
    #[arg(long)]
    profile: Option<PathBuf>,
}

pub async fn exec(args: Args) -> anyhow::Result<std::process::ExitCode> {
    use anyhow::Context;
    anyhow::ensure!(args.rounds > 0, "--rounds must be at least 1");
    let report = run(
        args.rounds,
        Duration::from_secs(args.idle_seconds),
        &args.fixtures,
        !args.no_llm,
        args.profile.as_deref(),
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

/// What the bench asks a daemon: commands for the fast path, and requests for the local model.
struct Corpus {
    commands: Vec<String>,
    llm: Vec<String>,
}

/// How many of another profile's intents the bench asks for (each reply is spoken in real
/// time on the null device).
const PROFILE_COMMANDS: usize = 16;

impl Corpus {
    /// The default profile's hand-picked corpus, or for another profile (in any language) one
    /// sentence of each of [`PROFILE_COMMANDS`] intents spread over it, and for the local model
    /// the first of its negatives (questions the answer bank leaves to it), an example of a few
    /// intents (commands in other words) and of the answer bank.
    fn of(profile: &cabin::profile::Profile, default: bool) -> Corpus {
        if default {
            return Corpus {
                commands: CORPUS.iter().map(|s| s.to_string()).collect(),
                llm: LLM_CORPUS.iter().map(|s| s.to_string()).collect(),
            };
        }
        let sentences = cabin::profile::sentences::example_sentences(profile);
        let step = profile.intents.len().div_ceil(PROFILE_COMMANDS).max(1);
        let commands = (0..profile.intents.len())
            .step_by(step)
            .filter_map(|i| sentences.iter().find(|(j, _)| *j == i))
            .map(|(_, s)| s.clone())
            .collect();
        let examples = profile.intents.iter().filter_map(|i| i.examples.first());
        // Entries the grammar cannot match: the answer model picks them.
        let bank = profile
            .small_talk
            .iter()
            .filter(|t| t.sentences.is_empty())
            .filter_map(|t| t.examples.first());
        let llm = profile
            .classifier
            .negatives
            .iter()
            .take(3)
            .chain(examples.step_by(step * 3).take(3))
            .chain(bank.take(2))
            .cloned()
            .collect();
        Corpus { commands, llm }
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: String,
    /// The profile measured.
    pub profile: String,
    pub rounds: usize,
    pub utterances: usize,
    pub startup_to_ready_ms: f64,
    /// The same for a daemon with the local model, at its first start: READY waits for the
    /// model to load and evaluate its prompt.
    pub startup_to_ready_with_llm_ms: Option<f64>,
    /// The same at the next start, which reads the evaluated prompt back.
    pub startup_to_ready_with_llm_again_ms: Option<f64>,
    /// Stage → (median, p95) in ms.
    pub latency_ms: BTreeMap<String, (f64, f64)>,
    /// Spoken fixture → the median of each stage after its end of speech, and `p95` over all.
    pub timeline_ms: BTreeMap<String, Timeline>,
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
            "Machine: {}. Profile: {}. {} utterances × {} rounds.\n\n| figure | value |\n|---|---|\n",
            self.machine, self.profile, self.utterances, self.rounds
        );
        s += &format!(
            "| start-up to READY | {:.0} ms |\n",
            self.startup_to_ready_ms
        );
        if let Some(ms) = self.startup_to_ready_with_llm_ms {
            s += &format!(
                "| start-up to READY with the local model, first start (prompt evaluated) | {ms:.0} ms |\n"
            );
        }
        if let Some(ms) = self.startup_to_ready_with_llm_again_ms {
            s += &format!(
                "| start-up to READY with the local model, next start (prompt read back) | {ms:.0} ms |\n"
            );
        }
        for (stage, (p50, p95)) in &self.latency_ms {
            s += &format!("| {stage}, median / p95 | {p50:.2} / {p95:.2} ms |\n");
        }
        for (process, mib) in &self.rss_mib {
            s += &format!("| RSS of {process} | {mib:.1} MiB |\n");
        }
        // What a head unit gives Cabin: the daemon and its workers, not the test's bus or car.
        let cabin: f64 = self
            .rss_mib
            .iter()
            .filter(|(p, _)| p.starts_with("cabin") && !p.starts_with("cabin-vehicle-sim"))
            .map(|(_, mib)| mib)
            .sum();
        s += &format!("| RSS of every Cabin process together | {cabin:.1} MiB |\n");
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
        s + &self.timeline_markdown()
    }

    /// The spoken fixtures' timeline as a table of its own, or nothing without them.
    fn timeline_markdown(&self) -> String {
        if self.timeline_ms.is_empty() {
            return String::new();
        }
        let mut s = "\nSpoken fixtures, ms after the end of speech (median over the rounds; p95 over every run):\n\n| fixture | end-pointer fired | final transcript | action done | first audio |\n|---|---|---|---|---|\n".to_string();
        for (fixture, t) in &self.timeline_ms {
            let first = t.first_audio.map_or("-".into(), |ms| format!("{ms:.0}"));
            s += &format!(
                "| {fixture} | {:.0} | {:.0} | {:.0} | {first} |\n",
                t.end_pointer, t.transcript, t.action
            );
        }
        s
    }
}

pub async fn run(
    rounds: usize,
    idle: Duration,
    fixtures: &Path,
    with_llm: bool,
    profile_path: Option<&Path>,
) -> anyhow::Result<Report> {
    let profile = cabin::profile::Profile::load_or_default(profile_path)?;
    let corpus = Corpus::of(&profile, profile_path.is_none());
    // Always listening (on real-time silence) where the front end's models are installed.
    let stand = Stand::start(&profile)?;
    let input = stand.input();
    // Speaking (on the null device) where the voice loads.
    let voice = {
        let profile = profile.clone();
        tokio::task::spawn_blocking(move || cabin::speak::voice::load(&profile)).await?
    }
    .ok();
    let speaking = voice.is_some();
    let output = if speaking { "null" } else { "off" };
    // Start-up to READY, as systemd sees it.
    let profile_arg = profile_path.map(|p| p.to_string_lossy().into_owned());
    let start_daemon = |llm: &str, cache: Option<&Path>| {
        let mut args = vec!["run", "--llm", llm, "--input", input, "--output", output];
        if let Some(p) = &profile_arg {
            args.extend(["--profile", p.as_str()]);
        }
        stand.daemon(&args, cache)
    };
    let (daemon, startup) = start_daemon("off", None)?;

    let conn = zbus::connection::Builder::address(stand.bus.address.as_str())
        .build()
        .await?;
    let mut replies = replies(&conn).await?;
    let mut stages: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut said = std::collections::BTreeSet::new();
    for _ in 0..rounds {
        for text in &corpus.commands {
            let Asked {
                round_trip,
                first_audio,
                outcome,
            } = ask(&conn, &mut replies, text, speaking).await?;
            let reply = outcome["reply"].as_str().unwrap_or_default();
            if let (Some(first), Some("fast")) = (first_audio, outcome["route"].as_str()) {
                let ms = first.as_secs_f64() * 1e3;
                stages.entry(FIRST_AUDIO_FAST.into()).or_default().push(ms);
                // The voice keeps the audio of what it said: a reply heard before plays at once.
                if said.contains(reply) {
                    stages
                        .entry(format!("{FIRST_AUDIO_FAST}, reply heard before"))
                        .or_default()
                        .push(ms);
                }
            }
            if !reply.is_empty() {
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
    let mut timeline_ms = BTreeMap::new();
    match speech(&profile, &conn, &mut replies, speaking, fixtures, rounds).await {
        Ok(sp) => {
            stages.extend(sp.stages);
            let every: Vec<Timeline> = sp.timelines.values().flatten().copied().collect();
            timeline_ms.extend(
                sp.timelines.iter().filter_map(|(name, runs)| {
                    Some((name.clone(), Timeline::quantile(runs, 0.5)?))
                }),
            );
            if let Some(p95) = Timeline::quantile(&every, 0.95) {
                timeline_ms.insert("p95".into(), p95);
            }
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
        ("cabin-vehicle-sim".to_string(), stand.sim.0.id()),
        ("dbus-daemon".to_string(), stand.bus.pid()),
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
    let mut startup_to_ready_with_llm_again_ms = None;
    let llm_skipped = match profile.models.llm.as_deref() {
        _ if !with_llm => Some("--no-llm".to_string()),
        None => Some("the profile names no local model".to_string()),
        Some(name) => match cabin::runtime::models::installed(name, "language model") {
            Err(e) => Some(e.to_string()),
            Ok(_) => {
                // The first start on a cache without the evaluated prompt, then the next.
                let cache = stand.cache_without_prompts()?;
                let (first, ready) = start_daemon("auto", Some(&cache))?;
                startup_to_ready_with_llm_ms = Some(ready.as_secs_f64() * 1e3);
                drop(first);
                let (llm_daemon, ready) = start_daemon("auto", Some(&cache))?;
                startup_to_ready_with_llm_again_ms = Some(ready.as_secs_f64() * 1e3);
                match llm_stages(&conn, &mut replies, speaking, &corpus.llm, rounds.min(3)).await {
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
            (k, (percentile(&v, 0.5), percentile(&v, 0.95)))
        })
        .collect();
    Ok(Report {
        machine: machine(),
        profile: profile.name.clone(),
        rounds,
        utterances: corpus.commands.len(),
        startup_to_ready_ms: startup.as_secs_f64() * 1e3,
        startup_to_ready_with_llm_ms,
        startup_to_ready_with_llm_again_ms,
        latency_ms,
        timeline_ms,
        rss_mib,
        idle_cpu_percent,
        idle_listening: stand.listening,
        front_end_cpu_percent,
        speech_correct,
        speech_skipped,
        voice: voice_name,
        tts_real_time_factor,
        tts_cpu_percent,
        llm_skipped,
    })
}

/// Writes the JSON report next to the Markdown table.
pub fn write(report: &Report, json: &Path) -> std::io::Result<()> {
    std::fs::write(
        json,
        serde_json::to_string_pretty(report).map_err(std::io::Error::other)?,
    )
}
