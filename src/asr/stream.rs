//! One utterance streamed to a Wyoming ASR service while it is spoken: `transcribe` and
//! `audio-start` when speech starts, an `audio-chunk` per piece, Cabin's `transcribe-partial`
//! at pauses (answered by `transcript-partial`: the audio so far, decoded), and `audio-stop` →
//! `transcript` at the end.

use crate::asr::client::{refused, AsrClient, AsrError, Confidence, Transcript};
use std::time::{Duration, Instant};
use tokio::io::{AsyncWrite, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use wyoming::{AudioFormat, Event};

/// Audio per `audio-chunk`: 100 ms.
const CHUNK_SAMPLES: usize = 1_600;

/// An utterance being streamed. Dropping it hangs up: the service drops the audio.
pub struct Stream {
    client: AsrClient,
    w: Box<dyn AsyncWrite + Unpin + Send>,
    /// The service's events, read by a task of their own so that waiting for one can be
    /// cancelled without losing half of it.
    events: mpsc::Receiver<Result<Event, AsrError>>,
    reader: JoinHandle<()>,
}

/// What the service made of the audio up to a pause.
#[derive(Debug, Clone, PartialEq)]
pub struct Partial {
    pub text: String,
    pub confidence: Option<Confidence>,
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl AsrClient {
    /// Opens a stream for one utterance.
    pub async fn stream(&self) -> Result<Stream, AsrError> {
        let (r, mut w) = self.connect().await?;
        let mut request = serde_json::json!({});
        if let Some(p) = &self.prompt {
            request["prompt"] = p.as_str().into();
        }
        if let Some(l) = &self.language {
            request["language"] = l.as_str().into();
        }
        let send = |e: wyoming::Error| self.protocol(e);
        wyoming::write(&mut w, &Event::new("transcribe", request))
            .await
            .map_err(send)?;
        wyoming::write(&mut w, &wyoming::audio_start(AudioFormat::SPEECH))
            .await
            .map_err(send)?;
        let (tx, events) = mpsc::channel(4);
        let client = self.clone();
        let reader = tokio::spawn(async move {
            let mut r = BufReader::new(r);
            loop {
                let event = match wyoming::read(&mut r).await {
                    Ok(Some(e)) => Ok(e),
                    Ok(None) => Err(client.protocol("closed the stream before its transcript")),
                    Err(e) => Err(client.protocol(e)),
                };
                let end = event.is_err();
                if tx.send(event).await.is_err() || end {
                    return;
                }
            }
        });
        Ok(Stream {
            client: self.clone(),
            w,
            events,
            reader,
        })
    }
}

impl Stream {
    /// Sends the next piece of the utterance.
    pub async fn audio(&mut self, samples: &[i16]) -> Result<(), AsrError> {
        for chunk in samples.chunks(CHUNK_SAMPLES) {
            let pcm = chunk.iter().flat_map(|s| s.to_le_bytes()).collect();
            wyoming::write(&mut self.w, &wyoming::audio_chunk(AudioFormat::SPEECH, pcm))
                .await
                .map_err(|e| self.client.protocol(e))?;
        }
        Ok(())
    }

    /// Asks for the audio so far, followed by `pad` samples of silence, to be decoded; the
    /// answer comes from [`Stream::partial`]. False where the service has no partial
    /// transcripts (any but `cabin-asr`).
    pub async fn ask_partial(&mut self, pad: usize) -> Result<bool, AsrError> {
        if !self.client.partials {
            return Ok(false);
        }
        let pad_ms = pad as u64 * 1000 / 16_000;
        wyoming::write(
            &mut self.w,
            &Event::new("transcribe-partial", serde_json::json!({"pad_ms": pad_ms})),
        )
        .await
        .map_err(|e| self.client.protocol(e))?;
        Ok(true)
    }

    /// The next partial transcript, in the order they were asked for. Cancel-safe.
    pub async fn partial(&mut self) -> Result<Partial, AsrError> {
        loop {
            let event = self
                .events
                .recv()
                .await
                .unwrap_or_else(|| Err(self.client.protocol("the stream's reader stopped")))?;
            match event.kind.as_str() {
                "transcript-partial" => {
                    let text = event
                        .str("text")
                        .ok_or_else(|| self.client.protocol("transcript-partial without text"))?;
                    return Ok(Partial {
                        text: self.client.heard(text),
                        confidence: Confidence::of(&event),
                    });
                }
                "error" => return Err(refused(&event)),
                _ => continue,
            }
        }
    }

    /// Ends the utterance and waits (at most `limit`) for its transcript.
    pub async fn finish(mut self, limit: Duration) -> Result<Transcript, AsrError> {
        let address = self.client.address.to_string();
        let exchange = async {
            wyoming::write(&mut self.w, &wyoming::audio_stop())
                .await
                .map_err(|e| self.client.protocol(e))?;
            let stopped = Instant::now();
            loop {
                let event =
                    self.events.recv().await.unwrap_or_else(|| {
                        Err(self.client.protocol("the stream's reader stopped"))
                    })?;
                match event.kind.as_str() {
                    "transcript" => {
                        let text = event
                            .str("text")
                            .ok_or_else(|| self.client.protocol("transcript without text"))?;
                        return Ok(Transcript {
                            text: self.client.heard(text),
                            ms: stopped.elapsed().as_secs_f64() * 1000.0,
                            confidence: Confidence::of(&event),
                        });
                    }
                    "error" => return Err(refused(&event)),
                    // Partials asked for before the end.
                    _ => continue,
                }
            }
        };
        tokio::time::timeout(limit, exchange)
            .await
            .map_err(|_| AsrError::Timeout(address, limit.as_secs_f64()))?
    }
}
