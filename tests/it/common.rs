//! Test harness: a private `dbus-daemon`, the simulator and the daemon as real processes.
//! Every process is killed on drop, so a failing test leaves nothing behind.

#![allow(dead_code)] // each test file uses a different part of the harness

use cabin::runtime::bus::PrivateBus;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const CABIN: &str = env!("CARGO_BIN_EXE_cabin");
pub const SIM: &str = env!("CARGO_BIN_EXE_cabin-vehicle-sim");

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A private session-style bus in a temporary directory.
pub struct TestBus {
    pub address: String,
    _bus: PrivateBus,
    _dir: Option<tempfile::TempDir>,
}

impl TestBus {
    pub fn start() -> TestBus {
        let dir = tempfile::tempdir().unwrap();
        let bus = PrivateBus::start(dir.path()).unwrap();
        TestBus {
            address: bus.address.clone(),
            _bus: bus,
            _dir: Some(dir),
        }
    }

    /// A bus the test configured itself (`dbus-daemon --config-file=config`).
    pub fn with_config(config: &Path) -> TestBus {
        let bus = PrivateBus::spawn(
            Command::new("dbus-daemon").arg(format!("--config-file={}", config.display())),
        )
        .unwrap();
        TestBus {
            address: bus.address.clone(),
            _bus: bus,
            _dir: None,
        }
    }

    /// Kills the bus's `dbus-daemon` (SIGKILL), as a crash would.
    pub fn kill_bus(&self) {
        let status = Command::new("kill")
            .args(["-9", &self._bus.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill failed: {status:?}");
    }

    pub async fn connect(&self) -> zbus::Connection {
        zbus::connection::Builder::address(self.address.as_str())
            .build()
            .await
            .unwrap()
    }

    /// Starts the vehicle simulator and waits until it owns its name.
    pub fn start_sim(&self) -> Proc {
        let mut child = Command::new(SIM)
            .args(["--bus", &self.address])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("ready"), "simulator printed {line:?}");
        Proc(child)
    }

    /// Starts `cabin run` on this bus and waits until `org.cabin.Assistant1` is owned.
    pub async fn start_daemon(&self, profile: Option<&Path>) -> Proc {
        self.start_daemon_with(profile, "off").await
    }

    /// Like [`TestBus::start_daemon`], with this `--llm` (auto, off or a URL).
    pub async fn start_daemon_with(&self, profile: Option<&Path>, llm: &str) -> Proc {
        self.start_daemon_args(
            profile,
            &["--llm", llm, "--input", "off", "--output", "off"],
        )
        .await
    }

    /// Starts `cabin run` on this bus with `args` and waits until it serves.
    pub async fn start_daemon_args(&self, profile: Option<&Path>, args: &[&str]) -> Proc {
        let mut cmd = Command::new(CABIN);
        cmd.args(["run", "--bus", &self.address]).args(args);
        if let Some(p) = profile {
            cmd.arg("--profile").arg(p);
        }
        // The vehicle bus of the default profile is "session": point it at this bus.
        cmd.env("DBUS_SESSION_BUS_ADDRESS", &self.address);
        let child = Proc(cmd.spawn().unwrap());
        self.wait_for_name("org.cabin.Assistant1").await;
        child
    }

    pub async fn wait_for_name(&self, name: &str) {
        let conn = self.connect().await;
        let dbus = zbus::fdo::DBusProxy::new(&conn).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !dbus.name_has_owner(name.try_into().unwrap()).await.unwrap() {
            assert!(
                Instant::now() < deadline,
                "{name} never appeared on the bus"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs the `cabin` CLI with this bus as the session bus.
    pub fn cabin(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new(CABIN);
        cmd.args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .env("CABIN_LLM", "off");
        output_within(cmd, Duration::from_secs(60))
    }
}

/// A spoken command recording of `tests/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A model or tool a test needs is not installed: the test skips with a message, except
/// under CI, where that is a failure. Returns false, for `if !installed() { return }`.
pub fn missing(what: String) -> bool {
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} is missing in CI: scripts/test must install it"
    );
    eprintln!("SKIPPED: {what} is missing");
    false
}

/// The assistant's `State` property.
pub async fn state(conn: &zbus::Connection) -> String {
    let reply = conn
        .call_method(
            Some("org.cabin.Assistant1"),
            "/org/cabin/Assistant1",
            Some("org.freedesktop.DBus.Properties"),
            "Get",
            &("org.cabin.Assistant1", "State"),
        )
        .await
        .unwrap();
    let v: zbus::OwnedVariant = reply.body().deserialize().unwrap();
    String::try_from(v).unwrap()
}

/// Waits until the assistant's `State` is `want`; fails the test past `limit`.
pub async fn until_state(conn: &zbus::Connection, want: &str, limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    while state(conn).await != want {
        assert!(
            std::time::Instant::now() < deadline,
            "the state never became {want} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The simulator's state as JSON, keyed by VSS path.
pub async fn snapshot(conn: &zbus::Connection) -> serde_json::Value {
    let reply = conn
        .call_method(
            Some("org.cabin.VehicleSim"),
            "/org/cabin/VehicleSim",
            Some("org.cabin.VehicleSim.Control1"),
            "Snapshot",
            &(),
        )
        .await
        .unwrap();
    let s: String = reply.body().deserialize().unwrap();
    serde_json::from_str(&s).unwrap()
}

pub async fn misbehave(conn: &zbus::Connection, mode: &str, delay_ms: u32) {
    conn.call_method(
        Some("org.cabin.VehicleSim"),
        "/org/cabin/VehicleSim",
        Some("org.cabin.VehicleSim.Control1"),
        "Misbehave",
        &(mode, delay_ms),
    )
    .await
    .unwrap();
}

/// Calls `org.cabin.Assistant1.<method>(text)`.
pub async fn submit(conn: &zbus::Connection, method: &str, text: &str) -> zbus::Result<String> {
    let reply = conn
        .call_method(
            Some("org.cabin.Assistant1"),
            "/org/cabin/Assistant1",
            Some("org.cabin.Assistant1"),
            method,
            &(text,),
        )
        .await?;
    reply.body().deserialize()
}

/// The default profile with its vehicle timeout changed, written to a temporary file.
pub fn default_profile_with_timeout(dir: &Path, timeout_ms: u64) -> PathBuf {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/profiles/default.toml"
    ))
    .unwrap();
    let text = text.replace("timeout_ms = 2000", &format!("timeout_ms = {timeout_ms}"));
    let path = dir.join("profile.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs a command to completion, failing the test (not hanging it) past `limit`.
pub fn output_within(mut cmd: Command, limit: Duration) -> std::process::Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
    }
}

/// A private bus with the simulator and a daemon on the default profile, all running.
pub struct Up {
    _daemon: Proc,
    _sim: Proc,
    pub conn: zbus::Connection,
    pub bus: TestBus,
}

pub async fn up() -> Up {
    up_with(None).await
}

/// Like [`up`], with the daemon on `profile`.
pub async fn up_with(profile: Option<&Path>) -> Up {
    let bus = TestBus::start();
    let sim = bus.start_sim();
    let daemon = bus.start_daemon(profile).await;
    let conn = bus.connect().await;
    Up {
        _daemon: daemon,
        _sim: sim,
        conn,
        bus,
    }
}

/// POSTs `body` (JSON) to `path` under the worker at `url` (`http://host:port/v1`): the status
/// and the body of the answer.
pub fn post(url: &str, path: &str, body: &str, limit: Duration) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://").split('/').next().unwrap();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(limit)).unwrap();
    let request = format!(
        "POST /v1/{path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").unwrap().1.to_string();
    (status, body)
}

/// The `cabin-llm` program, another package's binary: built by `cargo build --workspace`
/// (scripts/test does).
pub fn cabin_llm() -> PathBuf {
    let worker = cabin::runtime::worker::program("cabin-llm", "CABIN_LLM_WORKER");
    assert!(
        worker.is_file(),
        "no cabin-llm at {}: run `cargo build --release --workspace` first",
        worker.display()
    );
    worker
}

/// Starts a worker for the rest of the test process (from a thread that lives as long:
/// PR_SET_PDEATHSIG fires when the spawning *thread* ends, and each test runs on its own
/// thread); returns the address of its `READY <address>` line.
pub fn worker_for_the_process(mut cmd: Command) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut child, url) = spawn_worker(&mut cmd);
        tx.send(url).unwrap();
        let _ = child.wait();
    });
    rx.recv().unwrap()
}

