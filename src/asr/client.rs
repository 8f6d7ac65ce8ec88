//! A client of a Wyoming ASR service: `describe`, one-shot `transcribe`, and the typed errors
//! of both.

use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use wyoming::Event;

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
    pub(super) address: Address,
    /// Decoder prompt sent with each request (vocabulary biasing; `cabin-asr` reads it, other
    /// services ignore it).
    pub(super) prompt: Option<String>,
    /// The language told with each request (the profile's), so that none is detected.
    pub(super) language: Option<String>,
    /// Transcripts in Traditional characters are rewritten in Simplified.
    pub(super) simplified: bool,
    /// The service decodes partial transcripts (`cabin-asr` does; other Wyoming services
    /// don't know the request).
    pub(super) partials: bool,
}

/// A transcript and how long the service took from the end of the audio.
#[derive(Debug, Clone)]
pub struct Transcript {
    pub text: String,
    pub ms: f64,
    /// How sure the recogniser was (`cabin-asr` says; other Wyoming services don't).
    pub confidence: Option<Confidence>,
}

/// How sure the recogniser was of its words: probabilities (0..1) of the tokens it chose, and
/// the chance it heard no speech at all. Misheard words in noise come with low ones.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Confidence {
    /// The geometric mean of the words' token probabilities.
    pub mean: f32,
    /// The least likely token's.
    pub lowest: f32,
    pub no_speech: f32,
}

impl Confidence {
    /// The `confidence` a transcript event carries (Cabin's extension of Wyoming); none when
    /// it carries none, or garbage.
    pub(super) fn of(event: &wyoming::Event) -> Option<Confidence> {
        let c = event.data.get("confidence")?;
        let share = |key: &str| {
            let v = c.get(key)?.as_f64()? as f32;
            (0.0..=1.0).contains(&v).then_some(v)
        };
        Some(Confidence {
            mean: share("mean")?,
            lowest: share("lowest")?,
            no_speech: share("no_speech")?,
        })
    }

    /// Whether words heard so may act without a yes from the driver: their mean token
    /// probability reaches `least` (the profile's `[listen] confirm_below`).
    pub fn sure(confidence: Option<Confidence>, least: Option<f32>) -> bool {
        match (confidence, least) {
            (Some(c), Some(least)) => c.mean >= least,
            // A service that says nothing of its doubt, or a profile that never asks.
            _ => true,
        }
    }
}

type Halves = (
    Box<dyn AsyncRead + Unpin + Send>,
    Box<dyn AsyncWrite + Unpin + Send>,
);

impl AsrClient {
    pub fn new(address: Address, prompt: Option<String>) -> AsrClient {
        AsrClient {
            address,
            prompt,
            language: None,
            simplified: false,
            partials: false,
        }
    }

    /// Tells the service the language of every utterance (the lexicon's recogniser language,
    /// such as "zh"), and writes its transcripts as the lexicon says.
    pub fn with_speech(mut self, speech: &crate::text::lexicon::Speech) -> AsrClient {
        self.language = Some(speech.recogniser_language.clone());
        self.simplified = speech.recogniser_simplified;
        self
    }

    /// A transcript as the understanding layer is given it: trimmed, and in Simplified
    /// characters where the language asks for them.
    pub(super) fn heard(&self, text: &str) -> String {
        let text = text.trim();
        if self.simplified {
            fast2s::convert(text)
        } else {
            text.to_string()
        }
    }

    /// The same service and language, without a decoder prompt (to measure what it changes).
    pub fn without_prompt(mut self) -> AsrClient {
        self.prompt = None;
        self
    }

    /// The service is `cabin-asr`, which decodes partial transcripts ([`Stream::partial`]).
    pub fn with_partials(mut self) -> AsrClient {
        self.partials = true;
        self
    }

    pub fn address(&self) -> &Address {
        &self.address
    }

    pub(super) async fn connect(&self) -> Result<Halves, AsrError> {
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

    pub(super) fn protocol(&self, problem: impl std::fmt::Display) -> AsrError {
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
                    Some(e) if e.kind == "error" => return Err(refused(&e)),
                    Some(_) => continue,
                    None => return Err(self.protocol("closed without an info event")),
                }
            }
        };
        tokio::time::timeout(limit, exchange)
            .await
            .map_err(|_| AsrError::Timeout(self.address.to_string(), limit.as_secs_f64()))?
    }

    /// Transcribes 16 kHz mono samples in one request: an utterance streamed all at once.
    /// `limit` bounds the whole exchange.
    pub async fn transcribe(
        &self,
        samples: &[i16],
        limit: Duration,
    ) -> Result<Transcript, AsrError> {
        let exchange = async {
            let mut stream = self.stream().await?;
            stream.audio(samples).await?;
            stream.finish(limit).await
        };
        tokio::time::timeout(limit, exchange)
            .await
            .map_err(|_| AsrError::Timeout(self.address.to_string(), limit.as_secs_f64()))?
    }
}

/// An `error` event as the refusal it is.
pub(super) fn refused(event: &Event) -> AsrError {
    AsrError::Refused(event.str("text").unwrap_or("no reason given").into())
}

impl crate::runtime::worker::Health for AsrClient {
    type Error = AsrError;
    /// A Wyoming `describe` answered with `info`.
    async fn check(&self, limit: Duration) -> Result<(), AsrError> {
        self.describe(limit).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcript(data: serde_json::Value) -> wyoming::Event {
        wyoming::Event::new("transcript", data)
    }

    #[test]
    fn confidence_is_read_from_the_transcript_and_garbage_is_none() {
        let c = Confidence::of(&transcript(serde_json::json!({
            "text": "hi", "confidence": {"mean": 0.8, "lowest": 0.3, "no_speech": 0.01}
        })))
        .unwrap();
        assert_eq!((c.mean, c.lowest, c.no_speech), (0.8, 0.3, 0.01));
        for garbage in [
            serde_json::json!({"text": "hi"}),
            serde_json::json!({"text": "hi", "confidence": "high"}),
            serde_json::json!({"text": "hi", "confidence": {"mean": 2.0, "lowest": 0.3, "no_speech": 0.0}}),
            serde_json::json!({"text": "hi", "confidence": {"mean": 0.5}}),
        ] {
            assert_eq!(
                Confidence::of(&transcript(garbage.clone())),
                None,
                "{garbage}"
            );
        }
    }

    #[test]
    fn only_a_known_doubt_below_the_profiles_bar_asks() {
        let c = |mean| {
            Some(Confidence {
                mean,
                lowest: mean,
                no_speech: 0.0,
            })
        };
        assert!(!Confidence::sure(c(0.5), Some(0.6)));
        assert!(Confidence::sure(c(0.6), Some(0.6)));
        assert!(
            Confidence::sure(None, Some(0.6)),
            "a service that says nothing"
        );
        assert!(Confidence::sure(c(0.1), None), "a profile that never asks");
    }
}
