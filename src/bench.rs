//! `cabin bench`: the pipeline measured as a user gets it. A private bus, the simulator and a
//! daemon (always listening, on the null device) are started as real processes; the report
//! gives start-up time to READY, per-stage latency (median, p95) over a corpus of commands, the
//! RSS of every process and the daemon's idle CPU. The speech stages run the front end and the
//! speech worker on the spoken command fixtures (`tests/fixtures`); speech out joins with TTS.

use cabin::bus::PrivateBus;
use cabin::daemon::api::{OBJECT_PATH, SERVICE_NAME};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
        if let Some(why) = &self.speech_skipped {
            s += &format!("\nSpeech stages skipped: {why}\n");
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
async fn speech(conn: &zbus::Connection, fixtures: &Path, rounds: usize) -> anyhow::Result<Speech> {
    use cabin::listen::{Engines, FrontEnd, Heard, Input};
    use cabin::worker::WorkerState;
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
    Engines::load(&profile)?;
    let worker = cabin::asr::start(&profile, &cabin::asr::AsrChoice::Auto)
        .ok_or_else(|| anyhow::anyhow!("the profile names no asr model"))?;
    let client = match worker.settled(cabin::worker::SETTLE_LIMIT).await {
        WorkerState::Ready(c) => c,
        WorkerState::Down(why) => anyhow::bail!("no speech recognition: {why}"),
        WorkerState::Starting => anyhow::bail!("the speech worker did not start"),
    };
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
            let front_end = FrontEnd::start(
                Input::File(file.clone()),
                Engines::load(&profile)?,
                profile.listen.clone(),
                false,
                tx,
            )?;
            let mut command = None;
            while let Some(h) = heard.recv().await {
                match h {
                    Heard::Command { audio, .. } => {
                        command = Some(audio);
                        front_end.resume();
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
            let t = client.transcribe(&audio, Duration::from_secs(60)).await?;
            out.stages
                .entry("speech recognition (cabin-asr, after end-pointing)".into())
                .or_default()
                .push(t.ms);
            let text = cabin::asr::command_text(&t.text, &profile.assistant.wake_words);
            let (round_trip, outcome) = submit(conn, &text).await?;
            out.stages
                .entry("transcript to action and reply (daemon round trip)".into())
                .or_default()
                .push(round_trip.as_secs_f64() * 1e3);
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

pub async fn run(rounds: usize, idle: Duration, fixtures: &Path) -> anyhow::Result<Report> {
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

    let mut sim = Command::new(&sim_exe)
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
    socket.set_read_timeout(Some(Duration::from_secs(30)))?;
    // Always listening (on real-time silence) where the front end's models are installed.
    let profile = cabin::profile::Profile::embedded_default();
    let idle_listening = cabin::listen::Engines::load(&profile).is_ok();
    let input = if idle_listening { "null" } else { "off" };
    let started = Instant::now();
    let daemon = Proc(
        Command::new(&exe)
            .args(["run", "--llm", "off", "--input", input, "--bus", &address])
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .env("NOTIFY_SOCKET", &notify)
            .env("CABIN_LOG", "warn")
            .spawn()?,
    );
    let mut buf = [0u8; 256];
    let n = socket
        .recv(&mut buf)
        .context("the daemon never said READY")?;
    anyhow::ensure!(
        buf[..n].starts_with(b"READY=1"),
        "unexpected notification {:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    let startup = started.elapsed();

    let conn = zbus::connection::Builder::address(address.as_str())
        .build()
        .await?;
    let mut stages: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for _ in 0..rounds {
        for text in CORPUS {
            let (round_trip, outcome) = submit(&conn, text).await?;
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
    match speech(&conn, fixtures, rounds).await {
        Ok(sp) => {
            stages.extend(sp.stages);
            front_end_cpu_percent = Some(100.0 * sp.cpu_s / sp.audio_s);
            speech_correct = Some((sp.correct, sp.runs));
        }
        Err(e) => speech_skipped = Some(format!("{e:#}")),
    }
    let latency_ms = stages
        .into_iter()
        .map(|(k, mut v)| {
            v.sort_by(f64::total_cmp);
            let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
            (k, (at(0.5), at(0.95)))
        })
        .collect();

    let cpu_before = cpu_ticks(daemon.0.id());
    tokio::time::sleep(idle).await;
    let cpu_after = cpu_ticks(daemon.0.id());
    let ticks_per_s = 100.0; // USER_HZ on Linux
    let idle_cpu_percent = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) => (b - a) as f64 / ticks_per_s / idle.as_secs_f64() * 100.0,
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
        let name = std::fs::read_to_string(format!("/proc/{child}/comm")).unwrap_or_default();
        processes.push((format!("{} (worker)", name.trim()), child));
    }
    for (name, pid) in processes {
        if let Some(kib) = rss_kib(pid) {
            rss_mib.insert(name, kib as f64 / 1024.0);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Report {
        machine: machine(),
        rounds,
        utterances: CORPUS.len(),
        startup_to_ready_ms: startup.as_secs_f64() * 1e3,
        latency_ms,
        rss_mib,
        idle_cpu_percent,
        idle_listening,
        front_end_cpu_percent,
        speech_correct,
        speech_skipped,
    })
}

/// The child processes of `pid` (of any of its threads: workers are spawned from the runtime's).
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
