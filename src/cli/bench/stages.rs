//! The measured stages beyond plain text: the spoken fixtures through the listening
//! pipeline, the local model's route, and the voice.

use super::daemon::{ask, end_dialog};
use super::procs::*;
use crate::cli::percentile;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The spoken fixtures and the intent each asks for.
pub(super) const FIXTURES: &[(&str, &str)] = &[
    ("hey-cabin-call-jordan", "phone.call"),
    (
        "hey-cabin-navigate-to-munich-central-station",
        "navigation.navigate_to",
    ),
    (
        "hey-cabin-set-the-temperature-to-twenty-degrees",
        "climate.set_temperature",
    ),
    ("hey-cabin-turn-on-the-seat-heating", "seats.heating_on"),
    ("kokoro-zh-hey-cabin-qing-dakai-kongtiao", "climate.on"),
    ("kokoro-id-hey-cabin-putar-lagu-berikutnya", "media.next"),
    (
        "piper-hey-cabin-set-the-temperature-to--twenty-one-degrees",
        "climate.set_temperature",
    ),
    (
        "piper-hey-cabin-switch-the-seat-heating-on",
        "seats.heating_on",
    ),
];

pub(super) const END_OF_SPEECH_FAST: &str =
    "end of speech to first audio, fast path (end of turn + ASR + request)";
pub(super) const FIRST_AUDIO_FAST: &str = "request to first audio, fast path";
pub(super) const FIRST_AUDIO_LLM: &str = "request to first audio, local model";

/// Requests for the model routes: an indirect command, two answers, and a question the answer
/// bank answers.
pub(super) const LLM_CORPUS: &[&str] = &[
    "it is arctic in this car",
    "tell me a joke",
    "tell me something interesting about Munich",
    "will it rain in munich tomorrow",
];
pub(super) const FIRST_AUDIO_BANK: &str = "request to first audio, answer bank";

/// The speech front end's figures on the spoken fixtures (an error says why they can't run).
pub(super) struct Speech {
    pub(super) stages: BTreeMap<String, Vec<f64>>,
    /// Fixture → each run's [`Timeline`].
    pub(super) timelines: BTreeMap<String, Vec<Timeline>>,
    pub(super) cpu_s: f64,
    pub(super) audio_s: f64,
    pub(super) correct: usize,
    pub(super) runs: usize,
}

/// One spoken command's stages, in ms after its end of speech (the VAD's last speech frame).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Timeline {
    /// The end-pointer fires: after the profile's short pause for a whole command (once its
    /// transcript at the pause says so), else after the trailing silence.
    pub end_pointer: f64,
    /// `cabin-asr` has given the final transcript.
    pub transcript: f64,
    /// The daemon has acted and answered the request (its D-Bus round trip).
    pub action: f64,
    /// The reply's first audio is queued to play; none when nothing is spoken.
    pub first_audio: Option<f64>,
}

impl Timeline {
    /// Each stage at quantile `q` over `runs` (stage by stage, as medians are reported).
    pub(super) fn quantile(runs: &[Timeline], q: f64) -> Option<Timeline> {
        let at = |stage: &dyn Fn(&Timeline) -> Option<f64>| {
            let mut v: Vec<f64> = runs.iter().filter_map(stage).collect();
            v.sort_by(f64::total_cmp);
            (!v.is_empty()).then(|| percentile(&v, q))
        };
        Some(Timeline {
            end_pointer: at(&|t| Some(t.end_pointer))?,
            transcript: at(&|t| Some(t.transcript))?,
            action: at(&|t| Some(t.action))?,
            first_audio: at(&|t| t.first_audio),
        })
    }
}

