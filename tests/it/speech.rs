//! Speech out with the real Piper voice `cabin models fetch` installs: the spoken reply heard
//! back by Cabin's own speech recognition, Cabin's voice saying the wake word, and the daemon
//! speaking on the null device while the simulator's media is ducked and restored.
//!
//! Without the models these tests skip with a message, except under CI, where that fails.

use crate::common;

use common::missing;

use cabin::profile::Profile;
use cabin::speak::playback::Output;
use cabin::speak::speaker::{Speaker, SpeechEnd, Spoken};
use common::TestBus;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Whether every model of the default profile is installed.
fn models() -> bool {
    let p = Profile::embedded_default();
    let dir = cabin::runtime::models::default_dir();
    for (_, name) in p.models.needed() {
        let m = cabin::runtime::models::find(&name).unwrap();
        if m.kind != "llm" && !dir.join(m.file).is_file() {
            return missing(format!(
                "{} (run `cabin models fetch`)",
                dir.join(m.file).display()
            ));
        }
    }
    true
}

/// Words as compared: lower case, no punctuation, "kilometre" as one word however written.
fn words(text: &str) -> Vec<String> {
    cabin::text::tokenize(text)
        .into_iter()
        .map(|t| match t.norm.as_str() {
            "kilometers" | "km" => "kilometres".to_string(),
            _ => t.norm,
        })
        .collect()
}

#[test]
fn words_compare_spelling_and_numbers_alike() {
    assert_eq!(
        words("You have about 412 kilometers of range left."),
        words("you have about four hundred and twelve kilometres of range left")
    );
    assert_eq!(words("412 km"), words("412 kilometres"));
    assert_ne!(words("412 kilometres"), words("421 kilometres"));
}

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_spoken_reply_transcribes_back_to_its_text() {
    if !models() {
        return;
    }
    let bus = TestBus::start();
    let _sim = bus.start_sim();
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("reply.wav");
    let wav_arg = wav.to_str().unwrap();
    let profile = concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/default.toml");
    let said = json(&bus.cabin(&[
        "say",
        "--profile",
        profile,
        "--json",
        "--wav",
        wav_arg,
        "what's my range",
    ]));
    let reply = said["reply"].as_str().unwrap();
    assert!(reply.contains("range"), "{said}");
    let speech = &said["speech"];
    assert!(
        speech["voice"].as_str().unwrap().starts_with("Piper"),
        "fell back from the Piper voice: {said}"
    );
    assert!(speech["first_audio_ms"].as_f64().unwrap() > 0.0, "{said}");
    assert!(speech["real_time_factor"].as_f64().unwrap() > 0.0, "{said}");
    let heard = json(&bus.cabin(&["transcribe", "--json", wav_arg]));
    let text = heard["text"].as_str().unwrap();
    assert_eq!(words(text), words(reply), "heard {text:?} for {reply:?}");
    // The WAV lasts as long as the speech the speaker reported.
    let seconds = heard["audio_s"].as_f64().unwrap();
    let reported = speech["audio_s"].as_f64().unwrap();
    assert!(
        (seconds - reported).abs() < 0.1,
        "{seconds} s vs {reported} s"
    );
}

#[test]
fn cabins_voice_saying_the_wake_word_is_flagged() {
    if !models() {
        return;
    }
    let profile = Profile::embedded_default();
    let voice = cabin::speak::voice::load(&profile).unwrap();
    assert!(voice.name().starts_with("Piper"), "{}", voice.name());
    let keyword = profile.models.wake.as_deref().unwrap();
    let wake = cabin::hear::wake::WakeWord::load(
        &cabin::hear::wake::WakeModels::resolve(keyword).unwrap(),
    )
    .unwrap();
    let threshold = wake.threshold(profile.listen.wake_threshold);
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let speaker = Speaker::start(
        voice,
        Output::Wav(dir.path().join("out.wav")),
        Some((wake, threshold)),
        tx,
    )
    .unwrap();
    let mut flagged = Vec::new();
    for (utterance, text) in [
        "You can call me by saying hey Cabin.",
        "You have about four hundred kilometres of range left.",
    ]
    .into_iter()
    .enumerate()
    {
        let utterance = utterance as u64;
        speaker.say(utterance, text);
        speaker.end(utterance);
        loop {
            match rx.blocking_recv().unwrap() {
                Spoken::Sentence { own_wake, .. } => flagged.push(own_wake),
                Spoken::Done { end, .. } => {
                    assert_eq!(end, SpeechEnd::Finished);
                    break;
                }
            }
        }
    }
    assert_eq!(flagged, [true, false]);
}

async fn duck_level(conn: &zbus::Connection) -> u64 {
    common::snapshot(conn).await["Vehicle.Cabin.Infotainment.Media.DuckLevel"]
        .as_u64()
        .unwrap()
}

