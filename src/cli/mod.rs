//! The command line: one module per subcommand, each with its arguments and its work.

mod acoustics;
mod bench;
mod chat;
mod doctor;
mod eval;
mod in_process;
mod listen;
mod models;
mod profile;
mod run;
mod say;
mod transcribe;
mod voice;
mod wake;
mod wyoming;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// The value at fraction `p` of `sorted` (nearest rank; 0 when empty), as `cabin eval` and
/// `cabin bench` report medians and p95s.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[derive(Parser)]
#[command(
    name = "cabin",
    version,
    about = "Offline-first in-car voice assistant"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: serve org.cabin.Assistant1 until SIGTERM or Ctrl-C.
    Run(run::Args),
    /// Send text to the running daemon (or, with --profile, handle it in-process) and print
    /// the reply.
    Say(say::Args),
    /// A typed conversation with the running daemon: each line of standard input is sent on
    /// one connection, so a question or a zone carries to the next line; prints each reply.
    Chat(chat::Args),
    /// Run a labelled JSONL set of utterances through the router (in this process) and print
    /// accuracy per route and intent, confusions and latency percentiles.
    Eval(eval::Args),
    /// Transcribe a recording (WAV of any rate and channels, or raw 16 kHz mono s16le; `-`
    /// reads standard input) and print the text and timings.
    Transcribe(transcribe::Args),
    /// The profile's voice heard by its own recogniser: every reply the profile can give is
    /// spoken and transcribed; prints the share heard back as said, the character (Mandarin)
    /// or word error rate and the synthesis speed.
    Voice(voice::Args),
    /// Run the speech front end on a recording: find the speech in it, transcribe it, check for
    /// the wake word, then understand and act as `say` does (in this process).
    Listen(listen::Args),
    /// Serve the profile's voice (Wyoming TTS) and wake word (Wyoming wake) to Home Assistant
    /// and other Wyoming clients, until SIGTERM or Ctrl-C.
    Wyoming(wyoming::Args),
    /// Wake word tools: `cabin wake train` builds a model for a phrase, `cabin wake eval`
    /// measures its misses and false wakes.
    Wake {
        #[command(subcommand)]
        command: wake::Command,
    },
    /// Install and list model files.
    Models {
        #[command(subcommand)]
        command: models::Command,
    },
    /// Check the set-up: profile, buses, vehicle services, driving state, CPU and memory.
    /// Prints each problem with its fix; exits non-zero when something is broken.
    Doctor(doctor::Args),
    /// Measure the pipeline end to end: start-up to READY, per-stage latency (text, speech
    /// in, speech out, the local model), RSS and idle CPU, with a private bus, the simulator
    /// and daemons of this build.
    Bench(bench::Args),
    /// Leave the daemon under a long mixed load (commands, model requests, malformed and
    /// cancelled requests, killed workers) and print its memory and open files as it goes;
    /// exits non-zero on a hung or lost request, a dead daemon or memory growth.
    Soak(bench::soak::Args),
    /// Profile tools.
    Profile {
        #[command(subcommand)]
        command: profile::Command,
    },
}

pub async fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run::exec(args).await,
        Command::Say(args) => say::exec(args).await,
        Command::Chat(args) => chat::exec(args).await,
        Command::Eval(args) => eval::exec(args).await,
        Command::Transcribe(args) => transcribe::exec(args).await,
        Command::Listen(args) => listen::exec(args).await,
        Command::Voice(args) => voice::exec(args).await,
        Command::Wyoming(args) => wyoming::exec(args).await,
        Command::Wake { command } => wake::exec(command).await,
        Command::Models { command } => models::exec(command).await,
        Command::Doctor(args) => doctor::exec(args).await,
        Command::Bench(args) => bench::exec(args).await,
        Command::Soak(args) => bench::soak::exec(args).await,
        Command::Profile { command } => profile::exec(command),
    }
}

/// The local model route, as every in-process command takes it.
#[derive(clap::Args)]
struct LlmArg {
    /// The local model route: auto (supervise cabin-llm with the profile's model), off (fast
    /// path only), or the base URL of a running OpenAI-compatible endpoint.
    #[arg(long, env = "CABIN_LLM", default_value = "auto")]
    llm: cabin::understand::brain::LlmChoice,
}

/// Writes to stdout; a reader that went away (`| head`) ends the output, not the program.
fn print_out(text: &str) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
