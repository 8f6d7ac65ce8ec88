//! The Wyoming ASR service: `describe` → `info`; `transcribe`, `audio-start`, `audio-chunk`…,
//! `audio-stop` → `transcript`. Cabin's extension: `transcribe-partial` between chunks →
//! `transcript-partial`, the audio so far decoded while the driver is still speaking (other
//! Wyoming clients never send it, other servers ignore it). One task per connection;
//! transcription queues on the engine.
//! Connections, their idle time and the engine's queue are bounded ([`Limits`]): past a bound a
//! client gets an `error` event saying which, never a worker that grows until it is killed.

use crate::engine::{Engine, Request};
use serde_json::{json, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::sync::{oneshot, Semaphore};
use wyoming::{error, AudioFormat, Event, Listener};

pub struct Service {
    pub engine: Engine,
    /// The `info` event's data.
    pub info: Value,
    /// Decoder prompt when a `transcribe` event brings none.
    pub prompt: Option<String>,
    /// Audio whose loudest 20 ms frame is quieter than this (dBFS) is not transcribed:
    /// whisper invents sentences on silence.
    pub silence_dbfs: f32,
    /// Longest utterance accepted, in samples.
    pub max_samples: usize,
    pub limits: Limits,
    /// Places for utterances handed to the engine and not yet answered (`limits.queued`).
    pub queue: Semaphore,
}

/// Bounds on what clients may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections; one more is told `busy` and closed.
    pub connections: usize,
    /// Open connections on the reserved socket, counted apart (`--reserved-fd`).
    pub reserved: usize,
    /// A connection that sends no event for this long is told `idle` and closed.
    pub idle: Duration,
    /// Utterances waiting for or in the engine; one more is told `busy`.
    pub queued: usize,
}

/// Serves `listener`, and `reserved` (its own `limits.reserved` places) beside it, until
/// `shutdown`.
pub async fn run(
    listener: Listener,
    reserved: Option<Listener>,
    service: Arc<Service>,
    shutdown: impl Future<Output = ()>,
) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let handle = |(r, w): wyoming::Halves| {
        let service = service.clone();
        async move { serve(r, w, &service).await }
    };
    let public = wyoming::serve(
        &listener,
        service.limits.connections,
        until_stopped(),
        handle,
    );
    let reserved = async {
        if let Some(reserved) = &reserved {
            wyoming::serve(reserved, service.limits.reserved, until_stopped(), handle).await;
        }
    };
    let shutdown = async {
        shutdown.await;
        let _ = stop.send(true);
    };
    tokio::join!(public, reserved, shutdown);
}

/// One client's events until it hangs up or breaks the framing.
pub async fn serve<R, W>(r: R, mut w: W, service: &Service)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut r = BufReader::new(r);
    let mut turn = Turn::default();
    while let Some(event) = wyoming::next_event(&mut r, &mut w, service.limits.idle).await {
        let reply = match handle(&mut turn, event, service).await {
            Ok(reply) => reply,
            Err(e) => {
                // A refused `transcribe` stays refused until its `audio-stop`.
                turn = Turn {
                    refused: turn.refused,
                    ..Turn::default()
                };
                Some(e)
            }
        };
        if let Some(reply) = reply {
            if wyoming::write_paced(&mut w, &reply).await.is_err() {
                return;
            }
        }
    }
}

/// What one `transcribe … audio-stop` exchange has collected.
#[derive(Default)]
struct Turn {
    /// The `transcribe` was refused: its audio is dropped, not transcribed.
    refused: bool,
    language: Option<String>,
    prompt: Option<String>,
    format: Option<AudioFormat>,
    samples: Vec<f32>,
}

