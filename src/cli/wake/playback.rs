//! `cabin wake playback`: the wake word while the car plays. What plays is Cabin's own voice
//! reading every reply it can give, the same replies read by another (eSpeak NG) voice as
//! talk radio, and three minutes of music made in code ([`acoustics::music`]); the tries take
//! turns over the three. The microphone hears it through a simulated cabin echo path
//! ([`crate::cli::acoustics::add_echo`]) and the front end's echo canceller is given it as its
//! reference (the media's capture), as in the daemon.
//!
//! It reports, at the threshold that ships: how often "Hey Cabin" and a command, said by the
//! held-apart eSpeak NG voices over the playback, wake it; and how often the playback alone
//! does (false wakes per hour).

use super::held::{ESPEAK_VARIANTS, ESPEAK_VOICES};
use crate::cli::acoustics;
use anyhow::{Context, Result};
use cabin::hear::{Engines, FrontEnd, Heard, Input, Playback};
use cabin::Profile;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct PlaybackArgs {
    #[arg(long)]
    profile: Option<PathBuf>,
    /// The playback this many dB below the driver's voice at the microphone (as `cabin eval
    /// --echo`): 0 is a car playing as loud as the driver speaks, 10 the media ducked, -6
    /// louder than the driver.
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    echo: f64,
    /// Tries of the wake phrase over the playback, each in another voice.
    #[arg(long, default_value_t = 50)]
    tries: usize,
    /// Leave the echo as it is (the profile's canceller off).
    #[arg(long)]
    no_echo_cancellation: bool,
}

/// Seconds of music played (after Cabin's voice and the talk radio).
const MUSIC_S: usize = 180;
/// Playback before the phrase: the canceller has been hearing the car for a while.
const LEAD_IN_S: f64 = 3.0;
/// A wake this long after the phrase's end still counts as hearing it.
const LATE_S: f64 = 0.5;

