//! Cabin's voice as a Wyoming TTS service (`cabin wyoming --tts URI`), for Home Assistant and
//! any other Wyoming client: `describe` → `info`; `synthesize` `{"text"}` → `audio-start`,
//! `audio-chunk`…, `audio-stop`. The audio streams piece by piece ([`pieces`]): the first
//! piece's chunks go out while the next is synthesised. Synthesis runs on tokio's blocking
//! pool, one piece at a time for all clients (one voice).

use crate::speak::voice::{pieces, Voice};
use crate::text::take_phrases;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use wyoming::{error, AudioFormat, Event};

/// Longest text one `synthesize` may bring, in characters: as long as a request to the
/// daemon (`SubmitText`), about 50 s of speech. Memory does not grow with it (the text is
/// spoken a piece at a time, [`pieces`]), but every client shares the one voice: 4,000
/// characters were 3.5 minutes of speech and 15 s of synthesis on a 2-core machine, 1,000 are
/// 52 s and 5 s (docs/speech.md).
pub const MAX_TEXT: usize = 1_000;
/// Samples per `audio-chunk`.
const CHUNK_SAMPLES: usize = 2_048;

pub struct TtsService {
    voice: Arc<Mutex<Box<dyn Voice>>>,
    /// The voice's [`Voice::spells_numbers`].
    spelled: bool,
    format: AudioFormat,
    info: Event,
    /// A connection that sends no event for this long is closed.
    pub idle: Duration,
}

impl TtsService {
    /// Serves `voice`; `language` is the profile's (announced in `info`).
    pub fn new(voice: Box<dyn Voice>, language: &str) -> TtsService {
        let name = voice.name();
        let format = AudioFormat {
            rate: voice.sample_rate(),
            width: 2,
            channels: 1,
        };
        // Wyoming wants a URL; Cabin has none to give.
        let attribution = json!({"name": "Cabin", "url": ""});
        let info = Event::new(
            "info",
            json!({
                "tts": [{
                    "name": "cabin",
                    "description": "Cabin's in-car voice",
                    "attribution": attribution,
                    "installed": true,
                    "version": env!("CARGO_PKG_VERSION"),
                    "supports_synthesize_streaming": false,
                    "voices": [{
                        "name": name,
                        "description": name,
                        "attribution": attribution,
                        "installed": true,
                        "version": null,
                        "languages": [language],
                        "speakers": null,
                    }],
                }],
            }),
        );
        TtsService {
            spelled: voice.spells_numbers(),
            voice: Arc::new(Mutex::new(voice)),
            format,
            info,
            idle: Duration::from_secs(60),
        }
    }

    /// One client's events until it hangs up or breaks the framing.
    pub async fn serve<R, W>(&self, r: R, mut w: W)
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut r = BufReader::new(r);
        while let Some(event) = wyoming::next_event(&mut r, &mut w, self.idle).await {
            let answered = match event.kind.as_str() {
                "describe" => wyoming::write_paced(&mut w, &self.info).await.is_ok(),
                "synthesize" => match self.synthesize(&event, &mut w).await {
                    Ok(()) => true,
                    Err(Refusal::Said(e)) => wyoming::write_paced(&mut w, &e).await.is_ok(),
                    Err(Refusal::Gone) => false,
                },
                // Wyoming peers ignore events they do not know.
                _ => true,
            };
            if !answered {
                return;
            }
        }
    }

    /// Speaks `synthesize`'s text to `w`, piece by piece.
    async fn synthesize<W: AsyncWrite + Unpin>(
        &self,
        event: &Event,
        w: &mut W,
    ) -> Result<(), Refusal> {
        let Some(text) = event.str("text") else {
            return Err(Refusal::Said(error(
                "bad-request",
                "synthesize without a text",
            )));
        };
        let length = text.chars().count();
        if length > MAX_TEXT {
            return Err(Refusal::Said(error(
                "too-long",
                &format!(
                    "{length} characters of text; at most {MAX_TEXT} a request (send a long text in parts)"
                ),
            )));
        }
        let mut text = text.to_string();
        let mut started = false;
        let said = take_phrases(&mut text, true, true)
            .into_iter()
            .flat_map(|phrase| pieces(&phrase, self.spelled));
        for spoken in said {
            let voice = self.voice.clone();
            let samples = tokio::task::spawn_blocking(move || {
                let mut voice = voice.lock().unwrap_or_else(|p| p.into_inner());
                voice.synthesize(&spoken)
            })
            .await;
            let samples = match samples {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(Refusal::Said(error("tts-failed", &e.to_string()))),
                Err(e) => return Err(Refusal::Said(error("tts-failed", &e.to_string()))),
            };
            if !started {
                send(w, &wyoming::audio_start(self.format)).await?;
                started = true;
            }
            for chunk in samples.chunks(CHUNK_SAMPLES) {
                let pcm = chunk
                    .iter()
                    .flat_map(|s| ((s * 32767.0).clamp(-32768.0, 32767.0) as i16).to_le_bytes())
                    .collect();
                send(w, &wyoming::audio_chunk(self.format, pcm)).await?;
            }
        }
        if !started {
            send(w, &wyoming::audio_start(self.format)).await?;
        }
        send(w, &wyoming::audio_stop()).await
    }
}

/// Why a request got no audio.
enum Refusal {
    /// Tell the client this.
    Said(Event),
    /// The client is gone.
    Gone,
}

async fn send<W: AsyncWrite + Unpin>(w: &mut W, e: &Event) -> Result<(), Refusal> {
    wyoming::write_paced(w, e).await.map_err(|_| Refusal::Gone)
}
