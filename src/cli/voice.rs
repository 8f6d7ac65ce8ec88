//! `cabin voice`: the profile's voice measured by its own ears. Every reply the profile can
//! give is spoken with its voice and transcribed with its recogniser: the share heard back as
//! said, the error rate (characters for Mandarin, words otherwise) and what synthesis costs.

use anyhow::Result;
use cabin::asr::AsrChoice;
use cabin::text::{tokenize_with, Lexicon, Script};
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
    let (_worker, client) = super::transcribe::recogniser(&profile, &AsrChoice::Auto).await?;
    let voice_profile = profile.clone();
    let mut voice =
        tokio::task::spawn_blocking(move || cabin::speak::voice::load(&voice_profile)).await??;
    let name = voice.name();
    eprintln!(
        "voice: {} replies of {} in {name}, heard by {}",
        replies.len(),
        profile.name,
        profile.models.asr.as_deref().unwrap_or("?")
    );
    let (mut same, mut rate) = (0, ErrorRate::new(&profile.lexicon));
    let (mut synth_s, mut audio_s) = (0.0, 0.0);
    for (i, reply) in replies.iter().enumerate() {
        let text = reply.clone();
        let (returned, samples, took) = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let samples = super::wake::say(voice.as_mut(), &text);
            (voice, samples, started.elapsed().as_secs_f64())
        })
        .await?;
        voice = returned;
        let samples = samples?;
        let seconds = samples.len() as f64 / cabin::hear::audio::RATE as f64;
        synth_s += took;
        audio_s += seconds;
        let heard = client
            .transcribe(&samples, profile.listen.asr_timeout)
            .await?
            .text;
        let e = rate.add(reply, &heard);
        same += usize::from(e == 0);
        if args.verbose {
            println!("{e:>3}  {reply}\n     {heard}");
        } else if (i + 1) % 25 == 0 {
            eprintln!("voice: {} of {}", i + 1, replies.len());
        }
    }
    let n = replies.len().max(1);
    println!(
        "{same}/{} replies heard back as said ({:.1} %); {rate}",
        replies.len(),
        100.0 * same as f64 / n as f64,
    );
    println!(
        "synthesis: {synth_s:.1} s for {audio_s:.1} s of speech (real-time factor {:.2}, {} thread(s))",
        synth_s / audio_s.max(0.001),
        profile.speech.threads
    );
    Ok(ExitCode::SUCCESS)
}

/// The recogniser's errors over what was said: characters for a language written in Han
/// (each is a word to the tokenizer), words otherwise; a number is one unit however it is
/// written ("二十一" and "21" are the same).
pub(super) struct ErrorRate<'a> {
    lexicon: &'a Lexicon,
    errors: usize,
    units: usize,
}

impl<'a> ErrorRate<'a> {
    pub(super) fn new(lexicon: &'a Lexicon) -> ErrorRate<'a> {
        ErrorRate {
            lexicon,
            errors: 0,
            units: 0,
        }
    }

    /// Counts `heard` against `said`; its errors.
    pub(super) fn add(&mut self, said: &str, heard: &str) -> usize {
        let norms = |s: &str| -> Vec<String> {
            tokenize_with(s, &self.lexicon.numbers)
                .into_iter()
                .map(|t| t.norm)
                .collect()
        };
        let said = norms(said);
        let e = distance(&said, &norms(heard));
        self.errors += e;
        self.units += said.len();
        e
    }
}

impl std::fmt::Display for ErrorRate<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.lexicon.script {
            Script::Han => "character",
            Script::Latin => "word",
        };
        write!(
            f,
            "{unit} error rate {:.1} % ({} of {} {unit}s)",
            100.0 * self.errors as f64 / self.units.max(1) as f64,
            self.errors,
            self.units
        )
    }
}

/// Edit distance between two sequences of words (or characters).
fn distance(a: &[String], b: &[String]) -> usize {
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
