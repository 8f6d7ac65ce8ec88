//! Text to speech behind one small trait: a neural Piper voice on ONNX Runtime, phonemised by
//! eSpeak NG, Kokoro for the languages no Piper voice speaks, or eSpeak NG alone for a minimal
//! image.

use crate::profile::{Profile, SpeechSettings};
use crate::runtime::onnx::run_error;
use crate::speak::engine::{normalise, run_espeak};
pub use crate::speak::engine::{phonemes, pieces, TtsError, Voice, MAX_PHONEMES, MAX_PIECE};
use ort::session::Session;
use ort::value::TensorRef;
use std::collections::HashMap;
use std::path::PathBuf;

/// Loads the profile's voice. A Piper or Kokoro voice that can't load falls back to eSpeak NG with a
/// warning: a robotic answer beats silence in a car.
pub fn load(profile: &Profile) -> Result<Box<dyn Voice>, TtsError> {
    let settings = &profile.speech;
    let espeak = || {
        let speech = &profile.lexicon.speech;
        Espeak::new(&speech.espeak_voice, speech.numbers_in_words, settings)
    };
    match profile.models.tts.as_deref() {
        Some(tts) if crate::profile::is_piper(tts) => {
            match Piper::load(tts, settings) {
                Ok(p) => Ok(Box::new(p)),
                Err(e) => {
                    tracing::warn!("the Piper voice {tts} is unavailable ({e}); speaking with eSpeak NG instead");
                    Ok(Box::new(espeak()?))
                }
            }
        }
        Some(crate::profile::KOKORO) => {
            match crate::speak::kokoro::Kokoro::load(&profile.lexicon, settings) {
                Ok(k) => Ok(Box::new(k)),
                Err(e) => {
                    tracing::warn!(
                        "the Kokoro voice is unavailable ({e}); speaking with eSpeak NG instead"
                    );
                    Ok(Box::new(espeak()?))
                }
            }
        }
        _ => Ok(Box::new(espeak()?)),
    }
}

/// A Piper (VITS) voice: eSpeak NG's IPA phonemes → ids → the ONNX model → audio.
pub struct Piper {
    name: String,
    session: Session,
    ids: HashMap<char, Vec<i64>>,
    espeak_voice: String,
    /// noise_scale, length_scale (over the speaking rate), noise_w.
    scales: [f32; 3],
    /// The most phonemes a run: [`MAX_PHONEMES`], fewer for a slower voice (more audio a
    /// phoneme).
    run_phonemes: usize,
    sample_rate: u32,
    volume: f32,
}

#[derive(serde::Deserialize)]
struct PiperConfig {
    audio: PiperAudio,
    espeak: PiperEspeak,
    inference: PiperInference,
    phoneme_id_map: HashMap<String, Vec<i64>>,
}

#[derive(serde::Deserialize)]
struct PiperAudio {
    sample_rate: u32,
}

#[derive(serde::Deserialize)]
struct PiperEspeak {
    voice: String,
}

#[derive(serde::Deserialize)]
struct PiperInference {
    noise_scale: f32,
    length_scale: f32,
    noise_w: f32,
}

impl Piper {
    /// `tts`: a catalogue name or the path of a Piper `.onnx` (its `.onnx.json` beside it).
    pub fn load(tts: &str, settings: &SpeechSettings) -> Result<Piper, TtsError> {
        Piper::load_with(tts, settings, None)
    }

    /// The voice with its prosody sampled from `seed`: the same sentences in the same order
    /// sound the same on every run (`cabin wake train`'s readings).
    pub fn load_seeded(tts: &str, settings: &SpeechSettings, seed: u64) -> Result<Piper, TtsError> {
        Piper::load_with(tts, settings, Some(seed))
    }

