//! `cabin bench`: the whole text pipeline, measured as a user gets it. A private bus, the
//! simulator and a daemon are started as real processes; the report gives start-up time to
//! READY, per-stage latency (median, p95) over a corpus of commands, the RSS of every process
//! and the daemon's idle CPU. The audio stages join when speech in/out land.

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
            "| daemon CPU while idle | {:.2} % of one core |\n",
            self.idle_cpu_percent
        );
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

pub async fn run(rounds: usize, idle: Duration) -> anyhow::Result<Report> {
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
    let started = Instant::now();
    let daemon = Proc(
        Command::new(&exe)
            .args(["run", "--llm", "off", "--bus", &address])
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
            let sent = Instant::now();
            let reply = conn
                .call_method(
                    Some(SERVICE_NAME),
                    OBJECT_PATH,
                    Some(SERVICE_NAME),
                    "SubmitTextJson",
                    &(*text,),
                )
                .await?;
            let round_trip = sent.elapsed();
            let json: String = reply.body().deserialize()?;
            let outcome: serde_json::Value = serde_json::from_str(&json)?;
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
            // Let the follow-up window pass so each request starts a fresh dialog.
            conn.call_method(
                Some(SERVICE_NAME),
                OBJECT_PATH,
                Some(SERVICE_NAME),
                "Cancel",
                &(),
            )
            .await?;
        }
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
    for (name, pid) in [
        ("cabin (daemon)", daemon.0.id()),
        ("cabin-vehicle-sim", sim.0.id()),
        ("dbus-daemon", bus.pid()),
    ] {
        if let Some(kib) = rss_kib(pid) {
            rss_mib.insert(name.to_string(), kib as f64 / 1024.0);
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
    })
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
