//! Talking to the daemon under measurement: what it runs against, the processes it runs as,
//! requests and replies.

use super::procs::tempfile_dir;
use anyhow::Context;
use cabin::daemon::api::{OBJECT_PATH, SERVICE_NAME};
use cabin::profile::Profile;
use cabin::runtime::bus::PrivateBus;
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed when dropped.
pub(super) struct Proc(pub(super) Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a measured daemon runs against: a private bus with the simulator on it, and a notify
/// socket that hears each daemon's READY as systemd would. Its directory goes when it does.
pub(super) struct Stand {
    // Dropped in this order: the simulator before its bus.
    pub(super) sim: Proc,
    pub(super) bus: PrivateBus,
    socket: UnixDatagram,
    notify: PathBuf,
    dir: PathBuf,
    /// Whether the front end's models are installed: daemons then listen on real-time silence.
    pub(super) listening: bool,
}

impl Stand {
    /// The bus, the simulator (this build's, beside `cabin`) and the socket, for `profile`.
    pub(super) fn start(profile: &Profile) -> anyhow::Result<Stand> {
        let sim_exe = std::env::current_exe()?.with_file_name("cabin-vehicle-sim");
        anyhow::ensure!(
            sim_exe.exists(),
            "{} not found next to cabin; build the whole workspace (cargo build --release --workspace)",
            sim_exe.display()
        );
        let dir = tempfile_dir()?;
        let bus = PrivateBus::start(&dir)?;
        let mut child = cabin::runtime::worker::dies_with_parent(&mut Command::new(&sim_exe))
            .args(["--bus", &bus.address])
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
        anyhow::ensure!(
            line.starts_with("ready"),
            "the simulator did not start: {line}"
        );
        let sim = Proc(child);
        let notify = dir.join("notify");
        let socket = UnixDatagram::bind(&notify)?;
        // With the local model, READY waits for it to load (up to the worker's settle limit).
        socket.set_read_timeout(Some(
            cabin::runtime::worker::SETTLE_LIMIT + Duration::from_secs(30),
        ))?;
        Ok(Stand {
            sim,
            bus,
            socket,
            notify,
            dir,
            listening: cabin::hear::front_end::Engines::load(&profile.models).is_ok(),
        })
    }

    /// The daemons' `--input`: the null device where they can listen, else none.
    pub(super) fn input(&self) -> &'static str {
        if self.listening {
            "null"
        } else {
            "off"
        }
    }

    /// A cache directory (for `XDG_CACHE_HOME`) with what this user's Cabin cache holds at its
    /// top (the intent shortlist's index) but no evaluated prompt of the local model: a daemon
    /// started on it pays the local model's first start.
    pub(super) fn cache_without_prompts(&self) -> anyhow::Result<PathBuf> {
        let home = self.dir.join("cache");
        let cabin = home.join("cabin");
        std::fs::create_dir_all(&cabin)?;
        if let Some(from) = cabin::runtime::models::cache_dir() {
            for entry in std::fs::read_dir(from).into_iter().flatten().flatten() {
                if entry.file_type().is_ok_and(|t| t.is_file()) {
                    std::fs::copy(entry.path(), cabin.join(entry.file_name()))?;
                }
            }
        }
        Ok(home)
    }

    /// This build's `cabin` with `args` on the bus, once it has said READY: the daemon and its
    /// time to READY. With `cache`, the daemon's `XDG_CACHE_HOME`.
    pub(super) fn daemon(
        &self,
        args: &[&str],
        cache: Option<&Path>,
    ) -> anyhow::Result<(Proc, Duration)> {
        let socket = &self.socket;
        socket.set_nonblocking(true)?;
        while socket.recv(&mut [0u8; 256]).is_ok() {}
        socket.set_nonblocking(false)?;
        let address = self.bus.address.as_str();
        let started = Instant::now();
        let mut command = Command::new(std::env::current_exe()?);
        if let Some(cache) = cache {
            command
                .env("XDG_CACHE_HOME", cache)
                .env_remove("CACHE_DIRECTORY");
        }
        let daemon = Proc(
            cabin::runtime::worker::dies_with_parent(&mut command)
                .args(args)
                .args(["--bus", address])
                .env("DBUS_SESSION_BUS_ADDRESS", address)
                .env("NOTIFY_SOCKET", &self.notify)
                .env("CABIN_LOG", "warn")
                // The workers' log, which they inherit.
                .env("RUST_LOG", "warn")
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
    }
}

impl Drop for Stand {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends `text` to the daemon; the round trip and the outcome it reports.
pub(super) async fn submit(
    conn: &zbus::Connection,
    text: &str,
) -> anyhow::Result<(Duration, serde_json::Value)> {
    // A client within its allowance of requests: past it, it waits for the next one.
    let (sent, reply) = loop {
        let sent = Instant::now();
        let reply = conn
            .call_method(
                Some(SERVICE_NAME),
                OBJECT_PATH,
                Some(SERVICE_NAME),
                "SubmitTextJson",
                &(text,),
            )
            .await;
        match reply {
            Err(zbus::Error::MethodError(name, _, _))
                if name.as_str() == "org.cabin.Assistant1.Error.RateLimited" =>
            {
                let wait = 1.0 / cabin::daemon::limit::PER_SECOND;
                tokio::time::sleep(Duration::from_secs_f64(wait)).await;
            }
            reply => break (sent, reply?),
        }
    };
    let round_trip = sent.elapsed();
    let json: String = reply.body().deserialize()?;
    Ok((round_trip, serde_json::from_str(&json)?))
}

/// The daemon's `Reply` signals: with a voice, each is a sentence starting to play.
pub(super) async fn replies(conn: &zbus::Connection) -> anyhow::Result<zbus::MessageStream> {
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .interface(SERVICE_NAME)
        .member("Reply")
        .build()?;
    Ok(zbus::MessageStream::for_match_rule(rule, conn, std::num::NonZeroUsize::new(64)).await?)
}

/// A request's figures: the round trip, the first audio (with a voice), and the outcome.
pub(super) struct Asked {
    pub(super) round_trip: Duration,
    pub(super) first_audio: Option<Duration>,
    pub(super) outcome: serde_json::Value,
}

/// Sends `text` and, when the daemon speaks, times its first `Reply` signal: with streamed
/// speech it can come before the call returns.
pub(super) async fn ask(
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
pub(super) async fn end_dialog(conn: &zbus::Connection) -> anyhow::Result<()> {
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
