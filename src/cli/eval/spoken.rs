//! `cabin eval --spoken`: each case said aloud before it is understood. The text is spoken by
//! Kokoro in a style the profile does not speak with, optionally under road noise (made in code, [`acoustics`]), cleaned as
//! the profile's front end cleans the microphone, and transcribed by the profile's
//! recogniser; the transcript is what the router is given. Prints the recogniser's error rate
//! (characters for Mandarin, words otherwise) on the set.

use super::Case;
use crate::cli::acoustics;
use crate::cli::voice::ErrorRate;
use anyhow::{Context, Result};
use cabin::asr::AsrChoice;
use cabin::hear::clean::Cleaning;
use cabin::speak::kokoro::Kokoro;
use cabin::Profile;
use std::time::Duration;

/// How each case is said and heard.
pub struct Conditions {
    pub style: String,
    /// Car noise this many dB below the speech; none: clean.
    pub noise_db: Option<f64>,
    /// The car playing Cabin's replies (or music) this many dB below the driver's voice at the
    /// microphone, through a cabin's echo path; none: nothing plays.
    pub echo_db: Option<f64>,
    /// What plays is music rather than Cabin's replies.
    pub music: bool,
}

/// Music looped under the cases: two minutes.
const MUSIC: usize = 120 * 16_000;

/// Noise (and playback) before the speech, for the cleaner's noise estimate and echo path to
/// settle as they have in a car where it runs all the time; cut off before recognition.
const LEAD_IN: usize = 3 * 16_000;
/// What the front end keeps before speech starts (its pre-roll) and after it ends.
const MARGIN: usize = 3_200;

/// Replaces each case's text by what the profile's recogniser heard of it.
pub async fn hear(profile: &Profile, set: &mut [Case], conditions: &Conditions) -> Result<()> {
    let (_worker, client) = crate::cli::transcribe::recogniser(profile, &AsrChoice::Auto).await?;
    let settings = cabin::profile::SpeechSettings {
        style: Some(conditions.style.clone()),
        threads: 2,
        ..Default::default()
    };
    let lexicon = profile.lexicon.clone();
    let mut voice = tokio::task::spawn_blocking(move || Kokoro::load(&lexicon, &settings))
        .await?
        .context("--spoken speaks with Kokoro (fix: `cabin models fetch --model kokoro-v1.0 --model kokoro-v1.0-styles --model kokoro-v1.0-vocab`)")?;
    let clean = profile.listen.clean;
    // What the car plays: Cabin's replies in its own Kokoro style.
    let played = match conditions.echo_db {
        None => Vec::new(),
        Some(_) if conditions.music => acoustics::music(MUSIC, 1, 0.1),
        Some(_) => {
            let replies: Vec<String> = profile.small_talk.iter().map(|t| t.reply.clone()).collect();
            let lexicon = profile.lexicon.clone();
            let own = cabin::profile::SpeechSettings {
                threads: 2,
                ..Default::default()
            };
            tokio::task::spawn_blocking(move || -> Result<Vec<i16>> {
                let mut own = Kokoro::load(&lexicon, &own)?;
                crate::cli::wake::say(&mut own, &replies.join(" "))
            })
            .await??
        }
    };
    let playback = Playback {
        played: std::sync::Arc::new(played),
        echo_db: conditions.echo_db,
    };
    let (mut rate, total) = (ErrorRate::new(&profile.lexicon), set.len());
    let (mut audio_s, mut clean_cpu) = (0.0, Duration::ZERO);
    let noise_db = conditions.noise_db;
    for (i, case) in set.iter_mut().enumerate() {
        let text = case.text.clone();
        let playback = playback.clone();
        let (returned, heard) = tokio::task::spawn_blocking(move || {
            let heard = crate::cli::wake::say(&mut voice, &text)
                .and_then(|speech| condition(&speech, noise_db, &playback, i as u32, &clean));
            (voice, heard)
        })
        .await?;
        voice = returned;
        let (samples, cpu) = heard?;
        audio_s += samples.len() as f64 / 16_000.0;
        clean_cpu += cpu;
        let heard = client
            .transcribe(&samples, profile.listen.asr_timeout)
            .await?;
        rate.add(&case.text, &heard.text);
        case.text = heard.text;
        case.heard = heard.confidence;
        eprint!("\reval: spoken {}/{total}", i + 1);
    }
    eprintln!();
    let mut noise = match noise_db {
        Some(db) => format!(" under car noise at {db} dB SNR"),
        None => String::new(),
    };
    if let Some(db) = conditions.echo_db {
        let what = if conditions.music {
            "music"
        } else {
            "Cabin's voice"
        };
        noise += &format!(", {what} playing {db} dB below it");
    }
    let cleaning = match (clean.noise, clean.echo.is_some()) {
        (None, false) => "not cleaned".to_string(),
        (noise, echo) => format!(
            "cleaned (noise suppression {}, echo cancellation {}; {:.1} % of one core)",
            noise.map_or("off".into(), |l| format!("{l:?}").to_lowercase()),
            if echo { "on" } else { "off" },
            clean_cpu.as_secs_f64()
                / (audio_s + total as f64 * LEAD_IN as f64 / 16_000.0).max(1e-9)
                * 100.0
        ),
    };
    println!(
        "spoken by Kokoro {}{noise}, {cleaning}, heard by {}: {rate}",
        conditions.style,
        profile.models.asr.as_deref().unwrap_or("?"),
    );
    Ok(())
}

/// What the car plays while the driver speaks.
#[derive(Clone)]
struct Playback {
    played: std::sync::Arc<Vec<i16>>,
    echo_db: Option<f64>,
}

/// What the recogniser is given of `speech`: under car noise at `noise_db` and the echo of
/// the playback (each seeded by the case), cleaned as the profile asks, from just before the
/// speech to just after it; and the processor time the cleaning took.
fn condition(
    speech: &[i16],
    noise_db: Option<f64>,
    playback: &Playback,
    seed: u32,
    clean: &cabin::profile::CleanSettings,
) -> Result<(Vec<i16>, Duration)> {
    let mut audio = vec![0i16; LEAD_IN + MARGIN];
    audio.extend_from_slice(speech);
    audio.resize(audio.len() + MARGIN, 0);
    let level = acoustics::rms(speech);
    if let Some(db) = noise_db {
        acoustics::add_road_noise(&mut audio, level, db, u64::from(seed));
    }
    // The playback from a point of its own for each case, looped as long as needed; silence
    // when nothing plays (the daemon's canceller hears Cabin's silent voice then).
    let played: Vec<i16> = match (playback.echo_db, playback.played.len()) {
        (Some(_), n) if n > 0 => {
            let start = (seed as usize * 7_919) % n;
            (0..audio.len())
                .map(|i| playback.played[(start + i) % n])
                .collect()
        }
        _ => vec![0; audio.len()],
    };
    if let Some(db) = playback.echo_db {
        acoustics::add_echo(&mut audio, &played, level, db, u64::from(seed));
    }
    let mut cleaning = Cleaning::new(clean, true)?;
    cleaning.echo(&mut audio, &played);
    cleaning.noise(&mut audio)?;
    let cpu = cleaning.cpu();
    Ok((audio.split_off(LEAD_IN), cpu))
}
