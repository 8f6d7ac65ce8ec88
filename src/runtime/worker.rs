//! Supervision of the worker processes (`cabin-llm`, `cabin-asr`): start one, wait for its
//! `READY <address>` line, get it ready (warm a prompt cache), check that it keeps answering,
//! and restart it with back-off when it dies or hangs. Everyone else only reads the current
//! [`WorkerState`], never waits on the process.

use crate::runtime::llm::{ChatClient, LlmError};
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
    /// How the worker yields to the daemon, whose audio must never starve.
    pub yields: Yields,
    /// How a hung worker is told from a busy one.
    pub checks: Checks,
}

/// A supervised worker's client, which can ask the worker whether it is well.
pub trait Health: Clone + Send + Sync + 'static {
    type Error: std::fmt::Display + Send;
    /// Whether the worker answers a cheap request, and says it is well, within `limit`.
    fn check(&self, limit: Duration) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

impl Health for ChatClient {
    type Error = LlmError;
    async fn check(&self, limit: Duration) -> Result<(), LlmError> {
        self.health(limit).await
    }
}

/// How a worker that printed `READY` is watched: a process that lives but no longer answers is
/// as useless as a dead one, so it is killed and restarted.
#[derive(Debug, Clone, Copy)]
pub struct Checks {
    /// Longest warm-up (the first request, evaluating the system prompt).
    pub warm_up: Duration,
    /// Time between health checks once it is ready.
    pub every: Duration,
    /// Longest a health check may take.
    pub answer_within: Duration,
    /// Failed checks in a row that make it hung.
    pub failures: u32,
}

impl Checks {
    /// A hung worker is restarted within about 30 s (three checks 5 s apart, each waiting up
    /// to 5 s); a warm-up gets what start-up allows on slow flash.
    pub const DEFAULT: Checks = Checks {
        warm_up: Duration::from_secs(180),
        every: Duration::from_secs(5),
        answer_within: Duration::from_secs(5),
        failures: 3,
    };
}

/// A worker's place below the daemon within Cabin's one systemd unit (whose `MemoryMax=` and
/// `CPUWeight=` bound them all): workers share the unit's cgroup, as cgroup delegation would
/// need `ProtectControlGroups=no`. Both settings need no privilege.
#[derive(Debug, Clone, Copy)]
pub struct Yields {
    /// Added to the worker's nice value: under contention its threads get that much less CPU
    /// than the daemon's (nice 10 is about a tenth of nice 0's share).
    pub nice: i32,
    /// The worker's `/proc/PID/oom_score_adj`: at the unit's `MemoryMax=` the kernel kills the
    /// worker (which is restarted) rather than the daemon.
    pub oom_score_adj: i32,
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

    pub fn supervise(spec: WorkerSpec<C>) -> Worker<C>
    where
        C: Health,
    {
        Self::supervise_inheriting(spec, None)
    }

    /// Like [`Worker::supervise`], with `inherit` open in the worker at every start (its number
    /// is for `spec.args` to name): a socket the worker serves but may not open itself (its
    /// seccomp filter refuses Unix sockets). Kept, and dropped, with the supervisor.
    pub fn supervise_inheriting(spec: WorkerSpec<C>, inherit: Option<Inherit>) -> Worker<C>
    where
        C: Health,
    {
        let (tx, state) = watch::channel(WorkerState::Starting);
        let task = tokio::spawn(supervise(spec, inherit, tx));
        Worker {
            state,
            task: Some(task),
        }
    }

    pub fn state(&self) -> WorkerState<C> {
        self.state.borrow().clone()
    }

    /// The state as it changes.
    pub fn watch(&self) -> watch::Receiver<WorkerState<C>> {
        self.state.clone()
    }

    /// Waits (at most `limit`) until the worker is ready or has failed once.
    pub async fn settled(&self, limit: Duration) -> WorkerState<C> {
        let mut rx = self.state.clone();
        let _ =
            tokio::time::timeout(limit, rx.wait_for(|s| !matches!(s, WorkerState::Starting))).await;
        self.state()
    }
}

/// A file descriptor a supervised worker inherits, with whatever must live as long.
pub type Inherit = Arc<dyn std::os::fd::AsRawFd + Send + Sync>;