/// Starts a worker (`cabin-llm serve`, `cabin-asr serve`) and returns it with the address of
/// its `READY <address>` line. The kernel kills it when the spawning thread ends.
pub fn spawn_worker(cmd: &mut Command) -> (std::process::Child, String) {
    use std::os::unix::process::CommandExt;
    cmd.stdout(Stdio::piped());
    // SAFETY: prctl only.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .strip_prefix("READY ")
        .unwrap_or_else(|| panic!("{cmd:?} said {line:?} instead of READY"))
        .trim()
        .to_string();
    (child, address)
}

/// A stand-in OpenAI server on loopback: records each request's body and answers it with
/// what `answer` makes of it (a whole HTTP response), one request per connection. Returns its
/// base URL and the bodies seen.
pub fn stand_in(
    answer: impl Fn(&Value) -> String + Send + 'static,
) -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut request = Vec::new();
            let mut buf = [0u8; 65536];
            // Headers, then Content-Length bytes of body.
            let body = loop {
                let n = conn.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    break None;
                }
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request);
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        break Some(request[end + 4..end + 4 + length].to_vec());
                    }
                }
            };
            let Some(body) = body.and_then(|b| serde_json::from_slice::<Value>(&b).ok()) else {
                continue;
            };
            let response = answer(&body);
            // Recorded before the answer goes, so a caller that has its answer sees it here.
            record.lock().unwrap().push(body);
            let _ = conn.write_all(response.as_bytes());
        }
    });
    (url, seen)
}

