//! The speech recognition worker (`cabin-asr`) over the Wyoming protocol, with the whisper
//! model `cabin models fetch` converts, on real human speech (scripts/fetch-speech).
//!
//! Without the model or the recordings these tests skip with a message, except under CI, where
//! either missing is a failure.

use crate::common;

use cabin::asr::{Address, AsrClient};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncWriteExt, BufReader as AsyncBufReader};
use wyoming::{AudioFormat, Event};

const MODEL: &str = "whisper-tiny.en";
const LIMIT: Duration = Duration::from_secs(60);

fn missing(what: String) -> Option<PathBuf> {
    common::missing(what);
    None
}

fn model() -> Option<PathBuf> {
    let path = cabin::runtime::models::default_dir()
        .join(cabin::runtime::models::find(MODEL).unwrap().file);
    if path.is_file() {
        Some(path)
    } else {
        missing(format!("{} (run `cabin models fetch`)", path.display()))
    }
}

/// The recordings of scripts/fetch-speech.
fn speech() -> Option<PathBuf> {
    let dir = std::env::var_os("CABIN_SPEECH_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/cabin/speech"))
        })?;
    if dir.join("goforward.raw").is_file() {
        Some(dir)
    } else {
        missing(format!("{} (run scripts/fetch-speech)", dir.display()))
    }
}

/// A `cabin-asr` for one test; killed when dropped (and by the kernel with the test thread).
struct Asr {
    child: Child,
    address: String,
}

impl Asr {
    fn start(model: &Path, listen: &str) -> Asr {
        Asr::start_with(model, listen, &[])
    }

    fn start_with(model: &Path, listen: &str, args: &[&str]) -> Asr {
        let mut cmd = Asr::command(model, listen);
        cmd.args(args);
        Asr::spawn(cmd)
    }

    /// `cabin-asr serve` on `listen` with `model`, to be spawned.
    fn command(model: &Path, listen: &str) -> Command {
        let program = cabin::runtime::worker::program("cabin-asr", "CABIN_ASR_WORKER");
        assert!(
            program.is_file(),
            "no cabin-asr at {}: run `cargo build --release --workspace` first",
            program.display()
        );
        let mut cmd = Command::new(program);
        cmd.args(["serve", "--threads", "2", "--listen", listen, "--model"])
            .arg(model);
        cmd
    }

    fn spawn(mut cmd: Command) -> Asr {
        let (child, address) = common::spawn_worker(&mut cmd);
        Asr { child, address }
    }

    fn client(&self, prompt: Option<String>) -> AsrClient {
        AsrClient::new(self.address.parse().unwrap(), prompt)
    }
}

impl Drop for Asr {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Tests that run whisper take turns: each worker uses both cores, and OpenMP's spinning
/// threads collapse when two workers share them (a 2 s command took over 30 s in CI).
pub(crate) static WHISPER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Word error rate pieces: edits between normalised word sequences, and the reference's length.
/// Normalised as whisper's own English WER normaliser does: numbers spoken or written compare
/// equal ("ten" = "10"), and titles are spelled out ("Mr." = "mister").
fn word_errors(reference: &str, hypothesis: &str) -> (usize, usize) {
    let words = |t: &str| -> Vec<String> {
        cabin::text::tokenize(t)
            .into_iter()
            .map(|t| match t.norm.as_str() {
                "mr" => "mister".to_string(),
                "mrs" => "missus".to_string(),
                "dr" => "doctor".to_string(),
                _ => t.norm,
            })
            .collect()
    };
    let (r, h) = (words(reference), words(hypothesis));
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, hw) in h.iter().enumerate() {
            let sub = prev[j] + usize::from(rw != hw);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    (prev[h.len()], r.len())
}

#[test]
fn word_errors_normalise_numbers_titles_and_punctuation() {
    assert_eq!(
        word_errors(
            "and mister john went ten meters",
            "And Mr. John went 10 meters."
        ),
        (0, 6)
    );
    assert_eq!(
        word_errors("four queen of clubs", "Four queen of clothes."),
        (1, 4)
    );
    assert_eq!(word_errors("a a amiable", "a amiable"), (1, 3));
}

/// Every recording with its reference transcript.
fn corpus(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = vec![(
        dir.join("goforward.raw"),
        "go forward ten meters".to_string(),
    )];
    for (sub, list) in [
        ("librivox", "transcription"),
        ("cards", "cards.transcription"),
    ] {
        let text = std::fs::read_to_string(dir.join(sub).join(list)).unwrap();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            // "<s> words </s> (id)"; the file is the id's last path part.
            let (words, id) = line.rsplit_once('(').unwrap();
            let id = id.trim_end_matches(')').trim();
            let file = dir
                .join(sub)
                .join(format!("{}.wav", id.rsplit('/').next().unwrap()));
            let words = words.replace("<s>", "").replace("</s>", "");
            out.push((file, words.trim().to_string()));
        }
    }
    out
}