/// Runs each fixture through the front end and the speech worker, then its transcript through
/// the daemon on `conn`.
pub(super) async fn speech(
    profile: &cabin::profile::Profile,
    conn: &zbus::Connection,
    replies: &mut zbus::MessageStream,
    speaking: bool,
    fixtures: &Path,
    rounds: usize,
) -> anyhow::Result<Speech> {
    use cabin::hear::Input;
    use cabin::listening::{Listened, Listening, Transcriber};
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures)
        .map_err(|e| anyhow::anyhow!("no fixtures in {}: {e}", fixtures.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .filter(|p| in_language(p, &profile.language))
        .collect();
    files.sort();
    anyhow::ensure!(
        !files.is_empty(),
        "no .wav fixtures in {} for language {}",
        fixtures.display(),
        profile.language
    );
    cabin::hear::Engines::load(&profile.models)?;
    let asr = std::sync::Arc::new(
        cabin::asr::start(profile, &cabin::asr::AsrChoice::Auto)
            .ok_or_else(|| anyhow::anyhow!("the profile names no asr model"))?,
    );
    let transcriber = Transcriber::new(profile, asr.clone());
    transcriber
        .ready(cabin::runtime::worker::SETTLE_LIMIT)
        .await
        .map_err(|e| anyhow::anyhow!("no speech recognition: {e}"))?;
    let mut out = Speech {
        stages: BTreeMap::new(),
        timelines: BTreeMap::new(),
        cpu_s: 0.0,
        audio_s: 0.0,
        correct: 0,
        runs: 0,
    };
    // The recordings play faster than real time and wait for each pause's transcript; the
    // timeline puts each stage where it falls in real time, counted from the end of speech.
    let frame_ms = |frames: usize| (frames * cabin::hear::vad::FRAME) as f64 / 16.0;
    let listen = &profile.listen;
    let trailing = frame_ms(cabin::hear::vad::frames(listen.trailing_silence));
    let whole = frame_ms(cabin::hear::vad::frames(
        listen.complete_silence.min(listen.trailing_silence),
    ));
    let asked = frame_ms(cabin::hear::front_end::PAUSE_FRAMES);
    for _ in 0..rounds {
        for file in &files {
            let (tx, mut heard) = tokio::sync::mpsc::channel(16);
            let listening = Listening::start(
                profile,
                Input::File(file.clone()),
                Default::default(),
                asr.clone(),
                false,
                cabin::runtime::worker::SETTLE_LIMIT,
                tx,
            )?;
            let mut command = None;
            while let Some(h) = heard.recv().await {
                match h {
                    Listened::Transcribed(c) => {
                        command = Some(c?);
                        listening.after_turn(false);
                    }
                    Listened::Ended {
                        audio_s,
                        wake_cpu_s,
                        vad_cpu_s,
                        clean_cpu_s,
                        ..
                    } => {
                        out.cpu_s += wake_cpu_s + vad_cpu_s + clean_cpu_s;
                        out.audio_s += audio_s;
                        break;
                    }
                    _ => {}
                }
            }
            out.runs += 1;
            let Some(heard) = command else { continue };
            let end_pointer = if heard.early {
                whole.max(asked + heard.partial_ms.unwrap_or(0.0))
            } else {
                trailing
            };
            let transcript = match heard.partial_ms {
                // The transcript at the pause was the whole command's.
                Some(ms) => end_pointer.max(asked + ms),
                None => end_pointer + heard.asr_ms,
            };
            if let Some(ms) = heard.partial_ms {
                out.stages
                    .entry("transcript at a pause (cabin-asr, during the end-of-turn wait)".into())
                    .or_default()
                    .push(ms);
            }
            out.stages
                .entry("speech recognition (cabin-asr, after end-pointing)".into())
                .or_default()
                .push(transcript - end_pointer);
            let text = heard.text.unwrap_or_default();
            let asked = ask(conn, replies, &text, speaking).await?;
            let outcome = asked.outcome;
            out.stages
                .entry("transcript to action and reply (daemon round trip)".into())
                .or_default()
                .push(asked.round_trip.as_secs_f64() * 1e3);
            let first_audio = asked
                .first_audio
                .map(|first| transcript + first.as_secs_f64() * 1e3);
            if let Some(ms) = first_audio {
                out.stages
                    .entry(END_OF_SPEECH_FAST.into())
                    .or_default()
                    .push(ms);
            }
            // "hey-cabin-set-the-temperature…" names what the command asks for.
            let name = file.file_stem().unwrap_or_default().to_string_lossy();
            out.timelines
                .entry(name.to_string())
                .or_default()
                .push(Timeline {
                    end_pointer,
                    transcript,
                    action: transcript + asked.round_trip.as_secs_f64() * 1e3,
                    first_audio,
                });
            let expected = FIXTURES.iter().find(|(n, _)| *n == name).map(|(_, i)| *i);
            if expected.is_some() && outcome["intent"].as_str() == expected {
                out.correct += 1;
            }
            end_dialog(conn).await?;
        }
    }
    Ok(out)
}

/// Whether a fixture is in `language`: English fixtures name none; another language's name
/// it as a word of the file name ("kokoro-zh-hey-cabin-…" is zh-CN).
fn in_language(file: &Path, language: &str) -> bool {
    let primary = language.split('-').next().unwrap_or(language);
    let stem = file.file_stem().unwrap_or_default().to_string_lossy();
    let named = stem.split('-').any(|w| w == primary);
    match primary {
        "en" => !stem.starts_with("kokoro-"),
        _ => named,
    }
}

/// The local model's requests: round trip and first audio. Waits (up to two minutes) for the
/// model to load first.
pub(super) async fn llm_stages(
    conn: &zbus::Connection,
    replies: &mut zbus::MessageStream,
    speaking: bool,
    corpus: &[String],
    rounds: usize,
) -> anyhow::Result<BTreeMap<String, Vec<f64>>> {
    anyhow::ensure!(!corpus.is_empty(), "nothing to ask the local model");
    let loading = Instant::now();
    // Until one of them reaches the loaded model (the classifier may decide some).
    for text in corpus.iter().cycle() {
        let asked = ask(conn, replies, text, false).await?;
        end_dialog(conn).await?;
        if asked.outcome["route"] == "local_llm" {
            break;
        }
        anyhow::ensure!(
            loading.elapsed() < Duration::from_secs(120),
            "the local model did not answer within two minutes: {}",
            asked.outcome
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut stages: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for _ in 0..rounds {
        for text in corpus {
            let asked = ask(conn, replies, text, speaking).await?;
            let talk = asked.outcome["intent"]
                .as_str()
                .is_some_and(|i| i.starts_with("small_talk."));
            if let (true, Some(first)) = (talk, asked.first_audio) {
                stages
                    .entry(FIRST_AUDIO_BANK.into())
                    .or_default()
                    .push(first.as_secs_f64() * 1e3);
            }
            if asked.outcome["route"] == "local_llm" {
                // An answer is spoken as it is generated; an action's reply after the action.
                let kind = if asked.outcome["intent"].is_null() {
                    "answer"
                } else {
                    "action"
                };
                stages
                    .entry(format!("round trip, local model {kind}"))
                    .or_default()
                    .push(asked.round_trip.as_secs_f64() * 1e3);
                if let Some(first) = asked.first_audio {
                    stages
                        .entry(format!("{FIRST_AUDIO_LLM} {kind}"))
                        .or_default()
                        .push(first.as_secs_f64() * 1e3);
                }
            }
            end_dialog(conn).await?;
        }
    }
    Ok(stages)
}

/// Synthesises every reply: the real-time factor, the CPU per second of speech (percent of
/// one core), and the synthesis time of each reply's first piece (what plays first) in ms.
pub(super) fn synthesis(
    voice: &mut dyn cabin::speak::voice::Voice,
    replies: &[String],
) -> anyhow::Result<(f64, f64, Vec<f64>)> {
    let (mut took, mut audio, mut firsts) = (0.0, 0.0, Vec::new());
    let cpu_before = cpu_ticks(std::process::id());
    let spelled = voice.spells_numbers();
    for reply in replies {
        let mut text = reply.clone();
        // As the speaker does: phrase by phrase, each a piece at a time.
        for (i, piece) in cabin::text::take_phrases(&mut text, true, true)
            .iter()
            .flat_map(|phrase| cabin::speak::voice::pieces(phrase, spelled))
            .enumerate()
        {
            let started = Instant::now();
            let samples = voice.synthesize(&piece)?;
            let t = started.elapsed().as_secs_f64();
            if i == 0 {
                firsts.push(t * 1e3);
            }
            took += t;
            audio += samples.len() as f64 / f64::from(voice.sample_rate());
        }
    }
    let cpu_s = match (cpu_before, cpu_ticks(std::process::id())) {
        (Some(a), Some(b)) => (b - a) as f64 / TICKS_PER_S,
        _ => f64::NAN,
    };
    anyhow::ensure!(audio > 0.0, "no reply to synthesise");
    Ok((took / audio, 100.0 * cpu_s / audio, firsts))
}