async fn supervise<C: Health>(
    spec: WorkerSpec<C>,
    inherit: Option<Inherit>,
    state: watch::Sender<WorkerState<C>>,
) {
    let inherit = inherit.as_ref().map(|i| i.as_raw_fd());
    let name = spec
        .program
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = Instant::now();
        let why = run_once(&spec, inherit, &state).await;
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

/// Runs the worker until it exits or hangs (then it is killed); returns why it stopped.
async fn run_once<C: Health>(
    spec: &WorkerSpec<C>,
    inherit: Option<std::os::fd::RawFd>,
    state: &watch::Sender<WorkerState<C>>,
) -> String {
    let started = start(spec, std::process::Stdio::inherit(), inherit).await;
    let (mut child, mut lines, address) = match started {
        Ok(started) => started,
        Err(why) => return why,
    };
    // Keep reading stdout so the worker never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let checks = spec.checks;
    let warm_up = tokio::time::timeout(checks.warm_up, (spec.connect)(address));
    let client = tokio::select! {
        status = child.wait() => return exit_reason(status),
        client = warm_up => match client {
            Ok(client) => client,
            Err(_) => {
                let _ = child.kill().await;
                return format!("hung: not warmed up within {} s; killed", checks.warm_up.as_secs());
            }
        },
    };
    state.send_replace(WorkerState::Ready(client.clone()));
    let mut failures = 0;
    loop {
        tokio::select! {
            status = child.wait() => return exit_reason(status),
            () = tokio::time::sleep(checks.every) => {}
        }
        let why =
            match tokio::time::timeout(checks.answer_within, client.check(checks.answer_within))
                .await
            {
                Ok(Ok(())) => {
                    failures = 0;
                    continue;
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {} s", checks.answer_within.as_secs()),
            };
        failures += 1;
        tracing::warn!(
            "{}: health check failed ({failures} of {}): {why}",
            spec.what,
            checks.failures
        );
        if failures >= checks.failures {
            let _ = child.kill().await;
            return format!(
                "hung: {failures} health checks failed in a row, the last: {why}; killed"
            );
        }
    }
}

type Lines = tokio::io::Lines<BufReader<tokio::process::ChildStdout>>;

/// Starts the worker and waits for its `READY <address>` line: the child, the rest of its
/// standard output, and the address; or why it did not get there.
async fn start<C>(
    spec: &WorkerSpec<C>,
    stderr: std::process::Stdio,
    inherit: Option<std::os::fd::RawFd>,
) -> Result<(tokio::process::Child, Lines, String), String> {
    // The kernel kills the worker if the daemon dies without cleaning up (a crash, or panic =
    // abort); the signal follows the spawning thread, a runtime worker thread, which lives as
    // long as the runtime.
    let mut program = std::process::Command::new(&spec.program);
    dies_with_parent(&mut program);
    off_the_buses(&mut program);
    let mut command = tokio::process::Command::from(program);
    command
        .args(&spec.args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true);
    let Yields {
        nice,
        oom_score_adj,
    } = spec.yields;
    let oom_score_adj = format!("{oom_score_adj}\n");
    // SAFETY: only async-signal-safe calls, and no allocation. nice and oom_score_adj are best
    // effort: a worker that cannot yield still runs.
    unsafe {
        command.pre_exec(move || {
            libc::nice(nice);
            let fd = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_WRONLY);
            if fd >= 0 {
                libc::write(fd, oom_score_adj.as_ptr().cast(), oom_score_adj.len());
                libc::close(fd);
            }
            // Kept open across exec, in the child only.
            if let Some(fd) = inherit {
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|e| {
        format!(
            "cannot start {}: {e} (build the workspace, or set {})",
            spec.program.display(),
            spec.program_env
        )
    })?;
    let stderr_tail = child.stderr.take().map(|e| tokio::spawn(last_line(e)));
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
    let why = match ready.await {
        Ok(Some(address)) => return Ok((child, lines, address)),
        Ok(None) => exit_reason(child.wait().await),
        Err(_) => {
            let _ = child.kill().await;
            format!("not ready within {} s", START_LIMIT.as_secs())
        }
    };
    let tail = match stderr_tail {
        Some(task) => task.await.ok().flatten(),
        None => None,
    };
    Err(match tail {
        Some(line) => format!("{why}: {line}"),
        None => why,
    })
}

/// The last non-empty line of `stream` when it closes (all of it read, so the writer never
/// blocks), without terminal colours.
async fn last_line(stream: impl tokio::io::AsyncRead + Unpin) -> Option<String> {
    let mut lines = BufReader::new(stream).lines();
    let mut last = None;
    while let Ok(Some(line)) = lines.next_line().await {
        let plain = strip_colours(&line);
        if !plain.trim().is_empty() {
            last = Some(plain.trim().to_string());
        }
    }
    last
}

/// `text` without ANSI escape sequences (`ESC [ … letter`).
fn strip_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip to the sequence's final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether the worker starts (finds its program, loads its model, listens), for `cabin
/// doctor`: the time to `READY`, or why not, with the last line it logged. The worker is
/// stopped again.
pub async fn starts<C>(spec: &WorkerSpec<C>) -> Result<Duration, String> {
    let started = Instant::now();
    let (mut child, _, _) = start(spec, std::process::Stdio::piped(), None).await?;
    let _ = child.kill().await;
    Ok(started.elapsed())
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

/// Has the kernel stop `command`'s process (SIGTERM) when the thread that spawns it ends, as
/// it does when this process is killed: a `Drop` that would stop it never runs then.
pub fn dies_with_parent(command: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and allocates nothing.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        })
    }
}

/// The architecture seccomp sees for this build's system calls (`AUDIT_ARCH_*`).
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

/// x86-64's x32 calls carry this bit in their number; they are refused outright.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const fn bpf(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// `socket(AF_UNIX, …)` fails with EACCES; every other call passes. A system call of another
/// architecture kills the process (a filter for one ABI says nothing of another's numbers).
static NO_UNIX_SOCKETS: [libc::sock_filter; 10] = {
    use libc::{BPF_ABS, BPF_JEQ, BPF_JGE, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W};
    const ARCH: u32 = 4; // offsetof(struct seccomp_data, arch)
    const NR: u32 = 0;
    const ARG0: u32 = 16; // the low half of args[0], little-endian
    [
        bpf(BPF_LD | BPF_W | BPF_ABS, ARCH, 0, 0),
        bpf(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH, 1, 0),
        bpf(BPF_RET | BPF_K, libc::SECCOMP_RET_KILL_PROCESS, 0, 0),
        bpf(BPF_LD | BPF_W | BPF_ABS, NR, 0, 0),
        bpf(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 3, 0),
        bpf(BPF_JMP | BPF_JEQ | BPF_K, libc::SYS_socket as u32, 0, 3),
        bpf(BPF_LD | BPF_W | BPF_ABS, ARG0, 0, 0),
        bpf(BPF_JMP | BPF_JEQ | BPF_K, libc::AF_UNIX as u32, 0, 1),
        bpf(
            BPF_RET | BPF_K,
            libc::SECCOMP_RET_ERRNO | libc::EACCES as u32,
            0,
            0,
        ),
        bpf(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW, 0, 0),
    ]
};

/// Keeps `command`'s process off D-Bus: it cannot open a Unix socket (seccomp), so a worker
/// taken over through a crafted model or request cannot reach the bus and call a vehicle
/// service, although it runs as Cabin's user, whom the bus policy lets call them. Workers
/// need only loopback TCP; `socketpair` (tokio's signal pipe) still works. Failing to install
/// the filter fails the start: a worker never runs unconfined.
pub fn off_the_buses(command: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl only, with a filter in static memory; nothing is allocated.
    unsafe {
        command.pre_exec(|| {
            let program = libc::sock_fprog {
                len: NO_UNIX_SOCKETS.len() as u16,
                filter: NO_UNIX_SOCKETS.as_ptr().cast_mut(),
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &program as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A regression test: `cabin bench`, killed, left its simulator, daemon and bus running.
    #[test]
    fn a_child_dies_with_the_thread_that_started_it() {
        let mut child = std::thread::spawn(|| {
            dies_with_parent(std::process::Command::new("sleep").arg("30"))
                .spawn()
                .unwrap()
        })
        .join()
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the child outlived its parent");
            std::thread::sleep(Duration::from_millis(20));
        }
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGTERM));
    }

    fn shell(script: &str) -> WorkerSpec<()> {
        WorkerSpec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            what: "a test worker",
            program_env: "CABIN_TEST_WORKER",
            connect: Arc::new(|_| Box::pin(async {})),
            yields: Yields {
                nice: 0,
                oom_score_adj: 0,
            },
            checks: Checks::DEFAULT,
        }
    }

    /// Checks fast enough for a test: a hung worker is killed after about a second.
    const QUICK: Checks = Checks {
        warm_up: Duration::from_secs(1),
        every: Duration::from_millis(100),
        answer_within: Duration::from_millis(300),
        failures: 2,
    };

    /// A stand-in `cabin-llm` that prints `READY` with `url` and lives on, each start adding a
    /// line to the returned file; reached through `connect`.
    fn fake_llm(
        url: &str,
        connect: Connect<ChatClient>,
    ) -> (WorkerSpec<ChatClient>, tempfile::NamedTempFile) {
        let starts = tempfile::NamedTempFile::new().unwrap();
        let spec = WorkerSpec {
            program: "/bin/sh".into(),
            args: vec![
                "-c".into(),
                format!("echo started >> \"$0\"; echo READY {url}; exec sleep 600").into(),
                starts.path().into(),
            ],
            what: "a test worker",
            program_env: "CABIN_TEST_WORKER",
            connect,
            yields: Yields {
                nice: 0,
                oom_score_adj: 0,
            },
            checks: QUICK,
        };
        (spec, starts)
    }

    fn plain(url: String) -> Pin<Box<dyn Future<Output = ChatClient> + Send>> {
        Box::pin(async move { ChatClient::new(&url, "test", None) })
    }

    /// A port that takes connections (the kernel's backlog) and never answers.
    fn silent_port() -> (std::net::TcpListener, String) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        (listener, url)
    }

    /// Waits until the worker has been started `n` times and is in a state `matching`.
    async fn until(
        worker: &Worker<ChatClient>,
        starts: &tempfile::NamedTempFile,
        n: usize,
        matching: impl Fn(&WorkerState<ChatClient>) -> bool,
    ) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let started = std::fs::read_to_string(starts.path())
                .unwrap()
                .lines()
                .count();
            if started >= n && matching(&worker.state()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "after {started} starts the worker is {:?}",
                worker.state()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Why the worker next goes down.
    async fn next_down(worker: &Worker<ChatClient>) -> String {
        let mut seen = worker.watch();
        let down = seen
            .wait_for(|s| matches!(s, WorkerState::Down(_)))
            .await
            .unwrap()
            .clone();
        match down {
            WorkerState::Down(why) => why,
            _ => unreachable!("waited for Down"),
        }
    }

    #[tokio::test]
    async fn a_worker_that_is_ready_but_never_answers_is_killed_and_restarted() {
        let (_port, url) = silent_port();
        let (spec, starts) = fake_llm(&url, Arc::new(plain));
        let worker = Worker::supervise(spec);
        until(&worker, &starts, 1, |s| matches!(s, WorkerState::Ready(_))).await;
        let why = next_down(&worker).await;
        assert!(
            why.contains("hung: 2 health checks failed in a row"),
            "{why}"
        );
        until(&worker, &starts, 2, |s| matches!(s, WorkerState::Ready(_))).await;
    }

    #[tokio::test]
    async fn a_worker_whose_warm_up_never_ends_is_killed_and_restarted() {
        let (_port, url) = silent_port();
        let connect = llm_connect("test".into(), "You are a test.".into(), json!([]));
        let (spec, starts) = fake_llm(&url, connect);
        let worker = Worker::supervise(spec);
        let why = next_down(&worker).await;
        assert!(
            why.contains("hung: not warmed up within 1 s; killed"),
            "{why}"
        );
        until(&worker, &starts, 2, |_| true).await;
    }

    #[tokio::test]
    async fn a_worker_that_answers_its_health_checks_is_left_alone() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let answers = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut request = [0u8; 1024];
                let _ = s.read(&mut request).await;
                let body = r#"{"status":"ok"}"#;
                let _ = s
                    .write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).as_bytes())
                    .await;
            }
        });
        let (spec, starts) = fake_llm(&url, Arc::new(plain));
        let worker = Worker::supervise(spec);
        until(&worker, &starts, 1, |s| matches!(s, WorkerState::Ready(_))).await;
        // Ten checks' worth of time.
        tokio::time::sleep(QUICK.every * 10).await;
        assert!(
            matches!(worker.state(), WorkerState::Ready(_)),
            "{:?}",
            worker.state()
        );
        let started = std::fs::read_to_string(starts.path())
            .unwrap()
            .lines()
            .count();
        assert_eq!(started, 1);
        answers.abort();
    }

    #[tokio::test]
    async fn a_worker_that_fails_to_start_says_why_in_its_own_words() {
        let why = starts(&shell(
            "printf 'loading\\n\\033[31merror\\033[0m: the model file is corrupt\\n\\n' >&2; exit 3",
        ))
        .await
        .unwrap_err();
        assert_eq!(
            why,
            "exited with exit status: 3: error: the model file is corrupt"
        );
    }

    #[tokio::test]
    async fn a_worker_that_starts_is_stopped_again() {
        let mut spec = shell("echo $$ > \"$0\"; echo READY 127.0.0.1:1; exec sleep 30");
        let pid_file = tempfile::NamedTempFile::new().unwrap();
        spec.args.push(pid_file.path().into());
        starts(&spec).await.unwrap();
        let pid = std::fs::read_to_string(pid_file.path()).unwrap();
        let pid: i32 = pid.trim().parse().unwrap();
        // Killed and reaped: the process is gone.
        assert_eq!(unsafe { libc::kill(pid, 0) }, -1);
    }
}
