//! `cabin doctor`: everything a field engineer checks first, each problem with its fix.

use anyhow::Result;
use cabin::daemon::api::SERVICE_NAME;
use cabin::profile::Profile;
use cabin::runtime::bus::BusAddress;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// Worth knowing, not broken.
    Warn,
    Fail,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub status: Status,
    pub what: String,
    /// What to do about it; empty when all is well.
    pub fix: String,
}

fn ok(what: impl Into<String>) -> Check {
    Check {
        status: Status::Ok,
        what: what.into(),
        fix: String::new(),
    }
}

fn problem(status: Status, what: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        status,
        what: what.into(),
        fix: fix.into(),
    }
}

/// The profile's models: known, installed, and whole (sha256, which reads each file once).
fn models(profile: &Profile, dir: &std::path::Path) -> Vec<Check> {
    let fetch =
        "run `cabin models fetch` (as the service user, or with --dir set to its models directory)";
    let checks: Vec<Check> = profile
        .models
        .needed()
        .into_iter()
        .map(|(kind, name)| {
            let m = match cabin::runtime::models::find(&name) {
                Ok(m) => m,
                Err(e) => {
                    return problem(
                        Status::Fail,
                        e.to_string(),
                        "name a model `cabin models list` shows in [models]",
                    )
                }
            };
            let path = dir.join(m.file);
            match cabin::runtime::models::status(dir, m) {
                cabin::runtime::models::Installed::Missing => problem(
                    Status::Fail,
                    format!(
                        "the {kind} model {name} is not installed at {}",
                        path.display()
                    ),
                    fetch,
                ),
                cabin::runtime::models::Installed::WrongSize(n) => problem(
                    Status::Fail,
                    format!(
                        "the {kind} model at {} has {n} bytes, expected {}",
                        path.display(),
                        m.size
                    ),
                    fetch,
                ),
                // Its own check loads it and scores audio (`wake_word`).
                cabin::runtime::models::Installed::Ok if m.trained_phrase().is_some() => {
                    ok(format!("{kind} model {name}: installed (trained here)"))
                }
                cabin::runtime::models::Installed::Ok => {
                    match cabin::runtime::models::sha256_file(&path) {
                        Ok(sum) if sum == m.sha256 => {
                            ok(format!("{kind} model {name}: installed, sha256 OK"))
                        }
                        Ok(_) => problem(
                            Status::Fail,
                            format!(
                                "the {kind} model at {} is corrupt (sha256 differs)",
                                path.display()
                            ),
                            fetch,
                        ),
                        Err(e) => problem(
                            Status::Fail,
                            format!("cannot read the {kind} model: {e}"),
                            "check the file's permissions",
                        ),
                    }
                }
            }
        })
        .collect();
    checks
}

/// Whether the wake word loads and scores audio: a keyword model that is not one (a wrong
/// file, a broken `cabin wake train` output) fails here, not when the daemon starts.
/// With the model's figures from training, when Cabin trained it.
fn wake_word(keyword: &str, setting: Option<f32>) -> Check {
    use cabin::hear::wake::{WakeWord, CHUNK};
    let fix = "run `cabin models fetch`, or point [models] wake at a keyword model (openWakeWord's, or one `cabin wake train` wrote)";
    let mut wake = match WakeWord::for_keyword(keyword) {
        Ok(w) => w,
        Err(e) => {
            return problem(
                Status::Fail,
                format!("the wake word {keyword} does not load: {e}"),
                fix,
            )
        }
    };
    // Two seconds of silence: each score must be a probability, and low.
    let mut highest = 0.0f32;
    for _ in 0..25 {
        match wake.push(&[0; CHUNK]) {
            Ok(s) if (0.0..0.5).contains(&s) => highest = highest.max(s),
            Ok(s) => {
                return problem(
                    Status::Fail,
                    format!(
                        "the wake word {keyword} scores silence {s:.3}: it would wake on nothing"
                    ),
                    fix,
                )
            }
            Err(e) => {
                return problem(
                    Status::Fail,
                    format!("the wake word {keyword} fails on audio: {e}"),
                    fix,
                )
            }
        }
    }
    let threshold = wake.threshold(setting);
    let figures = match (wake.calibration(), setting) {
        (Some(c), None) => format!(
            "wakes at {threshold:.2}, calibrated by `cabin wake train` (seed {}, {} round(s)): on held-apart audio {:.1} % of {} trials missed, {:.2} false accepts an hour on {:.1} h; sha256 {}",
            c.seed,
            c.rounds,
            c.false_reject_rate * 100.0,
            c.positives,
            c.false_accepts_per_hour,
            c.negative_hours,
            &c.sha256[..12.min(c.sha256.len())]
        ),
        (Some(c), Some(_)) => format!(
            "wakes at {threshold:.2}, the profile's [listen] wake_threshold (training calibrated it at {:.2}); `cabin wake eval` measures it there",
            c.threshold
        ),
        (None, _) => format!(
            "wakes at {threshold:.2}; no figures from training beside it (`cabin wake eval` measures it)"
        ),
    };
    ok(format!(
        "wake word {keyword}: loads, silence scores {highest:.3} at most; {figures}"
    ))
}

