//! A car's sound, made in code for the benchmarks (no recordings): road noise at a chosen
//! signal-to-noise ratio, and the echo of what the car plays as the microphone hears it.
//!
//! The echo path is a delay (48 ms: the playback and capture buffers, and a metre of air) and a
//! cabin's room response: 100 ms of seeded noise decaying by 60 dB in 80 ms (a car's soft,
//! small cabin), after a direct sound of full weight.
//!
//! Road noise sums four seeded parts, by share of its power: the body's rumble (brown noise
//! below about 100 Hz, 45 %), tyres on the road (pink noise between 200 Hz and 1.5 kHz, 35 %),
//! the engine (its firing frequency, 80 to 90 Hz, and four harmonics, wandering slowly, 10 %)
//! and wind (white noise above 1.5 kHz, 10 %): the shape of interior noise at motorway speed,
//! loudest low down, with enough of it where speech is that a low signal-to-noise ratio
//! hurts. (The wake word trains under plain brown noise, `cabin wake train`.)
//!
//! Music ([`music`]) is made the same way, from notes and drums.

/// One-pole low-pass coefficient for a corner at `hz` (16 kHz audio).
fn pole(hz: f64) -> f64 {
    (-2.0 * std::f64::consts::PI * hz / 16_000.0).exp()
}

/// A small seeded generator of white noise in [-1, 1].
struct White(u64);

