//! `cabin wake`: train a wake word model for a phrase (`train`) and measure one (`eval`).
//! Both speak the phrase with the voices Cabin has (eSpeak NG's accents and variants, the
//! profile's Piper voice) and mix it with car noise; they use different voices, rates and
//! conditions, so an evaluation's positives are never a model's training clips.

mod corpus;
mod eval;
mod held;
mod measure;
mod negatives;
mod playback;
mod plot;
mod train;

use crate::cli::acoustics::rms;
use anyhow::{bail, Context, Result};
use cabin::hear::wake::CHUNK;
use cabin::Profile;
pub(super) use corpus::replies;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub use train::train_catalogue_word;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Train a wake word model for a phrase, on this machine (minutes on two cores).
    Train(train::TrainArgs),
    /// Measure a wake word model: false-reject rate and false accepts per hour, by threshold.
    Eval(eval::EvalArgs),
    /// Measure the wake word while the car plays (Cabin's voice, talk radio) through a
    /// simulated cabin, with the echo canceller given what plays.
    Playback(playback::PlaybackArgs),
}

pub async fn exec(command: Command) -> Result<ExitCode> {
    match command {
        Command::Train(args) => tokio::task::spawn_blocking(move || train::train(args)).await?,
        Command::Eval(args) => tokio::task::spawn_blocking(move || eval::eval(args)).await?,
        Command::Playback(args) => {
            tokio::task::spawn_blocking(move || playback::playback(args)).await?
        }
    }
}

const RATE: f64 = 16_000.0;
/// Seconds per wake word chunk (and speech embedding).
const CHUNK_SECONDS: f64 = CHUNK as f64 / RATE;

/// Recordings beside the synthesised audio.
#[derive(clap::Args, Default)]
struct Recordings {
    /// More positives: WAV recordings of the phrase (any rate).
    #[arg(long)]
    positives: Option<PathBuf>,
    /// More negatives: WAV recordings without the phrase (any rate).
    #[arg(long)]
    negatives: Option<PathBuf>,
    /// The real recordings scripts/fetch-speech installs: half train, the other half evaluate.
    #[arg(long, env = "CABIN_SPEECH_DIR")]
    speech: Option<PathBuf>,
}

/// A positive trial: half a second before the phrase and one after, at `gain`; in car noise
/// at `(snr_db, seed)` when given.
fn trial(clip: &[i16], noise: Option<(f64, u32)>, gain: f64) -> Vec<i16> {
    let pad = (0.5 * RATE) as usize;
    let mut out = vec![0i16; pad];
    out.extend(clip.iter().map(|s| (*s as f64 * gain) as i16));
    out.extend(vec![0i16; 2 * pad]);
    if let Some((snr_db, seed)) = noise {
        add_noise(&mut out, rms(clip) * gain, snr_db, seed);
    }
    out
}

/// Mixes car noise into `audio`, `snr_db` below a signal of `signal_rms`.
fn add_noise(audio: &mut [i16], signal_rms: f64, snr_db: f64, seed: u32) {
    let level = signal_rms / 32768.0 / 10f64.powf(snr_db / 20.0);
    let noise = car_noise(audio.len(), seed, level);
    for (o, n) in audio.iter_mut().zip(noise) {
        *o = o.saturating_add(n);
    }
}

/// Brown noise (a car's rumble is mostly low frequencies) at `rms` of full scale.
fn car_noise(n: usize, mut seed: u32, rms: f64) -> Vec<i16> {
    let mut level = 0.0f64;
    let raw: Vec<f64> = (0..n)
        .map(|_| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let white = (seed >> 8) as f64 / (1u32 << 24) as f64 * 2.0 - 1.0;
            level = 0.995 * level + white;
            level
        })
        .collect();
    let have = (raw.iter().map(|x| x * x).sum::<f64>() / n.max(1) as f64).sqrt();
    let scale = if have > 0.0 {
        rms * 32768.0 / have
    } else {
        0.0
    };
    raw.iter()
        .map(|x| (x * scale).clamp(-32768.0, 32767.0) as i16)
        .collect()
}

/// `f` of each 80 ms chunk of `audio` (the last one padded with silence).
fn each_chunk<T>(audio: &[i16], mut f: impl FnMut(&[i16; CHUNK]) -> Result<T>) -> Result<Vec<T>> {
    let mut chunk = [0i16; CHUNK];
    audio
        .chunks(CHUNK)
        .map(|block| {
            chunk.fill(0);
            chunk[..block.len()].copy_from_slice(block);
            f(&chunk)
        })
        .collect()
}

