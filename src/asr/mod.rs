//! Speech recognition through a Wyoming ASR service: Cabin's own `cabin-asr` worker, supervised
//! like the language model worker, or any external Wyoming service (`--asr tcp://HOST:PORT`).

use crate::profile::Profile;
use crate::runtime::models::ModelError;
use crate::runtime::worker::{Worker, WorkerSpec};
use std::path::PathBuf;
use std::sync::Arc;

mod client;
mod reserved;
mod stream;
pub use client::{Address, AsrClient, AsrError, Confidence, Transcript};
pub use stream::{Partial, Stream};

pub type AsrWorker = Worker<AsrClient>;

/// Where speech recognition comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsrChoice {
    /// Supervise `cabin-asr` with the profile's model.
    Auto,
    Off,
    /// A running Wyoming ASR service.
    Remote(Address),
}

impl std::str::FromStr for AsrChoice {
    type Err = AsrError;
    fn from_str(s: &str) -> Result<AsrChoice, AsrError> {
        match s {
            "auto" => Ok(AsrChoice::Auto),
            "off" => Ok(AsrChoice::Off),
            other => other.parse().map(AsrChoice::Remote),
        }
    }
}

/// Starts speech recognition as chosen; `None` when it is off or the profile names no model.
pub fn start(profile: &Profile, choice: &AsrChoice) -> Option<AsrWorker> {
    match choice {
        AsrChoice::Off => None,
        AsrChoice::Remote(address) => Some(Worker::remote(
            AsrClient::new(address.clone(), decoder_prompt(profile))
                .with_speech(&profile.lexicon.speech),
        )),
        AsrChoice::Auto => Some(match local_worker(profile)? {
            Ok(spec) => match reserved::PrivateSocket::create() {
                Ok(socket) => {
                    let socket = Arc::new(socket);
                    Worker::supervise_inheriting(reserved_spec(spec, &socket), Some(socket))
                }
                Err(e) => {
                    tracing::warn!(
                        "no private socket for cabin-asr ({e}); it is reached on loopback TCP only"
                    );
                    Worker::supervise(spec)
                }
            },
            Err(why) => Worker::down(why.to_string()),
        }),
    }
}

/// `spec` serving `socket` too (inherited), which the daemon's client uses instead of the
/// worker's TCP port: a flood of clients on the port cannot take its places.
fn reserved_spec(
    mut spec: WorkerSpec<AsrClient>,
    socket: &reserved::PrivateSocket,
) -> WorkerSpec<AsrClient> {
    use std::os::fd::AsRawFd;
    spec.args.push("--reserved-fd".into());
    spec.args.push(socket.as_raw_fd().to_string().into());
    let path = socket.path();
    let connect = spec.connect.clone();
    spec.connect = Arc::new(move |_tcp: String| connect(format!("unix://{}", path.display())));
    spec
}

/// How to run the profile's `cabin-asr` (none without `[models] asr`), or why it can't run.
pub fn local_worker(profile: &Profile) -> Option<Result<WorkerSpec<AsrClient>, ModelError>> {
    let name = profile.models.asr.as_ref()?;
    let prompt = decoder_prompt(profile);
    let speech = profile.lexicon.speech.clone();
    Some(
        crate::runtime::models::installed(name, "speech model")
            .map(|path| worker_spec(path, prompt, speech)),
    )
}

fn worker_spec(
    model: PathBuf,
    prompt: Option<String>,
    speech: crate::text::lexicon::Speech,
) -> WorkerSpec<AsrClient> {
    WorkerSpec {
        program: crate::runtime::worker::program("cabin-asr", "CABIN_ASR_WORKER"),
        args: vec!["serve".into(), "--model".into(), model.into()],
        what: "the speech recognition worker",
        program_env: "CABIN_ASR_WORKER",
        // On the driver's critical path between end of speech and the reply, so it keeps the
        // daemon's CPU share; but the daemon outlives it when memory runs out.
        yields: crate::runtime::worker::Yields {
            nice: 0,
            oom_score_adj: 200,
        },
        checks: crate::runtime::worker::Checks::DEFAULT,
        connect: Arc::new(move |address: String| {
            let (prompt, speech) = (prompt.clone(), speech.clone());
            Box::pin(async move {
                let address = address.parse().unwrap_or(Address::Tcp(address));
                AsrClient::new(address, prompt)
                    .with_speech(&speech)
                    .with_partials()
            })
        }),
    }
}

/// Longest decoder prompt, in characters (whisper takes up to 224 tokens of prompt).
const PROMPT_CHARS: usize = 600;

/// The decoder prompt: the language's own sentence (its lexicon's `recogniser_prompt`, which
/// sets the script), then the names of `[listen] vocabulary` (unusual contacts and places
/// whisper would otherwise spell its own way); None where there is neither, as in the default
/// profile. A prompt of the wake phrase and one sentence per intent was measured to cost more than
/// it gave (docs/speech.md): with tiny.en it raised the word errors on real recordings from
/// 7.3 to 12.5 %, left the in-car commands at 10.6 %, turned "it's freezing in here" into
/// "Set it." and made each decode slower.
pub fn decoder_prompt(p: &Profile) -> Option<String> {
    let mut prompt = p.lexicon.speech.recogniser_prompt.clone();
    let mut names = String::new();
    for name in &p.listen.vocabulary {
        if prompt.len() + names.len() + name.len() + 3 > PROMPT_CHARS {
            break;
        }
        if !names.is_empty() {
            names.push_str(", ");
        }
        names.push_str(name);
    }
    if !names.is_empty() {
        if !prompt.is_empty() {
            prompt.push(' ');
        }
        prompt = prompt + &names + ".";
    }
    (!prompt.is_empty()).then_some(prompt)
}

