//! Speech recognition through a Wyoming ASR service: Cabin's own `cabin-asr` worker, supervised
//! like the language model worker, or any external Wyoming service (`--asr tcp://HOST:PORT`).

use crate::profile::Profile;
use crate::runtime::models::ModelError;
use crate::runtime::worker::{Worker, WorkerSpec};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use wyoming::{AudioFormat, Event};

/// Audio per `audio-chunk`: 100 ms.
const CHUNK_SAMPLES: usize = 1_600;

#[derive(Debug, thiserror::Error)]
pub enum AsrError {
    #[error("'{0}' is not a Wyoming address: use tcp://HOST:PORT or unix://PATH")]
    BadAddress(String),
    #[error("cannot reach the speech recogniser at {address}: {source}")]
    Unreachable {
        address: String,
        source: std::io::Error,
    },
    #[error("the speech recogniser at {0} did not answer within {1:.1} s")]
    Timeout(String, f64),
    #[error("the speech recogniser refused the audio: {0}")]
    Refused(String),
    #[error("the speech recogniser at {address} broke the protocol: {problem}")]
    Protocol { address: String, problem: String },
}

/// A Wyoming ASR service's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Tcp(String),
    Unix(PathBuf),
}

impl std::str::FromStr for Address {
    type Err = AsrError;
    fn from_str(s: &str) -> Result<Address, AsrError> {
        if let Some(a) = s.strip_prefix("tcp://").filter(|a| a.contains(':')) {
            Ok(Address::Tcp(a.into()))
        } else if let Some(p) = s.strip_prefix("unix://").filter(|p| !p.is_empty()) {
            Ok(Address::Unix(p.into()))
        } else {
            Err(AsrError::BadAddress(s.into()))
        }
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Tcp(a) => write!(f, "tcp://{a}"),
            Address::Unix(p) => write!(f, "unix://{}", p.display()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AsrClient {
    address: Address,
    /// Decoder prompt sent with each request (vocabulary biasing; `cabin-asr` reads it, other
    /// services ignore it).
    prompt: Option<String>,
}

/// A transcript and how long the service took from the end of the audio.
#[derive(Debug, Clone)]
pub struct Transcript {
    pub text: String,
    pub ms: f64,
}

type Halves = (
    Box<dyn AsyncRead + Unpin + Send>,
    Box<dyn AsyncWrite + Unpin + Send>,
);

impl AsrClient {
    pub fn new(address: Address, prompt: Option<String>) -> AsrClient {
        AsrClient { address, prompt }
    }

    pub fn address(&self) -> &Address {
        &self.address
    }

    async fn connect(&self) -> Result<Halves, AsrError> {
        let unreachable = |source| AsrError::Unreachable {
            address: self.address.to_string(),
            source,
        };
        Ok(match &self.address {
            Address::Tcp(a) => {
                let s = tokio::net::TcpStream::connect(a)
                    .await
                    .map_err(unreachable)?;
                let _ = s.set_nodelay(true);
                let (r, w) = s.into_split();
                (Box::new(r), Box::new(w))
            }
            Address::Unix(p) => {
                let s = tokio::net::UnixStream::connect(p)
                    .await
                    .map_err(unreachable)?;
                let (r, w) = s.into_split();
                (Box::new(r), Box::new(w))
            }
        })
    }

    fn protocol(&self, problem: impl std::fmt::Display) -> AsrError {
        AsrError::Protocol {
            address: self.address.to_string(),
            problem: problem.to_string(),
        }
    }

    /// Asks the service what it offers (`describe` → `info`).
    pub async fn describe(&self, limit: Duration) -> Result<Event, AsrError> {
        let exchange = async {
            let (r, mut w) = self.connect().await?;
            let mut r = BufReader::new(r);
            wyoming::write(&mut w, &Event::new("describe", serde_json::json!({})))
                .await
                .map_err(|e| self.protocol(e))?;
            loop {
                match wyoming::read(&mut r).await.map_err(|e| self.protocol(e))? {
                    Some(e) if e.kind == "info" => return Ok(e),
                    Some(e) if e.kind == "error" => {
                        return Err(AsrError::Refused(
                            e.str("text").unwrap_or("no reason given").into(),
                        ))
                    }
                    Some(_) => continue,
                    None => return Err(self.protocol("closed without an info event")),
                }
            }
        };
        tokio::time::timeout(limit, exchange)
            .await
            .map_err(|_| AsrError::Timeout(self.address.to_string(), limit.as_secs_f64()))?
    }

    /// Transcribes 16 kHz mono samples. `limit` bounds the whole exchange.
    pub async fn transcribe(
        &self,
        samples: &[i16],
        limit: Duration,
    ) -> Result<Transcript, AsrError> {
        let exchange = async {
            let (r, mut w) = self.connect().await?;
            let mut r = BufReader::new(r);
            let mut request = serde_json::json!({});
            if let Some(p) = &self.prompt {
                request["prompt"] = p.as_str().into();
            }
            let send = |e: wyoming::Error| self.protocol(e);
            wyoming::write(&mut w, &Event::new("transcribe", request))
                .await
                .map_err(send)?;
            wyoming::write(&mut w, &wyoming::audio_start(AudioFormat::SPEECH))
                .await
                .map_err(send)?;
            for chunk in samples.chunks(CHUNK_SAMPLES) {
                let pcm = chunk.iter().flat_map(|s| s.to_le_bytes()).collect();
                wyoming::write(&mut w, &wyoming::audio_chunk(AudioFormat::SPEECH, pcm))
                    .await
                    .map_err(send)?;
            }
            wyoming::write(&mut w, &wyoming::audio_stop())
                .await
                .map_err(send)?;
            let stopped = Instant::now();
            loop {
                match wyoming::read(&mut r).await.map_err(|e| self.protocol(e))? {
                    Some(e) if e.kind == "transcript" => {
                        let text = e
                            .str("text")
                            .ok_or_else(|| self.protocol("transcript without text"))?;
                        return Ok(Transcript {
                            text: text.trim().to_string(),
                            ms: stopped.elapsed().as_secs_f64() * 1000.0,
                        });
                    }
                    Some(e) if e.kind == "error" => {
                        return Err(AsrError::Refused(
                            e.str("text").unwrap_or("no reason given").into(),
                        ))
                    }
                    Some(_) => continue,
                    None => return Err(self.protocol("closed without a transcript")),
                }
            }
        };
        tokio::time::timeout(limit, exchange)
            .await
            .map_err(|_| AsrError::Timeout(self.address.to_string(), limit.as_secs_f64()))?
    }
}

pub type AsrWorker = Worker<AsrClient>;

impl crate::runtime::worker::Health for AsrClient {
    type Error = AsrError;
    /// A Wyoming `describe` answered with `info`.
    async fn check(&self, limit: Duration) -> Result<(), AsrError> {
        self.describe(limit).await.map(|_| ())
    }
}

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
        AsrChoice::Remote(address) => Some(Worker::remote(AsrClient::new(
            address.clone(),
            vocabulary_prompt(profile),
        ))),
        AsrChoice::Auto => Some(match local_worker(profile)? {
            Ok(spec) => Worker::supervise(spec),
            Err(why) => Worker::down(why.to_string()),
        }),
    }
}

/// How to run the profile's `cabin-asr` (none without `[models] asr`), or why it can't run.
pub fn local_worker(profile: &Profile) -> Option<Result<WorkerSpec<AsrClient>, ModelError>> {
    let name = profile.models.asr.as_ref()?;
    let prompt = vocabulary_prompt(profile);
    Some(
        crate::runtime::models::installed(name, "speech model")
            .map(|path| worker_spec(path, prompt)),
    )
}

fn worker_spec(model: PathBuf, prompt: Option<String>) -> WorkerSpec<AsrClient> {
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
            let prompt = prompt.clone();
            Box::pin(async move {
                let address = address.parse().unwrap_or(Address::Tcp(address));
                AsrClient::new(address, prompt)
            })
        }),
    }
}