    fn load_with(
        tts: &str,
        settings: &SpeechSettings,
        seed: Option<u64>,
    ) -> Result<Piper, TtsError> {
        let (model, config) = if crate::runtime::models::is_path(tts) {
            let model = PathBuf::from(tts);
            let config = PathBuf::from(format!("{tts}.json"));
            (model, config)
        } else {
            let model = crate::runtime::models::installed(tts, "voice")?;
            let config =
                crate::runtime::models::installed(&format!("{tts}-config"), "voice config")?;
            (model, config)
        };
        let config_error = |message: String| TtsError::Config {
            path: config.clone(),
            message,
        };
        let text = std::fs::read_to_string(&config).map_err(|e| config_error(e.to_string()))?;
        let c: PiperConfig =
            serde_json::from_str(&text).map_err(|e| config_error(e.to_string()))?;
        let mut ids = HashMap::new();
        for (phoneme, id) in c.phoneme_id_map {
            let mut chars = phoneme.chars();
            if let (Some(ch), None) = (chars.next(), chars.next()) {
                ids.insert(ch, id);
            }
        }
        for needed in ['^', '$', '_'] {
            if !ids.contains_key(&needed) {
                return Err(config_error(format!(
                    "its phoneme_id_map has no '{needed}'; is it a Piper voice config?"
                )));
            }
        }
        let session = match seed {
            Some(seed) => {
                crate::runtime::onnx::seeded_session(&model, "voice", settings.threads, seed)?
            }
            None => crate::runtime::onnx::session_with_threads(&model, "voice", settings.threads)?,
        };
        let length_scale = c.inference.length_scale / settings.rate;
        Ok(Piper {
            run_phonemes: (MAX_PHONEMES as f32 / length_scale.max(1.0)) as usize,
            name: format!(
                "Piper {}",
                model.file_stem().unwrap_or_default().to_string_lossy()
            ),
            session,
            ids,
            espeak_voice: c.espeak.voice,
            scales: [c.inference.noise_scale, length_scale, c.inference.noise_w],
            sample_rate: c.audio.sample_rate,
            volume: settings.volume,
        })
    }

    /// Phoneme ids as Piper was trained on: `^`, then each phoneme followed by the pad `_`,
    /// then `$`.
    fn ids(&self, phonemes: &str) -> Vec<i64> {
        let mut out = Vec::with_capacity(phonemes.len() * 2 + 2);
        out.extend(&self.ids[&'^']);
        out.extend(&self.ids[&'_']);
        for p in phonemes.chars() {
            if let Some(id) = self.ids.get(&p) {
                out.extend(id);
                out.extend(&self.ids[&'_']);
            }
        }
        out.extend(&self.ids[&'$']);
        out
    }
}

impl Voice for Piper {
    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    fn synthesize(&mut self, sentence: &str) -> Result<Vec<f32>, TtsError> {
        let mut audio = Vec::new();
        // Phonemised a piece at a time, so that runs end where the text was cut.
        let phonemes = crate::text::pieces(sentence, MAX_PIECE)
            .into_iter()
            .map(|piece| phonemes(piece, &self.espeak_voice))
            .collect::<Result<Vec<_>, _>>()?;
        for run in phonemes
            .iter()
            .flat_map(|p| crate::text::pieces(p, self.run_phonemes))
        {
            let ids = self.ids(run);
            let lengths = [ids.len() as i64];
            let outputs = self
                .session
                .run(ort::inputs![
                    "input" => TensorRef::from_array_view(([1usize, ids.len()], &ids[..])).map_err(run_error("voice"))?,
                    "input_lengths" => TensorRef::from_array_view(([1usize], &lengths[..])).map_err(run_error("voice"))?,
                    "scales" => TensorRef::from_array_view(([3usize], &self.scales[..])).map_err(run_error("voice"))?,
                ])
                .map_err(run_error("voice"))?;
            let (_, samples) = outputs["output"]
                .try_extract_tensor::<f32>()
                .map_err(run_error("voice"))?;
            audio.extend_from_slice(samples);
        }
        Ok(normalise(&audio, self.volume))
    }
}

/// eSpeak NG's own formant voice: small, fast, robotic.
pub struct Espeak {
    voice: String,
    spells_numbers: bool,
    words_per_minute: u32,
    volume: f32,
}

impl Espeak {
    /// `spells_numbers`: the lexicon's `numbers_in_words` (eSpeak NG reads each language's
    /// digits, but Cabin's English spelling is finer: times, units, ordinals).
    pub fn new(
        voice: &str,
        spells_numbers: bool,
        settings: &SpeechSettings,
    ) -> Result<Espeak, TtsError> {
        // Fail at start-up, not at the first reply.
        run_espeak(&["--version"], "")?;
        Ok(Espeak {
            voice: voice.into(),
            spells_numbers,
            words_per_minute: (175.0 * settings.rate) as u32,
            volume: settings.volume,
        })
    }
}

