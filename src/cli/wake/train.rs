//! `cabin wake train PHRASE --out FILE`: a wake word model for any phrase, trained on this
//! machine in minutes, measured on audio it never trained on, and written as an
//! openWakeWord-compatible keyword model (ONNX; see `cabin::hear::wake::keyword`) only when it
//! meets the profile's `[models.wake_targets]`.
//!
//! Positives: the phrase in eSpeak NG accents and voice variants and the profile's Piper voice
//! (none of the voice, variant and rate combinations the held-apart measurement uses), each
//! augmented with speed, gain, room reverb and car noise at random SNRs, four in ten heard over
//! the car's playback (other speech or music, 5 to 30 dB below; not with `--quick`); plus
//! `--positives`.
//! Negatives: near misses and sound-alikes of the phrase, the profile's requests, examples,
//! small talk and replies (the replies also in Cabin's own voice), everyday text (the training
//! pool of Debian's `fortunes`), half of the real recordings `scripts/fetch-speech` installs,
//! `--negatives`, car noise and music-like tones, with the same noise as the positives so that
//! noise alone says nothing, and other speech over the same playback as the positives.
//!
//! The gate: each trained model is scored on held-apart positives and negatives
//! ([`super::held`]); the lowest threshold that meets the targets with a margin is written
//! beside the model with its figures. A model that meets none is trained again, with the
//! windows of a third pool of audio that it scored highest (its own false accepts, mined) as
//! hard negatives, another seed and more passes, a bounded number of times; then training
//! fails with the figures and what to do.
//!
//! Every random choice is drawn from `--seed`, Cabin's voice included, and training splits
//! its batches the same way on any machine, so a model differs between machines only as far as
//! their floating point does; the gate makes sure that whatever a machine trains is good.

use super::corpus::{self, Pool};
use super::held;
use super::measure::{self, Targets};
use super::negatives::{augmented, Embedded, Maker, Piece, Source};
use super::{
    add_noise, each_chunk, espeak, piper_voice, real_speech, recordings, rms, say, Recordings, RATE,
};
use anyhow::{bail, Context, Result};
use cabin::hear::wake::keyword::{Example, KeywordModel, SplitMix, Training};
use cabin::hear::wake::{Calibration, FeatureModels, Features, CHUNK, EMBEDDING};
use cabin::Profile;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct TrainArgs {
    /// The phrase, as the driver says it ("hey aurora").
    phrase: String,
    /// Where to write the model (`.onnx`); name it in a profile's `[models] wake`. Its
    /// calibration (threshold and figures) is written beside it as `.json`.
    #[arg(long)]
    out: PathBuf,
    /// The profile whose voice, sentences and wake targets are used (default: the default
    /// profile).
    #[arg(long)]
    profile: Option<PathBuf>,
    #[command(flatten)]
    recordings: Recordings,
    /// A quick model on a quarter of the clips and half the passes, measured on less
    /// held-apart audio (for tests; not for a car).
    #[arg(long)]
    quick: bool,
    /// The seed of every random choice: the same seed, the same model.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Training passes of the first round (default 20, 10 with --quick).
    #[arg(long)]
    passes: Option<usize>,
    /// Training rounds at most: each round after the first mines the last model's false
    /// accepts as hard negatives.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Hours of held-apart negatives the gate measures on (default 1.5, 0.25 with --quick).
    #[arg(long)]
    gate_hours: Option<f64>,
    /// Trained for the catalogue (`cabin models fetch`): no real recordings, so that the
    /// word is the same whether or not they were fetched.
    #[arg(skip)]
    catalogue: bool,
}

/// eSpeak NG's English accents, with voice variants and rates the held-apart positives do not
/// use (they use no variant, f2, m3, f4 and m6, at 140 and 185 words a minute).
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
/// The share of positive trials heard over the car's playback (speech or music), and how far
/// below the phrase it plays: from loud media to what the echo canceller leaves of it. Without
/// any, the model took speech anywhere near the phrase for "not the phrase": talk radio 40 dB
/// below the driver hid it on half of `cabin wake playback`'s tries. As many trials of other
/// speech over the same playback are negatives.
const OVER_SOUND: f32 = 0.4;
const OVER_SNR_DB: (f64, f64) = (5.0, 30.0);
/// Everyday sentences read for that playback.
const SOUND_SENTENCES: usize = 60;
/// Mixed into `--seed` for the playback's own random choices.
const SOUND_SEED: u64 = 0x05ee_d50d;
/// A window of the mining pool that scores this much is a hard negative for the next round.
const HARD: f32 = 0.2;

