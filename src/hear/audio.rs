//! Audio files into what the speech pipeline takes: 16 kHz mono 16-bit samples. WAV of any
//! rate, width and channel count (downmixed, then resampled with rubato's FFT resampler), or
//! raw 16 kHz mono s16le PCM.

use std::path::{Path, PathBuf};

/// The pipeline's sample rate (whisper's, Silero VAD's).
pub const RATE: u32 = 16_000;

#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("{path}: {problem}")]
    File { path: PathBuf, problem: String },
    #[error("{path}: raw PCM must be 16 kHz mono 16-bit little-endian, but it has an odd number of bytes")]
    OddRaw { path: PathBuf },
    #[error("resampling {from} Hz to {RATE} Hz: {0}", from = .1)]
    Resample(String, u32),
}

/// Reads a recording: `.wav` by its header, anything else (or `-`, standard input) as raw
/// 16 kHz mono s16le.
pub fn read(path: &Path) -> Result<Vec<i16>, AudioError> {
    let file_error = |problem: String| AudioError::File {
        path: path.into(),
        problem,
    };
    if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
            .map_err(|e| file_error(e.to_string()))?;
        return raw(&bytes, path);
    }
    let bytes = std::fs::read(path).map_err(|e| file_error(e.to_string()))?;
    if bytes.starts_with(b"RIFF") {
        wav(&bytes).map_err(|e| match e {
            AudioError::File { problem, .. } => file_error(problem),
            other => other,
        })
    } else {
        raw(&bytes, path)
    }
}

fn raw(bytes: &[u8], path: &Path) -> Result<Vec<i16>, AudioError> {
    if !bytes.len().is_multiple_of(2) {
        return Err(AudioError::OddRaw { path: path.into() });
    }
    Ok(bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect())
}

/// A WAV file's samples as 16 kHz mono.
pub fn wav(bytes: &[u8]) -> Result<Vec<i16>, AudioError> {
    let bad = |e: hound::Error| AudioError::File {
        path: "<wav>".into(),
        problem: format!("not a readable WAV file: {e}"),
    };
    let mut reader = hound::WavReader::new(std::io::Cursor::new(bytes)).map_err(bad)?;
    let spec = reader.spec();
    let channels = spec.channels.max(1) as usize;
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(bad)?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|s| s as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(bad)?
        }
    };
    let mono: Vec<f32> = interleaved
        .chunks_exact(channels)
        .map(|f| f.iter().sum::<f32>() / channels as f32)
        .collect();
    let mono = resample(&mono, spec.sample_rate)?;
    Ok(mono.iter().map(|s| to_i16(*s)).collect())
}

