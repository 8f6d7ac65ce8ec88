//! `cabin soak`: the daemon under a long mixed load, as a field engineer would leave it
//! running. A private bus, the simulator and a daemon (listening on the null device, replies
//! as text) are started as in `cabin bench`; requests go in one after another from a few HMI
//! clients in turn, each within its allowance of requests: commands, model requests, malformed
//! ones (empty, too long, an unknown input), odd characters, requests cancelled mid-turn, and
//! hostile ones (long unpunctuated texts, negative numbers, bare values, another client's
//! cancel, a flood past the allowance), with one of the daemon's workers killed now and then.
//! Every so often it prints the processes' RSS and the daemon's open files; at the end, what
//! failed. It exits non-zero on a hung or lost request, a hostile request that acted or was
//! cancelled by another client, a dead daemon, workers not restarted, or memory grown past the
//! allowed share.

use super::daemon::Stand;
use super::procs::{children, rss_kib, worker_name};
use super::CORPUS;
use cabin::daemon::api::{MAX_TEXT_CHARS, OBJECT_PATH, SERVICE_NAME};
use cabin::daemon::limit::{BURST, PER_SECOND};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// Requests to send.
    #[arg(long, default_value_t = 1000)]
    utterances: usize,
    /// Print memory and open files every this many requests.
    #[arg(long, default_value_t = 500)]
    every: usize,
    /// Kill one of the daemon's workers (SIGKILL) every this many requests, once every worker
    /// runs and the last kill is --settle-seconds ago; 0 never does.
    #[arg(long, default_value_t = 250)]
    kill_every: usize,
    /// Seconds a killed worker gets to come back (the local model loads and warms up in about
    /// 90 s) before the next kill.
    #[arg(long, default_value_t = 120)]
    settle_seconds: u64,
    /// The local model route: off (model requests are declined at once) or auto (cabin-llm
    /// answers them, seconds each).
    #[arg(long, default_value = "off")]
    llm: String,
    /// A request without an answer after this many seconds is hung.
    #[arg(long, default_value_t = 60)]
    hang_seconds: u64,
    /// Most growth of the daemon's RSS allowed between the first quarter of the run and its
    /// end, in percent.
    #[arg(long, default_value_t = 5.0)]
    max_growth_percent: f64,
}

/// What a request is and what answers it may get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Command,
    Model,
    Empty,
    TooLong,
    UnknownInput,
    OddCharacters,
    Cancelled,
    /// A text just within the length limit, without a stop: a number to call, or words.
    LongText,
    /// A value below its range, by sign or word: answered, never acted on.
    Negative,
    /// A bare value with nothing open: asked about, never acted on.
    Fragment,
    /// Another client's `Cancel()` during the request: it is answered as if none came.
    CrossCancel,
    /// Requests sent at once, past the client's allowance: some refused as `RateLimited`.
    Flood,
}

/// How many HMI clients send the requests in turn (each within its own allowance), besides
/// the one that cancels others' and the one that floods.
const CLIENTS: usize = 4;

/// Requests a flood sends at once: past a client's burst.
const FLOOD: usize = BURST as usize + 10;

impl Kind {
    /// The mix: 45 % commands, 10 % model requests, 5 % each malformed kind, odd characters,
    /// cancelled, long, negative, bare and cancelled by another client; a flood every 200.
    fn of(i: usize) -> Kind {
        if i % 200 == 199 {
            return Kind::Flood;
        }
        match i % 20 {
            0..=8 => Kind::Command,
            9 | 10 => Kind::Model,
            11 => Kind::Empty,
            12 => Kind::TooLong,
            13 => Kind::UnknownInput,
            14 => Kind::OddCharacters,
            15 => Kind::LongText,
            16 => Kind::Negative,
            17 => Kind::Fragment,
            18 => Kind::CrossCancel,
            _ => Kind::Cancelled,
        }
    }

    /// The D-Bus error names this kind may end in (besides a reply).
    fn may_fail_with(self) -> &'static [&'static str] {
        match self {
            Kind::Empty | Kind::TooLong | Kind::UnknownInput => {
                &["org.cabin.Assistant1.Error.InvalidInput"]
            }
            Kind::Cancelled => &["org.cabin.Assistant1.Error.Cancelled"],
            Kind::Flood => &["org.cabin.Assistant1.Error.RateLimited"],
            _ => &[],
        }
    }

    /// Whether it must fail (a malformed request answered with a reply is lost too).
    fn must_fail(self) -> bool {
        matches!(self, Kind::Empty | Kind::TooLong | Kind::UnknownInput)
    }

    /// Whether its answer must show no action (a hostile request that acted went wrong).
    fn must_not_act(self) -> bool {
        matches!(self, Kind::LongText | Kind::Negative | Kind::Fragment)
    }
}

