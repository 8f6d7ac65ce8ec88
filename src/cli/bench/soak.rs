//! `cabin soak`: the daemon under a long mixed load, as a field engineer would leave it
//! running. A private bus, the simulator and a daemon (listening on the null device, replies
//! as text) are started as in `cabin bench`; requests go in one after another: commands, model
//! requests, malformed ones (empty, too long, an unknown input), odd characters, and requests
//! cancelled mid-turn, with one of the daemon's workers killed now and then. Every so often it
//! prints the processes' RSS and the daemon's open files; at the end, what failed. It exits
//! non-zero on a hung or lost request, a dead daemon, workers not restarted, or memory grown
//! past the allowed share.

use super::daemon::Stand;
use super::procs::{children, rss_kib, worker_name};
use super::CORPUS;
use cabin::daemon::api::{OBJECT_PATH, SERVICE_NAME};
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
}

impl Kind {
    /// The mix: 60 % commands, 10 % model requests, 5 % each malformed kind and odd
    /// characters, 10 % cancelled.
    fn of(i: usize) -> Kind {
        match i % 20 {
            0..=11 => Kind::Command,
            12 | 13 => Kind::Model,
            14 => Kind::Empty,
            15 => Kind::TooLong,
            16 => Kind::UnknownInput,
            17 => Kind::OddCharacters,
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
            _ => &[],
        }
    }

    /// Whether it must fail (a malformed request answered with a reply is lost too).
    fn must_fail(self) -> bool {
        matches!(self, Kind::Empty | Kind::TooLong | Kind::UnknownInput)
    }
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

/// Sends request `i`; Ok, or why it counts as failed.
async fn request(conn: &zbus::Connection, i: usize) -> Result<(), String> {
    let kind = Kind::of(i);
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
    };
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
    let conn = zbus::connection::Builder::address(stand.bus.address.as_str())
        .build()
        .await?;
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
        match tokio::time::timeout(limit, request(&conn, i)).await {
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