impl Voice for Espeak {
    fn sample_rate(&self) -> u32 {
        22_050
    }

    fn name(&self) -> String {
        format!("eSpeak NG {}", self.voice)
    }

    fn spells_numbers(&self) -> bool {
        self.spells_numbers
    }

    fn synthesize(&mut self, sentence: &str) -> Result<Vec<f32>, TtsError> {
        let wpm = self.words_per_minute.to_string();
        let mut audio = Vec::new();
        // eSpeak NG itself streams, but its WAV is read whole: a piece at a time (about 2 KiB
        // of WAV a character).
        for piece in crate::text::pieces(sentence, MAX_PIECE) {
            let wav = run_espeak(
                &["--stdout", "-v", &self.voice, "-s", &wpm, "--stdin"],
                piece,
            )?;
            audio.extend(
                streamed_wav_samples(&wav)
                    .map_err(|e| TtsError::Espeak(format!("its WAV output: {e}")))?,
            );
        }
        Ok(normalise(&audio, self.volume))
    }
}

/// The 16-bit mono samples of a WAV written to a pipe. eSpeak NG can't seek back to fill in
/// the sizes, so its header claims ~2 GiB of data (which WAV readers refuse): the data chunk
/// is simply the rest of the stream.
fn streamed_wav_samples(wav: &[u8]) -> Result<Vec<f32>, String> {
    if wav.len() < 12 || &wav[0..4] != b"RIFF" || &wav[8..12] != b"WAVE" {
        return Err("not a RIFF/WAVE stream".into());
    }
    let mut at = 12;
    while at + 8 <= wav.len() {
        let id = &wav[at..at + 4];
        let size = u32::from_le_bytes(wav[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
        let body = at + 8;
        if id == b"fmt " {
            let fmt = wav.get(body..body + 16).ok_or("a truncated fmt chunk")?;
            let (format, channels, bits) = (
                u16::from_le_bytes([fmt[0], fmt[1]]),
                u16::from_le_bytes([fmt[2], fmt[3]]),
                u16::from_le_bytes([fmt[14], fmt[15]]),
            );
            if (format, channels, bits) != (1, 1, 16) {
                return Err(format!(
                    "format {format}, {channels} channels, {bits} bits; expected 16-bit mono PCM"
                ));
            }
        } else if id == b"data" {
            return Ok(wav[body..]
                .chunks_exact(2)
                .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
                .collect());
        }
        at = body + size + size % 2;
    }
    Err("no data chunk".into())
}

/// A voice for tests: a second of audio (at 1 kHz) per sentence, or an error on "fail".
#[cfg(test)]
pub(crate) struct Beep;

#[cfg(test)]
impl Voice for Beep {
    fn sample_rate(&self) -> u32 {
        1000
    }

    fn synthesize(&mut self, sentence: &str) -> Result<Vec<f32>, TtsError> {
        if sentence.contains("fail") {
            return Err(TtsError::Espeak("told to fail".into()));
        }
        Ok(vec![0.1; 1000])
    }

    fn name(&self) -> String {
        "beep".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// eSpeak NG's header on a pipe: RIFF and data sizes of ~2 GiB.
    fn streamed(samples: &[i16]) -> Vec<u8> {
        let mut wav = b"RIFF\x24\xf0\xff\x7fWAVEfmt \x10\0\0\0\x01\0\x01\0\x22\x56\0\0\x44\xac\0\0\x02\0\x10\0data\0\xf0\xff\x7f".to_vec();
        for s in samples {
            wav.extend(s.to_le_bytes());
        }
        wav
    }

    #[test]
    fn a_streamed_wav_is_read_to_its_end() {
        let samples = streamed_wav_samples(&streamed(&[0, 16384, -32768])).unwrap();
        assert_eq!(samples, [0.0, 0.5, -1.0]);
    }

    #[test]
    fn a_streamed_wav_that_is_not_16_bit_mono_is_refused() {
        let mut wav = streamed(&[1, 2]);
        wav[22] = 2; // stereo
        assert!(streamed_wav_samples(&wav)
            .unwrap_err()
            .contains("2 channels"));
        assert!(streamed_wav_samples(b"garbage").is_err());
    }
}
