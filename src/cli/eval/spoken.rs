//! `cabin eval --spoken`: each case said aloud before it is understood. The text is spoken by
//! Kokoro in a style the profile does not speak with and transcribed by the profile's
//! recogniser; the transcript is what the router is given. Prints the recogniser's error rate
//! (characters for Mandarin, words otherwise) on the set.

use super::Case;
use anyhow::{bail, Context, Result};
use cabin::asr::AsrChoice;
use cabin::runtime::worker::{WorkerState, SETTLE_LIMIT};
use cabin::speak::kokoro::Kokoro;
use cabin::text::{tokenize_with, Script};
use cabin::Profile;

/// Replaces each case's text by what the profile's recogniser heard of it, spoken in `style`.
pub async fn hear(profile: &Profile, set: &mut [Case], style: &str) -> Result<()> {
    let worker = cabin::asr::start(profile, &AsrChoice::Auto)
        .context("the profile names no asr model: --spoken needs one")?;
    let client = match worker.settled(SETTLE_LIMIT).await {
        WorkerState::Ready(c) => c,
        WorkerState::Down(why) => bail!("no speech recognition: {why}"),
        WorkerState::Starting => bail!("the speech recognition worker was not ready in time"),
    };
    let settings = cabin::profile::SpeechSettings {
        style: Some(style.to_string()),
        threads: 2,
        ..Default::default()
    };
    let lexicon = profile.lexicon.clone();
    let voice = tokio::task::spawn_blocking(move || Kokoro::load(&lexicon, &settings))
        .await?
        .context("--spoken speaks with Kokoro (fix: `cabin models fetch --model kokoro-v1.0 --model kokoro-v1.0-styles --model kokoro-v1.0-vocab`)")?;
    let voice = std::sync::Arc::new(std::sync::Mutex::new(voice));
    let numbers = &profile.lexicon.numbers;
    let (mut errors, mut units, total) = (0, 0, set.len());
    for (i, case) in set.iter_mut().enumerate() {
        let text = case.text.clone();
        let v = voice.clone();
        let samples = tokio::task::spawn_blocking(move || {
            let mut v = v.lock().unwrap_or_else(|p| p.into_inner());
            crate::cli::wake::say(&mut *v, &text)
        })
        .await??;
        let heard = client
            .transcribe(&samples, profile.listen.asr_timeout)
            .await?
            .text;
        let norms = |s: &str| -> Vec<String> {
            tokenize_with(s, numbers)
                .into_iter()
                .map(|t| t.norm)
                .collect()
        };
        let said = norms(&case.text);
        errors += crate::cli::voice::distance(&said, &norms(&heard));
        units += said.len();
        case.text = heard;
        eprint!("\reval: spoken {}/{total}", i + 1);
    }
    eprintln!();
    let unit = match profile.lexicon.script {
        Script::Han => "character",
        Script::Latin => "word",
    };
    println!(
        "spoken by Kokoro {style}, heard by {}: {unit} error rate {:.1} % ({errors} of {units} {unit}s)",
        profile.models.asr.as_deref().unwrap_or("?"),
        100.0 * errors as f64 / units.max(1) as f64
    );
    Ok(())
}
