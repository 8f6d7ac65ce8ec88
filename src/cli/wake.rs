//! `cabin wake eval`: how often a wake word model misses its phrase and how often it wakes on
//! other audio, reported the way Porcupine and openWakeWord report theirs: the false-reject
//! rate on positives and false accepts per hour of negatives, at each threshold.
//!
//! Positives are the phrase spoken by voices and in conditions chosen to be unlike any model's
//! training clips: eSpeak NG's accents and voice variants at two rates, and the profile's Piper
//! voice at three, each clean, at -12 dB, and in car noise at 10 dB SNR; plus any recordings in
//! `--positives`. Negatives are near misses and other requests in each eSpeak NG accent, the
//! profile's replies and intent descriptions in Cabin's own voice, the real recordings
//! `scripts/fetch-speech` installs, any in `--negatives`, and car noise.

use anyhow::{bail, Context, Result};
use cabin::hear::wake::{WakeModels, WakeWord, CHUNK};
use cabin::Profile;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Measure a wake word model: false-reject rate and false accepts per hour, by threshold.
    Eval(EvalArgs),
}

#[derive(clap::Args)]
pub struct EvalArgs {
    /// The keyword model: a catalogue name (`cabin models list`) or an openWakeWord `.onnx`
    /// (default: the profile's `[models] wake`).
    model: Option<String>,
    /// The phrase it wakes on (default: the profile's first wake word).
    #[arg(long)]
    phrase: Option<String>,
    #[arg(long)]
    profile: Option<PathBuf>,
    /// More positives: WAV recordings of the phrase (any rate).
    #[arg(long)]
    positives: Option<PathBuf>,
    /// More negatives: WAV recordings without the phrase (any rate).
    #[arg(long)]
    negatives: Option<PathBuf>,
    /// The real recordings scripts/fetch-speech installs, among the negatives.
    #[arg(long, env = "CABIN_SPEECH_DIR")]
    speech: Option<PathBuf>,
    /// Minutes of car noise added to the negatives.
    #[arg(long, default_value_t = 10.0)]
    noise_minutes: f64,
    /// Also write the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub async fn exec(command: Command) -> Result<ExitCode> {
    match command {
        Command::Eval(args) => tokio::task::spawn_blocking(move || eval(args)).await?,
    }
}

