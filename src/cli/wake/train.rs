//! `cabin wake train PHRASE --out FILE`: a wake word model for any phrase, trained on this
//! machine in minutes, written as an openWakeWord-compatible keyword model (ONNX; see
//! `cabin::hear::wake::keyword`).
//!
//! Positives: the phrase in eSpeak NG accents and voice variants and the profile's Piper voice
//! (none of the voice, variant and rate combinations `cabin wake eval` uses), each augmented
//! with speed, gain, room reverb and car noise at random SNRs; plus `--positives`. Negatives:
//! near misses built from the phrase's words, the profile's requests, examples, small talk and
//! replies (the replies also in Cabin's own voice), half of the real recordings
//! `scripts/fetch-speech` installs, `--negatives`, car noise and music-like tones, with the same
//! noise as the positives so that noise alone says nothing.

use super::{
    add_noise, car_noise, each_chunk, espeak, piper_voice, real_speech, recordings, rms, say,
    Recordings, RATE,
};
use anyhow::{bail, Context, Result};
use cabin::hear::wake::keyword::{Example, KeywordModel, SplitMix, Training};
use cabin::hear::wake::{FeatureModels, Features, CHUNK, EMBEDDING};
use cabin::Profile;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct TrainArgs {
    /// The phrase, as the driver says it ("hey aurora").
    phrase: String,
    /// Where to write the model (`.onnx`); name it in a profile's `[models] wake`.
    #[arg(long)]
    out: PathBuf,
    /// The profile whose voice and sentences are used (default: the default profile).
    #[arg(long)]
    profile: Option<PathBuf>,
    #[command(flatten)]
    recordings: Recordings,
    /// A quick model on a quarter of the clips and half the passes (for tests).
    #[arg(long)]
    quick: bool,
    /// The seed of every random choice: the same seed, the same model.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Trained for the catalogue (`cabin models fetch`): the same on every machine.
    #[arg(skip)]
    catalogue: bool,
}

/// eSpeak NG's English accents, with voice variants and rates `cabin wake eval` does not use
/// (it uses no variant, f2, m3, f4 and m6, at 140 and 185 words a minute).
const VOICES: &[&str] = &[
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-029",
    "en-gb-x-rp",
    "en-us-nyc",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
];
const VARIANTS: &[&str] = &[
    "+m1", "+m2", "+m4", "+m5", "+m7", "+f1", "+f3", "+f5", "+klatt", "+Andy",
];
const RATES: &[u32] = &[125, 160, 200];
const PIPER_RATES: &[f32] = &[0.8, 0.95, 1.1, 1.3];
/// Augmented copies of each positive clip.
const COPIES: usize = 3;
/// Embeddings per window (1.28 s), as openWakeWord's keyword models.
const WINDOW: usize = 16;
/// Ordinary speech that is not the phrase, besides the profile's own sentences.
const EVERYDAY: &[&str] = &[
    "hey",
    "hello there",
    "okay so where are we going",
    "I think it's going to rain later",
    "can you believe the traffic today",
    "let's stop for lunch in an hour",
    "my phone is almost out of battery",
    "did you lock the front door",
    "turn left at the next junction",
    "we should have taken the motorway",
    "that song is stuck in my head",
    "what time does the shop close",
];

