//! `cabin wake eval`: how often a wake word model misses its phrase and how often it wakes on
//! other audio, reported the way Porcupine and openWakeWord report theirs: the false-reject
//! rate on positives and false accepts per hour of negatives, at each threshold.
//!
//! Positives are the phrase spoken by voices and in conditions chosen to be unlike any model's
//! training clips: eSpeak NG's accents and voice variants at two rates, and the profile's Piper
//! voice at three, each clean, at -12 dB, and in car noise at 10 dB SNR; plus any recordings in
//! `--positives`. Negatives are near misses and other requests in each eSpeak NG accent, the
//! commands the profile's templates spell out (an hour of them by default, in the same voices
//! as the positives; every other one, the half training leaves out), the profile's replies and intent descriptions in Cabin's own voice, the
//! half of the real recordings `scripts/fetch-speech` installs that training leaves out, any in
//! `--negatives`, and car noise.

use super::{
    car_noise, espeak, piper_voice, real_speech, recordings, say, scores, trial, Recordings, RATE,
};
use anyhow::{bail, Context, Result};
use cabin::hear::wake::{WakeModels, WakeWord, CHUNK};
use cabin::Profile;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
    #[command(flatten)]
    recordings: Recordings,
    /// Minutes of car noise added to the negatives.
    #[arg(long, default_value_t = 10.0)]
    noise_minutes: f64,
    /// Hours of the profile's commands read by eSpeak NG added to the negatives.
    #[arg(long, default_value_t = 1.0)]
    command_hours: f64,
    /// Also write the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

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

pub(super) fn eval(args: EvalArgs) -> Result<ExitCode> {
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
                let clip = espeak(&format!("{voice}{variant}"), *rate, 50, phrase, dir)?;
                spoken.push(("eSpeak NG", clip));
            }
        }
    }
    for rate in PIPER_RATES {
        if let Some(mut voice) = piper_voice(profile, *rate)? {
            spoken.push(("Piper", say(&mut voice, phrase)?));
        }
    }
    // (what the trial is, its audio)
    let mut positives = Vec::new();
    for (i, (voice, clip)) in spoken.iter().enumerate() {
        positives.push((format!("{voice}, clean"), trial(clip, None, 1.0)));
        positives.push((format!("{voice}, -12 dB"), trial(clip, None, 0.25)));
        let noisy = trial(clip, Some((10.0, i as u32 + 1)), 1.0);
        positives.push((format!("{voice}, car noise at 10 dB SNR"), noisy));
    }
    if let Some(d) = &args.recordings.positives {
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
    // Where each stretch of negatives starts, and what it is.
    let mut stretches: Vec<(usize, String)> = Vec::new();
    let gap = vec![0i16; (0.3 * RATE) as usize];
    for voice in ESPEAK_VOICES {
        for text in NEAR_MISSES {
            stretches.push((negatives.len(), format!("\"{text}\" (eSpeak NG {voice})")));
            negatives.extend(espeak(voice, 160, 50, text, dir)?);
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
        stretches.push((negatives.len(), format!("\"{reply}\" (Cabin's voice)")));
        negatives.extend(say(voice.as_mut(), reply)?);
        negatives.extend(&gap);
    }
    for clip in real_speech(args.recordings.speech.as_deref(), false)? {
        stretches.push((negatives.len(), "a real recording".into()));
        negatives.extend(clip);
        negatives.extend(&gap);
    }
    if let Some(d) = &args.recordings.negatives {
        for clip in recordings(d)? {
            stretches.push((negatives.len(), "your negatives".into()));
            negatives.extend(clip);
            negatives.extend(&gap);
        }
    }
    // The commands drivers say, in the positives' voices, round-robin.
    let commands = cabin::profile::sentences::example_sentences(profile);
    let want = negatives.len() + (args.command_hours * 3600.0 * RATE) as usize;
    let combos: Vec<(String, u32)> = ESPEAK_VOICES
        .iter()
        .flat_map(|v| ESPEAK_VARIANTS.iter().map(move |x| format!("{v}{x}")))
        .flat_map(|v| ESPEAK_RATES.iter().map(move |r| (v.clone(), *r)))
        .collect();
    let mut i = 0;
    // The odd ones: `cabin wake train` reads the even ones.
    let commands: Vec<&String> = commands.iter().skip(1).step_by(2).map(|(_, s)| s).collect();
    while negatives.len() < want && !commands.is_empty() {
        // A prime stride visits the commands in an order unlike the profile's.
        let text = commands[(i * 7919) % commands.len()];
        let (voice, rate) = &combos[i % combos.len()];
        stretches.push((negatives.len(), format!("\"{text}\" (eSpeak NG {voice})")));
        negatives.extend(espeak(voice, *rate, 50, text, dir)?);
        negatives.extend(&gap);
        i += 1;
    }
    let speech_s = negatives.len() as f64 / RATE;
    stretches.push((negatives.len(), "car noise".into()));
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
        let accepts = wakes(&negative_scores, t, refractory).len();
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
    let woke = wakes(&negative_scores, profile.listen.wake_threshold, refractory);
    if !woke.is_empty() {
        println!("\nFalse accepts at the profile's threshold, in:");
        for chunk in woke {
            // The detection comes at the end of the audio that caused it.
            let at = (chunk * CHUNK).saturating_sub(CHUNK);
            let i = stretches.partition_point(|(start, _)| *start <= at);
            println!("- {}", stretches[i.saturating_sub(1)].1);
        }
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

/// The chunks that wake at threshold `t`, no second one within `refractory` chunks of the last.
fn wakes(scores: &[f32], t: f32, refractory: usize) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::new();
    for (i, s) in scores.iter().enumerate() {
        if *s >= t && out.last().is_none_or(|l| i - l >= refractory) {
            out.push(i);
        }
    }
    out
}
