//! Cabin's wake word as a Wyoming wake service (`cabin wyoming --wake URI`): `describe` →
//! `info`; `detect` (optional), `audio-start`, `audio-chunk`… → a `detection` each time the
//! word is heard (at most once per refractory period), and `not-detected` at `audio-stop` when
//! it never was. Each connection has its own detector; the models run on tokio's blocking
//! pool, never on a runtime thread.

use crate::hear::wake::{WakeModels, WakeWord, CHUNK};
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use wyoming::{error, AudioFormat, Event};

pub struct WakeService {
    models: WakeModels,
    /// The model's name, as clients name it in `detect`.
    name: String,
    phrase: String,
    threshold: f32,
    refractory: Duration,
    info: Event,
    /// A connection that sends no event for this long is closed.
    pub idle: Duration,
}

/// One connection's detector and the stream it is in.
struct Stream {
    wake: Option<WakeWord>,
    /// Samples not yet a whole chunk.
    pending: Vec<i16>,
    /// Samples since `audio-start`.
    heard: u64,
    last_detection: Option<u64>,
    detected: bool,
}

impl WakeService {
    /// Serves the keyword model `name` (a catalogue name or a path; see
    /// [`WakeModels::resolve`]), said as `phrase`.
    pub fn new(
        models: WakeModels,
        name: &str,
        phrase: &str,
        language: &str,
        threshold: f32,
        refractory: Duration,
    ) -> WakeService {
        let attribution =
            json!({"name": "openWakeWord", "url": "https://github.com/dscripka/openWakeWord"});
        let info = Event::new(
            "info",
            json!({
                "wake": [{
                    "name": "cabin",
                    "description": "Cabin's wake word detector (openWakeWord models)",
                    "attribution": attribution,
                    "installed": true,
                    "version": env!("CARGO_PKG_VERSION"),
                    "models": [{
                        "name": name,
                        "description": phrase,
                        "attribution": attribution,
                        "installed": true,
                        "version": null,
                        "languages": [language],
                        "phrase": phrase,
                    }],
                }],
            }),
        );
        WakeService {
            models,
            name: name.into(),
            phrase: phrase.into(),
            threshold,
            refractory,
            info,
            idle: Duration::from_secs(120),
        }
    }

    /// One client's events until it hangs up or breaks the framing.
    pub async fn serve<R, W>(&self, r: R, mut w: W)
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut r = BufReader::new(r);
        let models = self.models.clone();
        let wake = match tokio::task::spawn_blocking(move || WakeWord::load(&models)).await {
            Ok(Ok(w)) => w,
            Ok(Err(e)) => {
                let _ = wyoming::write_paced(&mut w, &error("engine-down", &e.to_string())).await;
                return;
            }
            Err(e) => {
                let _ = wyoming::write_paced(&mut w, &error("engine-down", &e.to_string())).await;
                return;
            }
        };
        let mut stream = Stream {
            wake: Some(wake),
            pending: Vec::new(),
            heard: 0,
            last_detection: None,
            detected: false,
        };
        while let Some(event) = wyoming::next_event(&mut r, &mut w, self.idle).await {
            let replies = match self.handle(&mut stream, &event).await {
                Ok(replies) => replies,
                Err(e) => vec![e],
            };
            for reply in replies {
                if wyoming::write_paced(&mut w, &reply).await.is_err() {
                    return;
                }
            }
            if stream.wake.is_none() {
                return;
            }
        }
    }

    async fn handle(&self, s: &mut Stream, event: &Event) -> Result<Vec<Event>, Event> {
        match event.kind.as_str() {
            "describe" => Ok(vec![self.info.clone()]),
            "detect" => {
                let names = event.data.get("names").and_then(|n| n.as_array());
                let ours = |n: &serde_json::Value| {
                    n.as_str()
                        .is_some_and(|n| n == self.name || n.eq_ignore_ascii_case(&self.phrase))
                };
                match names {
                    Some(names) if !names.is_empty() && !names.iter().any(ours) => Err(error(
                        "unknown-wake-word",
                        &format!(
                            "this service detects '{}' (\"{}\") only",
                            self.name, self.phrase
                        ),
                    )),
                    _ => Ok(vec![]),
                }
            }
            "audio-start" => {
                speech_format(event)?;
                s.pending.clear();
                s.heard = 0;
                s.last_detection = None;
                s.detected = false;
                if let Some(w) = &mut s.wake {
                    w.reset();
                }
                Ok(vec![])
            }
            "audio-chunk" => {
                speech_format(event)?;
                if !event.payload.len().is_multiple_of(2) {
                    return Err(error(
                        "bad-audio",
                        "audio-chunk payload is not a whole number of samples",
                    ));
                }
                s.pending.extend(
                    event
                        .payload
                        .chunks_exact(2)
                        .map(|b| i16::from_le_bytes([b[0], b[1]])),
                );
                self.detect(s).await
            }
            "audio-stop" => {
                let detected = std::mem::take(&mut s.detected);
                Ok(if detected {
                    vec![]
                } else {
                    vec![Event::new("not-detected", json!({}))]
                })
            }
            _ => Ok(vec![]),
        }
    }

    /// Runs the whole chunks pending through the detector: a `detection` for each time the
    /// word is heard, a refractory period apart.
    async fn detect(&self, s: &mut Stream) -> Result<Vec<Event>, Event> {
        let whole = s.pending.len() / CHUNK * CHUNK;
        if whole == 0 {
            return Ok(vec![]);
        }
        let audio: Vec<i16> = s.pending.drain(..whole).collect();
        let Some(mut wake) = s.wake.take() else {
            return Err(error("engine-down", "the wake word detector has stopped"));
        };
        let scored = tokio::task::spawn_blocking(move || {
            let scores: Result<Vec<f32>, _> = audio
                .chunks_exact(CHUNK)
                .map(|c| wake.push(c.try_into().expect("a CHUNK-long slice")))
                .collect();
            (wake, scores)
        })
        .await;
        let scores = match scored {
            Ok((wake, scores)) => {
                s.wake = Some(wake);
                scores.map_err(|e| error("engine-down", &e.to_string()))?
            }
            // The detector is lost with its thread: the connection ends.
            Err(e) => return Err(error("engine-down", &e.to_string())),
        };
        let refractory = (self.refractory.as_secs_f64() * 16_000.0) as u64;
        let mut out = Vec::new();
        for score in scores {
            s.heard += CHUNK as u64;
            let rested = s.last_detection.is_none_or(|at| s.heard - at >= refractory);
            if score >= self.threshold && rested {
                s.last_detection = Some(s.heard);
                s.detected = true;
                out.push(Event::new(
                    "detection",
                    json!({"name": self.name, "timestamp": s.heard * 1000 / 16_000}),
                ));
            }
        }
        Ok(out)
    }
}

fn speech_format(event: &Event) -> Result<(), Event> {
    let f = AudioFormat::of(event).map_err(|e| error("bad-audio", &e.to_string()))?;
    if f != AudioFormat::SPEECH {
        return Err(error(
            "bad-audio",
            &format!(
                "the wake word takes 16 kHz 16-bit mono PCM; got {} Hz, {}-byte samples, {} \
                 channels: convert before sending",
                f.rate, f.width, f.channels
            ),
        ));
    }
    Ok(())
}