/// Negative values, each said its own way.
const NEGATIVES: &[&str] = &[
    "set the temperature to -20",
    "set the volume to minus 30",
    "tune the radio to \u{2212}100.5 FM",
    "set the fan speed to negative three",
];

/// Bare values, with no question open (the client before asked something else).
const FRAGMENTS: &[&str] = &[
    "to twenty",
    "the rear left one",
    "fifty percent",
    "twenty one degrees",
];

/// A text just within the limit without a stop: a number to call, or the same words again.
fn long_text(i: usize) -> String {
    let text = if i.is_multiple_of(2) {
        format!("call {}", "9".repeat(MAX_TEXT_CHARS))
    } else {
        "please make it a little warmer in the back and ".repeat(MAX_TEXT_CHARS / 40)
    };
    text.chars().take(MAX_TEXT_CHARS).collect()
}

const MODEL_REQUESTS: &[&str] = &[
    "why is the sky blue",
    "tell me about your day",
    "could you make it a bit cosier in here",
    "what should I listen to on a long drive",
];

async fn call(
    conn: &zbus::Connection,
    method: &str,
    body: &(impl serde::Serialize + zbus::zvariant::DynamicType),
) -> zbus::Result<zbus::Message> {
    conn.call_method(
        Some(SERVICE_NAME),
        OBJECT_PATH,
        Some(SERVICE_NAME),
        method,
        body,
    )
    .await
}

/// The connections requests go out on: the HMI clients in turn, the one that cancels the
/// others' requests and the one that floods.
struct Clients {
    hmi: Vec<zbus::Connection>,
    /// When each HMI client may send again within its allowance.
    next: Vec<Instant>,
    canceller: zbus::Connection,
    flooder: zbus::Connection,
}

impl Clients {
    async fn connect(address: &str) -> anyhow::Result<Clients> {
        let connect = || zbus::connection::Builder::address(address).build();
        let mut hmi = Vec::new();
        for _ in 0..CLIENTS {
            hmi.push(connect().await?);
        }
        Ok(Clients {
            next: vec![Instant::now(); CLIENTS],
            hmi,
            canceller: connect().await?,
            flooder: connect().await?,
        })
    }

    /// Client `i`'s connection, once it may send within its allowance.
    async fn paced(&mut self, i: usize) -> &zbus::Connection {
        let c = i % CLIENTS;
        let wait = self.next[c].saturating_duration_since(Instant::now());
        tokio::time::sleep(wait).await;
        self.next[c] = Instant::now() + Duration::from_secs_f64(1.0 / PER_SECOND);
        &self.hmi[c]
    }
}

/// Whether a JSON outcome shows an action.
fn acted(answer: &zbus::Result<zbus::Message>) -> bool {
    let Ok(msg) = answer else { return false };
    let Ok(json) = msg.body().deserialize::<String>() else {
        return false;
    };
    serde_json::from_str::<serde_json::Value>(&json).is_ok_and(|o| !o["action"].is_null())
}