/// `text` in eSpeak NG's `voice` at `rate` words a minute and `pitch` (0..99, 50 its own).
fn espeak(voice: &str, rate: u32, pitch: u32, text: &str, dir: &Path) -> Result<Vec<i16>> {
    let wav = dir.join("espeak.wav");
    let status = std::process::Command::new("espeak-ng")
        .args([
            "-v",
            voice,
            "-s",
            &rate.to_string(),
            "-p",
            &pitch.to_string(),
        ])
        .arg("-w")
        .arg(&wav)
        // Text that starts with a dash would be read as an option.
        .arg(format!(" {}", text.trim_start()))
        .status()
        .context("running espeak-ng (scripts/setup installs it)")?;
    if !status.success() {
        bail!("espeak-ng -v {voice} failed");
    }
    Ok(cabin::hear::audio::read(&wav)?)
}

/// The profile's Piper voice, loaded at speaking `rate`, its prosody sampled from `seed`; None
/// when its voice is not Piper (eSpeak NG then speaks everything, as for an OEM that wants no
/// other voice in its model).
fn piper_voice(
    profile: &Profile,
    rate: f32,
    seed: u64,
) -> Result<Option<cabin::speak::voice::Piper>> {
    let Some(tts) = profile
        .models
        .tts
        .as_deref()
        .filter(|t| cabin::profile::is_piper(t))
    else {
        return Ok(None);
    };
    let settings = cabin::profile::SpeechSettings {
        rate,
        ..profile.speech.clone()
    };
    Ok(Some(cabin::speak::voice::Piper::load_seeded(
        tts, &settings, seed,
    )?))
}

/// eSpeak NG's phoneme mnemonics for each of `words` (English), one line each.
fn espeak_phonemes(words: &[String]) -> Result<Vec<String>> {
    if words.is_empty() {
        return Ok(Vec::new());
    }
    use std::io::Write;
    let mut child = std::process::Command::new("espeak-ng")
        .args(["-q", "-x", "-v", "en-us", "--stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("running espeak-ng (scripts/setup installs it)")?;
    let mut stdin = child.stdin.take().expect("piped");
    let text: String = words.iter().map(|w| format!("{w}.\n")).collect();
    let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
    let out = child.wait_with_output()?;
    writer.join().expect("the writer panicked")?;
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    if lines.len() != words.len() {
        bail!(
            "espeak-ng gave {} phoneme lines for {} words",
            lines.len(),
            words.len()
        );
    }
    Ok(lines)
}

/// Music-like sound: chords of harmonic notes changing every quarter to half second.
fn tones(n: usize, rng: &mut cabin::hear::wake::keyword::SplitMix) -> Vec<i16> {
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

/// `text` in `voice` as Cabin would say it (its pieces), at 16 kHz.
pub(super) fn say(voice: &mut dyn cabin::speak::voice::Voice, text: &str) -> Result<Vec<i16>> {
    let spelled = voice.spells_numbers();
    let samples = voice.synthesize(&cabin::speak::voice::pieces(text, spelled).join(" "))?;
    Ok(to_i16(&cabin::hear::audio::resample(
        &samples,
        voice.sample_rate(),
    )?))
}

fn to_i16(samples: &[f32]) -> Vec<i16> {
    samples
        .iter()
        .map(|s| (s * 32767.0).clamp(-32768.0, 32767.0) as i16)
        .collect()
}

/// The real recordings `scripts/fetch-speech` installs (in `dir`, else its default folder when
/// there), split in two by file: every other one trains (`for_training`), the rest are held
/// apart, so no recording is in both.
fn real_speech(dir: Option<&Path>, for_training: bool) -> Result<Vec<PathBuf>> {
    let dir = dir
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/cabin/speech")));
    let Some(dir) = dir.filter(|d| d.is_dir()) else {
        return Ok(Vec::new());
    };
    Ok(recording_files(&dir)?
        .into_iter()
        .enumerate()
        .filter(|(i, _)| (i % 2 == 0) == for_training)
        .map(|(_, r)| r)
        .collect())
}

/// The WAV and raw recordings under `dir`, sorted.
fn recording_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "wav" || x == "raw") {
                files.push(p);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The recordings under `dir`, each at 16 kHz.
fn recordings(dir: &Path) -> Result<Vec<Vec<i16>>> {
    recording_files(dir)?
        .iter()
        .map(|f| cabin::hear::audio::read(f).with_context(|| format!("reading {}", f.display())))
        .collect()
}