#[test]
fn real_speech_is_transcribed_with_a_low_word_error_rate() {
    let _whisper = WHISPER.blocking_lock();
    let (Some(model), Some(speech)) = (model(), speech()) else {
        return;
    };
    let asr = Asr::start(&model, "tcp://127.0.0.1:0");
    let corpus = corpus(&speech);
    assert_eq!(corpus.len(), 11);
    rt().block_on(async {
        // As Cabin sends it for the default profile (no decoder prompt: docs/speech.md).
        let prompt = cabin::asr::decoder_prompt(&cabin::profile::Profile::embedded_default());
        let client = asr.client(prompt);
        let (mut errors, mut words) = (0, 0);
        for (file, reference) in &corpus {
            let samples = cabin::hear::audio::read(file).unwrap();
            let t = client.transcribe(&samples, LIMIT).await.unwrap();
            let (e, n) = word_errors(reference, &t.text);
            eprintln!("{e}/{n} {:>6.0} ms  {:?} <- {reference:?}", t.ms, t.text);
            errors += e;
            words += n;
        }
        let wer = errors as f64 / words as f64;
        eprintln!("word error rate: {errors}/{words} = {:.1} %", wer * 100.0);
        // Issue #3's bar for tiny.en.
        assert!(wer <= 0.10, "word error rate {:.1} %", wer * 100.0);
    });
}

/// Issue 40: the transcript says how sure the recogniser was, and it is less sure of words
/// heard through loud noise; at the default profile's `confirm_below`, clean real speech is
/// rarely said back.
#[test]
fn transcripts_carry_the_recognisers_confidence() {
    let _whisper = WHISPER.blocking_lock();
    let (Some(model), Some(speech)) = (model(), speech()) else {
        return;
    };
    let least = cabin::profile::Profile::embedded_default()
        .listen
        .confirm_below
        .expect("the default profile says back words heard unsure");
    let asr = Asr::start(&model, "tcp://127.0.0.1:0");
    rt().block_on(async {
        let client = asr.client(None);
        let (mut clean, mut noisy, mut said_back) = (0.0, 0.0, 0);
        let corpus = corpus(&speech);
        for (i, (file, _)) in corpus.iter().enumerate() {
            let samples = cabin::hear::audio::read(file).unwrap();
            let sure = client.transcribe(&samples, LIMIT).await.unwrap();
            let c = sure.confidence.expect("cabin-asr says how sure it is");
            assert!(c.mean > 0.0 && c.mean <= 1.0 && c.lowest <= c.mean, "{c:?}");
            clean += c.mean;
            said_back += usize::from(c.mean < least);
            // White noise as loud as the speech.
            let level = (samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>()
                / samples.len() as f64)
                .sqrt();
            let hiss = noise(samples.len().div_ceil(16_000), i as u32 + 7, 1);
            let scale = level / (32768.0 / 3f64.sqrt());
            let loud: Vec<i16> = samples
                .iter()
                .zip(hiss)
                .map(|(&s, n)| s.saturating_add((f64::from(n) * scale) as i16))
                .collect();
            let unsure = client.transcribe(&loud, LIMIT).await.unwrap();
            noisy += unsure.confidence.map_or(0.0, |c| c.mean);
            eprintln!("{:.3} clean {:?}, {:?} in noise", c.mean, sure.text, unsure);
        }
        let n = corpus.len() as f32;
        assert!(noisy / n < clean / n - 0.05, "clean {clean}, noisy {noisy}");
        assert!(
            said_back <= 1,
            "{said_back} of {n} clean recordings said back"
        );
    });
}

/// Issue 25: a decode that loops on the window fitted to the utterance ("Go forward 10 meters."
/// over and over) is decoded again on a window twice as long, not on the full 30 s one, which
/// cost a second more.
/// What `cabin-asr` logged and answered for one recording.
fn transcribed_with_log(model: &Path, recording: &Path) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("cabin-asr.log");
    let mut cmd = Asr::command(model, "tcp://127.0.0.1:0");
    cmd.env("CABIN_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(std::fs::File::create(&log).unwrap());
    let asr = Asr::spawn(cmd);
    let samples = cabin::hear::audio::read(recording).unwrap();
    let text = rt()
        .block_on(asr.client(None).transcribe(&samples, LIMIT))
        .unwrap()
        .text;
    drop(asr);
    (text, std::fs::read_to_string(&log).unwrap())
}

#[test]
fn a_looping_decode_is_recovered_without_the_full_window() {
    let _whisper = WHISPER.blocking_lock();
    let (Some(model), Some(speech)) = (model(), speech()) else {
        return;
    };
    // "Go forward ten meters", then the sentence again and again: its first time is kept, and
    // nothing is decoded twice.
    let (text, log) = transcribed_with_log(&model, &speech.join("goforward.raw"));
    assert!(
        log.contains("kept its first time"),
        "no longer echoes: {log}"
    );
    assert!(!log.contains("decoder looped"), "{log}");
    assert_eq!(word_errors("go forward ten meters", &text).0, 0, "{text:?}");
    // "He was not an old-s-y-y-y…": a loop inside the sentence is decoded again on a window
    // twice as long, not the full one.
    let recording = speech.join("librivox/sense_and_sensibility_01_austen_64kb-0880.wav");
    let (text, log) = transcribed_with_log(&model, &recording);
    let retries: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("decoder looped"))
        .collect();
    assert_eq!(
        retries.len(),
        1,
        "this recording no longer loops once on the fitted window: {log}"
    );
    assert!(retries[0].contains("wider=512"), "{}", retries[0]);
    assert!(
        word_errors("he was not an ill disposed young man", &text).0 <= 2,
        "{text:?}"
    );
}