impl White {
    fn next(&mut self) -> f64 {
        // SplitMix64.
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

/// `n` samples of the part, normalised to unit power.
fn unit(mut part: Vec<f64>) -> Vec<f64> {
    let power = part.iter().map(|x| x * x).sum::<f64>() / part.len().max(1) as f64;
    if power > 0.0 {
        let g = power.sqrt().recip();
        part.iter_mut().for_each(|x| *x *= g);
    }
    part
}

/// `n` samples of road noise at `rms` (of full scale), from `seed`.
pub fn road_noise(n: usize, seed: u64, rms: f64) -> Vec<i16> {
    let mut white = White(seed);
    // Rumble: white noise through two low-passes at 100 Hz.
    let (a, mut l1, mut l2) = (pole(100.0), 0.0, 0.0);
    let rumble = unit(
        (0..n)
            .map(|_| {
                l1 = a * l1 + (1.0 - a) * white.next();
                l2 = a * l2 + (1.0 - a) * l1;
                l2
            })
            .collect(),
    );
    // Tyres: pink noise (Paul Kellet's economy filter) between 200 Hz and 1.5 kHz.
    let (lo, hi) = (pole(200.0), pole(1500.0));
    let (mut b0, mut b1, mut b2, mut low, mut band) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let tyres = unit(
        (0..n)
            .map(|_| {
                let w = white.next();
                b0 = 0.99765 * b0 + w * 0.099_046;
                b1 = 0.96300 * b1 + w * 0.296_516_4;
                b2 = 0.57000 * b2 + w * 1.052_691_3;
                let pink = b0 + b1 + b2 + w * 0.1848;
                low = lo * low + (1.0 - lo) * pink;
                band = hi * band + (1.0 - hi) * (pink - low);
                band
            })
            .collect(),
    );
    // Engine: a firing frequency that wanders between 80 and 90 Hz, with harmonics.
    let (mut phase, mut drift, wander) = (0.0f64, 0.0f64, pole(0.5));
    let engine = unit(
        (0..n)
            .map(|_| {
                drift = wander * drift + (1.0 - wander) * white.next() * 40.0;
                let hz = 85.0 + drift.clamp(-5.0, 5.0);
                phase += 2.0 * std::f64::consts::PI * hz / 16_000.0;
                (1..=5).map(|k| (phase * k as f64).sin() / k as f64).sum()
            })
            .collect(),
    );
    // Wind: white noise above 1.5 kHz.
    let mut smooth = 0.0;
    let wind = unit(
        (0..n)
            .map(|_| {
                let w = white.next();
                smooth = hi * smooth + (1.0 - hi) * w;
                w - smooth
            })
            .collect(),
    );
    let scale = rms * 32768.0;
    (0..n)
        .map(|i| {
            let x = 0.45f64.sqrt() * rumble[i]
                + 0.35f64.sqrt() * tyres[i]
                + 0.10f64.sqrt() * engine[i]
                + 0.10f64.sqrt() * wind[i];
            (x * scale).clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

/// `n` samples of music at `rms` (of full scale), from `seed`: pop music's shape, made in code.
/// A four-chord loop (I–V–vi–IV) in a seeded key and tempo; each chord a pad of three notes
/// with harmonics, a plucked melody of eighth notes from the chord, a bass on the root, and
/// drums (a kick's falling sine on beats one and three, a snare's noise on two and four, a
/// hi-hat's hiss on every eighth). Melody and pad sit where a voice does (200 Hz to 1 kHz and
/// their harmonics), which is what makes music hard to hear a voice over.
pub fn music(n: usize, seed: u64, rms: f64) -> Vec<i16> {
    use std::f64::consts::TAU;
    let mut white = White(seed);
    let key = 48.0 + (white.next() * 3.5 + 3.5).floor(); // C3 to G3, as a MIDI note
    let beat = (60.0 / (96.0 + (white.next() + 1.0) * 16.0) * 16_000.0) as usize; // 96–128 bpm
    let eighth = beat / 2;
    let hz = |note: f64| 440.0 * 2f64.powf((note - 69.0) / 12.0);
    // Semitones above the key of each chord's root, and its third (major or minor).
    const CHORDS: [(f64, f64); 4] = [(0.0, 4.0), (7.0, 4.0), (9.0, 3.0), (5.0, 4.0)];
    let mut melody_note = 0.0;
    let (mut hat_low, hp) = (0.0, pole(4000.0));
    let mut out: Vec<f64> = Vec::with_capacity(n);
    for i in 0..n {
        let t = i as f64 / 16_000.0;
        let (beat_no, in_beat) = (i / beat, i % beat);
        let in_eighth = i % eighth;
        let (root, third) = CHORDS[(beat_no / 4) % 4];
        let chord = [
            key + 12.0 + root,
            key + 12.0 + root + third,
            key + 19.0 + root,
        ];
        // The pad: the chord's notes and three harmonics each, swelling at each bar.
        let bar_t = ((beat_no % 4) * beat + in_beat) as f64 / 16_000.0;
        let swell = (bar_t / 0.05).min(1.0) * (0.6 + 0.4 * (-bar_t).exp());
        let pad: f64 = chord
            .iter()
            .map(|&note| {
                (1..=4)
                    .map(|k| (TAU * hz(note) * k as f64 * t).sin() / k as f64)
                    .sum::<f64>()
            })
            .sum::<f64>()
            * swell
            / 3.0;
        // The melody: a new note from the chord an octave up on each eighth, plucked.
        if in_eighth == 0 {
            let pick = ((white.next() + 1.0) * 1.5).floor() as usize % 3;
            melody_note = chord[pick] + 12.0;
        }
        let pluck = (-(in_eighth as f64) / 16_000.0 / 0.12).exp();
        let melody = ((TAU * hz(melody_note) * t).sin()
            + 0.4 * (TAU * hz(melody_note) * 2.0 * t).sin())
            * pluck;
        // The bass: the root two octaves under the pad, on beats one and three.
        let bass_t = ((beat_no % 2) * beat + in_beat) as f64 / 16_000.0;
        let bass = (TAU * hz(key - 12.0 + root) * t).sin() * (-bass_t / 0.4).exp();
        // Drums.
        let beat_t = in_beat as f64 / 16_000.0;
        let kick = if beat_no % 2 == 0 {
            let f = 50.0 + 70.0 * (-beat_t / 0.03).exp();
            (TAU * f * beat_t).sin() * (-beat_t / 0.12).exp()
        } else {
            0.0
        };
        let w = white.next();
        let snare = if beat_no % 2 == 1 {
            (0.7 * w + 0.3 * (TAU * 200.0 * beat_t).sin()) * (-beat_t / 0.08).exp()
        } else {
            0.0
        };
        hat_low = hp * hat_low + (1.0 - hp) * w;
        let hat = (w - hat_low) * (-(in_eighth as f64) / 16_000.0 / 0.02).exp();
        out.push(0.5 * pad + 0.5 * melody + 0.6 * bass + 0.8 * kick + 0.4 * snare + 0.3 * hat);
    }
    let scale = rms * 32768.0;
    unit(out)
        .into_iter()
        .map(|x| (x * scale).clamp(-32768.0, 32767.0) as i16)
        .collect()
}

/// Samples of delay from what the car plays to the microphone.
const ECHO_DELAY: usize = 768;
/// Length of the cabin's room response, and the time its tail takes to fall by 60 dB.
const ROOM: usize = 1600;
const RT60_S: f64 = 0.08;

/// What the microphone hears of `played` (16 kHz), at `rms` (in samples), from `seed`.
pub fn echo(played: &[i16], seed: u64, rms_out: f64) -> Vec<i16> {
    let mut white = White(seed);
    let decay = (-6.9 / (RT60_S * 16_000.0)).exp();
    let mut gain = 1.0;
    let response: Vec<f64> = (0..ROOM)
        .map(|i| {
            let tap = if i == 0 {
                1.0
            } else {
                0.3 * gain * white.next()
            };
            gain *= decay;
            tap
        })
        .collect();
    let mut out = vec![0.0f64; played.len()];
    for (i, &s) in played.iter().enumerate() {
        if s == 0 {
            continue;
        }
        let s = f64::from(s);
        for (k, h) in response.iter().enumerate() {
            match out.get_mut(i + ECHO_DELAY + k) {
                Some(o) => *o += s * h,
                None => break,
            }
        }
    }
    let have = (out.iter().map(|x| x * x).sum::<f64>() / out.len().max(1) as f64).sqrt();
    let g = if have > 0.0 { rms_out / have } else { 0.0 };
    out.iter()
        .map(|x| (x * g).clamp(-32768.0, 32767.0) as i16)
        .collect()
}

/// Root mean square of `audio`, in samples.
pub fn rms(audio: &[i16]) -> f64 {
    (audio.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / audio.len().max(1) as f64).sqrt()
}

/// Mixes the echo of `played` (as long as `audio`) into `audio`, `db_below` a signal of
/// `signal_rms` (in samples), its room response from `seed`.
pub fn add_echo(audio: &mut [i16], played: &[i16], signal_rms: f64, db_below: f64, seed: u64) {
    let heard = echo(played, seed, signal_rms / 10f64.powf(db_below / 20.0));
    for (o, e) in audio.iter_mut().zip(heard) {
        *o = o.saturating_add(e);
    }
}

/// Mixes road noise into `audio`, `snr_db` below a signal of `signal_rms` (in samples).
pub fn add_road_noise(audio: &mut [i16], signal_rms: f64, snr_db: f64, seed: u64) {
    let level = signal_rms / 32768.0 / 10f64.powf(snr_db / 20.0);
    let noise = road_noise(audio.len(), seed, level);
    for (o, n) in audio.iter_mut().zip(noise) {
        *o = o.saturating_add(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn road_noise_has_the_asked_level_and_depends_on_its_seed() {
        let a = road_noise(32_000, 7, 0.1);
        assert!((rms(&a) / 3276.8 - 1.0).abs() < 0.05, "{}", rms(&a));
        assert_eq!(a, road_noise(32_000, 7, 0.1));
        assert_ne!(a, road_noise(32_000, 8, 0.1));
    }

    #[test]
    fn the_echo_comes_late_at_the_asked_level() {
        let mut played = vec![0i16; 4000];
        played[0] = 10_000;
        let heard = echo(&played, 1, 100.0);
        assert!(heard[..ECHO_DELAY].iter().all(|&s| s == 0));
        assert!(heard[ECHO_DELAY] != 0);
        assert!((rms(&heard) - 100.0).abs() < 2.0, "{}", rms(&heard));
    }

    #[test]
    fn music_has_the_asked_level_and_depends_on_its_seed() {
        let a = music(48_000, 3, 0.1);
        assert!((rms(&a) / 3276.8 - 1.0).abs() < 0.05, "{}", rms(&a));
        assert_eq!(a, music(48_000, 3, 0.1));
        assert_ne!(a, music(48_000, 4, 0.1));
    }

    #[test]
    fn road_noise_is_loudest_low_down_but_reaches_the_voice() {
        let noise: Vec<f64> = road_noise(64_000, 1, 0.1)
            .iter()
            .map(|&s| f64::from(s))
            .collect();
        // Power below and above about 300 Hz, split by a one-pole low-pass.
        let a = pole(300.0);
        let mut low = 0.0;
        let (mut below, mut above) = (0.0, 0.0);
        for x in &noise {
            low = a * low + (1.0 - a) * x;
            below += low * low;
            above += (x - low) * (x - low);
        }
        assert!(below > above, "{below} {above}");
        assert!(above > 0.2 * below, "{below} {above}");
    }
}
