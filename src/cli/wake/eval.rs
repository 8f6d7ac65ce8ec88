//! `cabin wake eval`: how often a wake word model misses its phrase and how often it wakes on
//! other audio, reported the way Porcupine and openWakeWord report theirs: the false-reject
//! rate on positives and false accepts per hour of negatives at each threshold, and a DET table
//! (misses at 0.05, 0.1, 0.5 and 1 false accepts an hour), with `--plot` as a picture.
//!
//! It measures on the held-apart audio `cabin wake train`'s gate uses ([`super::held`]), as
//! many hours of it as `--hours` asks: positives in voices and conditions training never uses;
//! negatives that training never reads, mostly speech (everyday text in every eSpeak NG voice,
//! a third of it over car noise, near misses and sound-alikes, the commands training leaves
//! out, Cabin's own voice reading every reply it can give, the held half of the real
//! recordings), car noise and music-like tones. The speech embeddings are cached, so a second
//! run of the same hours takes seconds.

use super::held;
use super::measure::{self, Scorer};
use super::negatives::Maker;
use super::{corpus, Recordings};
use anyhow::{bail, Context, Result};
use cabin::hear::wake::{Calibration, FeatureModels, Features, Keyword, WakeModels};
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
    /// Hours of held-apart negatives (10 measures 0.1 false accepts an hour honestly; made
    /// once and cached, about 15 minutes on two cores).
    #[arg(long, default_value_t = 1.5)]
    hours: f64,
    /// Also write the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also draw the DET curve (misses against false accepts per hour) into this PNG.
    #[arg(long)]
    plot: Option<PathBuf>,
}

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
    if !(0.05..=100.0).contains(&args.hours) {
        bail!("--hours {} is outside 0.05..=100", args.hours);
    }
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
    let wake = WakeModels::resolve(model)?;
    let mut keyword = Keyword::load(&wake.keyword)?;
    let calibration = Calibration::of(&wake.keyword);
    let threshold = cabin::hear::wake::threshold_for(profile.listen.wake_threshold, &wake.keyword);
    let features_models = FeatureModels::installed()?;
    let mut features = Features::load(&features_models)?;
    let silence = held::silence(&mut features)?;
    // The seed of Cabin's voice in the held-apart audio: training's default, so that the gate
    // and this measure the same audio.
    let seed = 1;
    eprintln!("synthesising \"{phrase}\" in the held-apart voices…");
    let positives = held::positives(profile, phrase, &args.recordings, &mut features, seed, dir)?;
    let maker = Maker {
        profile,
        models: &features_models,
        seed,
        dir,
    };
    let everyday = corpus::everyday(phrase)?;
    let pieces = held::negatives(&maker, phrase, args.hours, &args.recordings, &everyday)?;
    let negatives = maker.embed("held-apart negatives", &pieces)?;
    let refractory =
        (profile.listen.refractory.as_secs_f64() / super::CHUNK_SECONDS).round() as usize;
    eprintln!("scoring…");
    let scores = measure::score(
        &mut keyword as &mut dyn Scorer,
        &positives,
        &negatives,
        &silence,
        refractory,
    )?;

    println!(
        "{model} (\"{phrase}\"): {} positives, {:.2} h of negatives ({:.2} h of speech)\n",
        positives.len(),
        scores.hours,
        negatives.speech_hours()
    );
    match &calibration {
        Some(c) => println!(
            "Trained by Cabin (seed {}, {} round{}); calibrated at {:.2}: {:.1} % missed, {:.2} false accepts an hour on {:.1} h at training.\n",
            c.seed,
            c.rounds,
            if c.rounds == 1 { "" } else { "s" },
            c.threshold,
            c.false_reject_rate * 100.0,
            c.false_accepts_per_hour,
            c.negative_hours
        ),
        None => println!("No calibration beside the model: it wakes at {threshold:.2} unless the profile sets one.\n"),
    }
    println!("| threshold | false rejects | false-reject rate | false accepts | per hour |");
    println!("|---|---|---|---|---|");
    let mut thresholds: Vec<f32> = THRESHOLDS.to_vec();
    if !thresholds.iter().any(|t| (t - threshold).abs() < 1e-3) {
        thresholds.push(threshold);
        thresholds.sort_by(f32::total_cmp);
    }
    let mut rows = Vec::new();
    for &t in &thresholds {
        let missed = scores.false_rejects(t);
        let accepts = scores.accepts(t).len();
        let mark = if (t - threshold).abs() < 1e-3 {
            " (ships)"
        } else {
            ""
        };
        println!(
            "| {t:.2}{mark} | {missed} of {} | {:.1} % | {accepts} | {:.2} |",
            positives.len(),
            scores.false_reject_rate(t) * 100.0,
            scores.per_hour(t)
        );
        rows.push(serde_json::json!({
            "threshold": t, "false_rejects": missed, "positives": positives.len(),
            "false_reject_rate": scores.false_reject_rate(t), "false_accepts": accepts,
            "false_accepts_per_hour": scores.per_hour(t),
        }));
    }
    println!("\nDET: the fewest misses at a rate of false accepts\n");
    print!("{}", measure::det_table(&scores));
    // Where the misses are, at the threshold that ships.
    let mut by_kind: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for (kind, score) in scores.kinds.iter().zip(&scores.best) {
        let e = by_kind.entry(kind.as_str()).or_default();
        e.1 += 1;
        if *score < threshold {
            e.0 += 1;
        }
    }
    println!("\nMissed at {threshold:.2}:");
    for (kind, (missed, all)) in &by_kind {
        println!("- {kind}: {missed} of {all}");
    }
    let own = own_voice_accepts(&scores, &negatives, threshold);
    println!(
        "\nCabin's own voice reading every reply it can give ({} replies): {} false accept{} at {threshold:.2}",
        corpus::replies(profile).len(),
        own,
        if own == 1 { "" } else { "s" }
    );
    let woke = scores.accepts(threshold);
    if !woke.is_empty() {
        println!("\nFalse accepts at {threshold:.2}, in:");
        for (g, c) in woke {
            println!("- {}", negatives.label(g, c));
        }
    }
    if let Some(path) = &args.json {
        let det: Vec<_> = [0.05, 0.1, 0.5, 1.0]
            .iter()
            .map(|r| {
                let (t, frr) = scores.misses_at_rate(*r);
                serde_json::json!({"false_accepts_per_hour": r, "threshold": t, "false_reject_rate": frr})
            })
            .collect();
        let report = serde_json::json!({
            "model": model, "phrase": phrase, "negative_hours": scores.hours,
            "speech_hours": negatives.speech_hours(), "threshold": threshold,
            "rows": rows, "det": det, "own_voice_false_accepts": own,
        });
        std::fs::write(path, format!("{report}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        super::plot::det_curve(&scores, threshold, &format!("\"{phrase}\" ({model})"), path)?;
        println!("\nDET curve: {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// False accepts at `t` in pieces that are Cabin's own voice.
fn own_voice_accepts(
    scores: &measure::Scores,
    negatives: &super::negatives::Embedded,
    t: f32,
) -> usize {
    scores
        .accepts(t)
        .iter()
        .filter(|(g, c)| negatives.label(*g, *c).contains("(Cabin's voice"))
        .count()
}