/// `seconds` of white noise at full scale divided by `divisor`, the same for the same `seed`.
fn noise(seconds: usize, mut seed: u32, divisor: i16) -> Vec<i16> {
    (0..seconds * 16_000)
        .map(|_| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((seed >> 16) as i16) / divisor
        })
        .collect()
}

#[test]
fn silence_and_noise_floor_give_an_empty_transcript() {
    let _whisper = WHISPER.blocking_lock();
    let Some(model) = model() else { return };
    let asr = Asr::start(&model, "tcp://127.0.0.1:0");
    rt().block_on(async {
        let client = asr.client(None);
        // Digital silence, and hiss at about -66 dBFS (a quiet cabin): whisper, given these,
        // answers "Thank you." or "you".
        let silence = vec![0i16; 3 * 16_000];
        let hiss = noise(3, 1, 1024);
        for samples in [silence, hiss, Vec::new()] {
            let t = client.transcribe(&samples, LIMIT).await.unwrap();
            assert_eq!(t.text, "");
        }
    });
}

/// Sends `events` (then `raw` bytes) on a new connection to `addr` (host:port); the first
/// reply, and the stream for more.
async fn exchange(
    addr: &str,
    events: Vec<Event>,
    raw: Option<&'static [u8]>,
) -> (
    Event,
    AsyncBufReader<tokio::net::tcp::OwnedReadHalf>,
    tokio::net::tcp::OwnedWriteHalf,
) {
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (r, mut w) = s.into_split();
    for e in &events {
        wyoming::write(&mut w, e).await.unwrap();
    }
    if let Some(raw) = raw {
        w.write_all(raw).await.unwrap();
    }
    let mut r = AsyncBufReader::new(r);
    let reply = tokio::time::timeout(LIMIT, wyoming::read(&mut r))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    (reply, r, w)
}

#[test]
fn protocol_errors_get_wyoming_error_events() {
    let _whisper = WHISPER.blocking_lock();
    let Some(model) = model() else { return };
    let asr = Asr::start(&model, "tcp://127.0.0.1:0");
    rt().block_on(async {
        let client = asr.client(None);
        // describe -> info naming the model and its language.
        let info = client.describe(LIMIT).await.unwrap();
        let langs = &info.data["asr"][0]["models"][0]["languages"];
        assert_eq!(langs, &json!(["en"]), "{:?}", info.data);

        let addr = asr.address.strip_prefix("tcp://").unwrap().to_string();
        // The wrong sample rate is refused with the fix.
        let cd = AudioFormat {
            rate: 44_100,
            width: 2,
            channels: 1,
        };
        let (reply, mut r, mut w) = exchange(&addr, vec![wyoming::audio_start(cd)], None).await;
        assert_eq!(reply.kind, "error");
        assert!(reply.str("text").unwrap().contains("16 kHz"), "{reply:?}");
        // The connection stays usable after a refused request.
        wyoming::write(&mut w, &Event::new("describe", json!({})))
            .await
            .unwrap();
        let next = wyoming::read(&mut r).await.unwrap().unwrap();
        assert_eq!(next.kind, "info");
        // A garbage header gets an error, then the connection is closed.
        let (reply, mut r, _w) = exchange(&addr, vec![], Some(b"this is not json\n")).await;
        assert_eq!(
            (reply.kind.as_str(), reply.str("code")),
            ("error", Some("malformed-event"))
        );
        let next = tokio::time::timeout(LIMIT, wyoming::read(&mut r))
            .await
            .unwrap();
        assert!(matches!(next, Ok(None)), "{next:?}");
        // Unknown events are ignored; the service still answers.
        let (reply, _r, _w) = exchange(
            &addr,
            vec![
                Event::new("run-satellite", json!({})),
                Event::new("describe", json!({})),
            ],
            None,
        )
        .await;
        assert_eq!(reply.kind, "info");
    });
}