/// Whether the profile's workers start: each loads its model and listens, then is stopped.
/// Skipped when the model is missing (the model check has said so).
async fn workers(profile: &Profile) -> Vec<Check> {
    let fix = |program: &str| {
        format!(
            "build the workspace (cargo build --release) or install {program} beside cabin; \
             if the model is corrupt, run `cabin models fetch`"
        )
    };
    let mut checks = Vec::new();
    if let Some(Ok(spec)) = cabin::understand::brain::local_worker(profile) {
        checks.push(worker(&spec, fix("cabin-llm")).await);
    }
    if let Some(Ok(spec)) = cabin::understand::brain::embedding_worker(profile) {
        checks.push(worker(&spec, fix("cabin-llm")).await);
    }
    if let Some(Ok(spec)) = cabin::asr::local_worker(profile) {
        checks.push(worker(&spec, fix("cabin-asr")).await);
    }
    checks
}

async fn worker<C>(spec: &cabin::runtime::worker::WorkerSpec<C>, fix: String) -> Check {
    match cabin::runtime::worker::starts(spec).await {
        Ok(took) => ok(format!(
            "{} starts: {} loaded its model in {:.1} s",
            spec.what,
            spec.program.display(),
            took.as_secs_f64()
        )),
        Err(why) => problem(
            Status::Fail,
            format!("{} does not start: {why}", spec.what),
            fix,
        ),
    }
}

/// Whether the profile's capture device opens (a running daemon may hold it: then this fails
/// although the daemon hears fine, which the message says).
fn microphone(device: &str) -> Check {
    match cabin::hear::mic::Microphone::open(device) {
        Ok(_) => ok(format!("capture device '{device}' opens")),
        Err(e) => problem(
            Status::Warn,
            format!("capture device '{device}': {e}"),
            "check the sound card (`arecord -l`) and [audio] input in the profile; a running Cabin may hold the device; without one Cabin serves text and D-Bus only",
        ),
    }
}

/// Whether the profile's playback device opens.
fn speaker(device: &str) -> Check {
    match cabin::speak::playback::DeviceSink::open(device) {
        Ok(_) => ok(format!("playback device '{device}' opens")),
        Err(e) => problem(
            Status::Warn,
            format!("playback device '{device}': {e}"),
            "check the sound card (`aplay -l`) and [audio] output in the profile; without one Cabin's replies are text only (Reply signals)",
        ),
    }
}

/// eSpeak NG turns text into phonemes for the Piper voice, and is the fallback voice.
fn espeak() -> Check {
    match std::process::Command::new("espeak-ng")
        .arg("--version")
        .output()
    {
        Ok(out) if out.status.success() => ok(format!(
            "espeak-ng: {}",
            String::from_utf8_lossy(&out.stdout).trim()
        )),
        _ => problem(
            Status::Fail,
            "espeak-ng is not installed: Cabin cannot speak",
            "apt-get install espeak-ng (scripts/setup installs it)",
        ),
    }
}

