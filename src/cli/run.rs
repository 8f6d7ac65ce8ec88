//! `cabin run`: the daemon.

use anyhow::{Context, Result};
use cabin::hear::Input;
use cabin::runtime::bus::BusAddress;
use cabin::speak::Output;
use cabin::{daemon, Profile};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
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
    llm: super::LlmArg,
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
    /// What the car's media plays, for the echo canceller: `mic:NAME` (a monitor of the
    /// loudspeakers' mix), a recording, or `off`. Default: the profile's `[audio] reference`
    /// with a live microphone, else off. Cabin's own voice is always cancelled.
    #[arg(long, env = "CABIN_REFERENCE")]
    reference: Option<String>,
}

pub async fn exec(args: Args) -> Result<ExitCode> {
    cabin::runtime::logging::log_private(args.log_private);
    // Handlers go in before the bus name is taken: a stop request during start-up must shut
    // down cleanly too, not kill the process.
    let shutdown = shutdown_signal()?;
    let profile = Arc::new(Profile::load_or_default(args.profile.as_deref())?);
    let output = match args.output.as_str() {
        "off" => None,
        other => Some(Output::parse(other, &profile.audio.output)?),
    };
    let input = match args.input.as_str() {
        "off" => None,
        "mic" => Some(Input::Device(profile.audio.input.clone())),
        other => Some(Input::parse(other)),
    };
    let reference = match args.reference.as_deref() {
        Some("off") => None,
        Some(other) => Some(Input::parse(other)),
        None => profile
            .audio
            .reference
            .clone()
            .filter(|_| matches!(input, Some(Input::Device(_))))
            .map(Input::Device),
    };
    daemon::run(
        daemon::DaemonConfig {
            input,
            reference,
            profile,
            bus: args.bus,
            llm: args.llm.llm,
            asr: args.asr,
            output,
        },
        shutdown,
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// Installs SIGTERM (systemd stop) and SIGINT (Ctrl-C) handlers now; the returned future
/// completes when either arrives.
pub(super) fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
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
