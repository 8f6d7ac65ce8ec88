//! `scripts/demo`'s prompt, `cabin chat`, against what README.md shows: the transcript in the
//! README is read here, typed line by line at a person's pace into one `cabin chat`, and every
//! reply is checked word for word, so the README and Cabin cannot drift apart. A dialog belongs
//! to its D-Bus connection: a later `cabin say` starts afresh.
//!
//! The demo's daemon runs the local model (`cabin models fetch`) as `scripts/demo` does; the
//! test skips without it, except in CI. Every line of the transcript is the grammar's, so no
//! reply waits for the model to load.

use crate::common;

use common::{output_within, text_models_installed, TestBus, CABIN};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const README: &str = include_str!("../../README.md");
const DEMO: &str = include_str!("../../scripts/demo");

/// The README's demo transcript: each `you> ` line with the `cabin> ` reply that follows it.
fn readme_transcript() -> Vec<(String, String)> {
    let block = README
        .split("```text\n")
        .skip(1)
        .filter_map(|b| b.split_once("\n```").map(|(block, _)| block))
        .find(|b| b.starts_with("you> "))
        .expect("README.md has no ```text block that starts with `you> `");
    let mut lines = block.lines();
    let mut turns = Vec::new();
    while let Some(said) = lines.next() {
        let said = said
            .strip_prefix("you> ")
            .unwrap_or_else(|| panic!("README transcript: {said:?} is not a `you> ` line"));
        let reply = lines
            .next()
            .and_then(|l| l.strip_prefix("cabin> "))
            .unwrap_or_else(|| panic!("README transcript: no `cabin> ` reply after {said:?}"));
        turns.push((said.to_string(), reply.to_string()));
    }
    turns
}

/// The answer window scripts/demo gives its daemon (`typed_follow_up_seconds=…`).
fn demo_follow_up() -> Duration {
    let seconds = DEMO
        .lines()
        .find_map(|l| l.strip_prefix("typed_follow_up_seconds="))
        .expect("scripts/demo sets no typed_follow_up_seconds");
    Duration::from_secs_f64(seconds.trim().parse().unwrap())
}

/// The profile scripts/demo runs: the default one with its typed answer window. The local
/// route's budget is raised too, as the tests beside this one share two cores with it (the
/// demo runs alone).
fn demo_profile(dir: &Path) -> PathBuf {
    let default = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/profiles/default.toml"
    ))
    .unwrap();
    let text = default
        .replace(
            "follow_up_seconds = 5.0 ",
            &format!("follow_up_seconds = {} ", demo_follow_up().as_secs_f64()),
        )
        .replace("budget_ms = 20000", "budget_ms = 120000");
    assert_ne!(text, default, "profiles/default.toml changed its lines");
    let path = dir.join("demo.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A running `cabin chat`: lines go to its standard input, its output lines come back.
struct Chat {
    child: common::Proc,
    stdin: std::process::ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Chat {
    fn start(bus: &TestBus, args: &[&str]) -> Chat {
        let mut child = Command::new(CABIN)
            .arg("chat")
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines() {
                if tx.send(line.unwrap()).is_err() {
                    return;
                }
            }
        });
        Chat {
            child: common::Proc(child),
            stdin,
            lines,
        }
    }

    /// Types `text` and returns the line `cabin chat` prints for it.
    fn say(&mut self, text: &str) -> String {
        writeln!(self.stdin, "{text}").unwrap();
        self.lines
            .recv_timeout(Duration::from_secs(300))
            .unwrap_or_else(|_| panic!("`cabin chat` printed nothing for {text:?}"))
    }

    /// Ends the input and waits for `cabin chat` to exit: how it exited, and its errors.
    fn finish(self) -> (std::process::ExitStatus, String) {
        let Chat {
            mut child, stdin, ..
        } = self;
        drop(stdin);
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut err).unwrap();
        (child.0.wait().unwrap(), err)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_prompt_says_what_the_readme_shows() {
    let transcript = readme_transcript();
    assert!(transcript.len() >= 5, "{transcript:?}");
    if !text_models_installed() {
        return;
    }
    let bus = TestBus::start();
    let _sim = bus.start_sim();
    let dir = tempfile::tempdir().unwrap();
    let profile = demo_profile(dir.path());
    let _daemon = bus.start_daemon_with(Some(&profile), "auto").await;

    // A person reads each reply before typing the next line: longer than a car's answer window
    // (which would end the dialog), well within the demo's.
    let car_window = cabin::Profile::embedded_default().dialog.follow_up;
    let pause = car_window + Duration::from_secs(1);
    assert!(pause < demo_follow_up());
    let mut chat = Chat::start(&bus, &[]);
    for (i, (said, expected)) in transcript.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(pause).await;
        }
        assert_eq!(
            chat.say(said),
            format!("cabin> {expected}"),
            "README.md's demo says the reply to {said:?} is {expected:?}"
        );
    }
    let (status, err) = chat.finish();
    assert!(status.success(), "`cabin chat` ended with {status}: {err}");
}