/// Regression: cabin-asr took any number of connections, held an idle one for ever and queued
/// every utterance sent to it. Past each bound a client now gets an `error` event naming it.
#[test]
fn connections_past_the_limit_are_busy_and_idle_ones_are_closed() {
    let Some(model) = model() else { return };
    let asr = Asr::start_with(
        &model,
        "tcp://127.0.0.1:0",
        &["--max-connections", "2", "--idle-seconds", "2"],
    );
    rt().block_on(async {
        let addr = asr.address.strip_prefix("tcp://").unwrap().to_string();
        let describe = || vec![Event::new("describe", json!({}))];
        let (a, mut a_r, _a_w) = exchange(&addr, describe(), None).await;
        let (b, _b_r, _b_w) = exchange(&addr, describe(), None).await;
        assert_eq!((a.kind.as_str(), b.kind.as_str()), ("info", "info"));
        let (third, mut r, _w) = exchange(&addr, describe(), None).await;
        assert_eq!(third.str("code"), Some("busy"), "{third:?}");
        assert!(matches!(wyoming::read(&mut r).await, Ok(None)));
        // Two seconds without an event: told so, and closed.
        let started = Instant::now();
        let idle = tokio::time::timeout(LIMIT, wyoming::read(&mut a_r))
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(idle.str("code"), Some("idle"), "{idle:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(matches!(wyoming::read(&mut a_r).await, Ok(None)));
        // Their places are free again.
        let (again, _r, _w) = exchange(&addr, describe(), None).await;
        assert_eq!(again.kind, "info");
    });
}

/// Issue 37: 8 connections sending a byte a second held every place of `cabin-asr` for 30 s
/// (only the idle limit timed them), and everyone was told `busy`, the daemon too. An event
/// begun is now timed by its progress: the slow clients are told `too-slow` and closed. And the
/// daemon's own socket (a Unix socket it makes in a private directory, inherited by the
/// worker) has places of its own that no client of the TCP port can take.
#[test]
fn slow_clients_are_closed_by_their_progress_and_cannot_take_the_daemons_places() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let Some(model) = model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("asr.sock");
    let socket = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let fd = socket.as_raw_fd();
    let mut cmd = Asr::command(&model, "tcp://127.0.0.1:0");
    cmd.args(["--max-connections", "8", "--reserved-fd", &fd.to_string()]);
    // SAFETY: fcntl only. The socket stays open in the child across exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let asr = Asr::spawn(cmd);
    rt().block_on(async {
        let addr = asr.address.strip_prefix("tcp://").unwrap().to_string();
        let (mut readers, mut writers) = (Vec::new(), Vec::new());
        for _ in 0..8 {
            let (r, w) = tokio::net::TcpStream::connect(&addr)
                .await
                .unwrap()
                .into_split();
            readers.push(AsyncBufReader::new(r));
            writers.push(w);
        }
        // A describe, a byte a second on each connection.
        let trickle = tokio::spawn(async move {
            for byte in b"{\"type\": \"describe\"}\n" {
                for w in &mut writers {
                    let _ = w.write_all(&[*byte]).await;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            writers
        });
        let describe = || vec![Event::new("describe", json!({}))];
        // They hold every place of the TCP port...
        let (ninth, _r, _w) = exchange(&addr, describe(), None).await;
        assert_eq!(ninth.str("code"), Some("busy"), "{ninth:?}");
        // ...but not the daemon's.
        let daemon = AsrClient::new(Address::Unix(path.clone()), None);
        let info = daemon.describe(LIMIT).await.unwrap();
        assert_eq!(info.kind, "info");
        // Each slow client is closed for its progress, not left until it idles.
        for mut r in readers {
            let told = tokio::time::timeout(LIMIT, wyoming::read(&mut r))
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(told.str("code"), Some("too-slow"), "{told:?}");
            assert!(matches!(wyoming::read(&mut r).await, Ok(None) | Err(_)));
        }
        // The port serves again.
        let (again, _r, _w) = exchange(&addr, describe(), None).await;
        assert_eq!(again.kind, "info", "{again:?}");
        trickle.abort();
    });
}

#[test]
fn utterances_past_the_queue_are_busy() {
    let _whisper = WHISPER.blocking_lock();
    let Some(model) = model() else { return };
    let asr = Asr::start_with(&model, "tcp://127.0.0.1:0", &["--max-queued", "1"]);
    rt().block_on(async {
        let client = asr.client(None);
        // Loud noise: transcribed (to something), taking the engine a while.
        let noise = noise(4, 7, 4);
        let results = futures_util::future::join_all(
            (0..4).map(|_| client.transcribe(&noise, LIMIT)),
        )
        .await;
        let busy = results
            .iter()
            .filter(|r| matches!(r, Err(cabin::asr::AsrError::Refused(why)) if why.contains("being transcribed already")))
            .count();
        let transcribed = results.iter().filter(|r| r.is_ok()).count();
        assert!(busy >= 1 && transcribed >= 1, "{results:?}");
        assert_eq!(busy + transcribed, 4, "{results:?}");
    });
}

/// Regression: a `transcribe` whose language held a NUL reached whisper-rs `set_language`,
/// which panicked the engine thread, and every later request got "engine down". Bad fields
/// are refused with a Wyoming error, their audio dropped, and the worker goes on transcribing.
#[test]
fn a_bad_language_is_refused_and_the_worker_keeps_transcribing() {
    let _whisper = WHISPER.blocking_lock();
    let Some(model) = model() else { return };
    let asr = Asr::start(&model, "tcp://127.0.0.1:0");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hey-cabin-turn-on-the-seat-heating.wav");
    let samples = cabin::hear::audio::read(&fixture).unwrap();
    rt().block_on(async {
        let addr = asr.address.strip_prefix("tcp://").unwrap().to_string();
        for (field, value, code) in [
            ("language", "e\0n", "bad-language"),
            ("language", "english please", "bad-language"),
            ("prompt", "seat\0heating", "bad-prompt"),
        ] {
            let format = AudioFormat {
                rate: 16_000,
                width: 2,
                channels: 1,
            };
            let pcm: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
            let events = vec![
                Event::new(
                    "transcribe",
                    serde_json::Value::Object(
                        [(field.to_string(), value.into())].into_iter().collect(),
                    ),
                ),
                wyoming::audio_start(format),
                wyoming::audio_chunk(format, pcm),
                Event::new("audio-stop", json!({})),
                Event::new("describe", json!({})),
            ];
            let (reply, mut r, _w) = exchange(&addr, events, None).await;
            assert_eq!(
                (reply.kind.as_str(), reply.str("code")),
                ("error", Some(code)),
                "{field}={value:?}: {reply:?}"
            );
            // Its audio is not transcribed: the next answer is the `describe`'s.
            let next = tokio::time::timeout(LIMIT, wyoming::read(&mut r))
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(next.kind, "info", "{next:?}");
        }
        // The engine is alive: the same command transcribes.
        let t = asr.client(None).transcribe(&samples, LIMIT).await.unwrap();
        assert!(t.text.to_lowercase().contains("seat"), "{t:?}");
    });
}

#[test]
fn a_unix_socket_serves_too_and_the_cli_prints_the_transcript() {
    let _whisper = WHISPER.blocking_lock();
    let (Some(model), Some(speech)) = (model(), speech()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("asr.sock");
    let asr = Asr::start(&model, &format!("unix://{}", socket.display()));
    assert!(matches!(
        asr.address.parse::<Address>(),
        Ok(Address::Unix(_))
    ));
    let started = Instant::now();
    let mut cmd = Command::new(common::CABIN);
    cmd.args(["transcribe", "--json", "--asr", &asr.address])
        .arg(speech.join("goforward.raw"));
    let out = common::output_within(cmd, LIMIT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (errors, _) = word_errors("go forward ten meters", reply["text"].as_str().unwrap());
    assert_eq!(errors, 0, "{reply}");
    assert!(
        (reply["audio_s"].as_f64().unwrap() - 2.79).abs() < 0.05,
        "{reply}"
    );
    eprintln!("cli round trip {:?}", started.elapsed());
    // SIGTERM: the worker stops cleanly and removes its socket.
    let mut asr = asr;
    unsafe { libc::kill(asr.child.id() as i32, libc::SIGTERM) };
    assert!(asr.child.wait().unwrap().success());
    assert!(
        !socket.exists(),
        "the worker removes its socket when it stops"
    );
}

#[test]
fn an_unreachable_service_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(common::CABIN);
    cmd.args(["transcribe", "--asr"])
        .arg(format!("unix://{}/none.sock", dir.path().display()))
        .arg("-");
    cmd.stdin(Stdio::null());
    let out = common::output_within(cmd, LIMIT);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("cannot reach the speech recogniser at unix://"),
        "{err}"
    );
}

/// Speech synthesised by eSpeak NG (a Debian package), for commands no recording has.
/// A command spoken by eSpeak NG for the pipeline tests, which check what a transcript does,
/// not how well whisper hears (the word error rate tests do): tiny.en without a prompt heard
/// the en-us voice's "set the temperature" at 150 words a minute as "at the temperature".
fn espeak(text: &str, wav: &Path) -> bool {
    match Command::new("espeak-ng")
        .args(["-v", "en-gb", "-s", "160", "-w"])
        .arg(wav)
        .arg(text)
        .status()
    {
        Ok(s) if s.success() => true,
        _ => missing("espeak-ng (scripts/setup installs it)".into()).is_some(),
    }
}

/// Sets the simulator's driver temperature away from 20 °C, so that a spoken "twenty degrees"
/// shows.
async fn driver_at_18(conn: &zbus::Connection) {
    conn.call_method(
        Some("org.cabin.VehicleSim"),
        "/org/cabin/VehicleSim/Hvac",
        Some("org.cabin.VehicleSim.Hvac1"),
        "SetTemperature",
        &("driver", 18.0f64),
    )
    .await
    .unwrap();
    assert_eq!(
        common::snapshot(conn).await["Vehicle.Cabin.HVAC.Station.Row1.Driver.Temperature"],
        18.0
    );
}

#[tokio::test]
async fn spoken_commands_after_the_wake_word_change_the_simulator() {
    let _whisper = WHISPER.lock().await;
    let Some(_) = model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut audio = vec![0i16; 16_000];
    for (i, text) in [
        "hey cabin, set the temperature to twenty degrees",
        "hey cabin, navigate to Munich Central Station",
    ]
    .into_iter()
    .enumerate()
    {
        let wav = dir.path().join(format!("{i}.wav"));
        if !espeak(text, &wav) {
            return;
        }
        audio.extend(cabin::hear::audio::read(&wav).unwrap());
        audio.extend(vec![0i16; 32_000]);
    }
    let wav = dir.path().join("commands.wav");
    cabin::hear::audio::write_wav(&wav, &audio).unwrap();
    let bus = common::TestBus::start();
    let _sim = bus.start_sim();
    let conn = bus.connect().await;
    driver_at_18(&conn).await;
    let out = bus.cabin(&["listen", "--json", "--input", wav.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The first command opens the follow-up window, so the second is heard without waiting
    // for its wake word (and the transcript's "hey cabin" is dropped).
    assert_eq!(v["wakes"].as_array().unwrap().len(), 1, "{v}");
    let intents: Vec<&str> = v["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["outcome"]["intent"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(
        intents,
        ["climate.set_temperature", "navigation.navigate_to"],
        "{v}"
    );
    let snapshot = common::snapshot(&conn).await;
    assert_eq!(
        snapshot["Vehicle.Cabin.HVAC.Station.Row1.Driver.Temperature"],
        20.0
    );
    let destination = snapshot["Vehicle.Cabin.Infotainment.Navigation.DestinationSet.Name"]
        .as_str()
        .unwrap()
        .to_lowercase();
    // The place reached the simulator whole. Its first word is whisper's to get right, and
    // tiny.en hears this eSpeak NG "Munich" as "music" at one of nine 16 ms offsets of the
    // same audio (measured 2026-12-03): where the front end's frames fall decides it, so the
    // test does not.
    assert!(
        destination == "munich central station" || destination == "music central station",
        "{destination}"
    );
}

#[test]
fn without_the_wake_word_or_speech_nothing_is_done() {
    let _whisper = WHISPER.blocking_lock();
    let (Some(_), Some(speech)) = (model(), speech()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let silence = dir.path().join("silence.raw");
    std::fs::write(&silence, vec![0u8; 2 * 16_000 * 2]).unwrap();
    for (input, push_to_talk) in [
        (speech.join("goforward.raw"), false),
        (silence.clone(), false),
        (silence, true),
    ] {
        let mut cmd = Command::new(common::CABIN);
        cmd.args(["listen", "--json", "--llm", "off", "--input"])
            .arg(&input);
        if push_to_talk {
            cmd.arg("--push-to-talk");
        }
        let out = common::output_within(cmd, LIMIT);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["wakes"], json!([]), "{v}");
        // Nothing reaches the recogniser: no wake word, or (push-to-talk) only silence.
        assert_eq!(v["commands"], json!([]), "{v}");
        assert_eq!(
            v["no_speech"].as_array().unwrap().len(),
            usize::from(push_to_talk),
            "{v}"
        );
    }
}

/// `cabin run` hearing raw audio on its standard input, with `args`; its signals are
/// collected from before the first sample.
struct VoiceDaemon {
    bus: common::TestBus,
    _sim: common::Proc,
    daemon: Child,
    conn: zbus::Connection,
    signals: zbus::MessageStream,
}

impl VoiceDaemon {
    async fn start(args: &[&str]) -> VoiceDaemon {
        Self::start_with(args, &[]).await
    }

    async fn start_with(args: &[&str], env: &[(&str, &Path)]) -> VoiceDaemon {
        let bus = common::TestBus::start();
        let sim = bus.start_sim();
        let mut cmd = Command::new(common::CABIN);
        cmd.args(["run", "--llm", "off", "--bus", &bus.address])
            .args(args)
            // Replies as text only, unless the test says where to speak them.
            .args(if args.contains(&"--output") {
                &[][..]
            } else {
                &["--output", "off"][..]
            })
            .envs(env.iter().copied())
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
            .stdin(Stdio::piped());
        let daemon = cmd.spawn().unwrap();
        bus.wait_for_name("org.cabin.Assistant1").await;
        let conn = bus.connect().await;
        let signals = zbus::MessageStream::for_match_rule(
            "type='signal',interface='org.cabin.Assistant1'",
            &conn,
            None,
        )
        .await
        .unwrap();
        VoiceDaemon {
            bus,
            _sim: sim,
            daemon,
            conn,
            signals,
        }
    }

    fn speak(&mut self, samples: &[i16]) {
        use std::io::Write;
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        self.daemon
            .stdin
            .as_mut()
            .unwrap()
            .write_all(&bytes)
            .unwrap();
    }

    /// Signals as `Member(args)` until one starts with `until`.
    async fn signals_until(&mut self, until: &str) -> Vec<String> {
        use futures_util::StreamExt;
        let mut seen: Vec<String> = Vec::new();
        while !seen.last().is_some_and(|s| s.starts_with(until)) {
            let msg = tokio::time::timeout(LIMIT, self.signals.next())
                .await
                .unwrap_or_else(|_| panic!("no {until} within {LIMIT:?}; saw {seen:?}"))
                .unwrap()
                .unwrap();
            let member = msg.header().member().unwrap().to_string();
            let body = msg.body();
            seen.push(match member.as_str() {
                "ActionExecuted" => {
                    let (intent, ok, _): (String, bool, String) = body.deserialize().unwrap();
                    format!("ActionExecuted({intent},{ok})")
                }
                "PropertiesChanged" => continue,
                other => format!("{other}({})", body.deserialize::<String>().unwrap()),
            });
        }
        seen
    }
}

impl Drop for VoiceDaemon {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// "hey cabin, set the temperature to twenty degrees" and two seconds of silence.
fn spoken_command() -> Option<Vec<i16>> {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("command.wav");
    if !espeak("hey cabin, set the temperature to twenty degrees", &wav) {
        return None;
    }
    let mut audio = vec![0i16; 8_000];
    audio.extend(cabin::hear::audio::read(&wav).unwrap());
    audio.extend(vec![0i16; 32_000]);
    Some(audio)
}

#[tokio::test]
async fn the_daemon_hears_the_wake_word_and_acts_on_the_command() {
    let _whisper = WHISPER.lock().await;
    let Some(_) = model() else { return };
    let Some(audio) = spoken_command() else {
        return;
    };
    // Regression: a command that arrived while the worker was still loading its model got
    // "can't hear" (seen in CI). The worker here takes three seconds to start, and the
    // command comes at once.
    let dir = tempfile::tempdir().unwrap();
    let slow = dir.path().join("slow-cabin-asr");
    std::fs::write(
        &slow,
        format!(
            "#!/bin/sh\nsleep 3\nexec '{}' \"$@\"\n",
            cabin::runtime::worker::program("cabin-asr", "CABIN_ASR_WORKER").display()
        ),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&slow).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&slow, perms).unwrap();
    let mut d = VoiceDaemon::start_with(&["--input", "-"], &[("CABIN_ASR_WORKER", &slow)]).await;
    driver_at_18(&d.conn).await;
    d.speak(&audio);
    let seen = d.signals_until("StateChanged(FollowUp)").await;
    assert_eq!(
        seen,
        [
            "StateChanged(Listening)",
            "StateChanged(Transcribing)",
            "StateChanged(Thinking)",
            "Transcript(Set the temperature to 20 degrees.)",
            "StateChanged(Acting)",
            "Reply(Setting the driver side to 20 degrees.)",
            "ActionExecuted(climate.set_temperature,true)",
            "StateChanged(FollowUp)",
        ]
    );
    assert_eq!(
        common::snapshot(&d.conn).await["Vehicle.Cabin.HVAC.Station.Row1.Driver.Temperature"],
        20.0
    );
    // The follow-up window hears silence and closes.
    d.speak(&vec![0i16; 16_000 * 5]);
    assert_eq!(
        d.signals_until("StateChanged(Idle)").await,
        ["StateChanged(Idle)"]
    );
}

#[tokio::test]
async fn the_daemon_says_it_cannot_hear_while_the_recogniser_is_down() {
    let Some(audio) = spoken_command() else {
        return;
    };
    // Nothing listens on port 9 (discard) of this machine.
    let mut d = VoiceDaemon::start(&["--input", "-", "--asr", "tcp://127.0.0.1:9"]).await;
    d.speak(&audio);
    let seen = d.signals_until("StateChanged(Idle)").await;
    assert_eq!(
        seen,
        [
            "StateChanged(Listening)",
            "StateChanged(Transcribing)",
            "Reply(Sorry, I can't hear you right now.)",
            "StateChanged(Idle)",
        ]
    );
    // Text still works.
    assert_eq!(
        common::submit(&d.conn, "SubmitText", "pause")
            .await
            .unwrap(),
        "Paused."
    );
    let _ = &d.bus;
}

#[tokio::test]
async fn push_to_talk_opens_the_microphone_and_silence_closes_it() {
    let _whisper = WHISPER.lock().await;
    let Some(_) = model() else { return };
    let mut d = VoiceDaemon::start(&["--input", "null"]).await;
    d.conn
        .call_method(
            Some("org.cabin.Assistant1"),
            "/org/cabin/Assistant1",
            Some("org.cabin.Assistant1"),
            "Activate",
            &(),
        )
        .await
        .unwrap();
    // The null device gives real-time silence: no speech within 4 s ends the session.
    let started = Instant::now();
    assert_eq!(
        d.signals_until("StateChanged(Idle)").await,
        ["StateChanged(Listening)", "StateChanged(Idle)"]
    );
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// In-car commands, spoken by eSpeak NG (two voices), as Cabin sends them for the default
/// profile: prints the word error rate (docs/speech.md) and holds it to the bar.
#[test]
fn in_car_commands_are_recognised() {
    let _whisper = WHISPER.blocking_lock();
    let Some(model) = model() else { return };
    let commands = [
        "set the temperature to twenty one degrees",
        "turn on the seat heating",
        "open the rear left window",
        "call Jordan",
        "call Mum",
        "navigate to Munich Central Station",
        "turn the fan up",
        "play the next song",
        "turn on the air conditioning",
        "close all the windows",
        "set the ambient light to blue",
        "what's my range",
        "pause the music",
        "turn off the defroster",
        "switch to the radio",
        "it's freezing in here",
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut clips = Vec::new();
    for (i, text) in commands.iter().enumerate() {
        for voice in ["en-us", "en-gb"] {
            let wav = dir.path().join(format!("{i}-{voice}.wav"));
            let ok = Command::new("espeak-ng")
                .args(["-v", voice, "-s", "150", "-w"])
                .arg(&wav)
                .arg(text)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                missing("espeak-ng (scripts/setup installs it)".into());
                return;
            }
            clips.push((cabin::hear::audio::read(&wav).unwrap(), *text));
        }
    }
    let asr = Asr::start(&model, "tcp://127.0.0.1:0");
    let prompt = cabin::asr::decoder_prompt(&cabin::profile::Profile::embedded_default());
    let client = asr.client(prompt);
    let (mut errors, mut words) = (0, 0);
    rt().block_on(async {
        for (audio, reference) in &clips {
            let t = client.transcribe(audio, LIMIT).await.unwrap();
            let (e, n) = word_errors(reference, &t.text);
            if e > 0 {
                eprintln!("{e}/{n}  {:?} <- {reference:?}", t.text);
            }
            errors += e;
            words += n;
        }
    });
    let rate = 100.0 * errors as f64 / words as f64;
    eprintln!("in-car word error rate: {errors}/{words} = {rate:.1} %");
    assert!(rate <= 15.0, "in-car word error rate {rate:.1} %");
}

#[tokio::test]
async fn the_shipped_recording_changes_the_simulator() {
    let _whisper = WHISPER.lock().await;
    let Some(_) = model() else { return };
    let wav = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/hey-cabin-set-the-temperature-to-twenty-degrees.wav"
    );
    let bus = common::TestBus::start();
    let _sim = bus.start_sim();
    let conn = bus.connect().await;
    driver_at_18(&conn).await;
    let out = bus.cabin(&["listen", "--llm", "off", "--input", wav]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        common::snapshot(&conn).await["Vehicle.Cabin.HVAC.Station.Row1.Driver.Temperature"],
        20.0,
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn partial_transcripts_arrive_before_the_final_one() {
    let _whisper = WHISPER.blocking_lock();
    let Some(model) = model() else { return };
    let asr = Asr::start(&model, "tcp://127.0.0.1:0");
    // "Hey Jarvis, set the temperature to … twenty one degrees": the pause is 0.4 s long.
    let audio = cabin::hear::audio::read(&common::fixture(
        "piper-hey-cabin-set-the-temperature-to--twenty-one-degrees.wav",
    ))
    .unwrap();
    let pause = longest_pause(&audio);
    rt().block_on(async {
        let client = asr.client(None).with_partials();
        let mut stream = client.stream().await.unwrap();
        stream.audio(&audio[..pause]).await.unwrap();
        assert!(stream.ask_partial(0).await.unwrap());
        let partial = stream.partial().await.unwrap();
        let words = partial.text.to_lowercase();
        assert!(
            words.contains("temperature") && !words.contains("21") && !words.contains("one"),
            "{partial:?}"
        );
        stream.audio(&audio[pause..]).await.unwrap();
        let t = stream.finish(LIMIT).await.unwrap();
        assert!(t.text.contains("21"), "{t:?}");
        // A client that knows nothing of partials gets the same transcript.
        let plain = asr.client(None).transcribe(&audio, LIMIT).await.unwrap();
        assert_eq!(plain.text, t.text);
        // Another Wyoming service is never asked for partials.
        let mut other = asr.client(None).stream().await.unwrap();
        assert!(!other.ask_partial(0).await.unwrap());
    });
}

/// Where the longest run of digital silence inside the speech of a fixture starts.
fn longest_pause(audio: &[i16]) -> usize {
    let speech = cabin::hear::audio::speech_span(audio).unwrap();
    let (mut best, mut best_len, mut run) = (0, 0, 0);
    for i in speech.clone() {
        run = if audio[i] == 0 { run + 1 } else { 0 };
        if run > best_len {
            (best, best_len) = (i + 1 - run, run);
        }
    }
    assert!(best_len >= 16_000 / 10, "no pause in the fixture");
    best
}

/// `cabin listen --json` on a fixture: its one command.
fn listened(bus: &common::TestBus, name: &str) -> serde_json::Value {
    let out = bus.cabin(&[
        "listen",
        "--json",
        "--llm",
        "off",
        "--input",
        common::fixture(name).to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["commands"].as_array().unwrap().len(), 1, "{v}");
    v["commands"][0].clone()
}

#[tokio::test]
async fn a_whole_command_ends_the_turn_early_and_a_paused_one_is_not_cut() {
    let _whisper = WHISPER.lock().await;
    let Some(_) = model() else { return };
    let bus = common::TestBus::start();
    let _sim = bus.start_sim();
    let conn = bus.connect().await;
    driver_at_18(&conn).await;

    // A whole command: its pause's transcript ends the turn, and is the transcript.
    let c = listened(&bus, "piper-hey-cabin-switch-the-seat-heating-on.wav");
    assert_eq!(c["early"], true, "{c}");
    assert_eq!(c["asr_ms"], 0.0, "{c}");
    assert_eq!(c["outcome"]["intent"], "seats.heating_on", "{c}");

    // "Set the temperature to … twenty one degrees": the pause after "to" is not a whole
    // command, so the turn waits and the value is heard.
    let c = listened(
        &bus,
        "piper-hey-cabin-set-the-temperature-to--twenty-one-degrees.wav",
    );
    // (whisper may hear the lone "to" as another word: "Set the temperature tube.")
    let partials = c["partials"].as_array().unwrap();
    assert!(
        partials.iter().any(|p| p["whole"] == false
            && p["text"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .starts_with("set the temperature")),
        "{c}"
    );
    assert_eq!(c["outcome"]["intent"], "climate.set_temperature", "{c}");
    let snapshot = common::snapshot(&conn).await;
    assert_eq!(
        snapshot["Vehicle.Cabin.HVAC.Station.Row1.Driver.Temperature"],
        21.0
    );

    // "Turn on the seat heating … and the fan": whole at the short pause, but the driver
    // went on before the turn's short wait was over.
    let c = listened(
        &bus,
        "turns/piper-hey-cabin-turn-on-the-seat-heating-and-the-fan.wav",
    );
    let partials = c["partials"].as_array().unwrap();
    assert!(partials.iter().any(|p| p["whole"] == true), "{c}");
    assert_eq!(c["early"], false, "{c}");
    assert!(c["transcript"].as_str().unwrap().contains("fan"), "{c}");
}
