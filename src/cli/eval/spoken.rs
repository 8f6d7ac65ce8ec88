//! `cabin eval --spoken`: each case said aloud before it is understood. The text is spoken by
//! Kokoro in a style the profile does not speak with and transcribed by the profile's
//! recogniser; the transcript is what the router is given. Prints the recogniser's error rate
//! (characters for Mandarin, words otherwise) on the set.

use super::Case;
use crate::cli::voice::ErrorRate;
use anyhow::{Context, Result};
use cabin::asr::AsrChoice;
use cabin::speak::kokoro::Kokoro;
use cabin::Profile;

/// Replaces each case's text by what the profile's recogniser heard of it, spoken in `style`.
pub async fn hear(profile: &Profile, set: &mut [Case], style: &str) -> Result<()> {
    let (_worker, client) = crate::cli::transcribe::recogniser(profile, &AsrChoice::Auto).await?;
    let settings = cabin::profile::SpeechSettings {
        style: Some(style.to_string()),
        threads: 2,
        ..Default::default()
    };
    let lexicon = profile.lexicon.clone();
    let mut voice = tokio::task::spawn_blocking(move || Kokoro::load(&lexicon, &settings))
        .await?
        .context("--spoken speaks with Kokoro (fix: `cabin models fetch --model kokoro-v1.0 --model kokoro-v1.0-styles --model kokoro-v1.0-vocab`)")?;
    let (mut rate, total) = (ErrorRate::new(&profile.lexicon), set.len());
    for (i, case) in set.iter_mut().enumerate() {
        let text = case.text.clone();
        let (returned, samples) = tokio::task::spawn_blocking(move || {
            let samples = crate::cli::wake::say(&mut voice, &text);
            (voice, samples)
        })
        .await?;
        voice = returned;
        let heard = client
            .transcribe(&samples?, profile.listen.asr_timeout)
            .await?
            .text;
        rate.add(&case.text, &heard);
        case.text = heard;
        eprint!("\reval: spoken {}/{total}", i + 1);
    }
    eprintln!();
    println!(
        "spoken by Kokoro {style}, heard by {}: {rate}",
        profile.models.asr.as_deref().unwrap_or("?"),
    );
    Ok(())
}
