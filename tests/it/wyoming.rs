//! Cabin's Wyoming services — the recogniser (`cabin-asr serve`), the voice and the wake word
//! (`cabin wyoming`) — driven by the `wyoming` Python package Home Assistant uses
//! (`tests/wyoming/client.py`), not only by Cabin's own client.
//!
//! The package comes from PyPI into a virtual environment that scripts/test makes
//! (`CABIN_WYOMING_PYTHON` names its interpreter). Without it, or without the models, the test
//! skips with a message, except under CI, where that is a failure.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// A Python with the `wyoming` package.
fn python() -> Option<PathBuf> {
    let python = std::env::var_os("CABIN_WYOMING_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| "python3".into());
    let has = Command::new(&python)
        .args(["-c", "import wyoming"])
        .status()
        .is_ok_and(|s| s.success());
    if has {
        Some(python)
    } else {
        common::missing(format!(
            "the wyoming Python package for {} (scripts/test installs it and sets CABIN_WYOMING_PYTHON)",
            python.display()
        ));
        None
    }
}

fn installed(name: &str) -> bool {
    match cabin::runtime::models::installed(name, "model") {
        Ok(_) => true,
        Err(e) => common::missing(format!("{e}")),
    }
}

/// A child killed with the test.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `cabin wyoming` serving the voice and the wake word on free ports: the process and the
/// voice's and the wake word's addresses.
fn services() -> (Child, String, String) {
    let (services, uris) = common::spawn_worker(Command::new(common::CABIN).args([
        "wyoming",
        "--tts",
        "tcp://127.0.0.1:0",
        "--wake",
        "tcp://127.0.0.1:0",
    ]));
    let uri = |what: &str| {
        uris.split_whitespace()
            .find_map(|u| u.strip_prefix(what))
            .unwrap_or_else(|| panic!("no {what} in {uris}"))
            .to_string()
    };
    (Child(services), uri("tts="), uri("wake="))
}

#[test]
fn home_assistants_wyoming_client_uses_cabins_recogniser_voice_and_wake_word() {
    let Some(python) = python() else { return };
    let profile = cabin::Profile::embedded_default();
    let (Some(asr), Some(tts), Some(wake)) = (
        profile.models.asr.clone(),
        profile.models.tts.clone(),
        profile.models.wake.clone(),
    ) else {
        panic!("the default profile names a recogniser, a voice and a wake word");
    };
    if ![asr.as_str(), tts.as_str(), wake.as_str()]
        .into_iter()
        .all(installed)
    {
        return;
    }
    let model = cabin::runtime::models::installed(&asr, "model").unwrap();
    let (asr, asr_uri) = common::spawn_worker(
        Command::new(cabin::runtime::worker::program(
            "cabin-asr",
            "CABIN_ASR_WORKER",
        ))
        .args([
            "serve",
            "--threads",
            "2",
            "--listen",
            "tcp://127.0.0.1:0",
            "--model",
        ])
        .arg(model),
    );
    let _asr = Child(asr);
    let (_services, tts, wake) = services();
    // Speech without the wake word: eSpeak NG, at 16 kHz.
    let dir = tempfile::tempdir().unwrap();
    let spoken = dir.path().join("spoken.wav");
    let status = Command::new("espeak-ng")
        .args(["-v", "en-gb", "-w"])
        .arg(&spoken)
        .arg("turn on the seat heating and open the window please")
        .status();
    if !status.is_ok_and(|s| s.success()) {
        common::missing("espeak-ng (scripts/setup installs it)".into());
        return;
    }
    let no_wake = dir.path().join("no-wake.wav");
    cabin::hear::audio::write_wav(&no_wake, &cabin::hear::audio::read(&spoken).unwrap()).unwrap();
    let out = common::output_within(
        {
            let mut c = Command::new(python);
            c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/wyoming/client.py"))
                .args(["--asr", &asr_uri, "--tts", &tts, "--wake", &wake])
                .arg("--command")
                .arg(common::fixture(
                    "hey-cabin-set-the-temperature-to-twenty-degrees.wav",
                ))
                .arg("--no-wake")
                .arg(&no_wake);
            c
        },
        std::time::Duration::from_secs(180),
    );
    let said = String::from_utf8_lossy(&out.stdout);
    eprintln!("{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the Python client failed");
    for service in ["asr:", "tts:", "wake:"] {
        assert!(said.contains(service), "{said}");
    }
}

#[test]
fn wyoming_without_a_service_or_with_a_bad_address_says_what_to_do() {
    let out = Command::new(common::CABIN).arg("wyoming").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--tts URI"), "{err}");
    let out = Command::new(common::CABIN)
        .args(["wyoming", "--tts", "http://localhost:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tcp://HOST:PORT"), "{err}");
}

/// Sends `events` to the service at `uri`; the first event it answers.
async fn answer(uri: &str, events: &[wyoming::Event]) -> Option<wyoming::Event> {
    let addr = uri.strip_prefix("tcp://").unwrap();
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (r, mut w) = s.into_split();
    let mut r = tokio::io::BufReader::new(r);
    for e in events {
        wyoming::write(&mut w, e).await.unwrap();
    }
    tokio::time::timeout(std::time::Duration::from_secs(30), wyoming::read(&mut r))
        .await
        .expect("an answer within 30 s")
        .unwrap()
}

#[tokio::test]
async fn bad_requests_to_the_voice_and_the_wake_word_get_wyoming_errors() {
    let profile = cabin::Profile::embedded_default();
    let (Some(tts), Some(wake)) = (profile.models.tts.clone(), profile.models.wake.clone()) else {
        panic!("the default profile names a voice and a wake word");
    };
    if !installed(&tts) || !installed(&wake) {
        return;
    }
    let (_services, tts, wake) = services();
    let code = |e: Option<wyoming::Event>| {
        let e = e.expect("an event");
        assert_eq!(e.kind, "error", "{e:?}");
        e.str("code").unwrap_or_default().to_string()
    };
    use serde_json::json;
    use wyoming::{AudioFormat, Event};
    assert_eq!(
        code(answer(&tts, &[Event::new("synthesize", json!({}))]).await),
        "bad-request"
    );
    let long = "word ".repeat(1_000);
    assert_eq!(
        code(answer(&tts, &[Event::new("synthesize", json!({"text": long}))]).await),
        "too-long"
    );
    // 44.1 kHz audio: the wake word takes 16 kHz only, and says so.
    let cd = AudioFormat {
        rate: 44_100,
        width: 2,
        channels: 1,
    };
    let e = answer(&wake, &[wyoming::audio_start(cd)]).await;
    let text = e
        .as_ref()
        .and_then(|e| e.str("text"))
        .unwrap_or_default()
        .to_string();
    assert_eq!(code(e), "bad-audio");
    assert!(text.contains("16 kHz"), "{text}");
    assert_eq!(
        code(
            answer(
                &wake,
                &[Event::new("detect", json!({"names": ["okay_nabu"]}))]
            )
            .await
        ),
        "unknown-wake-word"
    );
    // Not Wyoming at all: told so, and the service goes on.
    let addr = wake.strip_prefix("tcp://").unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut s, b"GET / HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let (r, _w) = s.into_split();
    let e = wyoming::read(&mut tokio::io::BufReader::new(r))
        .await
        .unwrap();
    assert_eq!(code(e), "malformed-event");
    let info = answer(&wake, &[Event::new("describe", json!({}))])
        .await
        .unwrap();
    assert_eq!(info.kind, "info");
}

/// Asks the voice at `uri` to say `text`: the seconds of audio it streamed, or the code of its
/// error; None when the connection ended first.
async fn synthesize(uri: &str, text: &str) -> Option<Result<f64, String>> {
    use wyoming::Event;
    let addr = uri.strip_prefix("tcp://").unwrap();
    let s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (r, mut w) = s.into_split();
    let mut r = tokio::io::BufReader::new(r);
    wyoming::write(
        &mut w,
        &Event::new("synthesize", serde_json::json!({ "text": text })),
    )
    .await
    .ok()?;
    let (mut bytes, mut rate) = (0usize, 1u64);
    loop {
        let event =
            tokio::time::timeout(std::time::Duration::from_secs(600), wyoming::read(&mut r))
                .await
                .expect("the voice answers within 10 minutes")
                .ok()??;
        match event.kind.as_str() {
            "audio-start" => {
                rate = event.uint("rate").unwrap_or(1) * event.uint("width").unwrap_or(1)
            }
            "audio-chunk" => bytes += event.payload.len(),
            "audio-stop" => return Some(Ok(bytes as f64 / rate as f64)),
            "error" => return Some(Err(event.str("code").unwrap_or_default().to_string())),
            _ => {}
        }
    }
}

/// Issue 37: over Wyoming TTS a 3,999-digit text grew `cabin wyoming` to 22 GB (the voice was
/// given all of it at once). Texts over the limit are refused; the longest it takes, however
/// unpunctuated, are spoken a piece at a time. The bound: the loaded voice (about 130 MiB)
/// plus the voice's runs of at most 100 phonemes (about 175 MiB more, measured with
/// `examples/voice-memory`), with room to spare: 400 MiB, as for the daemon.
#[tokio::test(flavor = "multi_thread")]
async fn the_voices_memory_is_bounded_whatever_the_length_of_the_text() {
    const BOUND_MIB: u64 = 400;
    let profile = cabin::Profile::embedded_default();
    if !installed(profile.models.tts.as_deref().unwrap()) {
        return;
    }
    let (voice, uris) = common::spawn_worker(Command::new(common::CABIN).args([
        "wyoming",
        "--tts",
        "tcp://127.0.0.1:0",
    ]));
    let voice = Child(voice);
    let uri = uris.strip_prefix("tts=").unwrap().to_string();
    let memory = common::MemoryWatch::start(voice.0.id(), BOUND_MIB);
    let said = synthesize(&uri, "Hello.").await;
    assert!(matches!(said, Some(Ok(s)) if s > 0.2), "{said:?}");
    let loaded = memory.peak_mib();
    let limit = cabin::speak::wyoming::MAX_TEXT;
    let texts = [
        (
            "10,000 unpunctuated characters",
            common::unpunctuated(10_000),
            false,
        ),
        ("3,999 digits", "9".repeat(3_999), false),
        (
            "unpunctuated words at the limit",
            common::unpunctuated(limit),
            true,
        ),
        ("digits at the limit", "9".repeat(limit), true),
        (
            "one word at the limit",
            "abcdefghij".repeat(limit / 10),
            true,
        ),
    ];
    for (what, text, spoken) in texts {
        let said = synthesize(&uri, &text).await;
        let peak = memory.peak_mib();
        eprintln!("cabin wyoming, {what}: {said:?}, peak {peak} MiB (loaded: {loaded} MiB)");
        assert!(
            !memory.killed() && peak <= BOUND_MIB,
            "cabin wyoming passed {BOUND_MIB} MiB on {what} (killed: {})",
            memory.killed()
        );
        match said {
            Some(Ok(seconds)) if spoken => assert!(seconds > 10.0, "{what}: {seconds} s"),
            Some(Err(code)) if !spoken => assert_eq!(code, "too-long", "{what}"),
            other => panic!("{what}: {other:?}"),
        }
    }
}