pub(super) fn playback(args: PlaybackArgs) -> Result<ExitCode> {
    let dir = std::env::temp_dir().join(format!("cabin-wake-playback-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = measure(args, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn measure(args: PlaybackArgs, dir: &Path) -> Result<ExitCode> {
    let mut profile = Profile::load_or_default(args.profile.as_deref())?;
    if args.no_echo_cancellation {
        profile.listen.clean.echo = None;
    }
    let phrase = profile
        .persona
        .wake_words
        .first()
        .cloned()
        .context("the profile has no wake word")?;
    let replies = super::corpus::replies(&profile);
    eprintln!("playback: Cabin's voice reading {} replies", replies.len());
    let replies = replies.join(" ");
    // Seeded where the voice samples (Piper), so that every run plays the same audio.
    let mut voice: Box<dyn cabin::speak::voice::Voice> =
        match super::piper_voice(&profile, profile.speech.rate, 40)? {
            Some(piper) => Box::new(piper),
            None => cabin::speak::voice::load(&profile)?,
        };
    let own = super::say(voice.as_mut(), &replies)?;
    eprintln!("playback: the same as talk radio (eSpeak NG en-gb-x-rp), and music");
    let talk = super::espeak("en-gb-x-rp", 165, 40, &replies, dir)?;
    // Music as loud as Cabin's voice (in full scale, as `music` takes it).
    let music = acoustics::music(MUSIC_S * 16_000, 1, acoustics::rms(&own) / 32768.0);
    let sources = [
        ("Cabin's voice", own),
        ("talk radio", talk),
        ("music", music),
    ];
    let commands: Vec<&str> = profile
        .intents
        .iter()
        .filter_map(|i| i.examples.first().map(String::as_str))
        .collect();
    let voices: Vec<String> = ESPEAK_VOICES
        .iter()
        .flat_map(|v| ESPEAK_VARIANTS.iter().map(move |x| format!("{v}{x}")))
        .collect();
    let (mut heard, mut heard_quiet, mut speech_rms) = ([0; 3], 0, 0.0);
    for i in 0..args.tries {
        let (_, played) = &sources[i % sources.len()];
        let command = commands
            .get(i % commands.len().max(1))
            .copied()
            .unwrap_or("");
        let clip = super::espeak(
            &voices[i % voices.len()],
            150,
            50,
            &format!("{phrase}, {command}"),
            dir,
        )?;
        let level = acoustics::rms(&clip);
        speech_rms += level / args.tries as f64;
        let lead = (LEAD_IN_S * 16_000.0) as usize;
        let mut mic = vec![0i16; lead];
        mic.extend(&clip);
        mic.resize(mic.len() + 16_000, 0);
        let start = (i * 104_729) % played.len();
        let reference: Vec<i16> = (0..mic.len())
            .map(|k| played[(start + k) % played.len()])
            .collect();
        let phrase_end = (lead + clip.len()) as f64 / 16_000.0;
        let woke = |wakes: Vec<f64>| {
            wakes
                .iter()
                .any(|&at| at > LEAD_IN_S && at < phrase_end + LATE_S)
        };
        // The same try with nothing playing.
        heard_quiet += usize::from(woke(wakes(&profile, &mic, &vec![0; mic.len()], dir)?));
        acoustics::add_echo(&mut mic, &reference, level, args.echo, i as u64);
        heard[i % sources.len()] += usize::from(woke(wakes(&profile, &mic, &reference, dir)?));
        eprint!(
            "\rplayback: {}/{} tries, {} heard ({heard_quiet} with nothing playing)",
            i + 1,
            args.tries,
            heard.iter().sum::<usize>()
        );
    }
    eprintln!();
    let played: Vec<i16> = sources
        .iter()
        .flat_map(|(_, a)| a.iter().copied())
        .collect();
    let mut mic = vec![0i16; played.len()];
    acoustics::add_echo(&mut mic, &played, speech_rms, args.echo, 0);
    let false_wakes = wakes(&profile, &mic, &played, dir)?.len();
    let minutes = played.len() as f64 / 16_000.0 / 60.0;
    let cancelled = if profile.listen.clean.echo.is_some() {
        "echo cancelled"
    } else {
        "echo not cancelled"
    };
    let percent = |n: usize, of: usize| 100.0 * n as f64 / of.max(1) as f64;
    let total = heard.iter().sum::<usize>();
    let each: Vec<String> = sources
        .iter()
        .enumerate()
        .map(|(k, (name, _))| {
            let tries = (args.tries + sources.len() - 1 - k) / sources.len();
            format!("{name} {}/{tries}", heard[k])
        })
        .collect();
    println!(
        "wake word over the car's playback {} dB below the voice ({cancelled}): heard {total}/{} tries \
         ({:.0} %: {}; {heard_quiet} = {:.0} % with nothing playing); the playback alone \
         ({minutes:.1} min of Cabin's voice, talk radio and music) woke it {false_wakes} time{} \
         ({:.1} per hour)",
        args.echo,
        args.tries,
        percent(total, args.tries),
        each.join(", "),
        percent(heard_quiet, args.tries),
        if false_wakes == 1 { "" } else { "s" },
        false_wakes as f64 / (minutes / 60.0)
    );
    Ok(ExitCode::SUCCESS)
}

/// When the front end woke on `mic`, given `played` as the media's capture.
fn wakes(profile: &Profile, mic: &[i16], played: &[i16], dir: &Path) -> Result<Vec<f64>> {
    let (mic_wav, played_wav) = (dir.join("mic.wav"), dir.join("played.wav"));
    cabin::hear::audio::write_wav(&mic_wav, mic)?;
    cabin::hear::audio::write_wav(&played_wav, played)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let front_end = FrontEnd::start(
        Input::File(mic_wav),
        Engines::load(&profile.models)?,
        profile.listen.clone(),
        false,
        Playback {
            voice: None,
            media: Some(Input::File(played_wav)),
        },
        tx,
    )?;
    let judge = front_end.judge();
    let mut at = Vec::new();
    while let Some(h) = rx.blocking_recv() {
        match h {
            Heard::Wake { at: t, .. } => at.push(t),
            Heard::Pause { speech_end, .. } => judge.judge(speech_end, false),
            Heard::Command { .. } | Heard::NoSpeech { .. } => front_end.resume(),
            Heard::Ended { error, .. } => {
                if let Some(e) = error {
                    anyhow::bail!("the front end stopped: {e}");
                }
                break;
            }
            _ => {}
        }
    }
    Ok(at)
}