async fn handle(turn: &mut Turn, event: Event, service: &Service) -> Result<Option<Event>, Event> {
    match event.kind.as_str() {
        // The supervising daemon's health check: an engine that can no longer transcribe
        // answers an error, and the worker is restarted.
        "describe" => match service.engine.health() {
            Ok(()) => Ok(Some(Event::new("info", service.info.clone()))),
            Err(why) => Err(error("engine-down", &why)),
        },
        "ping" => Ok(Some(Event::new("pong", json!({})))),
        "transcribe" => {
            let language = event.str("language").map(str::to_string);
            let prompt = event.str("prompt").map(str::to_string);
            // Checked here: whisper.cpp takes both as C strings, and a bad one would panic
            // the engine thread, leaving the worker deaf for every later request.
            turn.refused = true;
            if let Some(l) = language.as_deref().filter(|l| !is_language_code(l)) {
                return Err(error(
                    "bad-language",
                    &format!(
                        "'{}' is not a language code (two or three lowercase letters, such as en)",
                        l.escape_debug()
                    ),
                ));
            }
            if prompt.as_deref().is_some_and(|p| p.contains('\0')) {
                return Err(error("bad-prompt", "the prompt contains a NUL character"));
            }
            turn.refused = false;
            turn.language = language;
            turn.prompt = prompt;
            Ok(None)
        }
        "audio-start" => {
            turn.format = Some(speech_format(&event)?);
            turn.samples.clear();
            Ok(None)
        }
        "audio-chunk" => {
            let format = match turn.format {
                Some(f) => f,
                None => {
                    let f = speech_format(&event)?;
                    turn.format = Some(f);
                    f
                }
            };
            if !event
                .payload
                .len()
                .is_multiple_of(format.width as usize * format.channels as usize)
            {
                return Err(error(
                    "bad-audio",
                    "audio-chunk payload is not a whole number of frames",
                ));
            }
            append_pcm(&mut turn.samples, &event.payload, format.channels);
            if turn.samples.len() > service.max_samples {
                return Err(error(
                    "too-long",
                    &format!(
                        "utterance longer than {} s; end-point the audio before sending it",
                        service.max_samples / 16_000
                    ),
                ));
            }
            Ok(None)
        }
        "transcribe-partial" => {
            if turn.refused {
                return Ok(None);
            }
            // Silence as the end of the utterance would have it (Cabin's front end asks at a
            // pause shorter than the silence it keeps after speech), at most a second.
            let pad = event.uint("pad_ms").unwrap_or(0).min(1000) as usize * 16;
            let mut samples = Vec::with_capacity(turn.samples.len() + pad);
            samples.extend_from_slice(&turn.samples);
            samples.resize(turn.samples.len() + pad, 0.0);
            let prompt = turn.prompt.clone().or_else(|| service.prompt.clone());
            let text = decode(samples, prompt, turn.language.clone(), service, "partial").await?;
            let seconds = turn.samples.len() as f64 / 16_000.0;
            let mut event = transcript(&text);
            event.kind = "transcript-partial".into();
            event.data.insert("seconds".into(), seconds.into());
            event.data.remove("language");
            Ok(Some(event))
        }
        "audio-stop" => {
            let samples = std::mem::take(&mut turn.samples);
            if std::mem::take(&mut turn.refused) {
                // The error was the answer to its `transcribe`.
                turn.format = None;
                return Ok(None);
            }
            let language = turn.language.take();
            let prompt = turn.prompt.take().or_else(|| service.prompt.clone());
            turn.format = None;
            let t = decode(samples, prompt, language, service, "final").await?;
            Ok(Some(transcript(&t)))
        }
        // Wyoming peers ignore events they do not know.
        _ => Ok(None),
    }
}

