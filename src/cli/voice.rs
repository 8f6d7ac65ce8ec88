//! `cabin voice`: the profile's voice measured by its own ears. Every reply the profile can
//! give is spoken with its voice and transcribed with its recogniser: the share heard back as
//! said, the error rate (characters for Mandarin, words otherwise) and what synthesis costs.

use anyhow::{bail, Context, Result};
use cabin::asr::AsrChoice;
use cabin::runtime::worker::{WorkerState, SETTLE_LIMIT};
use cabin::text::{tokenize_with, Script};
use cabin::Profile;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Only the first N replies (all by default)
    #[arg(long)]
    limit: Option<usize>,
    /// Print each reply, what was heard and its errors
    #[arg(long)]
    verbose: bool,
}

pub async fn exec(args: Args) -> Result<ExitCode> {
    let profile = Profile::load_or_default(args.profile.as_deref())?;
    let mut replies = super::wake::replies(&profile);
    replies.truncate(args.limit.unwrap_or(usize::MAX));
    let worker = cabin::asr::start(&profile, &AsrChoice::Auto)
        .context("the profile names no asr model: nothing to hear the voice with")?;
    let client = match worker.settled(SETTLE_LIMIT).await {
        WorkerState::Ready(c) => c,
        WorkerState::Down(why) => bail!("no speech recognition: {why}"),
        WorkerState::Starting => bail!("the speech recognition worker was not ready in time"),
    };
    let voice_profile = profile.clone();
    let (voice, name) = tokio::task::spawn_blocking(move || {
        let v = cabin::speak::voice::load(&voice_profile)?;
        let name = v.name();
        anyhow::Ok((std::sync::Arc::new(std::sync::Mutex::new(v)), name))
    })
    .await??;
    let numbers = &profile.lexicon.numbers;
    let unit = match profile.lexicon.script {
        Script::Han => "character",
        Script::Latin => "word",
    };
    eprintln!(
        "voice: {} replies of {} in {name}, heard by {}",
        replies.len(),
        profile.name,
        profile.models.asr.as_deref().unwrap_or("?")
    );
    let (mut same, mut errors, mut units) = (0, 0, 0);
    let (mut synth_s, mut audio_s) = (0.0, 0.0);
    for (i, reply) in replies.iter().enumerate() {
        let text = reply.clone();
        let v = voice.clone();
        let (samples, took) = tokio::task::spawn_blocking(move || {
            let mut v = v.lock().unwrap_or_else(|p| p.into_inner());
            let started = Instant::now();
            let samples = super::wake::say(v.as_mut(), &text)?;
            anyhow::Ok((samples, started.elapsed().as_secs_f64()))
        })
        .await??;
        let seconds = samples.len() as f64 / cabin::hear::audio::RATE as f64;
        synth_s += took;
        audio_s += seconds;
        let heard = client
            .transcribe(&samples, profile.listen.asr_timeout)
            .await?
            .text;
        let said: Vec<String> = tokenize_with(reply, numbers)
            .into_iter()
            .map(|t| t.norm)
            .collect();
        let got: Vec<String> = tokenize_with(&heard, numbers)
            .into_iter()
            .map(|t| t.norm)
            .collect();
        let e = distance(&said, &got);
        errors += e;
        units += said.len();
        same += usize::from(e == 0);
        if args.verbose {
            println!("{e:>3}  {reply}\n     {heard}");
        } else if (i + 1) % 25 == 0 {
            eprintln!("voice: {} of {}", i + 1, replies.len());
        }
    }
    let n = replies.len().max(1);
    println!(
        "{same}/{} replies heard back as said ({:.1} %); {unit} error rate {:.1} % ({errors} of {units} {unit}s)",
        replies.len(),
        100.0 * same as f64 / n as f64,
        100.0 * errors as f64 / units.max(1) as f64,
    );
    println!(
        "synthesis: {synth_s:.1} s for {audio_s:.1} s of speech (real-time factor {:.2}, {} thread(s))",
        synth_s / audio_s.max(0.001),
        profile.speech.threads
    );
    Ok(ExitCode::SUCCESS)
}

/// Edit distance between two sequences of words (or characters).
pub(super) fn distance(a: &[String], b: &[String]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            let next = (diagonal + usize::from(x != y))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn the_distance_counts_substitutions_insertions_and_deletions() {
        assert_eq!(distance(&words("a b c"), &words("a b c")), 0);
        assert_eq!(distance(&words("a b c"), &words("a x c")), 1);
        assert_eq!(distance(&words("a b c"), &words("a c")), 1);
        assert_eq!(distance(&words("a b"), &words("a b c d")), 2);
        assert_eq!(distance(&[], &words("a b")), 2);
    }
}
