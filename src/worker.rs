//! Supervision of the worker processes (`cabin-llm`, `cabin-asr`): start one, wait for its
//! `READY <address>` line, get it ready (warm a prompt cache), restart it with back-off when it
//! dies. Everyone else only reads the current [`WorkerState`], never waits on the process.

use crate::llm::{ChatClient, LlmError};
use serde_json::{json, Value};
use std::ffi::OsString;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;

/// A worker's state, with the client that reaches it when it is ready.
#[derive(Debug, Clone)]
pub enum WorkerState<C = ChatClient> {
    Starting,
    Ready(C),
    /// Not available; why, with the fix where there is one.
    Down(String),
}

pub struct Worker<C> {
    state: watch::Receiver<WorkerState<C>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// The local language model worker, reached over the OpenAI API.
pub type LlmWorker = Worker<ChatClient>;

impl<C> Drop for Worker<C> {
    fn drop(&mut self) {
        // Dropping the supervising task drops the child, which kills it.
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// Turns the address a worker printed into its client, after any warm-up.
pub type Connect<C> = Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = C> + Send>> + Send + Sync>;

/// How to run a worker.
pub struct WorkerSpec<C> {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// What the worker is, for messages ("the language model worker").
    pub what: &'static str,
    /// The variable that overrides where the program is, for messages.
    pub program_env: &'static str,
    pub connect: Connect<C>,
}

/// How long a worker may take from start to `READY` (loading a model from slow flash).
const START_LIMIT: Duration = Duration::from_secs(120);
/// How long start-up waits for a worker to be ready (loaded and warmed) or to have failed.
pub const SETTLE_LIMIT: Duration = Duration::from_secs(180);
/// A worker that ran this long without dying resets the back-off.
const STABLE_AFTER: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl<C: Clone + Send + Sync + 'static> Worker<C> {
    /// A worker that is not there, for the reason given.
    pub fn down(why: impl Into<String>) -> Worker<C> {
        let (_, state) = watch::channel(WorkerState::Down(why.into()));
        Worker { state, task: None }
    }

    /// A service somebody else runs (another `cabin-llm`, any OpenAI-compatible server, any
    /// Wyoming ASR service).
    pub fn remote(client: C) -> Worker<C> {
        let (_, state) = watch::channel(WorkerState::Ready(client));
        Worker { state, task: None }
    }

    pub fn supervise(spec: WorkerSpec<C>) -> Worker<C> {
        let (tx, state) = watch::channel(WorkerState::Starting);
        let task = tokio::spawn(supervise(spec, tx));
        Worker {
            state,
            task: Some(task),
        }
    }

    pub fn state(&self) -> WorkerState<C> {
        self.state.borrow().clone()
    }

    /// Waits (at most `limit`) until the worker is ready or has failed once.
    pub async fn settled(&self, limit: Duration) -> WorkerState<C> {
        let mut rx = self.state.clone();
        let _ =
            tokio::time::timeout(limit, rx.wait_for(|s| !matches!(s, WorkerState::Starting))).await;
        self.state()
    }
}

async fn supervise<C>(spec: WorkerSpec<C>, state: watch::Sender<WorkerState<C>>) {
    let name = spec
        .program
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = Instant::now();
        let why = run_once(&spec, &state).await;
        tracing::warn!("{name}: {why}; restarting in {} s", backoff.as_secs());
        state.send_replace(WorkerState::Down(format!("{} stopped ({why})", spec.what)));
        if started.elapsed() > STABLE_AFTER {
            backoff = Duration::from_secs(1);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        state.send_replace(WorkerState::Starting);
    }
}

/// Runs the worker until it exits; returns why it stopped.
async fn run_once<C>(spec: &WorkerSpec<C>, state: &watch::Sender<WorkerState<C>>) -> String {
    let mut command = tokio::process::Command::new(&spec.program);
    command
        .args(&spec.args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    // SAFETY: prctl is async-signal-safe; it makes the kernel kill the worker if the daemon
    // dies without cleaning up (a crash, or panic = abort). The signal follows the spawning
    // thread: a runtime worker thread, which lives as long as the runtime.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            return format!(
                "cannot start {}: {e} (build the workspace, or set {})",
                spec.program.display(),
                spec.program_env
            )
        }
    };
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(START_LIMIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(address) = line.strip_prefix("READY ") {
                return Some(address.trim().to_string());
            }
        }
        None
    });
    let address = match ready.await {
        Ok(Some(address)) => address,
        Ok(None) => return exit_reason(child.wait().await),
        Err(_) => return format!("not ready within {} s", START_LIMIT.as_secs()),
    };
    let client = (spec.connect)(address).await;
    state.send_replace(WorkerState::Ready(client));
    // Keep reading stdout so the worker never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    exit_reason(child.wait().await)
}

/// Connects to a `cabin-llm` and has it evaluate the system prompt and tools every request
/// starts with, so their KV cache is there for the first real request.
pub fn llm_connect(model_name: String, system: String, tools: Value) -> Connect<ChatClient> {
    Arc::new(move |url: String| {
        let (model_name, system, tools) = (model_name.clone(), system.clone(), tools.clone());
        Box::pin(async move {
            let client = ChatClient::new(&url, &model_name, None);
            let started = Instant::now();
            match warm_up(&client, &system, &tools).await {
                Ok(()) => tracing::info!(
                    "cabin-llm ready at {url}; prompt cache warmed in {:.1} s",
                    started.elapsed().as_secs_f64()
                ),
                Err(e) => tracing::warn!("cabin-llm warm-up failed: {e}"),
            }
            client
        })
    })
}

/// Has the model evaluate the system prompt and tools (one token generated).
pub async fn warm_up(client: &ChatClient, system: &str, tools: &Value) -> Result<(), LlmError> {
    let messages = [
        json!({"role": "system", "content": system}),
        json!({"role": "user", "content": "hello"}),
    ];
    client
        .complete(&messages, Some((tools, &json!("auto"))), 1, |_| true)
        .await
        .map(|_| ())
}

fn exit_reason(status: std::io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(s) => format!("exited with {s}"),
        Err(e) => format!("cannot wait for it: {e}"),
    }
}

/// A worker program: `$<env>` (e.g. `CABIN_LLM_WORKER`), else `name` beside this executable
/// (or its parent directory, for test binaries in `deps/`), else from `PATH`.
pub fn program(name: &str, env: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return p.into();
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    name.into()
}