pub(super) fn train(args: TrainArgs) -> Result<ExitCode> {
    let profile = Profile::load_or_default(args.profile.as_deref())?;
    let phrase = args.phrase.trim().to_string();
    if phrase.split_whitespace().count() == 0 {
        bail!("the phrase is empty: give the words the driver will say, e.g. \"hey aurora\"");
    }
    let started = Instant::now();
    let model = build(&args, &profile, &phrase)?;
    write_model(&model, &phrase, &args.out)?;
    eprintln!(
        "wrote {} in {:.0} s; try it with `cabin wake eval {} --phrase \"{phrase}\"`",
        args.out.display(),
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Trains the catalogue's own wake word `phrase` into `out` with the default profile's voices
/// (what `cabin models fetch` does for a model it builds rather than downloads).
pub fn train_catalogue_word(phrase: &str, out: &Path) -> Result<()> {
    let profile = Profile::load_or_default(None)?;
    let args = TrainArgs {
        phrase: phrase.into(),
        out: out.into(),
        profile: None,
        recordings: Recordings::default(),
        quick: false,
        seed: 1,
        // No real recordings: the word is the same whether or not they were fetched.
        catalogue: true,
    };
    let model = build(&args, &profile, phrase)?;
    write_model(&model, phrase, out)
}

fn write_model(model: &KeywordModel, phrase: &str, out: &Path) -> Result<()> {
    let doc = format!(
        "Wake word \"{phrase}\", trained by `cabin wake train` (Cabin {}). Input: {} openWakeWord speech embeddings [1, {}, {EMBEDDING}]; output: score [1, 1]. Licence: Apache-2.0.",
        env!("CARGO_PKG_VERSION"),
        model.window,
        model.window
    );
    let bytes = model.to_onnx(&format!("cabin wake word: {phrase}"), &doc);
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let partial = out.with_extension("partial");
    std::fs::write(&partial, bytes).with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, out).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

fn build(args: &TrainArgs, profile: &Profile, phrase: &str) -> Result<KeywordModel> {
    let models = FeatureModels::installed()?;
    let dir = std::env::temp_dir().join(format!("cabin-wake-train-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = build_in(args, profile, phrase, &models, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn build_in(
    args: &TrainArgs,
    profile: &Profile,
    phrase: &str,
    models: &FeatureModels,
    dir: &Path,
) -> Result<KeywordModel> {
    let mut rng = SplitMix(args.seed);
    let keep = |i: usize| !args.quick || i.is_multiple_of(4);

    // The phrase, trimmed of the synthesiser's silence.
    let texts = [
        phrase.to_string(),
        format!("{phrase}!"),
        format!("{phrase},"),
    ];
    let mut clips: Vec<Vec<i16>> = Vec::new();
    let mut n = 0;
    for voice in VOICES {
        for variant in VARIANTS {
            for (r, rate) in RATES.iter().enumerate() {
                n += 1;
                if !keep(n) {
                    continue;
                }
                let pitch = 30 + rng.below(41) as u32;
                let text = &texts[(n + r) % texts.len()];
                clips.push(trim(&espeak(
                    &format!("{voice}{variant}"),
                    *rate,
                    pitch,
                    text,
                    dir,
                )?));
            }
        }
        eprintln!("synthesising \"{phrase}\": {} clips", clips.len());
    }
    for rate in PIPER_RATES {
        if let Some(mut voice) = piper_voice(profile, *rate)? {
            // Piper samples its prosody: each reading differs.
            for (i, text) in texts.iter().enumerate() {
                n += 1;
                if keep(n) || i == 0 {
                    clips.push(trim(&say(&mut voice, text)?));
                }
            }
        }
    }
    eprintln!("synthesising \"{phrase}\": {} clips in all", clips.len());
    if let Some(d) = &args.recordings.positives {
        clips.extend(recordings(d)?.iter().map(|c| trim(c)));
    }
    if clips.iter().any(|c| c.is_empty()) {
        bail!("a synthesised clip of \"{phrase}\" is silent: is espeak-ng installed with its English voices?");
    }

    // Positive trials: background, the augmented phrase, a short tail.
    let mut trials = Vec::new();
    for clip in &clips {
        for _ in 0..COPIES {
            trials.push(augment(clip, &mut rng));
        }
    }

    // Negative audio, one long stream.
    let mut negatives: Vec<i16> = Vec::new();
    let mut sentences = near_misses(phrase);
    let misses = sentences.len();
    sentences.extend(EVERYDAY.iter().map(|s| s.to_string()));
    sentences.extend(profile.classifier.negatives.iter().cloned());
    for intent in &profile.intents {
        sentences.push(intent.description.clone());
        sentences.extend(intent.examples.iter().cloned());
    }
    let replies: Vec<String> = profile
        .intents
        .iter()
        .map(|i| i.reply.clone())
        .chain(profile.small_talk.iter().map(|s| s.reply.clone()))
        .filter(|r| !r.contains('{'))
        .collect();
    sentences.extend(replies.iter().cloned());
    sentences.retain(|s| !contains_phrase(s, phrase));
    let babble_count = if args.quick { 50 } else { 400 };
    let mut babbled = babble(&sentences, babble_count, &mut rng);
    babbled.retain(|s| !contains_phrase(s, phrase));
    sentences.extend(babbled);
    // Half of the commands the profile's templates spell out (`cabin wake eval` reads the
    // other half): what drivers say in the car after the wake word, or without it.
    let commands = cabin::profile::sentences::example_sentences(profile);
    let most = if args.quick { 150 } else { 800 };
    let step = (commands.len() / 2 / most).max(1) * 2;
    sentences.extend(
        commands
            .iter()
            .step_by(step)
            .map(|(_, s)| s.clone())
            .filter(|s| !contains_phrase(s, phrase)),
    );
    eprintln!("synthesising {} negative sentences…", sentences.len());
    for (i, s) in sentences.iter().enumerate() {
        if !keep(i) {
            continue;
        }
        // Near misses in several voices: they teach what is not the phrase.
        let readings = if i < misses { 4 } else { 1 };
        for _ in 0..readings {
            let voice = format!(
                "{}{}",
                VOICES[rng.below(VOICES.len())],
                VARIANTS[rng.below(VARIANTS.len())]
            );
            let rate = RATES[rng.below(RATES.len())];
            let pitch = 30 + rng.below(41) as u32;
            let mut clip = espeak(&voice, rate, pitch, s, dir)?;
            clip.extend(pause(&mut rng));
            background(&mut clip, &mut rng);
            negatives.extend(clip);
        }
    }
    if let Some(mut voice) = piper_voice(profile, 1.0)? {
        for (i, r) in replies.iter().enumerate() {
            if keep(i) {
                let mut clip = say(&mut voice, r)?;
                clip.extend(pause(&mut rng));
                background(&mut clip, &mut rng);
                negatives.extend(clip);
            }
        }
    }
    let real = match (&args.recordings.speech, args.catalogue) {
        (_, true) => Vec::new(),
        (dir, false) => real_speech(dir.as_deref(), true)?,
    };
    for clip in real {
        negatives.extend(clip);
        negatives.extend(pause(&mut rng));
    }
    if let Some(d) = &args.recordings.negatives {
        for clip in recordings(d)? {
            negatives.extend(clip);
            negatives.extend(pause(&mut rng));
        }
    }
    let speech_minutes = negatives.len() as f64 / RATE / 60.0;
    let noise_minutes = if args.quick { 0.5 } else { 2.0 };
    let noise_len = (noise_minutes * 60.0 * RATE) as usize;
    for (i, level) in [0.01, 0.05, 0.2].iter().enumerate() {
        negatives.extend(car_noise(noise_len / 3, 100 + i as u32, *level));
    }
    negatives.extend(tones(noise_len, &mut rng));

    eprintln!(
        "computing speech features: {} positive trials, {:.1} minutes of negatives ({:.1} of speech)…",
        trials.len(),
        negatives.len() as f64 / RATE / 60.0,
        speech_minutes
    );
    let started = Instant::now();
    let mut examples = positive_examples(models, &trials)?;
    let positives = examples.iter().filter(|e| e.positive).count();
    let stream: Vec<Vec<i16>> = negatives
        .chunks(60 * RATE as usize)
        .map(<[i16]>::to_vec)
        .collect();
    for part in embed_all(models, &stream)? {
        // Every other window: neighbours 80 ms apart are nearly the same example.
        examples.extend(windows(&part).step_by(2).map(|features| Example {
            features,
            positive: false,
        }));
    }
    eprintln!(
        "features in {:.0} s: {positives} positive and {} negative windows",
        started.elapsed().as_secs_f64(),
        examples.len() - positives
    );

    let training = Training {
        epochs: if args.quick { 10 } else { 20 },
        seed: args.seed,
        ..Training::default()
    };
    let started = Instant::now();
    let model = KeywordModel::train(&examples, WINDOW, &training, |epoch, loss| {
        if epoch % 5 == 0 || epoch == training.epochs {
            eprintln!("training: pass {epoch}/{}, loss {loss:.4}", training.epochs);
        }
    })?;
    let found = examples
        .iter()
        .filter(|e| e.positive && model.score(&e.features) >= 0.5)
        .count();
    let false_wakes = examples
        .iter()
        .filter(|e| !e.positive && model.score(&e.features) >= 0.5)
        .count();
    eprintln!(
        "trained in {:.0} s: at 0.5 it takes {found} of {positives} positive windows and {false_wakes} negative ones",
        started.elapsed().as_secs_f64()
    );
    Ok(model)
}

/// Phrases that share a word or a sound with `phrase` and must not wake: each word alone, the
/// first word before other names, the last word after other words.
fn near_misses(phrase: &str) -> Vec<String> {
    let words: Vec<&str> = phrase.split_whitespace().collect();
    let mut out: Vec<String> = words.iter().map(|w| w.to_string()).collect();
    let first = words[0];
    let last = words[words.len() - 1];
    for other in [
        "kevin",
        "karen",
        "robin",
        "there",
        "you",
        "google",
        "mum",
        "guys",
        "man",
        "buddy",
        "siri",
        "alexa",
        "dad",
        "captain",
        "calvin",
        "darling",
        "everyone",
        "what",
        "look",
        "listen",
        "wait",
        "stop",
        "come on",
        "can you",
        "how are you",
        "I'm here",
    ] {
        out.push(format!("{first} {other}"));
    }
    for before in [
        "the",
        "a",
        "my",
        "nice",
        "in the",
        "open the",
        "okay",
        "hi",
        "oh",
        "say",
        "they",
        "hey there",
        "what a",
        "into the",
    ] {
        out.push(format!("{before} {last}"));
    }
    if words.len() > 1 {
        out.push(words.iter().rev().copied().collect::<Vec<_>>().join(" "));
    }
    out
}

fn contains_phrase(sentence: &str, phrase: &str) -> bool {
    let clean = |s: &str| {
        s.to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(" {} ", clean(sentence)).contains(&format!(" {} ", clean(phrase)))
}

/// `n` sentences of random words from `sentences` and made-up words of English syllables:
/// the sounds of speech in orders the profile never has, so that the model learns the
/// phrase's sounds in its order, not "speech that sounds a bit like it".
fn babble(sentences: &[String], n: usize, rng: &mut SplitMix) -> Vec<String> {
    let mut words: Vec<String> = sentences
        .iter()
        .flat_map(|s| s.split(|c: char| !c.is_alphabetic() && c != '\''))
        .filter(|w| w.len() > 1)
        .map(str::to_lowercase)
        .collect();
    words.sort();
    words.dedup();
    const ONSETS: &[&str] = &[
        "b", "k", "d", "f", "g", "h", "j", "l", "m", "n", "p", "r", "s", "t", "v", "w", "ch", "sh",
        "th", "st", "tr", "bl", "cr", "",
    ];
    const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ay", "ee", "oo", "ow", "ai", "er"];
    const CODAS: &[&str] = &[
        "", "", "n", "m", "t", "k", "s", "l", "r", "nd", "ng", "st", "b",
    ];
    let pick = |list: &[&'static str], rng: &mut SplitMix| list[rng.below(list.len())];
    (0..n)
        .map(|_| {
            let len = 4 + rng.below(6);
            (0..len)
                .map(|_| {
                    if rng.unit() < 0.7 && !words.is_empty() {
                        words[rng.below(words.len())].clone()
                    } else {
                        (0..1 + rng.below(3))
                            .map(|_| {
                                format!(
                                    "{}{}{}",
                                    pick(ONSETS, rng),
                                    pick(VOWELS, rng),
                                    pick(CODAS, rng)
                                )
                            })
                            .collect()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// Silence after an utterance, 0.2 to 1 s: the positives end in silence too, so the end of
/// speech must not say "the phrase".
fn pause(rng: &mut SplitMix) -> Vec<i16> {
    vec![0; ((0.2 + rng.unit() as f64 * 0.8) * RATE) as usize]
}

/// `clip` without its leading and trailing near-silence.
fn trim(clip: &[i16]) -> Vec<i16> {
    let loud = |s: &&i16| s.unsigned_abs() > 300;
    let start = clip.iter().position(|s| loud(&s)).unwrap_or(clip.len());
    let end = clip.iter().rposition(|s| loud(&s)).map_or(start, |e| e + 1);
    clip[start..end.max(start)].to_vec()
}

/// One positive trial: the clip at a random speed and gain, sometimes in a room, after 1.3 to
/// 1.9 s of background and before 0.5 s of it; with where the phrase ends.
fn augment(clip: &[i16], rng: &mut SplitMix) -> (Vec<i16>, usize) {
    let speed = 0.88 + rng.unit() * 0.24;
    let f: Vec<f32> = clip.iter().map(|s| f32::from(*s) / 32768.0).collect();
    let mut f = cabin::hear::audio::resample(&f, (RATE * f64::from(speed)) as u32).unwrap_or(f);
    if rng.unit() < 0.5 {
        reverb(&mut f, 0.1 + rng.unit() * 0.3, rng);
    }
    let peak = f.iter().fold(0.0f32, |m, s| m.max(s.abs())).max(1e-6);
    let gain = 10f32.powf(-(rng.unit() * 20.0) / 20.0) * 0.7 / peak;
    let lead = ((1.3 + rng.unit() as f64 * 0.6) * RATE) as usize;
    let mut out = vec![0i16; lead];
    out.extend(
        f.iter()
            .map(|s| (s * gain * 32767.0).clamp(-32768.0, 32767.0) as i16),
    );
    let end = out.len();
    out.extend(vec![0i16; (0.5 * RATE) as usize]);
    let level = rms(&out[lead..end]);
    background_at(&mut out, level, rng);
    (out, end)
}

/// Car noise at a random SNR under `clip`'s own level, three times in four.
fn background(clip: &mut [i16], rng: &mut SplitMix) {
    let level = rms(clip);
    background_at(clip, level, rng);
}

fn background_at(audio: &mut [i16], signal_rms: f64, rng: &mut SplitMix) {
    if rng.unit() < 0.75 {
        let snr = 0.0 + f64::from(rng.unit()) * 25.0;
        add_noise(audio, signal_rms, snr, rng.next_u64() as u32);
    }
}

/// A small room: the clip convolved with decaying noise (`rt60` seconds), mixed with the dry.
fn reverb(clip: &mut Vec<f32>, rt60: f32, rng: &mut SplitMix) {
    let taps = (rt60 * RATE as f32) as usize;
    let ir: Vec<f32> = (0..taps)
        .map(|i| rng.uniform(1.0) * (-6.9 * i as f32 / taps as f32).exp())
        .collect();
    let energy = ir.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    let mut wet = vec![0.0f32; clip.len() + taps];
    for (i, x) in clip.iter().enumerate() {
        if *x == 0.0 {
            continue;
        }
        for (k, h) in ir.iter().enumerate() {
            wet[i + k] += x * h / energy;
        }
    }
    let mix = 0.3 + rng.unit() * 0.4;
    clip.resize(wet.len(), 0.0);
    for (c, w) in clip.iter_mut().zip(&wet) {
        *c = (1.0 - mix) * *c + mix * w;
    }
}

/// Music-like sound: chords of harmonic notes changing every quarter to half second.
fn tones(n: usize, rng: &mut SplitMix) -> Vec<i16> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let len = ((0.25 + rng.unit() * 0.25) * RATE as f32) as usize;
        let notes: Vec<f32> = (0..3)
            .map(|_| 110.0 * 2f32.powf(rng.below(36) as f32 / 12.0))
            .collect();
        let start = out.len();
        for i in 0..len {
            let t = (start + i) as f32 / RATE as f32;
            let env = (-(i as f32) / len as f32 * 3.0).exp();
            let v: f32 = notes
                .iter()
                .flat_map(|f| {
                    (1..4).map(move |h| (t * f * h as f32 * std::f32::consts::TAU).sin() / h as f32)
                })
                .sum();
            out.push((v * env * 2500.0) as i16);
        }
    }
    out.truncate(n);
    out
}

/// Windows of each positive trial: positive where the phrase has just ended (the window's end
/// 80 to 480 ms after it), negative where it is not yet done (150 ms or more to go), left out
/// between. A detection after the end keeps the phrase's last sound out of the command.
fn positive_examples(models: &FeatureModels, trials: &[(Vec<i16>, usize)]) -> Result<Vec<Example>> {
    let audio: Vec<Vec<i16>> = trials.iter().map(|(a, _)| a.clone()).collect();
    let embedded = embed_all(models, &audio)?;
    let mut out = Vec::new();
    for ((_, end), embeddings) in trials.iter().zip(&embedded) {
        for (i, features) in windows(embeddings).enumerate() {
            let window_end = ((i + WINDOW) * CHUNK) as f64;
            let after = (window_end - *end as f64) / RATE;
            let positive = (0.08..=0.48).contains(&after);
            if positive || after < -0.15 {
                out.push(Example { features, positive });
            }
        }
    }
    Ok(out)
}

/// Every full window of `embeddings`, flattened.
fn windows(embeddings: &[[f32; EMBEDDING]]) -> impl Iterator<Item = Vec<f32>> + '_ {
    embeddings
        .windows(WINDOW)
        .map(|w| w.iter().flatten().copied().collect())
}

/// The embeddings of each clip (from a fresh start), on two threads.
fn embed_all(models: &FeatureModels, clips: &[Vec<i16>]) -> Result<Vec<Vec<[f32; EMBEDDING]>>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let per = clips.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = clips
            .chunks(per)
            .map(|part| {
                s.spawn(move || -> Result<Vec<Vec<[f32; EMBEDDING]>>> {
                    let mut features = Features::load(models)?;
                    part.iter().map(|c| embed(&mut features, c)).collect()
                })
            })
            .collect();
        let mut out = Vec::new();
        for h in handles {
            out.extend(h.join().expect("a feature thread panicked")?);
        }
        Ok(out)
    })
}

fn embed(features: &mut Features, audio: &[i16]) -> Result<Vec<[f32; EMBEDDING]>> {
    features.reset();
    each_chunk(audio, |c| Ok(features.push(c)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_share_words_with_the_phrase_but_are_not_it() {
        let misses = near_misses("hey aurora");
        assert!(misses.contains(&"hey".to_string()));
        assert!(misses.contains(&"the aurora".to_string()));
        assert!(misses.contains(&"aurora hey".to_string()));
        assert!(misses.iter().all(|m| !contains_phrase(m, "hey aurora")));
        assert!(contains_phrase(
            "Hey, Aurora! open the window",
            "hey aurora"
        ));
    }

    #[test]
    fn trimming_drops_the_silence_around_a_clip() {
        let clip = [0, 10, 0, 900, -1200, 40, 0];
        assert_eq!(trim(&clip), vec![900, -1200]);
        assert!(trim(&[0, 5, -3]).is_empty());
    }
}