pub(super) fn train(args: TrainArgs) -> Result<ExitCode> {
    let profile = Profile::load_or_default(args.profile.as_deref())?;
    let phrase = args.phrase.trim().to_string();
    if phrase.split_whitespace().count() == 0 {
        bail!("the phrase is empty: give the words the driver will say, e.g. \"hey aurora\"");
    }
    let started = Instant::now();
    let (model, calibration) = build(&args, &profile, &phrase)?;
    let calibration = write_model(&model, calibration, &args.out)?;
    eprintln!(
        "wrote {} in {:.0} s (sha256 {}); it wakes at {:.2}; measure it again with `cabin wake eval {} --hours 10`",
        args.out.display(),
        started.elapsed().as_secs_f64(),
        calibration.sha256,
        calibration.threshold,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Trains the catalogue's own wake word `phrase` into `out` with the default profile's voices
/// and targets (what `cabin models fetch` does for a model it builds rather than downloads).
pub fn train_catalogue_word(phrase: &str, out: &Path) -> Result<()> {
    let profile = Profile::load_or_default(None)?;
    let args = TrainArgs {
        phrase: phrase.into(),
        out: out.into(),
        profile: None,
        recordings: Recordings::default(),
        quick: false,
        seed: 1,
        passes: None,
        rounds: 3,
        gate_hours: None,
        catalogue: true,
    };
    let (model, calibration) = build(&args, &profile, phrase)?;
    write_model(&model, calibration, out).map(|_| ())
}

/// Writes the model and, beside it, its calibration with the model's hash.
fn write_model(
    model: &KeywordModel,
    mut calibration: Calibration,
    out: &Path,
) -> Result<Calibration> {
    let phrase = calibration.phrase.clone();
    let doc = format!(
        "Wake word \"{phrase}\", trained by `cabin wake train` (Cabin {}). Input: {} openWakeWord speech embeddings [1, {}, {EMBEDDING}]; output: score [1, 1]. Calibrated threshold {:.2}. Licence: Apache-2.0.",
        env!("CARGO_PKG_VERSION"),
        model.window,
        model.window,
        calibration.threshold,
    );
    let bytes = model.to_onnx(&format!("cabin wake word: {phrase}"), &doc);
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    calibration.sha256 = {
        use sha2::Digest;
        sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let json = Calibration::path_for(out);
    let write = |path: &Path, bytes: &[u8]| -> Result<()> {
        let partial = path.with_extension("partial");
        std::fs::write(&partial, bytes)
            .with_context(|| format!("writing {}", partial.display()))?;
        std::fs::rename(&partial, path).with_context(|| format!("writing {}", path.display()))
    };
    // The calibration first: a model file is never without its figures.
    write(
        &json,
        format!("{}\n", serde_json::to_string_pretty(&calibration)?).as_bytes(),
    )?;
    write(out, &bytes)?;
    Ok(calibration)
}

fn build(args: &TrainArgs, profile: &Profile, phrase: &str) -> Result<(KeywordModel, Calibration)> {
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
) -> Result<(KeywordModel, Calibration)> {
    let mut rng = SplitMix(args.seed);
    let keep = |i: usize| !args.quick || i.is_multiple_of(4);
    let maker = Maker {
        profile,
        models,
        seed: args.seed,
        dir,
    };
    let everyday = corpus::everyday(phrase)?;
    let targets = Targets {
        max_false_reject: profile.models.wake_targets.max_false_reject,
        max_false_accepts_per_hour: profile.models.wake_targets.max_false_accepts_per_hour,
    };

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
    }
    for (r, rate) in PIPER_RATES.iter().enumerate() {
        if let Some(mut voice) = piper_voice(profile, *rate, args.seed.wrapping_add(r as u64))? {
            // Piper samples its prosody (from the seed): each reading differs.
            for (i, text) in texts.iter().enumerate() {
                n += 1;
                if keep(n) || i == 0 {
                    clips.push(trim(&say(&mut voice, text)?));
                }
            }
        }
    }
    eprintln!("synthesised \"{phrase}\": {} clips", clips.len());
    if let Some(d) = &args.recordings.positives {
        clips.extend(recordings(d)?.iter().map(|c| trim(c)));
    }
    if clips.iter().any(|c| c.is_empty()) {
        bail!("a synthesised clip of \"{phrase}\" is silent: is espeak-ng installed with its English voices?");
    }

    // Positive trials: background, the augmented phrase, a short tail; some over the sound of
    // the car's playback, drawn from a generator of their own so that the negatives below are
    // the same (and cached) whether or not they are.
    // Not with --quick: with a quarter of the clips, "hey aurora" failed the gate with them
    // (a near miss over the playback scored as high as the phrase).
    let (sounds, over_share) = if args.quick {
        (Vec::new(), 0.0)
    } else {
        (playback_sounds(&everyday, args, dir)?, OVER_SOUND)
    };
    let mut sound_rng = SplitMix(args.seed ^ SOUND_SEED);
    let mut trials = Vec::new();
    let mut overs = Vec::new();
    for clip in &clips {
        for _ in 0..COPIES {
            let over = (sound_rng.unit() < over_share).then(|| Over {
                sound: &sounds[sound_rng.below(sounds.len())],
                at: sound_rng.next_u64(),
                snr_db: OVER_SNR_DB.0
                    + f64::from(sound_rng.unit()) * (OVER_SNR_DB.1 - OVER_SNR_DB.0),
            });
            overs.extend(over);
            trials.push(augment(clip, &mut rng, over));
        }
    }

    // Training negatives, described first (each with its pause and noise), made and embedded
    // by the maker.
    let vocabulary = corpus::vocabulary(&everyday);
    // Every near miss is trained on (the held-apart audio says them in other voices): the
    // hardest negatives are few, and a model never shown "hey karen" can't know it from the
    // phrase.
    let misses: Vec<String> = corpus::near_misses(phrase, &vocabulary)?
        .into_iter()
        .map(|m| m.text)
        .collect();
    // Other speech over the same playback as the positives heard it: speech overlapping
    // speech is no sign of the phrase either way.
    let decoy_texts: Vec<&str> = misses
        .iter()
        .map(String::as_str)
        .chain(EVERYDAY.iter().copied())
        .collect();
    let mut decoy_rng = SplitMix(args.seed ^ SOUND_SEED ^ 2);
    let mut decoys = Vec::new();
    for (i, over) in overs.into_iter().enumerate() {
        let (voice, rate, pitch) = training_voice(&mut decoy_rng);
        let text = decoy_texts[i % decoy_texts.len()];
        let clip = trim(&espeak(&voice, rate, pitch, text, dir)?);
        if !clip.is_empty() {
            decoys.push(augment(&clip, &mut decoy_rng, Some(over)).0);
        }
    }
    let mut sentences = misses.clone();
    sentences.extend(EVERYDAY.iter().map(|s| s.to_string()));
    sentences.extend(profile.classifier.negatives.iter().cloned());
    for intent in &profile.intents {
        sentences.push(intent.description.clone());
        sentences.extend(intent.examples.iter().cloned());
    }
    let replies = corpus::replies(profile);
    sentences.extend(replies.iter().cloned());
    sentences.retain(|s| !corpus::contains_phrase(s, phrase));
    let babble_count = if args.quick { 50 } else { 400 };
    let mut babbled = babble(&sentences, babble_count, &mut rng);
    babbled.retain(|s| !corpus::contains_phrase(s, phrase));
    sentences.extend(babbled);
    // Half of the commands the profile's templates spell out (the held-apart audio reads the
    // other half): what drivers say in the car after the wake word, or without it.
    let commands = cabin::profile::sentences::example_sentences(profile);
    let most = if args.quick { 150 } else { 800 };
    let step = (commands.len() / 2 / most).max(1) * 2;
    sentences.extend(
        commands
            .iter()
            .step_by(step)
            .map(|(_, s)| s.clone())
            .filter(|s| !corpus::contains_phrase(s, phrase)),
    );
    // Everyday text from the training pool.
    let everyday_count = if args.quick { 300 } else { 2000 };
    sentences.extend(
        everyday
            .iter()
            .filter(|s| corpus::pool(s) == Pool::Train)
            .take(everyday_count)
            .cloned(),
    );
    let mut pieces = Vec::new();
    for (i, s) in sentences.iter().enumerate() {
        if !keep(i) {
            continue;
        }
        // Near misses in several voices: they teach what is not the phrase.
        let readings = if i < misses.len() { 4 } else { 1 };
        for _ in 0..readings {
            let (voice, rate, pitch) = training_voice(&mut rng);
            pieces.push(augmented(
                Source::Espeak {
                    voice,
                    rate,
                    pitch,
                    text: s.clone(),
                },
                &mut rng,
            ));
        }
    }
    // A third of the replies in Cabin's own voice too (all of them in eSpeak NG above; the
    // held-apart audio reads every one in Cabin's voice).
    for (i, r) in replies.iter().enumerate() {
        if i % 3 == 0 && keep(i / 3) && !corpus::contains_phrase(r, phrase) {
            let rate = [900, 1000, 1150][(i / 3) % 3];
            pieces.push(augmented(
                Source::Piper {
                    rate,
                    text: r.clone(),
                },
                &mut rng,
            ));
        }
    }
    if !args.catalogue {
        for path in real_speech(args.recordings.speech.as_deref(), true)? {
            pieces.push(augmented(Source::Recording(path), &mut rng));
        }
    }
    if let Some(d) = &args.recordings.negatives {
        for path in super::recording_files(d)? {
            pieces.push(augmented(Source::Recording(path), &mut rng));
        }
    }
    // Car noise and music-like tones (ten minutes of tones: on 9 hours of held-apart audio
    // the one false wake of a model trained on two was a chord).
    let noise_seconds = if args.quick { 30 } else { 120 };
    for (k, level) in [10u32, 50, 200].iter().enumerate() {
        pieces.push(Piece::new(Source::CarNoise {
            seconds: noise_seconds / 3,
            seed: 100 + k as u32,
            level: *level,
        }));
    }
    for _ in 0..if args.quick { 1 } else { 5 } {
        pieces.push(Piece::new(Source::Tones {
            seconds: noise_seconds,
            seed: rng.next_u64(),
        }));
    }
    let negatives = maker.embed("training negatives", &pieces)?;

    // The mining pool: the near misses again and everyday text training never reads, in its
    // voices, three in four in noise.
    let mine_count = if args.quick { 200 } else { 1500 };
    let mut mine_pieces: Vec<Piece> = misses
        .iter()
        .cloned()
        .chain(
            everyday
                .iter()
                .filter(|s| corpus::pool(s) == Pool::Mine)
                .take(mine_count)
                .cloned(),
        )
        .map(|text| {
            let (voice, rate, pitch) = training_voice(&mut rng);
            augmented(
                Source::Espeak {
                    voice,
                    rate,
                    pitch,
                    text,
                },
                &mut rng,
            )
        })
        .collect();
    mine_pieces.truncate(if args.quick { 300 } else { 1800 });
    // Made only for a second round: most models pass the gate in their first, and the pool's
    // 2 hours take about 2.5 minutes of a cold install on two cores.
    let mut mine: Option<Embedded> = None;

    // The held-apart audio of the gate.
    let mut features = Features::load(models)?;
    let silence = held::silence(&mut features)?;
    let gate_positives = held::positives(
        profile,
        phrase,
        &args.recordings,
        &mut features,
        args.seed,
        dir,
    )?;
    let gate_hours = args
        .gate_hours
        .unwrap_or(if args.quick { 0.25 } else { 1.5 });
    let mut gate_recordings = Recordings::default();
    if !args.catalogue {
        gate_recordings.speech = args.recordings.speech.clone();
    }
    let gate_pieces = held::negatives(&maker, phrase, gate_hours, &gate_recordings, &everyday)?;
    let gate = maker.embed("held-apart negatives", &gate_pieces)?;
    let refractory =
        (profile.listen.refractory.as_secs_f64() / super::CHUNK_SECONDS).round() as usize;

    let started = Instant::now();
    let mut examples = positive_examples(models, &trials)?;
    let positives = examples.iter().filter(|e| e.positive).count();
    add_windows(&mut examples, &negatives, 2);
    for embeddings in embed_all(models, &decoys)? {
        examples.extend(windows(&embeddings).map(|features| Example {
            features,
            positive: false,
        }));
    }
    eprintln!(
        "features in {:.0} s: {positives} positive and {} negative windows ({:.1} h of negatives, {:.1} of speech)",
        started.elapsed().as_secs_f64(),
        examples.len() - positives,
        negatives.hours(),
        negatives.speech_hours(),
    );

    let first_passes = args.passes.unwrap_or(if args.quick { 10 } else { 20 });
    let rounds = args.rounds.max(1);
    let mut best: Option<(f64, String)> = None;
    for round in 1..=rounds {
        let training = Training {
            epochs: first_passes + 5 * (round - 1),
            seed: args.seed.wrapping_add(round as u64 - 1),
            ..Training::default()
        };
        let started = Instant::now();
        let mut model = KeywordModel::train(&examples, WINDOW, &training, |epoch, loss| {
            if epoch % 5 == 0 || epoch == training.epochs {
                eprintln!(
                    "round {round}: pass {epoch}/{}, loss {loss:.4}",
                    training.epochs
                );
            }
        })?;
        let scores = measure::score(&mut model, &gate_positives, &gate, &silence, refractory)?;
        eprintln!(
            "round {round}: trained in {:.0} s; on {} held-apart positives and {:.1} h of held-apart negatives ({:.1} of speech):",
            started.elapsed().as_secs_f64(),
            gate_positives.len(),
            scores.hours,
            gate.speech_hours(),
        );
        eprint!("{}", measure::det_table(&scores));
        match measure::calibrate(&scores, &targets) {
            Some(threshold) => {
                let calibration = Calibration {
                    phrase: phrase.to_string(),
                    threshold,
                    false_reject_rate: scores.false_reject_rate(threshold),
                    positives: gate_positives.len(),
                    false_accepts_per_hour: scores.per_hour(threshold),
                    negative_hours: scores.hours,
                    sha256: String::new(),
                    seed: args.seed,
                    rounds: round,
                };
                eprintln!(
                    "accepted: at {threshold:.2} it missed {} of {} ({:.1} %) and woke {} times in {:.1} h (nothing within {MARGIN} below it); targets: at most {:.0} % missed, {} an hour",
                    scores.false_rejects(threshold),
                    gate_positives.len(),
                    calibration.false_reject_rate * 100.0,
                    scores.accepts(threshold).len(),
                    scores.hours,
                    targets.max_false_reject * 100.0,
                    targets.max_false_accepts_per_hour,
                    MARGIN = measure::MARGIN,
                );
                return Ok((model, calibration));
            }
            None => {
                let (t, frr) = scores.misses_at_rate(targets.max_false_accepts_per_hour);
                let line = format!(
                    "at {t:.2}, the lowest threshold within {} false accepts an hour, it missed {:.1} % of the phrase (target {:.0} %); its highest score on other audio was {:.2}",
                    targets.max_false_accepts_per_hour,
                    frr * 100.0,
                    targets.max_false_reject * 100.0,
                    scores.worst_negative(),
                );
                eprintln!("round {round}: not accepted: {line}");
                for (g, c) in scores
                    .accepts((t - measure::MARGIN).max(0.01))
                    .iter()
                    .take(5)
                {
                    eprintln!("  woke on {}", gate.label(*g, *c));
                }
                if best.as_ref().is_none_or(|(b, _)| frr < *b) {
                    best = Some((frr, line));
                }
                if round < rounds {
                    let pool = match mine.take() {
                        Some(pool) => pool,
                        None => maker.embed("mining pool", &mine_pieces)?,
                    };
                    let hard = mine_windows(&model, &pool, &mut examples);
                    mine = Some(pool);
                    eprintln!(
                        "round {}: {hard} hard negatives mined from its own false accepts",
                        round + 1
                    );
                }
            }
        }
    }
    let (_, line) = best.expect("at least one round");
    bail!(
        "no model for \"{phrase}\" met the targets in {rounds} rounds: {line}. Fix: give recordings of the phrase (--positives DIR) and of speech without it (--negatives DIR), raise --rounds or --passes, choose a longer phrase with rarer sounds, or relax [models.wake_targets] in the profile"
    )
}

/// Adds every `step`-th full window of each group of `audio` as a negative example.
fn add_windows(examples: &mut Vec<Example>, audio: &Embedded, step: usize) {
    for g in &audio.groups {
        examples.extend(
            windows(&g.embeddings)
                .step_by(step)
                .map(|features| Example {
                    features,
                    positive: false,
                }),
        );
    }
}

/// The windows of the mining pool that `model` scores at least [`HARD`], added three times
/// each as negatives; how many.
fn mine_windows(model: &KeywordModel, mine: &Embedded, examples: &mut Vec<Example>) -> usize {
    let mut n = 0;
    for g in &mine.groups {
        for features in windows(&g.embeddings) {
            // Each window on its own: a spike of one chunk teaches as much as a run.
            if model.score(&features) >= HARD {
                for _ in 0..3 {
                    examples.push(Example {
                        features: features.clone(),
                        positive: false,
                    });
                }
                n += 1;
            }
        }
    }
    n
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

/// `clip` without its leading and trailing near-silence.
fn trim(clip: &[i16]) -> Vec<i16> {
    let loud = |s: &&i16| s.unsigned_abs() > 300;
    let start = clip.iter().position(|s| loud(&s)).unwrap_or(clip.len());
    let end = clip.iter().rposition(|s| loud(&s)).map_or(start, |e| e + 1);
    clip[start..end.max(start)].to_vec()
}

/// One of training's eSpeak NG voices, drawn in this order: accent and variant, rate, pitch
/// (30 to 70). The order is part of every cached set of negatives' key.
fn training_voice(rng: &mut SplitMix) -> (String, u32, u32) {
    let voice = format!(
        "{}{}",
        VOICES[rng.below(VOICES.len())],
        VARIANTS[rng.below(VARIANTS.len())]
    );
    let rate = RATES[rng.below(RATES.len())];
    (voice, rate, 30 + rng.below(41) as u32)
}

/// The sound of what the car plays, for a trial to be heard over: a stretch of `sound` chosen
/// by `at`, `snr_db` below the clip.
#[derive(Clone, Copy)]
struct Over<'a> {
    sound: &'a [i16],
    at: u64,
    snr_db: f64,
}

/// One trial: the clip at a random speed and gain, sometimes in a room, after 1.3 to 1.9 s of
/// background and before 0.5 s of it, maybe `over` the car's playback; with where the clip
/// ends.
fn augment(clip: &[i16], rng: &mut SplitMix, over: Option<Over>) -> (Vec<i16>, usize) {
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
    if let Some(o) = over {
        let room = o.sound.len().saturating_sub(out.len()).max(1);
        let start = (o.at % room as u64) as usize;
        let stretch = &o.sound[start.min(o.sound.len())..];
        let gain = level / rms(stretch).max(1.0) / 10f64.powf(o.snr_db / 20.0);
        for (s, b) in out.iter_mut().zip(stretch) {
            *s = s.saturating_add((f64::from(*b) * gain) as i16);
        }
    }
    (out, end)
}

/// What the car plays, for trials to be heard over: everyday text read by the training voices
/// of eSpeak NG, and music made in code. None of it is the audio `cabin wake playback`
/// measures with (other text, other voices, other seeds). Not Cabin's own voice: positives
/// over it taught a model that its voice means the phrase, and it woke on "Opening the driver
/// window" as the car played it.
fn playback_sounds(everyday: &[String], args: &TrainArgs, dir: &Path) -> Result<Vec<Vec<i16>>> {
    let mut rng = SplitMix(args.seed ^ SOUND_SEED ^ 1);
    let texts: Vec<&String> = everyday
        .iter()
        .filter(|s| corpus::pool(s) == Pool::Train)
        .skip(SOUND_SENTENCES * 7)
        .step_by(7)
        .take(SOUND_SENTENCES)
        .collect();
    let mut talk = Vec::new();
    for text in &texts {
        let (voice, rate, pitch) = training_voice(&mut rng);
        talk.extend(espeak(&voice, rate, pitch, text, dir)?);
        talk.extend(std::iter::repeat_n(0i16, 3_200));
    }
    let music = crate::cli::acoustics::music(60 * RATE as usize, args.seed ^ SOUND_SEED, 0.1);
    Ok(vec![talk, music])
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
    fn trimming_drops_the_silence_around_a_clip() {
        let clip = [0, 10, 0, 900, -1200, 40, 0];
        assert_eq!(trim(&clip), vec![900, -1200]);
        assert!(trim(&[0, 5, -3]).is_empty());
    }

    #[test]
    fn a_trial_over_the_cars_playback_hears_it_before_the_clip_at_the_asked_level() {
        let clip: Vec<i16> = (0..8_000)
            .map(|i| ((i as f32 * 0.3).sin() * 8_000.0) as i16)
            .collect();
        let sound = crate::cli::acoustics::music(5 * 16_000, 2, 0.2);
        // The same draws with and without the sound: only the sound differs.
        let (quiet, end) = augment(&clip, &mut SplitMix(9), None);
        let over = Over {
            sound: &sound,
            at: 123,
            snr_db: 20.0,
        };
        let (loud, same_end) = augment(&clip, &mut SplitMix(9), Some(over));
        assert_eq!((end, loud.len()), (same_end, quiet.len()));
        let added: Vec<i16> = loud
            .iter()
            .zip(&quiet)
            .map(|(a, b)| a.saturating_sub(*b))
            .collect();
        let below = 20.0 * (rms(&quiet[end - 4_000..end]) / rms(&added[..end - 8_000])).log10();
        assert!((below - 20.0).abs() < 3.0, "{below} dB below the clip");
    }
}
