//! `cabin transcribe`: one recording through speech recognition, with timings.

use super::print_out;
use anyhow::{bail, Context, Result};
use cabin::asr::{AsrChoice, AsrClient, AsrWorker};
use cabin::runtime::worker::{WorkerState, SETTLE_LIMIT};
use cabin::Profile;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    file: PathBuf,
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Speech recognition: auto (supervise cabin-asr with the profile's model), or the
    /// address of a running Wyoming ASR service (tcp://HOST:PORT, unix://PATH).
    #[arg(long, env = "CABIN_ASR", default_value = "auto")]
    asr: AsrChoice,
    /// Send no decoder prompt even where the profile lists `[listen] vocabulary` (to measure
    /// what it changes).
    #[arg(long)]
    no_prompt: bool,
    /// Print JSON: {"text", "audio_s", "asr_ms"}.
    #[arg(long)]
    json: bool,
}

/// The profile's speech recognition, started as chosen and ready; the worker is kept by the
/// caller for as long as the client is used (dropping it stops `cabin-asr`).
pub(super) async fn recogniser(
    profile: &Profile,
    choice: &AsrChoice,
) -> Result<(AsrWorker, AsrClient)> {
    let worker = cabin::asr::start(profile, choice)
        .context("speech recognition is off, or the profile names no asr model")?;
    let client = match worker.settled(SETTLE_LIMIT).await {
        WorkerState::Ready(c) => c,
        WorkerState::Down(why) => bail!("no speech recognition: {why}"),
        WorkerState::Starting => bail!(
            "the speech recognition worker was not ready within {} s",
            SETTLE_LIMIT.as_secs()
        ),
    };
    Ok((worker, client))
}

pub async fn exec(args: Args) -> Result<ExitCode> {
    let profile = Profile::load_or_default(args.profile.as_deref())?;
    let file = args.file;
    let samples = tokio::task::spawn_blocking(move || cabin::hear::audio::read(&file)).await??;
    let (_worker, client) = recogniser(&profile, &args.asr).await?;
    let client = if args.no_prompt {
        client.without_prompt()
    } else {
        client
    };
    let audio_s = samples.len() as f64 / cabin::hear::audio::RATE as f64;
    let t = client
        .transcribe(&samples, profile.listen.asr_timeout)
        .await?;
    let out = if args.json {
        serde_json::json!({"text": t.text, "audio_s": audio_s, "asr_ms": t.ms}).to_string() + "\n"
    } else {
        format!(
            "{}\n({audio_s:.1} s of audio, recognised in {:.0} ms)\n",
            t.text, t.ms
        )
    };
    print_out(&out)?;
    Ok(ExitCode::SUCCESS)
}