/// A whole HTTP response streaming `events` (the `data:` payloads of server-sent events), then
/// `[DONE]`.
pub fn sse(events: &[Value]) -> String {
    let mut reply = String::from(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n",
    );
    for event in events {
        reply.push_str(&format!("data: {event}\n\n"));
    }
    reply + "data: [DONE]\n\n"
}

/// The default profile with a long local budget (a shared 2-core machine), and the cloud on at
/// `base_url` when given.
pub fn with_cloud(base_url: Option<&str>, budget_ms: u64) -> cabin::profile::Profile {
    let mut text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/profiles/default.toml"
    ))
    .unwrap()
    .replace("budget_ms = 20000", "budget_ms = 120000");
    if let Some(url) = base_url {
        text = text.replace(
            "[cloud]\npolicy = \"off\"",
            &format!("[cloud]\npolicy = \"on\"\nbase_url = \"{url}\"\nmodel = \"test\"\nbudget_ms = {budget_ms}"),
        );
    }
    cabin::profile::Profile::parse(&text, "test.toml").unwrap()
}

/// Whether the default profile's local model and the shortlist's embedding model are
/// installed (`cabin models fetch`); a missing one skips the test, or fails it under CI.
pub fn text_models_installed() -> bool {
    let p = cabin::profile::Profile::embedded_default();
    let needed = [
        (p.models.llm.clone(), "local model"),
        (p.models.shortlist.clone(), "shortlist model"),
    ];
    needed.into_iter().all(|(name, what)| {
        let name = name.expect("the default profile names it");
        match cabin::runtime::models::installed(&name, what) {
            Ok(_) => true,
            Err(e) => missing(format!("{e} (run `cabin models fetch`)")),
        }
    })
}

/// `SubmitTextJson(text)`'s outcome.
pub async fn say(conn: &zbus::Connection, text: &str) -> Value {
    serde_json::from_str(&submit(conn, "SubmitTextJson", text).await.unwrap()).unwrap()
}

/// The local model evaluates the 3,300-token persona, tool and example prefix at start: about 20 s
/// on an idle 2-core machine, several times that while the other tests run beside it.
pub const WARM_UP_LIMIT: Duration = Duration::from_secs(900);

/// Waits until the model route answers (the worker loads and warms its prompt cache first;
/// until then the daemon declines what the fast path does not understand).
pub async fn until_the_model_answers(conn: &zbus::Connection, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let out = say(conn, "tell me a joke").await;
        if out["route"] != "decline" {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "the model route never came up: {out}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// A process's memory, watched: [`MemoryWatch::peak_mib`] is its peak resident size (VmHWM);
/// past `limit_mib` resident it is killed, so that a test of a memory bound fails without
/// taking the machine with it (a voice given 4,000 digits at once grew to 22 GB).
pub struct MemoryWatch {
    pid: u32,
    seen: Arc<std::sync::atomic::AtomicU64>,
    killed: Arc<std::sync::atomic::AtomicBool>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

/// A `/proc/PID/status` field in MiB (`VmHWM`, `VmRSS`); None once the process is gone.
pub fn status_mib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024)
}

impl MemoryWatch {
    pub fn start(pid: u32, limit_mib: u64) -> MemoryWatch {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let seen = Arc::new(AtomicU64::new(0));
        let killed = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        std::thread::spawn({
            let (seen, killed, stop) = (seen.clone(), killed.clone(), stop.clone());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    let Some(peak) = status_mib(pid, "VmHWM") else {
                        return;
                    };
                    seen.fetch_max(peak, Ordering::Relaxed);
                    if status_mib(pid, "VmRSS").is_some_and(|rss| rss > limit_mib) {
                        killed.store(true, Ordering::Relaxed);
                        let _ = Command::new("kill")
                            .args(["-KILL", &pid.to_string()])
                            .status();
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        });
        MemoryWatch {
            pid,
            seen,
            killed,
            stop,
        }
    }

    /// The process's peak resident size so far, MiB.
    pub fn peak_mib(&self) -> u64 {
        let seen = self.seen.load(std::sync::atomic::Ordering::Relaxed);
        status_mib(self.pid, "VmHWM").unwrap_or(0).max(seen)
    }

    /// Whether it passed its limit and was killed.
    pub fn killed(&self) -> bool {
        self.killed.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for MemoryWatch {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Unpunctuated English of exactly `chars` characters: a car's words in a fixed shuffle, with
/// no comma or full stop for a voice to pause at.
pub fn unpunctuated(chars: usize) -> String {
    const WORDS: &[&str] = &[
        "the", "car", "is", "driving", "along", "road", "and", "driver", "wants", "to", "open",
        "window", "while", "music", "plays", "seat", "heating", "warm",
    ];
    let mut text = String::new();
    let mut i = 7usize;
    while text.len() <= chars {
        i = (i * 31 + 11) % 97;
        text.push_str(WORDS[i % WORDS.len()]);
        text.push(' ');
    }
    text.truncate(chars);
    if text.ends_with(' ') {
        text.pop();
        text.push('s');
    }
    text
}