/// Decodes an utterance on the engine (partial or final, as `what` says for the log); audio
/// quieter than the service's floor is not decoded.
async fn decode(
    samples: Vec<f32>,
    prompt: Option<String>,
    language: Option<String>,
    service: &Service,
    what: &'static str,
) -> Result<crate::engine::Transcript, Event> {
    let seconds = samples.len() as f64 / 16_000.0;
    let loudest = loudest_frame_dbfs(&samples);
    if loudest < service.silence_dbfs {
        tracing::info!(
            seconds,
            loudest_dbfs = loudest,
            what,
            "silence: not transcribed"
        );
        return Ok(crate::engine::Transcript {
            text: String::new(),
            language,
            decode_ms: 0.0,
            confidence: None,
        });
    }
    let Ok(_queued) = service.queue.try_acquire() else {
        return Err(error(
            "busy",
            &format!(
                "{} utterances are being transcribed already; try again",
                service.limits.queued
            ),
        ));
    };
    let (tx, rx) = oneshot::channel();
    let req = Request {
        samples,
        prompt,
        language,
        reply: tx,
    };
    if service.engine.submit(req).is_err() {
        return Err(error("engine-down", "the whisper engine has stopped"));
    }
    match rx.await {
        Ok(Ok(t)) => {
            tracing::info!(seconds, decode_ms = t.decode_ms, what, "transcribed");
            Ok(t)
        }
        Ok(Err(e)) => Err(error("asr-failed", &e)),
        Err(_) => Err(error("engine-down", "the whisper engine has stopped")),
    }
}

fn speech_format(event: &Event) -> Result<AudioFormat, Event> {
    let f = AudioFormat::of(event).map_err(|e| error("bad-audio", &e.to_string()))?;
    if f.rate != 16_000 || f.width != 2 {
        return Err(error(
            "bad-audio",
            &format!(
                "cabin-asr takes 16 kHz 16-bit PCM; got {} Hz, {}-byte samples: resample before sending",
                f.rate, f.width
            ),
        ));
    }
    Ok(f)
}

/// Appends little-endian 16-bit PCM, averaging channels to mono.
fn append_pcm(out: &mut Vec<f32>, pcm: &[u8], channels: u16) {
    let channels = channels as usize;
    for frame in pcm.chunks_exact(2 * channels) {
        let sum: f32 = frame
            .chunks_exact(2)
            .map(|s| i16::from_le_bytes([s[0], s[1]]) as f32)
            .sum();
        out.push(sum / (channels as f32 * 32768.0));
    }
}

/// Level of the loudest 20 ms frame, dBFS (-inf for digital silence).
pub fn loudest_frame_dbfs(samples: &[f32]) -> f32 {
    let loudest = samples
        .chunks(320)
        .map(|f| (f.iter().map(|s| s * s).sum::<f32>() / f.len() as f32).sqrt())
        .fold(0.0f32, f32::max);
    20.0 * loudest.log10()
}

/// The `transcript` event; Cabin's extension: `confidence`, how sure whisper was of the words
/// (other Wyoming clients ignore it).
fn transcript(t: &crate::engine::Transcript) -> Event {
    let mut data = json!({"text": t.text});
    if let Some(l) = &t.language {
        data["language"] = l.as_str().into();
    }
    if let Some(c) = t.confidence {
        data["confidence"] = json!({"mean": c.mean, "lowest": c.lowest, "no_speech": c.no_speech});
    }
    Event::new("transcript", data)
}

/// A whisper language code: two or three lowercase ASCII letters ("en", "haw"), or "auto".
fn is_language_code(l: &str) -> bool {
    l == "auto" || ((2..=3).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm_is_downmixed_and_scaled() {
        let mut out = Vec::new();
        let pcm: Vec<u8> = [16384i16, -16384, 32767, 32767]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        append_pcm(&mut out, &pcm, 2);
        assert_eq!(out.len(), 2);
        assert!(out[0].abs() < 1e-6);
        assert!((out[1] - 32767.0 / 32768.0).abs() < 1e-6);
    }

    #[test]
    fn loudness_of_silence_and_tone() {
        assert_eq!(loudest_frame_dbfs(&[0.0; 1600]), f32::NEG_INFINITY);
        let tone: Vec<f32> = (0..1600).map(|i| 0.5 * (i as f32 * 0.1).sin()).collect();
        let db = loudest_frame_dbfs(&tone);
        assert!((db - -9.0).abs() < 0.5, "{db}");
    }
}