/// Each `cabin say` is one turn on a connection of its own: it never answers the question
/// another one was asked. `cabin chat` answers its own.
#[tokio::test]
async fn a_dialog_belongs_to_its_connection() {
    let up = common::up().await;
    let bus = &up.bus;
    let said = |text: &str| -> serde_json::Value {
        let out = bus.cabin(&["say", "--json", text]);
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eq!(said("open the window")["awaiting"], "slot:window");
    let late = said("the rear left one");
    assert_eq!(late["action"], serde_json::Value::Null, "{late}");

    let mut chat = Chat::start(bus, &["--json"]);
    let asked: serde_json::Value = serde_json::from_str(&chat.say("open the window")).unwrap();
    assert_eq!(asked["awaiting"], "slot:window", "{asked}");
    let answered: serde_json::Value = serde_json::from_str(&chat.say("the rear left one")).unwrap();
    assert_eq!(
        answered["reply"], "Opening the rear left window.",
        "{answered}"
    );
    assert_eq!(answered["action"]["success"], true, "{answered}");
}

/// A bad line gets an error and the conversation goes on; an empty line ends it.
#[tokio::test]
async fn chat_survives_a_bad_line_and_ends_at_an_empty_one() {
    let up = common::up().await;
    let mut cmd = Command::new(CABIN);
    cmd.arg("chat")
        .env("DBUS_SESSION_BUS_ADDRESS", &up.bus.address);
    let too_long = "a".repeat(2000);
    let input = format!("{too_long}\nturn on the cabin lights\n\nopen the boot\n");
    let out = with_input(cmd, input.as_bytes());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout, "cabin> Cabin lights on.\n", "{stderr}");
    assert!(
        stderr.contains("longer than 1000 characters"),
        "the bad line's error: {stderr}"
    );
    assert_eq!(out.status.code(), Some(1), "a line failed: {stderr}");
}

#[tokio::test]
async fn chat_without_a_daemon_explains_what_to_do() {
    let bus = TestBus::start();
    let mut cmd = Command::new(CABIN);
    cmd.arg("chat")
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address);
    let out = with_input(cmd, b"open the window\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no Cabin daemon is running") && err.contains("cabin run"),
        "{err}"
    );
}

/// The daemon goes away in the middle of a conversation: the next line ends the chat with the
/// fix, instead of waiting or going on without it.
#[tokio::test]
async fn chat_names_the_fix_when_the_daemon_dies() {
    let bus = TestBus::start();
    let _sim = bus.start_sim();
    let daemon = bus.start_daemon(None).await;
    let mut chat = Chat::start(&bus, &[]);
    assert_eq!(
        chat.say("turn on the cabin lights"),
        "cabin> Cabin lights on."
    );
    drop(daemon);
    writeln!(chat.stdin, "turn off the cabin lights").unwrap();
    let (status, err) = chat.finish();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("no Cabin daemon is running") && err.contains("`cabin run`"),
        "{err}"
    );
}

/// Runs `cmd` with `input` on its standard input, to completion.
fn with_input(mut cmd: Command, input: &[u8]) -> std::process::Output {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), input).unwrap();
    cmd.stdin(std::fs::File::open(file.path()).unwrap());
    output_within(cmd, Duration::from_secs(60))
}
