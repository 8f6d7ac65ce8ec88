//! `cabin-llm`: a GGUF model served over an OpenAI-compatible HTTP API on loopback. Cabin's
//! daemon starts and supervises it; any other OpenAI client can use it too.
//!
//! A separate process from the daemon (and from the whisper worker): llama.cpp and whisper.cpp
//! each bundle their own ggml, which cannot be linked into one binary.

mod chat;
mod embed;
mod engine;
mod prompt_state;
mod server;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use embed::Embedder;
use engine::EngineConfig;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "cabin-llm", version, about = "Cabin's local LLM worker")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct ModelArgs {
    /// The GGUF model file.
    #[arg(long)]
    model: PathBuf,
    /// Context length in tokens (default 6144: the persona and tool list take about 3,000).
    /// With --embedding, the most tokens of one input and of one batch (default 512).
    #[arg(long)]
    context: Option<u32>,
    /// Threads for llama.cpp (default: every core).
    #[arg(long)]
    threads: Option<i32>,
    /// Prompt tokens evaluated per batch.
    #[arg(long, default_value_t = 512)]
    batch: u32,
}

impl ModelArgs {
    fn config(&self, embedding: bool) -> EngineConfig {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as i32);
        EngineConfig {
            model: self.model.clone(),
            context: self
                .context
                .unwrap_or(if embedding { 512 } else { 6144 })
                .max(1),
            threads: self.threads.unwrap_or(cores).max(1),
            batch: self.batch.max(1),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Serve /v1/chat/completions (or /v1/embeddings with --embedding). Prints
    /// `READY <base URL>` on stdout once it accepts requests.
    Serve {
        #[command(flatten)]
        model: ModelArgs,
        /// The model is a sentence-embedding model (such as nomic-embed-text): serve
        /// /v1/embeddings instead of chat.
        #[arg(long)]
        embedding: bool,
        /// Address to listen on; port 0 picks a free port. Loopback only unless you mean it.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Model name reported by /v1/models (default: the file name).
        #[arg(long)]
        name: Option<String>,
        /// Tokens generated when a request does not say.
        #[arg(long, default_value_t = 128)]
        max_tokens: u32,
        /// A directory where the last long prompt evaluated (Cabin's persona and tools) is
        /// saved, to be restored at the next start instead of evaluated again.
        #[arg(long)]
        prompt_state: Option<PathBuf>,
    },
    /// Prompt-processing and generation speed (tokens/s), measured like llama.cpp's llama-bench.
    Bench {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long, default_value_t = 512)]
        prompt: usize,
        #[arg(long, default_value_t = 128)]
        generate: usize,
    },
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CABIN_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cabin-llm: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Bench {
            model,
            prompt,
            generate,
        } => {
            anyhow::ensure!(
                prompt > 0 && generate > 0,
                "--prompt and --generate must be at least 1"
            );
            let config = model.config(false);
            let (pp, tg) = engine::bench(&config, prompt, generate)?;
            println!(
                "{{\"model\": {:?}, \"threads\": {}, \"pp\": {prompt}, \"pp_tokens_per_s\": {pp:.2}, \"tg\": {generate}, \"tg_tokens_per_s\": {tg:.2}}}",
                config.model.display().to_string(),
                config.threads
            );
            Ok(())
        }
        Command::Serve {
            model,
            embedding,
            listen,
            name,
            max_tokens,
            prompt_state,
        } => {
            anyhow::ensure!(
                !(embedding && prompt_state.is_some()),
                "--prompt-state is for chat models; an embedding model keeps no prompt"
            );
            anyhow::ensure!(
                model.model.is_file(),
                "no model file at {} (install it with `cabin models fetch`)",
                model.model.display()
            );
            let config = model.config(embedding);
            let name = name.unwrap_or_else(|| {
                config
                    .model
                    .file_stem()
                    .map_or("model".into(), |s| s.to_string_lossy().into_owned())
            });
            tracing::info!(model = %config.model.display(), threads = config.threads, context = config.context, "loading");
            let (backend, info) = if embedding {
                let (embedder, info) = Embedder::start(config)?;
                (server::Backend::Embeddings(embedder), info)
            } else {
                let (engine, info) = engine::start(config, prompt_state)?;
                (server::Backend::Chat(engine), info)
            };
            tracing::info!(
                parameters = info.parameters,
                size_mb = info.size_bytes / 1_000_000,
                context = info.context,
                "model loaded"
            );
            let shared = Arc::new(server::Shared {
                backend,
                model_name: name,
                default_max_tokens: max_tokens,
                requests: Default::default(),
            });
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()?;
            runtime.block_on(serve(shared.clone(), listen))?;
            drop(runtime);
            // The engine thread is joined when the last reference goes.
            drop(shared);
            Ok(())
        }
    }
}

async fn serve(shared: Arc<server::Shared>, listen: SocketAddr) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "READY http://{addr}/v1")?;
        out.flush()?;
    }
    tracing::info!("serving on http://{addr}/v1");
    axum::serve(listener, server::router(shared))
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::info!("stopping");
        })
        .await?;
    Ok(())
}