/// Sends request `i`; Ok, or why it counts as failed.
async fn request(clients: &mut Clients, i: usize) -> Result<(), String> {
    let kind = Kind::of(i);
    if kind == Kind::Flood {
        return flood(&clients.flooder).await;
    }
    let canceller = clients.canceller.clone();
    let conn = clients.paced(i).await;
    let answer = match kind {
        Kind::Command => call(conn, "SubmitTextJson", &(CORPUS[i % CORPUS.len()],)).await,
        Kind::Model => {
            call(
                conn,
                "SubmitTextJson",
                &(MODEL_REQUESTS[i % MODEL_REQUESTS.len()],),
            )
            .await
        }
        Kind::Empty => call(conn, "SubmitTextJson", &("  ",)).await,
        Kind::TooLong => call(conn, "SubmitTextJson", &("turn on the lights ".repeat(60),)).await,
        Kind::UnknownInput => call(conn, "SubmitTextFrom", &("pause", "the glovebox")).await,
        Kind::OddCharacters => {
            call(
                conn,
                "SubmitTextJson",
                &("\u{202e}ṡet thé temp 🚗 to ²¹ \t\u{7} degrees",),
            )
            .await
        }
        Kind::Cancelled => {
            let text = (CORPUS[i % CORPUS.len()],);
            let asked = call(conn, "SubmitTextJson", &text);
            let cancel = async {
                tokio::time::sleep(Duration::from_millis((i % 7) as u64 * 3)).await;
                call(conn, "Cancel", &()).await
            };
            let (answer, cancelled) = tokio::join!(asked, cancel);
            if let Err(e) = cancelled {
                return Err(format!("Cancel() failed: {e}"));
            }
            answer
        }
        Kind::LongText => call(conn, "SubmitTextJson", &(long_text(i),)).await,
        Kind::Negative => call(conn, "SubmitTextJson", &(NEGATIVES[i % NEGATIVES.len()],)).await,
        Kind::Fragment => call(conn, "SubmitTextJson", &(FRAGMENTS[i % FRAGMENTS.len()],)).await,
        Kind::CrossCancel => {
            let text = (CORPUS[i % CORPUS.len()],);
            let asked = call(conn, "SubmitTextJson", &text);
            let cancel = async {
                tokio::time::sleep(Duration::from_millis((i % 7) as u64 * 3)).await;
                call(&canceller, "Cancel", &()).await
            };
            let (answer, cancelled) = tokio::join!(asked, cancel);
            match cancelled.map(|m| m.body().deserialize::<bool>()) {
                Ok(Ok(false)) => {}
                Ok(Ok(true)) => return Err("another client's Cancel() stopped something".into()),
                Ok(Err(e)) => return Err(format!("Cancel() answered oddly: {e}")),
                Err(e) => return Err(format!("Cancel() failed: {e}")),
            }
            answer
        }
        Kind::Flood => unreachable!("sent above"),
    };
    if kind.must_not_act() && acted(&answer) {
        return Err(format!("{kind:?} acted on the vehicle"));
    }
    match answer {
        Ok(_) if kind.must_fail() => Err(format!("{kind:?} was answered as if it were fine")),
        Ok(_) => Ok(()),
        Err(zbus::Error::MethodError(name, _, _))
            if kind.may_fail_with().contains(&name.as_str()) =>
        {
            Ok(())
        }
        Err(e) => Err(format!("{kind:?}: {e}")),
    }
}

/// [`FLOOD`] requests at once from one connection: past its allowance, some must be refused
/// as `RateLimited` (and the others answered, or replaced by a newer one of the flood).
async fn flood(conn: &zbus::Connection) -> Result<(), String> {
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..FLOOD {
        let conn = conn.clone();
        requests.spawn(async move { call(&conn, "SubmitTextJson", &("next track",)).await });
    }
    let mut limited = 0;
    while let Some(answer) = requests.join_next().await {
        let answer = answer.map_err(|e| format!("Flood: {e}"))?;
        match answer {
            Ok(_) => {}
            Err(zbus::Error::MethodError(name, _, _)) => match name.as_str() {
                "org.cabin.Assistant1.Error.RateLimited" => limited += 1,
                "org.cabin.Assistant1.Error.Cancelled" => {}
                other => return Err(format!("Flood: {other}")),
            },
            Err(e) => return Err(format!("Flood: {e}")),
        }
    }
    if limited == 0 {
        return Err(format!("Flood: {FLOOD} requests at once, none refused"));
    }
    // The flooder's allowance comes back before its next flood.
    tokio::time::sleep(Duration::from_secs_f64(BURST / PER_SECOND)).await;
    Ok(())
}

/// Open file descriptors of `pid`.
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

struct Sample {
    requests: usize,
    daemon_mib: f64,
    workers_mib: f64,
    files: usize,
}

fn sample(requests: usize, daemon: u32) -> Sample {
    let mib = |pid| rss_kib(pid).unwrap_or(0) as f64 / 1024.0;
    Sample {
        requests,
        daemon_mib: mib(daemon),
        workers_mib: children(daemon)
            .into_iter()
            .map(mib)
            .fold(0.0, |a, b| a + b),
        files: open_files(daemon),
    }
}

