//! Writes a spoken fixture with the default profile's voice (Piper): half a second of
//! silence, the parts in order, 1.5 s of silence, at 16 kHz. A part `@0.4` is 0.4 s of
//! silence; any other part is spoken, its own leading and trailing silence cut, so that a
//! pause in the fixture is exactly as long as written.
//!
//! cargo run --release --example speak-fixture -- OUT.wav "Hey Cabin," @0.2 "set the …"
//!
//! With `--espeak VOICE` first (e.g. `--espeak en-gb`), eSpeak NG speaks instead, at 150
//! words a minute. A part `--profile PATH` switches to that profile's voice for the parts after
//! it: the wake word in the default voice, then a command in Mandarin (tests/fixtures/README.md).

use cabin::hear::audio::{resample, write_wav};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).peekable();
    let usage = || {
        anyhow::anyhow!("usage: speak-fixture [--espeak VOICE] OUT.wav [--profile PATH] PART...")
    };
    let profile = cabin::Profile::embedded_default();
    let mut voice: Box<dyn cabin::speak::voice::Voice> =
        if args.peek().is_some_and(|a| a == "--espeak") {
            args.next();
            let name = args.next().ok_or_else(usage)?;
            let settings = cabin::profile::SpeechSettings {
                rate: 150.0 / 175.0,
                ..Default::default()
            };
            Box::new(cabin::speak::voice::Espeak::new(&name, true, &settings)?)
        } else {
            cabin::speak::voice::load(&profile)?
        };
    let out = args.next().ok_or_else(usage)?;
    let mut samples = silence(0.5);
    while let Some(part) = args.next() {
        if part == "--profile" {
            let path = args.next().ok_or_else(usage)?;
            voice = cabin::speak::voice::load(&cabin::Profile::load(path.as_ref())?)?;
            continue;
        }
        if let Some(seconds) = part.strip_prefix('@') {
            samples.extend(silence(seconds.parse()?));
            continue;
        }
        let text = cabin::speak::voice::pieces(&part, voice.spells_numbers()).join(" ");
        let spoken = voice.synthesize(&text)?;
        let spoken = resample(&spoken, voice.sample_rate())?;
        samples.extend(
            trimmed(&spoken)
                .iter()
                .map(|s| (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16),
        );
    }
    samples.extend(silence(1.5));
    write_wav(std::path::Path::new(&out), &samples)?;
    Ok(())
}

fn silence(seconds: f64) -> Vec<i16> {
    vec![0; (seconds * 16_000.0) as usize]
}

/// Without the 10 ms frames more than 40 dB under the loudest at either end.
fn trimmed(s: &[f32]) -> &[f32] {
    let level: Vec<f32> = s
        .chunks(160)
        .map(|f| f.iter().map(|x| x * x).sum::<f32>() / f.len() as f32)
        .collect();
    let floor = level.iter().copied().fold(0.0, f32::max) * 1e-4;
    let first = level.iter().position(|l| *l >= floor).unwrap_or(0);
    let last = level.iter().rposition(|l| *l >= floor).unwrap_or(0);
    &s[first * 160..((last + 1) * 160).min(s.len())]
}