/// A sample in [-1, 1] as 16-bit, rounded and clipped.
pub(crate) fn to_i16(s: f32) -> i16 {
    (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

/// Mono samples at `rate` resampled to 16 kHz.
pub fn resample(mono: &[f32], rate: u32) -> Result<Vec<f32>, AudioError> {
    use rubato::audioadapter_buffers::direct::InterleavedSlice;
    use rubato::Resampler;
    if rate == RATE || mono.is_empty() {
        return Ok(mono.to_vec());
    }
    let fail = |e: String| AudioError::Resample(e, rate);
    let mut resampler = rubato::Fft::<f32>::new(
        rate as usize,
        RATE as usize,
        1024,
        1,
        rubato::FixedSync::Input,
    )
    .map_err(|e| fail(e.to_string()))?;
    let input = InterleavedSlice::new(mono, 1, mono.len()).map_err(|e| fail(e.to_string()))?;
    let out = resampler
        .process_all(&input, mono.len(), None)
        .map_err(|e| fail(e.to_string()))?;
    Ok(out.take_data())
}

/// Writes 16 kHz mono samples as a WAV file.
pub fn write_wav(path: &Path, samples: &[i16]) -> Result<(), AudioError> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let fail = |e: hound::Error| AudioError::File {
        path: path.into(),
        problem: e.to_string(),
    };
    let mut w = hound::WavWriter::create(path, spec).map_err(fail)?;
    for s in samples {
        w.write_sample(*s).map_err(fail)?;
    }
    w.finalize().map_err(fail)
}

/// Samples per 20 ms analysis frame.
const FRAME: usize = 320;

/// The span of a recording that holds speech, by frame energy: frames within 35 dB of the
/// loudest and above -50 dBFS, padded by 300 ms. `None` when nothing is that loud, so that
/// whisper is never given silence (it invents text on it).
pub fn speech_span(samples: &[i16]) -> Option<std::ops::Range<usize>> {
    let level: Vec<f32> = samples
        .chunks(FRAME)
        .map(|f| {
            let power =
                f.iter().map(|s| (*s as f32 / 32768.0).powi(2)).sum::<f32>() / f.len() as f32;
            10.0 * power.max(1e-12).log10()
        })
        .collect();
    let loudest = level.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let floor = (loudest - 35.0).max(-50.0);
    let first = level.iter().position(|l| *l >= floor)?;
    let last = level.iter().rposition(|l| *l >= floor)?;
    let pad = 15 * FRAME;
    Some(
        first.saturating_mul(FRAME).saturating_sub(pad)
            ..((last + 1) * FRAME + pad).min(samples.len()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav_bytes(rate: u32, channels: u16, frames: &[Vec<i16>]) -> Vec<u8> {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut buf = std::io::Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut buf, spec).unwrap();
        for f in frames {
            for s in f {
                w.write_sample(*s).unwrap();
            }
        }
        w.finalize().unwrap();
        buf.into_inner()
    }

    #[test]
    fn stereo_48k_becomes_16k_mono_with_the_tone_kept() {
        // One second of a 440 Hz tone at -6 dBFS in both channels.
        let frames: Vec<Vec<i16>> = (0..48_000)
            .map(|i| {
                let s = (16384.0 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 48_000.0).sin())
                    as i16;
                vec![s, s]
            })
            .collect();
        let out = wav(&wav_bytes(48_000, 2, &frames)).unwrap();
        assert!((out.len() as i64 - 16_000).abs() < 50, "{}", out.len());
        let peak = out[1000..15_000]
            .iter()
            .map(|s| s.unsigned_abs())
            .max()
            .unwrap();
        assert!((15_500..17_500).contains(&peak), "{peak}");
        // Zero crossings of 440 Hz: 880 per second.
        let crossings = out[..15_000]
            .windows(2)
            .filter(|w| (w[0] < 0) != (w[1] < 0))
            .count();
        assert!((800..900).contains(&crossings), "{crossings}");
    }

    #[test]
    fn speech_span_trims_silence_and_finds_none_in_silence() {
        let mut samples = vec![0i16; 16_000];
        samples.extend((0..8_000).map(|i| if i % 2 == 0 { 8_000 } else { -8_000 }));
        samples.extend(vec![3i16; 16_000]);
        let span = speech_span(&samples).unwrap();
        assert_eq!(span, 16_000 - 4_800..24_000 + 4_800);
        assert_eq!(speech_span(&vec![0i16; 16_000]), None);
        assert_eq!(
            speech_span(&vec![30i16; 16_000]),
            None,
            "-60 dBFS is not speech"
        );
        assert_eq!(speech_span(&[]), None);
    }

    #[test]
    fn sixteen_k_mono_passes_through_unchanged() {
        let frames: Vec<Vec<i16>> = (0..100).map(|i| vec![i as i16 * 100]).collect();
        let out = wav(&wav_bytes(16_000, 1, &frames)).unwrap();
        assert_eq!(out, frames.concat());
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("odd.raw");
        std::fs::write(&odd, [1u8, 2, 3]).unwrap();
        assert!(read(&odd)
            .unwrap_err()
            .to_string()
            .contains("odd number of bytes"));
        let broken = dir.path().join("broken.wav");
        std::fs::write(&broken, b"RIFF\x00\x00garbage").unwrap();
        let err = read(&broken).unwrap_err().to_string();
        assert!(
            err.contains("broken.wav") && err.contains("not a readable WAV"),
            "{err}"
        );
        let missing = read(&dir.path().join("none.wav")).unwrap_err().to_string();
        assert!(missing.contains("none.wav"), "{missing}");
    }
}