/// Longest decoder prompt, in characters (whisper takes up to 224 tokens of prompt).
const PROMPT_CHARS: usize = 600;

/// The decoder prompt: the names of `[listen] vocabulary` (unusual contacts and places whisper
/// would otherwise spell its own way), or None where the profile lists none, as the default
/// does. A prompt of the wake phrase and one sentence per intent was measured to cost more than
/// it gave (docs/speech.md): with tiny.en it raised the word errors on real recordings from
/// 7.3 to 12.5 %, left the in-car commands at 10.6 %, turned "it's freezing in here" into
/// "Set it." and made each decode slower.
pub fn vocabulary_prompt(p: &Profile) -> Option<String> {
    let mut prompt = String::new();
    for name in &p.listen.vocabulary {
        if prompt.len() + name.len() + 2 > PROMPT_CHARS {
            break;
        }
        if !prompt.is_empty() {
            prompt.push_str(", ");
        }
        prompt.push_str(name);
    }
    (!prompt.is_empty()).then(|| prompt + ".")
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
        assert_eq!(vocabulary_prompt(&p), None);
        p.listen.vocabulary = vec!["Siobhan".into(), "Llanelli Station".into()];
        assert_eq!(
            vocabulary_prompt(&p).as_deref(),
            Some("Siobhan, Llanelli Station.")
        );
        p.listen.vocabulary = vec!["x".repeat(400), "y".repeat(400)];
        assert!(vocabulary_prompt(&p).unwrap().len() <= PROMPT_CHARS);
    }
}
