//! The Wyoming ASR service: `describe` → `info`; `transcribe`, `audio-start`, `audio-chunk`…,
//! `audio-stop` → `transcript`. One task per connection; transcription queues on the engine.
//! Connections, their idle time and the engine's queue are bounded ([`Limits`]): past a bound a
//! client gets an `error` event saying which, never a worker that grows until it is killed.

use crate::engine::{Engine, Request};
use serde_json::{json, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::sync::{oneshot, Semaphore};
use wyoming::{AudioFormat, Event};

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
    /// A connection that sends no event for this long is told `idle` and closed.
    pub idle: Duration,
    /// Utterances waiting for or in the engine; one more is told `busy`.
    pub queued: usize,
}

/// Where the service listens: `tcp://HOST:PORT` or `unix://PATH` (Wyoming's URIs).
pub enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener, std::path::PathBuf),
}

impl Listener {
    pub async fn bind(uri: &str) -> anyhow::Result<Listener> {
        if let Some(addr) = uri.strip_prefix("tcp://") {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {uri}: {e}"))?;
            Ok(Listener::Tcp(l))
        } else if let Some(path) = uri.strip_prefix("unix://") {
            // A socket left by a killed worker would make bind fail.
            if std::fs::symlink_metadata(path).is_ok_and(|m| {
                use std::os::unix::fs::FileTypeExt;
                m.file_type().is_socket()
            }) {
                let _ = std::fs::remove_file(path);
            }
            let l = tokio::net::UnixListener::bind(path)
                .map_err(|e| anyhow::anyhow!("cannot listen on {uri}: {e}"))?;
            Ok(Listener::Unix(l, path.into()))
        } else {
            anyhow::bail!("'{uri}' is not a Wyoming address: use tcp://HOST:PORT or unix://PATH")
        }
    }

    /// The address clients connect to (the real port when bound to port 0).
    pub fn uri(&self) -> String {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("tcp://{a}"),
                Err(_) => "tcp://?".into(),
            },
            Listener::Unix(_, p) => format!("unix://{}", p.display()),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

pub async fn run(listener: Listener, service: Arc<Service>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let open = Arc::new(Semaphore::new(service.limits.connections));
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            conn = accept(&listener) => match conn {
                Ok((r, mut w)) => {
                    let service = service.clone();
                    let Ok(permit) = open.clone().try_acquire_owned() else {
                        let busy = error("busy", &format!(
                            "{} connections are open already; close one, or try again",
                            service.limits.connections
                        ));
                        tokio::spawn(async move {
                            let _ = tokio::time::timeout(
                                Duration::from_secs(1),
                                wyoming::write(&mut w, &busy),
                            )
                            .await;
                        });
                        continue;
                    };
                    tokio::spawn(async move {
                        serve(r, w, &service).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
        }
    }
}

type Halves = (
    Box<dyn AsyncRead + Unpin + Send>,
    Box<dyn AsyncWrite + Unpin + Send>,
);

async fn accept(listener: &Listener) -> std::io::Result<Halves> {
    Ok(match listener {
        Listener::Tcp(l) => {
            let (s, _) = l.accept().await?;
            let _ = s.set_nodelay(true);
            let (r, w) = s.into_split();
            (Box::new(r), Box::new(w))
        }
        Listener::Unix(l, _) => {
            let (s, _) = l.accept().await?;
            let (r, w) = s.into_split();
            (Box::new(r), Box::new(w))
        }
    })
}

/// One client's events until it hangs up or breaks the framing.
pub async fn serve<R, W>(r: R, mut w: W, service: &Service)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut r = BufReader::new(r);
    let mut turn = Turn::default();
    loop {
        let Ok(event) = tokio::time::timeout(service.limits.idle, wyoming::read(&mut r)).await
        else {
            let idle = error(
                "idle",
                &format!(
                    "no event for {} s; closing the connection",
                    service.limits.idle.as_secs()
                ),
            );
            let _ = wyoming::write(&mut w, &idle).await;
            return;
        };
        let event = match event {
            Ok(Some(e)) => e,
            Ok(None) => return,
            Err(wyoming::Error::Io(e)) => {
                tracing::debug!(error = %e, "client gone");
                return;
            }
            Err(wyoming::Error::Malformed(m)) => {
                // The stream is out of step: say why and hang up.
                let _ = wyoming::write(&mut w, &error("malformed-event", &m)).await;
                return;
            }
        };
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
            if wyoming::write(&mut w, &reply).await.is_err() {
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
            let loudest = loudest_frame_dbfs(&samples);
            if loudest < service.silence_dbfs {
                tracing::info!(
                    seconds = samples.len() as f64 / 16_000.0,
                    loudest_dbfs = loudest,
                    "silence: not transcribed"
                );
                return Ok(Some(transcript("", language.as_deref())));
            }
            let seconds = samples.len() as f64 / 16_000.0;
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
                    tracing::info!(seconds, decode_ms = t.decode_ms, "transcribed");
                    Ok(Some(transcript(&t.text, t.language.as_deref())))
                }
                Ok(Err(e)) => Err(error("asr-failed", &e)),
                Err(_) => Err(error("engine-down", "the whisper engine has stopped")),
            }
        }
        // Wyoming peers ignore events they do not know.
        _ => Ok(None),
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

fn transcript(text: &str, language: Option<&str>) -> Event {
    let mut data = json!({"text": text});
    if let Some(l) = language {
        data["language"] = l.into();
    }
    Event::new("transcript", data)
}

/// A whisper language code: two or three lowercase ASCII letters ("en", "haw"), or "auto".
fn is_language_code(l: &str) -> bool {
    l == "auto" || ((2..=3).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_lowercase()))
}

fn error(code: &str, text: &str) -> Event {
    Event::new("error", json!({"text": text, "code": code}))
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