/// Waits for the media's duck level to be `want` (ducking is a bus call of its own, made
/// as the state changes).
async fn until_duck_level(conn: &zbus::Connection, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let level = duck_level(conn).await;
        if level == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the media's duck level stayed {level}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls until the state is `want`; every state seen on the way.
async fn until_state(conn: &zbus::Connection, want: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen: Vec<String> = Vec::new();
    loop {
        let s = common::state(conn).await;
        if seen.last() != Some(&s) {
            seen.push(s.clone());
        }
        if s == want {
            return seen;
        }
        assert!(Instant::now() < deadline, "never {want}: {seen:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn call(conn: &zbus::Connection, method: &str) {
    conn.call_method(
        Some("org.cabin.Assistant1"),
        "/org/cabin/Assistant1",
        Some("org.cabin.Assistant1"),
        method,
        &(),
    )
    .await
    .unwrap_or_else(|e| panic!("{method}: {e}"));
}

/// The daemon speaking on the null device (in real time) with the real voice, listening to
/// real-time silence.
async fn speaking_daemon(bus: &TestBus) -> common::Proc {
    bus.start_daemon_args(
        None::<&Path>,
        &["--llm", "off", "--input", "null", "--output", "null"],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_ducks_the_media_while_it_speaks_and_restores_it_after() {
    if !models() {
        return;
    }
    let bus = TestBus::start();
    let _sim = bus.start_sim();
    let _daemon = speaking_daemon(&bus).await;
    let conn = bus.connect().await;
    assert_eq!(duck_level(&conn).await, 100);
    let reply = common::submit(&conn, "SubmitText", "what's my range")
        .await
        .unwrap();
    assert!(reply.contains("range"), "{reply}");
    // SubmitText answers as the reply starts to play: Cabin is speaking, the media ducked.
    let speaking = Instant::now();
    assert_eq!(common::state(&conn).await, "Speaking");
    until_duck_level(&conn, 30).await;
    // Speaking ends when the last sample has played (the reply is about three seconds long);
    // the follow-up window opens and the media comes back.
    let seen = until_state(&conn, "FollowUp").await;
    assert_eq!(seen, ["Speaking", "FollowUp"]);
    assert!(speaking.elapsed() > Duration::from_secs(2));
    until_duck_level(&conn, 100).await;
}

/// Speaks a reply (the media ducked), interrupts it with `method`, and checks that the state
/// is `then` right away and that the media comes back.
async fn interrupt_speech(method: &str, then: &str) {
    let bus = TestBus::start();
    let _sim = bus.start_sim();
    let _daemon = speaking_daemon(&bus).await;
    let conn = bus.connect().await;
    common::submit(&conn, "SubmitText", "what's my range")
        .await
        .unwrap();
    assert_eq!(common::state(&conn).await, "Speaking");
    until_duck_level(&conn, 30).await;
    call(&conn, method).await;
    assert_eq!(common::state(&conn).await, then);
    until_duck_level(&conn, 100).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn push_to_talk_while_speaking_stops_the_speech_and_listens() {
    if models() {
        interrupt_speech("Activate", "Listening").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_while_speaking_stops_the_speech_and_restores_the_media() {
    if models() {
        interrupt_speech("Cancel", "Idle").await;
    }
}

/// eSpeak NG speaks when the profile asks for it (the minimal image's voice).
#[test]
fn espeak_is_the_fallback_voice() {
    if Command::new("espeak-ng").arg("--version").output().is_err() {
        missing("espeak-ng (scripts/setup installs it)".into());
        return;
    }
    let mut profile = Profile::embedded_default();
    profile.models.tts = Some("espeak".into());
    let mut voice = cabin::speak::voice::load(&profile).unwrap();
    assert!(voice.name().starts_with("eSpeak"), "{}", voice.name());
    let audio = voice.synthesize("Twenty one degrees.").unwrap();
    let seconds = audio.len() as f64 / voice.sample_rate() as f64;
    assert!((0.5..5.0).contains(&seconds), "{seconds} s");
}

/// An OpenAI-compatible endpoint that streams a two-sentence answer and holds back the second
/// sentence until the returned sender is dropped, as a slow model would.
fn slow_model() -> (String, std::sync::mpsc::Sender<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let (release, held) = std::sync::mpsc::channel::<()>();
    let held = std::sync::Arc::new(std::sync::Mutex::new(held));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let held = held.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                let _ = conn.read(&mut buf);
                let piece = |text: &str| {
                    format!("data: {{\"choices\": [{{\"index\": 0, \"delta\": {{\"content\": \"{text}\"}}}}]}}\n\n")
                };
                let _ = conn.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n{}",
                        piece("The first sentence is here. ")
                    )
                    .as_bytes(),
                );
                // Until released (or a minute, so that a failing test still ends).
                let _ = held.lock().unwrap().recv_timeout(Duration::from_secs(60));
                let _ = conn.write_all(
                    format!("{}data: [DONE]\n\n", piece("The second one follows.")).as_bytes(),
                );
            });
        }
    });
    (url, release)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_model_answer_is_spoken_while_it_is_still_being_generated() {
    if !models() {
        return;
    }
    let bus = TestBus::start();
    let _sim = bus.start_sim();
    let (model, release) = slow_model();
    let _daemon = bus
        .start_daemon_args(
            None::<&Path>,
            &["--llm", &model, "--input", "off", "--output", "null"],
        )
        .await;
    let conn = bus.connect().await;
    let answer = tokio::spawn({
        let conn = conn.clone();
        async move { common::submit(&conn, "SubmitText", "tell me a joke").await }
    });
    // The model holds back its second sentence: speaking now means the first is playing.
    until_state(&conn, "Speaking").await;
    assert!(
        !answer.is_finished(),
        "spoke only after the answer was complete"
    );
    drop(release);
    let reply = answer.await.unwrap().unwrap();
    assert!(
        reply.contains("The first sentence is here. The second one follows."),
        "{reply}"
    );
    until_state(&conn, "FollowUp").await;
}