/// Runs every check. `api_bus` is where the daemon serves `org.cabin.Assistant1`.
pub async fn run(profile: &Profile, api_bus: &BusAddress) -> Vec<Check> {
    let mut checks = vec![ok(format!(
        "profile {}: {} intents, {} small-talk entries",
        profile.file,
        profile.intents.len(),
        profile.small_talk.len()
    ))];
    checks.extend(machine());
    checks.extend(models(profile, &cabin::runtime::models::default_dir()));
    checks.push(microphone(&profile.audio.input));
    checks.push(speaker(&profile.audio.output));
    checks.push(espeak());
    checks.extend(workers(profile).await);
    if let Some(keyword) = profile.models.wake.clone() {
        let setting = profile.listen.wake_threshold;
        checks.push(
            tokio::task::spawn_blocking(move || wake_word(&keyword, setting))
                .await
                .unwrap_or_else(|e| problem(Status::Fail, e.to_string(), "report this")),
        );
    }

    let timeout = profile.vehicle.timeout;
    match connect(api_bus, timeout).await {
        Err(e) => checks.push(problem(
            Status::Fail,
            format!("cannot connect to the {api_bus}: {e}"),
            "start the D-Bus daemon, or pass --bus with the address Cabin serves on",
        )),
        Ok(conn) => {
            checks.push(ok(format!("connected to the {api_bus}")));
            checks.push(match has_owner(&conn, SERVICE_NAME).await {
                Ok(true) => ok(format!("the Cabin daemon serves {SERVICE_NAME}")),
                Ok(false) => problem(
                    Status::Warn,
                    format!("no Cabin daemon serves {SERVICE_NAME} on the {api_bus}"),
                    "start it: systemctl start cabin (or cabin run)",
                ),
                Err(e) => problem(
                    Status::Fail,
                    format!("cannot ask the {api_bus} about {SERVICE_NAME}: {e}"),
                    "check the bus policy (cabin profile dbus-policy)",
                ),
            });
        }
    }

    let vehicle_bus = &profile.vehicle.bus;
    let conn = match connect(vehicle_bus, timeout).await {
        Ok(c) => c,
        Err(e) => {
            checks.push(problem(
                Status::Fail,
                format!("cannot connect to the vehicle services' {vehicle_bus}: {e}"),
                "start the bus, or fix [vehicle] bus in the profile",
            ));
            return checks;
        }
    };
    let services: BTreeSet<&str> = profile
        .intents
        .iter()
        .map(|i| i.action.service.as_str())
        .collect();
    if let Some(d) = &profile.speech.ducking {
        checks.push(match has_owner(&conn, &d.service).await {
            Ok(true) => ok(format!("media service {} (ducking) is on the {vehicle_bus}", d.service)),
            _ => problem(Status::Warn, format!("media service {} (ducking) is not on the {vehicle_bus}: the media won't go down while Cabin speaks", d.service), "start the media service, or fix [speech.ducking] in the profile"),
        });
    }
    for service in services {
        let users = profile
            .intents
            .iter()
            .filter(|i| i.action.service == service)
            .count();
        checks.push(match has_owner(&conn, service).await {
            Ok(true) => ok(format!("vehicle service {service} is on the {vehicle_bus} ({users} intents use it)")),
            Ok(false) => problem(Status::Fail, format!("vehicle service {service} is not on the {vehicle_bus}: {users} intents will answer \"I couldn't reach …\""), "start the service (cabin-vehicle-sim for the demo profile), or fix the intents' service name or [vehicle] bus"),
            Err(e) => problem(Status::Fail, format!("cannot ask the {vehicle_bus} about {service}: {e}"), "check the bus policy"),
        });
    }
    if let Some(source) = &profile.vehicle.state {
        let state =
            cabin::act::vehicle::VehicleBus::with_connection(vehicle_bus.clone(), timeout, conn)
                .driving_state(source)
                .await;
        let constrained = profile.intents.iter().filter(|i| i.when.is_some()).count();
        let mut missing = Vec::new();
        if state.speed_kmh.is_none() {
            missing.push(source.speed.as_str());
        }
        if state.gear.is_none() {
            missing.push(source.gear.as_str());
        }
        if state.parking_brake.is_none() {
            missing.push(source.parking_brake.as_str());
        }
        checks.push(if missing.is_empty() {
            ok(format!("driving state readable from {}: {:?}", source.interface, state))
        } else {
            problem(Status::Fail, format!("cannot read {} from {} on {}: the {constrained} constrained intents will be refused", missing.join(", "), source.interface, source.service), "start the vehicle state service, or fix [vehicle.state] in the profile")
        });
    }
    checks
}

