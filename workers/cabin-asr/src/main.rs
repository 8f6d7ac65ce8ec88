//! `cabin-asr`: Cabin's speech recognition worker. It loads a whisper.cpp model once and serves
//! the Wyoming protocol, so the daemon (or Home Assistant, or any Wyoming client) sends audio
//! and gets a transcript. It is its own process because whisper.cpp and llama.cpp each bundle
//! ggml and cannot share one binary.

mod engine;
mod server;

use clap::{Parser, Subcommand};
use engine::{AudioCtx, Engine, Settings};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    version,
    about = "Cabin's speech recognition worker: whisper.cpp over the Wyoming protocol"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load the model and serve Wyoming until SIGTERM; prints `READY <uri>` once it serves
    Serve {
        /// whisper.cpp ggml model (`cabin models path` shows where Cabin installs them)
        #[arg(long)]
        model: PathBuf,
        /// tcp://HOST:PORT (port 0 picks a free one) or unix://PATH
        #[arg(long, default_value = "tcp://127.0.0.1:0")]
        listen: String,
        /// Inference threads (default: all cores)
        #[arg(long)]
        threads: Option<usize>,
        /// Encoder window: `fit` sizes it to the utterance (much faster for short commands),
        /// `full` uses whisper's whole 30 s window
        #[arg(long, default_value = "fit")]
        audio_ctx: AudioCtx,
        /// Language when a request names none; default: en for English-only models, detected
        /// otherwise
        #[arg(long)]
        language: Option<String>,
        /// Decoder prompt when a request brings none (vocabulary the driver is likely to use)
        #[arg(long)]
        prompt: Option<String>,
        /// Audio whose loudest 20 ms is quieter than this is answered with an empty transcript
        #[arg(long, default_value_t = -50.0, allow_hyphen_values = true)]
        silence_dbfs: f32,
        /// Longest utterance accepted, seconds
        #[arg(long, default_value_t = 30)]
        max_seconds: usize,
        /// Model name reported by `describe`
        #[arg(long, default_value = "whisper")]
        name: String,
        /// Most open connections; one more is answered `busy` and closed
        #[arg(long, default_value_t = 8)]
        max_connections: usize,
        /// Also serve the listening Unix socket inherited as this file descriptor, with places
        /// of its own (`--reserved-connections`): clients of `--listen` can't take them, and
        /// only who can reach the socket's path connects. The daemon that supervises this
        /// worker makes it in a directory only its user can enter.
        #[arg(long, value_name = "FD")]
        reserved_fd: Option<i32>,
        /// Most open connections on the reserved socket
        #[arg(long, default_value_t = 2)]
        reserved_connections: usize,
        /// A connection that sends nothing for this long is closed, seconds
        #[arg(long, default_value_t = 30)]
        idle_seconds: u64,
        /// Most utterances waiting for or in the engine; one more is answered `busy`
        #[arg(long, default_value_t = 2)]
        max_queued: usize,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,whisper_rs=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    whisper_rs::install_logging_hooks();
    let Command::Serve {
        model,
        listen,
        threads,
        audio_ctx,
        language,
        prompt,
        silence_dbfs,
        max_seconds,
        name,
        max_connections,
        reserved_fd,
        reserved_connections,
        idle_seconds,
        max_queued,
    } = Cli::parse().command;
    let threads = threads
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(2)
        .max(1);
    let loading = std::time::Instant::now();
    tracing::info!(model = %model.display(), threads, ?audio_ctx, "loading");
    let settings = Settings {
        threads,
        audio_ctx,
        language,
    };
    let (engine, info) = Engine::start(&model, settings)?;
    tracing::info!(
        seconds = loading.elapsed().as_secs_f64(),
        multilingual = info.multilingual,
        language = info.language.as_deref().unwrap_or("detected"),
        "model loaded"
    );
    let languages: Vec<&str> = if info.multilingual {
        (0..=whisper_rs::get_lang_max_id())
            .filter_map(whisper_rs::get_lang_str)
            .collect()
    } else {
        vec!["en"]
    };
    let attribution = json!({"name": "OpenAI Whisper, whisper.cpp", "url": "https://github.com/ggml-org/whisper.cpp"});
    let service = server::Service {
        engine,
        info: json!({"asr": [{
            "name": "cabin-asr",
            "description": "Cabin's whisper.cpp worker",
            "attribution": attribution,
            "installed": true,
            "version": env!("CARGO_PKG_VERSION"),
            "models": [{
                "name": name,
                "description": format!("whisper.cpp model {}", model.display()),
                "attribution": attribution,
                "installed": true,
                "languages": languages,
                "version": null,
            }],
        }]}),
        prompt,
        silence_dbfs,
        max_samples: max_seconds * 16_000,
        limits: server::Limits {
            connections: max_connections.max(1),
            reserved: reserved_connections.max(1),
            idle: std::time::Duration::from_secs(idle_seconds.max(1)),
            queued: max_queued.max(1),
        },
        queue: tokio::sync::Semaphore::new(max_queued.max(1)),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = wyoming::Listener::bind(&listen).await?;
        let reserved = reserved_fd.map(inherited).transpose()?;
        let uri = listener.uri();
        tracing::info!(%uri, reserved = ?reserved.as_ref().map(wyoming::Listener::uri), "serving");
        // The supervisor reads this line to know where and when to connect.
        println!("READY {uri}");
        std::io::stdout().flush()?;
        server::run(listener, reserved, Arc::new(service), shutdown()).await;
        tracing::info!("stopped");
        anyhow::Ok(())
    })
}

/// The listening Unix socket inherited as `fd`.
fn inherited(fd: i32) -> anyhow::Result<wyoming::Listener> {
    use std::os::fd::FromRawFd;
    let not_a_socket = |e: std::io::Error| {
        anyhow::anyhow!(
            "--reserved-fd {fd} is not a listening Unix socket this process inherited: {e}"
        )
    };
    // The descriptor must be open: from_raw_fd takes any number on trust.
    // SAFETY: F_GETFD only reads the descriptor's flags.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(not_a_socket(std::io::Error::last_os_error()));
    }
    // SAFETY: the descriptor is open, was handed to this process for this use, and nothing
    // else in it owns it.
    let listener = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
    listener.local_addr().map_err(not_a_socket)?;
    wyoming::Listener::from_unix(listener).map_err(not_a_socket)
}

async fn shutdown() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