pub async fn exec(args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.utterances > 0, "--utterances must be at least 1");
    anyhow::ensure!(args.every > 0, "--every must be at least 1");
    let stand = Stand::start(&cabin::profile::Profile::embedded_default())?;
    let (mut daemon, _) = stand.daemon(
        &[
            "run",
            "--llm",
            &args.llm,
            "--input",
            stand.input(),
            "--output",
            "off",
        ],
        None,
    )?;
    let pid = daemon.0.id();
    let mut clients = Clients::connect(&stand.bus.address).await?;
    let workers_at_start = children(pid).len();
    println!(
        "Soaking the daemon with {} requests (--llm {}, {} worker(s){}).\n",
        args.utterances,
        args.llm,
        workers_at_start,
        if stand.listening {
            ", listening on the null device"
        } else {
            ""
        }
    );
    println!("| requests | daemon RSS | workers' RSS | daemon's open files | failed so far |");
    println!("|---|---|---|---|---|");
    let report = |s: &Sample, failed: usize| {
        println!(
            "| {} | {:.1} MiB | {:.1} MiB | {} | {failed} |",
            s.requests, s.daemon_mib, s.workers_mib, s.files
        )
    };
    let limit = Duration::from_secs(args.hang_seconds);
    let (mut failures, mut hung, mut kills) = (Vec::new(), 0, 0);
    // A kill falls due every --kill-every requests and waits for the workers to have settled.
    let (mut kill_due, mut last_kill) = (false, None::<Instant>);
    let settle = Duration::from_secs(args.settle_seconds);
    let mut samples = vec![sample(0, pid)];
    report(&samples[0], 0);
    let started = Instant::now();
    for i in 0..args.utterances {
        kill_due |= args.kill_every > 0 && i > 0 && i % args.kill_every == 0;
        let settled = last_kill.is_none_or(|t| t.elapsed() >= settle);
        // Read only when a kill may happen: /proc on every request would be the soak's own load.
        let workers = if kill_due && settled {
            children(pid)
        } else {
            Vec::new()
        };
        if kill_due && settled && workers.len() >= workers_at_start {
            kill_due = false;
            last_kill = Some(Instant::now());
            if let Some(&worker) = workers.get(kills % workers.len().max(1)) {
                tracing::info!("killing {} ({worker})", worker_name(worker));
                // SAFETY: kill(2) on a pid we just read as the daemon's child.
                unsafe { libc::kill(worker as i32, libc::SIGKILL) };
                kills += 1;
            }
        }
        match tokio::time::timeout(limit, request(&mut clients, i)).await {
            Ok(Ok(())) => {}
            Ok(Err(why)) => failures.push(format!("request {i}: {why}")),
            Err(_) => {
                hung += 1;
                failures.push(format!(
                    "request {i} ({:?}): no answer within {} s",
                    Kind::of(i),
                    limit.as_secs()
                ));
            }
        }
        if daemon.0.try_wait()?.is_some() {
            failures.push(format!("the daemon died after request {i}"));
            break;
        }
        if (i + 1) % args.every == 0 || i + 1 == args.utterances {
            let s = sample(i + 1, pid);
            report(&s, failures.len());
            samples.push(s);
        }
    }
    let elapsed = started.elapsed();
    // Killed workers are back within the supervisor's back-off.
    let deadline = Instant::now() + Duration::from_secs(60);
    while children(pid).len() < workers_at_start && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let workers_at_end = children(pid).len();
    if workers_at_end < workers_at_start {
        failures.push(format!(
            "{workers_at_end} of {workers_at_start} workers running at the end"
        ));
    }
    // Memory after the first quarter (warmed up) against the end.
    let quarter = &samples[(samples.len() / 4).clamp(1, samples.len() - 1)];
    let last = samples.last().expect("a sample");
    let growth = 100.0 * (last.daemon_mib - quarter.daemon_mib) / quarter.daemon_mib.max(1.0);
    if growth > args.max_growth_percent {
        failures.push(format!(
            "the daemon's RSS grew {growth:.1} % from request {} to {} (allowed: {} %)",
            quarter.requests, last.requests, args.max_growth_percent
        ));
    }
    println!(
        "\n{} requests in {:.0} s ({:.1} ms each), {kills} worker(s) killed; daemon RSS {:.1} → {:.1} MiB ({growth:+.1} %) from request {} to {}; open files {} → {}; hung {hung}, failed {}.",
        last.requests,
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e3 / last.requests.max(1) as f64,
        quarter.daemon_mib,
        last.daemon_mib,
        quarter.requests,
        last.requests,
        quarter.files,
        last.files,
        failures.len(),
    );
    for f in failures.iter().take(20) {
        println!("- {f}");
    }
    drop(daemon);
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