async fn connect(bus: &BusAddress, timeout: Duration) -> Result<zbus::Connection, String> {
    match tokio::time::timeout(timeout, bus.connect()).await {
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
        Ok(r) => r.map_err(|e| e.to_string()),
    }
}

async fn has_owner(conn: &zbus::Connection, name: &str) -> zbus::Result<bool> {
    let dbus = zbus::fdo::DBusProxy::new(conn).await?;
    let name = zbus::names::BusName::try_from(name)?;
    Ok(dbus.name_has_owner(name).await?)
}

/// CPU features the speech and language engines use, and free memory.
fn machine() -> Vec<Check> {
    let mut checks = Vec::new();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags: BTreeSet<&str> = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags") || l.starts_with("Features"))
        .flat_map(|l| l.split(':').nth(1).unwrap_or("").split_whitespace())
        .collect();
    let wanted: &[&str] = match std::env::consts::ARCH {
        "x86_64" => &["avx2", "fma", "f16c"],
        "aarch64" => &["asimd", "fphp", "asimddp"],
        _ => &[],
    };
    let lacking: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|f| !flags.contains(f))
        .collect();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    checks.push(if lacking.is_empty() {
        ok(format!(
            "CPU: {} with {cores} cores and {}",
            std::env::consts::ARCH,
            wanted.join(", ")
        ))
    } else {
        problem(
            Status::Warn,
            format!(
                "CPU: {} with {cores} cores lacks {}",
                std::env::consts::ARCH,
                lacking.join(", ")
            ),
            "speech and language models will run slower; prefer smaller models in the profile",
        )
    });
    let available_kib: Option<u64> = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find(|l| l.starts_with("MemAvailable:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
    });
    checks.push(match available_kib {
        Some(kib) if kib >= 1024 * 1024 => ok(format!("memory: {} MiB available", kib / 1024)),
        Some(kib) => problem(
            Status::Warn,
            format!("memory: only {} MiB available", kib / 1024),
            "the local language model needs about 1 GiB; free memory or choose a smaller model",
        ),
        None => problem(
            Status::Warn,
            "memory: cannot read /proc/meminfo",
            "check that /proc is mounted",
        ),
    });
    checks
}

#[derive(clap::Args)]
pub struct Args {
    /// Profile to check; the embedded default profile when omitted.
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Bus the daemon serves on: session, system, or a D-Bus address.
    #[arg(long, default_value = "session")]
    bus: BusAddress,
}

pub async fn exec(args: Args) -> Result<ExitCode> {
    let profile = Profile::load_or_default(args.profile.as_deref())?;
    let checks = run(&profile, &args.bus).await;
    let mut report = String::new();
    for c in &checks {
        let mark = match c.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        report.push_str(&format!("{mark}  {}\n", c.what));
        if !c.fix.is_empty() {
            report.push_str(&format!("      fix: {}\n", c.fix));
        }
    }
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    report.push_str(&match failed {
        0 => "all checks passed\n".to_string(),
        n => format!("{n} problem(s) found\n"),
    });
    super::print_out(&report)?;
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