const RATE: f64 = 16_000.0;
/// eSpeak NG accents and voice variants for the positives.
const ESPEAK_VOICES: &[&str] = &["en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp"];
const ESPEAK_VARIANTS: &[&str] = &["", "+f2", "+m3", "+f4", "+m6"];
const ESPEAK_RATES: &[u32] = &[140, 185];
const PIPER_RATES: &[f32] = &[0.85, 1.0, 1.2];
/// Said near the phrase or like it, and ordinary requests: none should wake it.
const NEAR_MISSES: &[&str] = &[
    "hey",
    "hey there",
    "okay",
    "what is the weather like tomorrow",
    "turn on the seat heating and open the window",
    "call my sister when we get there",
    "I think we should stop for coffee soon",
    "play some jazz on the radio please",
    "how far is it to the next charging station",
    "the aurora borealis was beautiful last night",
];
const THRESHOLDS: &[f32] = &[0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

fn eval(args: EvalArgs) -> Result<ExitCode> {
    let profile = Profile::load_or_default(args.profile.as_deref())?;
    let model = match args.model.as_deref().or(profile.models.wake.as_deref()) {
        Some(m) => m.to_string(),
        None => bail!("no model: name one, or use a profile with [models] wake"),
    };
    let phrase = match args
        .phrase
        .clone()
        .or(profile.persona.wake_words.first().cloned())
    {
        Some(p) => p,
        None => bail!("no phrase: give --phrase, or use a profile with wake words"),
    };
    let dir = std::env::temp_dir().join(format!("cabin-wake-eval-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = eval_in(&args, &profile, &model, &phrase, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn eval_in(
    args: &EvalArgs,
    profile: &Profile,
    model: &str,
    phrase: &str,
    dir: &Path,
) -> Result<ExitCode> {
    let models = WakeModels::resolve(model)?;
    let mut wake = WakeWord::load(&models)?;

    eprintln!(
        "synthesising \"{phrase}\" in {} voices…",
        ESPEAK_VOICES.len() * ESPEAK_VARIANTS.len() * ESPEAK_RATES.len() + PIPER_RATES.len()
    );
    // (the voice's kind, the clip)
    let mut spoken = Vec::new();
    for voice in ESPEAK_VOICES {
        for variant in ESPEAK_VARIANTS {
            for rate in ESPEAK_RATES {
                let clip = espeak(&format!("{voice}{variant}"), *rate, phrase, dir)?;
                spoken.push(("eSpeak NG", clip));
            }
        }
    }
    for rate in PIPER_RATES {
        spoken.push(("Piper", piper(profile, *rate, phrase)?));
    }
    // (what the trial is, its audio)
    let mut positives = Vec::new();
    for (i, (voice, clip)) in spoken.iter().enumerate() {
        positives.push((format!("{voice}, clean"), trial(clip, None, 1.0)));
        positives.push((format!("{voice}, -12 dB"), trial(clip, None, 0.25)));
        let noisy = trial(clip, Some((10.0, i as u32 + 1)), 1.0);
        positives.push((format!("{voice}, car noise at 10 dB SNR"), noisy));
    }
    if let Some(d) = &args.positives {
        for clip in recordings(d)? {
            positives.push(("your recordings".into(), trial(&clip, None, 1.0)));
        }
    }

    eprintln!("scoring {} positives…", positives.len());
    let mut best = Vec::new();
    for (_, clip) in &positives {
        let scores = scores(&mut wake, clip)?;
        best.push(scores.iter().copied().fold(0.0f32, f32::max));
    }

    eprintln!("gathering negatives…");
    let mut negatives: Vec<i16> = Vec::new();
    let gap = vec![0i16; (0.3 * RATE) as usize];
    for voice in ESPEAK_VOICES {
        for text in NEAR_MISSES {
            negatives.extend(espeak(voice, 160, text, dir)?);
            negatives.extend(&gap);
        }
    }
    // Cabin's own voice: every reply without a slot, and what each intent does.
    let mut replies: Vec<&str> = profile
        .intents
        .iter()
        .flat_map(|i| [i.reply.as_str(), i.description.as_str()])
        .collect();
    replies.sort();
    replies.dedup();
    let mut voice = cabin::speak::voice::load(profile)?;
    for reply in replies.iter().filter(|r| !r.contains('{')) {
        let samples = voice.synthesize(&cabin::speak::speakable::speakable(reply))?;
        negatives.extend(to_i16(&cabin::hear::audio::resample(
            &samples,
            voice.sample_rate(),
        )?));
        negatives.extend(&gap);
    }
    let speech = args
        .speech
        .clone()
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/cabin/speech")));
    if let Some(speech) = speech.filter(|d| d.is_dir()) {
        for clip in recordings(&speech)? {
            negatives.extend(clip);
            negatives.extend(&gap);
        }
    }
    if let Some(d) = &args.negatives {
        for clip in recordings(d)? {
            negatives.extend(clip);
            negatives.extend(&gap);
        }
    }
    let speech_s = negatives.len() as f64 / RATE;
    negatives.extend(car_noise(
        (args.noise_minutes * 60.0 * RATE) as usize,
        7,
        0.05,
    ));
    let hours = negatives.len() as f64 / RATE / 3600.0;
    eprintln!(
        "scoring {:.1} minutes of negatives ({:.1} of speech)…",
        hours * 60.0,
        speech_s / 60.0
    );
    let negative_scores = scores(&mut wake, &negatives)?;
    let refractory = (profile.listen.refractory.as_secs_f64() * RATE / CHUNK as f64) as usize;

    let mut rows = Vec::new();
    println!(
        "{model} (\"{phrase}\"): {} positives, {:.2} h of negatives\n",
        positives.len(),
        hours
    );
    println!("| threshold | false rejects | false-reject rate | false accepts | per hour |");
    println!("|---|---|---|---|---|");
    for &t in THRESHOLDS {
        let missed = best.iter().filter(|s| **s < t).count();
        let accepts = count_wakes(&negative_scores, t, refractory);
        let frr = missed as f64 / positives.len() as f64;
        let mark = if (t - profile.listen.wake_threshold).abs() < 1e-3 {
            " (profile)"
        } else {
            ""
        };
        println!(
            "| {t:.1}{mark} | {missed} of {} | {:.1} % | {accepts} | {:.2} |",
            positives.len(),
            frr * 100.0,
            accepts as f64 / hours
        );
        rows.push(serde_json::json!({
            "threshold": t, "false_rejects": missed, "positives": positives.len(),
            "false_reject_rate": frr, "false_accepts": accepts,
            "false_accepts_per_hour": accepts as f64 / hours,
        }));
    }
    // Where the misses are, at the profile's threshold.
    let mut by_kind: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for ((kind, _), score) in positives.iter().zip(&best) {
        let e = by_kind.entry(kind.as_str()).or_default();
        e.1 += 1;
        if *score < profile.listen.wake_threshold {
            e.0 += 1;
        }
    }
    println!(
        "\nMissed at the profile's threshold ({}):",
        profile.listen.wake_threshold
    );
    for (kind, (missed, all)) in &by_kind {
        println!("- {kind}: {missed} of {all}");
    }
    if let Some(path) = &args.json {
        let report = serde_json::json!({
            "model": model, "phrase": phrase, "negative_hours": hours, "rows": rows,
        });
        std::fs::write(path, format!("{report}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A positive trial: half a second before the phrase and one after, at `gain`; in car noise
/// at `(snr_db, seed)` when given.
fn trial(clip: &[i16], noise: Option<(f64, u32)>, gain: f64) -> Vec<i16> {
    let pad = (0.5 * RATE) as usize;
    let mut out = vec![0i16; pad];
    out.extend(clip.iter().map(|s| (*s as f64 * gain) as i16));
    out.extend(vec![0i16; 2 * pad]);
    if let Some((snr_db, seed)) = noise {
        let rms = (clip.iter().map(|s| (*s as f64).powi(2)).sum::<f64>()
            / clip.len().max(1) as f64)
            .sqrt()
            * gain;
        let level = rms / 32768.0 / 10f64.powf(snr_db / 20.0);
        let noise = car_noise(out.len(), seed, level);
        for (o, n) in out.iter_mut().zip(noise) {
            *o = o.saturating_add(n);
        }
    }
    out
}

/// Brown noise (a car's rumble is mostly low frequencies) at `rms` of full scale.
fn car_noise(n: usize, mut seed: u32, rms: f64) -> Vec<i16> {
    let mut level = 0.0f64;
    let raw: Vec<f64> = (0..n)
        .map(|_| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let white = (seed >> 8) as f64 / (1u32 << 24) as f64 * 2.0 - 1.0;
            level = 0.995 * level + white;
            level
        })
        .collect();
    let have = (raw.iter().map(|x| x * x).sum::<f64>() / n.max(1) as f64).sqrt();
    let scale = if have > 0.0 {
        rms * 32768.0 / have
    } else {
        0.0
    };
    raw.iter()
        .map(|x| (x * scale).clamp(-32768.0, 32767.0) as i16)
        .collect()
}

/// Each chunk's score (0 until the detector has heard enough).
fn scores(wake: &mut WakeWord, audio: &[i16]) -> Result<Vec<f32>> {
    wake.reset();
    let mut chunk = [0i16; CHUNK];
    let mut out = Vec::with_capacity(audio.len() / CHUNK + 1);
    for block in audio.chunks(CHUNK) {
        chunk.fill(0);
        chunk[..block.len()].copy_from_slice(block);
        out.push(wake.push(&chunk)?.unwrap_or(0.0));
    }
    Ok(out)
}

/// Wakes at threshold `t`, no second one within `refractory` chunks of the last.
fn count_wakes(scores: &[f32], t: f32, refractory: usize) -> usize {
    let mut last: Option<usize> = None;
    let mut n = 0;
    for (i, s) in scores.iter().enumerate() {
        if *s >= t && last.is_none_or(|l| i - l >= refractory) {
            last = Some(i);
            n += 1;
        }
    }
    n
}

fn espeak(voice: &str, rate: u32, text: &str, dir: &Path) -> Result<Vec<i16>> {
    let wav = dir.join("espeak.wav");
    let status = std::process::Command::new("espeak-ng")
        .args(["-v", voice, "-s", &rate.to_string(), "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .context("running espeak-ng (scripts/setup installs it)")?;
    if !status.success() {
        bail!("espeak-ng -v {voice} failed");
    }
    Ok(cabin::hear::audio::read(&wav)?)
}

fn piper(profile: &Profile, rate: f32, text: &str) -> Result<Vec<i16>> {
    let Some(tts) = profile.models.tts.as_deref() else {
        bail!("the profile names no voice ([models] tts)");
    };
    let settings = cabin::profile::SpeechSettings {
        rate,
        ..profile.speech.clone()
    };
    let mut voice = cabin::speak::voice::Piper::load(tts, &settings)?;
    use cabin::speak::voice::Voice;
    let samples = voice.synthesize(&cabin::speak::speakable::speakable(text))?;
    Ok(to_i16(&cabin::hear::audio::resample(
        &samples,
        voice.sample_rate(),
    )?))
}

fn to_i16(samples: &[f32]) -> Vec<i16> {
    samples
        .iter()
        .map(|s| (s * 32767.0).clamp(-32768.0, 32767.0) as i16)
        .collect()
}

/// The WAV and raw recordings under `dir`, each at 16 kHz.
fn recordings(dir: &Path) -> Result<Vec<Vec<i16>>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "wav" || x == "raw") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
        .iter()
        .map(|f| cabin::hear::audio::read(f).with_context(|| format!("reading {}", f.display())))
        .collect()
}