/// The command in a transcript: what follows a leading wake phrase (kept whole when there is
/// none, as after push-to-talk), trimmed.
pub fn command_text(transcript: &str, wake_words: &[String]) -> String {
    after_wake_word(transcript, wake_words)
        .unwrap_or(transcript)
        .trim()
        .to_string()
}

/// Splits a leading wake phrase off a transcript: `Some(rest)` when the transcript starts with
/// one of `wake_words` ("Hey cabin. Turn on the seat heating." → "Turn on the seat heating.").
pub fn after_wake_word<'a>(transcript: &'a str, wake_words: &[String]) -> Option<&'a str> {
    let norm = |w: &str| -> String {
        w.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect()
    };
    let words: Vec<(usize, &str)> = transcript
        .split_whitespace()
        .map(|w| (w.as_ptr() as usize - transcript.as_ptr() as usize, w))
        .collect();
    wake_words.iter().find_map(|wake| {
        let wake: Vec<String> = wake.split_whitespace().map(norm).collect();
        let heard = words.len() >= wake.len()
            && !wake.is_empty()
            && words.iter().zip(&wake).all(|((_, w), k)| norm(w) == *k);
        heard.then(|| match words.get(wake.len()) {
            Some((at, _)) => &transcript[*at..],
            None => "",
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_or_say_how() {
        assert_eq!(
            "tcp://127.0.0.1:10300".parse::<Address>().unwrap(),
            Address::Tcp("127.0.0.1:10300".into())
        );
        assert_eq!(
            "unix:///run/cabin/asr.sock".parse::<Address>().unwrap(),
            Address::Unix("/run/cabin/asr.sock".into())
        );
        for bad in ["http://x:1", "tcp://nohost", "unix://", "10300"] {
            let e = bad.parse::<Address>().unwrap_err().to_string();
            assert!(e.contains("tcp://HOST:PORT"), "{e}");
        }
        assert_eq!("off".parse::<AsrChoice>().unwrap(), AsrChoice::Off);
    }

    #[test]
    fn wake_phrase_is_found_and_cut_off() {
        let wake = vec!["hey cabin".to_string()];
        assert_eq!(
            after_wake_word("Hey cabin. Turn on the seat heating.", &wake),
            Some("Turn on the seat heating.")
        );
        assert_eq!(after_wake_word("hey, Cabin!", &wake), Some(""));
        assert_eq!(after_wake_word("Turn on the seat heating.", &wake), None);
        assert_eq!(after_wake_word("Hey", &wake), None);
    }

    #[test]
    fn the_default_sends_no_prompt_and_a_profiles_names_are_the_prompt() {
        let mut p = Profile::embedded_default();
        assert_eq!(decoder_prompt(&p), None);
        p.listen.vocabulary = vec!["Siobhan".into(), "Llanelli Station".into()];
        assert_eq!(
            decoder_prompt(&p).as_deref(),
            Some("Siobhan, Llanelli Station.")
        );
        p.listen.vocabulary = vec!["x".repeat(400), "y".repeat(400)];
        assert!(decoder_prompt(&p).unwrap().len() <= PROMPT_CHARS);
    }

    /// The profile's language goes with every utterance, so that a multilingual model detects
    /// none (detection flaps between languages on commands of a few words).
    #[tokio::test]
    async fn every_utterance_is_sent_with_the_profiles_language_and_prompt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("asr.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let zh = crate::text::Lexicon::shipped("zh-CN").unwrap();
        let client = AsrClient::new(Address::Unix(path), Some("以下是普通话的句子。".into()))
            .with_speech(&zh.speech);
        // Whisper base slips into Traditional characters: the transcript is Simplified.
        assert_eq!(client.heard(" 空調已打開。 "), "空调已打开。");
        let _stream = client.stream().await.unwrap();
        let (conn, _) = listener.accept().await.unwrap();
        let mut r = tokio::io::BufReader::new(conn);
        let first = wyoming::read(&mut r).await.unwrap().unwrap();
        assert_eq!(first.kind, "transcribe");
        assert_eq!(first.str("language"), Some("zh"));
        assert_eq!(first.str("prompt"), Some("以下是普通话的句子。"));
        let client = client.without_prompt();
        let _stream = client.stream().await.unwrap();
        let (conn, _) = listener.accept().await.unwrap();
        let first = wyoming::read(&mut tokio::io::BufReader::new(conn))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (first.str("language"), first.str("prompt")),
            (Some("zh"), None)
        );
    }

    #[test]
    fn mandarin_is_decoded_as_mandarin_with_its_simplified_prompt_before_the_names() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/zh-CN.toml");
        let mut p = Profile::load(&path).unwrap();
        assert_eq!(p.lexicon.speech.recogniser_language, "zh");
        assert_eq!(decoder_prompt(&p).as_deref(), Some("以下是普通话的句子。"));
        p.listen.vocabulary = vec!["欧阳娜娜".into(), "上海虹桥站".into()];
        assert_eq!(
            decoder_prompt(&p).as_deref(),
            Some("以下是普通话的句子。 欧阳娜娜, 上海虹桥站.")
        );
    }
}
