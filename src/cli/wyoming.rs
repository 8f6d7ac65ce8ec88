//! `cabin wyoming`: the profile's voice and wake word as Wyoming services, for Home Assistant
//! and any other Wyoming client (the recogniser is `cabin-asr serve`).

use anyhow::{bail, Context, Result};
use cabin::hear::wake::WakeModels;
use cabin::hear::wyoming::WakeService;
use cabin::speak::wyoming::TtsService;
use cabin::Profile;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Open connections per service; one more is told `busy`.
const CONNECTIONS: usize = 8;

#[derive(clap::Args)]
pub struct Args {
    /// Serve the voice (Wyoming TTS) here: tcp://HOST:PORT or unix://PATH (port 0 picks one).
    #[arg(long)]
    tts: Option<String>,
    /// Serve the wake word (Wyoming wake) here.
    #[arg(long)]
    wake: Option<String>,
    #[arg(long)]
    profile: Option<PathBuf>,
}

pub async fn exec(args: Args) -> Result<ExitCode> {
    if args.tts.is_none() && args.wake.is_none() {
        bail!(
            "nothing to serve: give --tts URI, --wake URI or both (e.g. --tts tcp://0.0.0.0:10200)"
        );
    }
    let profile = Profile::load_or_default(args.profile.as_deref())?;
    let shutdown = super::run::shutdown_signal()?;
    let mut ready = Vec::new();
    let mut served = tokio::task::JoinSet::new();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    if let Some(uri) = &args.tts {
        let listener = wyoming::Listener::bind(uri).await?;
        let voice = cabin::speak::voice::load(&profile).context("loading the voice")?;
        let service = Arc::new(TtsService::new(voice, &profile.language));
        ready.push(format!("tts={}", listener.uri()));
        serve(&mut served, listener, stop.clone(), move |(r, w)| {
            let service = service.clone();
            async move { service.serve(r, w).await }
        });
    }
    if let Some(uri) = &args.wake {
        let listener = wyoming::Listener::bind(uri).await?;
        let Some(keyword) = profile.models.wake.as_deref() else {
            bail!("the profile names no wake word ([models] wake); nothing to serve on --wake");
        };
        let models = WakeModels::resolve(keyword)?;
        // Loaded once here, so that a missing or corrupt model is reported at start.
        cabin::hear::wake::WakeWord::load(&models)?;
        let phrase = profile
            .persona
            .wake_words
            .first()
            .cloned()
            .unwrap_or_else(|| keyword.replace('_', " "));
        let threshold =
            cabin::hear::wake::threshold_for(profile.listen.wake_threshold, &models.keyword);
        let service = Arc::new(WakeService::new(
            models,
            keyword,
            &phrase,
            &profile.language,
            threshold,
            profile.listen.refractory,
        ));
        ready.push(format!("wake={}", listener.uri()));
        serve(&mut served, listener, stop.clone(), move |(r, w)| {
            let service = service.clone();
            async move { service.serve(r, w).await }
        });
    }
    tracing::info!(services = %ready.join(" "), "serving");
    // Scripts and tests read this line to know where to connect.
    println!("READY {}", ready.join(" "));
    std::io::stdout().flush()?;
    shutdown.await;
    let _ = stop_tx.send(true);
    while served.join_next().await.is_some() {}
    Ok(ExitCode::SUCCESS)
}

/// Serves each connection to `listener` with `handle`, in a task of `served`, until `stop`
/// says so.
fn serve<H, F>(
    served: &mut tokio::task::JoinSet<()>,
    listener: wyoming::Listener,
    mut stop: tokio::sync::watch::Receiver<bool>,
    handle: H,
) where
    H: Fn(wyoming::Halves) -> F + Send + 'static,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    served.spawn(async move {
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        wyoming::serve(&listener, CONNECTIONS, stopped, handle).await;
    });
}
