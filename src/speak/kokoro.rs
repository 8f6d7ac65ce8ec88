//! Kokoro v1.0 (82M parameters, int8 ONNX): a multilingual neural voice that reads IPA, for the
//! languages no Piper voice on our registries speaks (Mandarin, Indonesian). Its only styles
//! there are Japanese: fed a language's sounds ([`Sounds`]) it speaks them with an accent,
//! which whisper base understands where it does not understand eSpeak NG (docs/speech.md).

use crate::profile::{SpeechSettings, DEFAULT_STYLE, KOKORO};
use crate::runtime::onnx::run_error;
use crate::speak::engine::{normalise, TtsError, Voice, MAX_PIECE};
use crate::speak::sounds::Sounds;
use crate::text::lexicon::Lexicon;
use ort::session::Session;
use ort::value::TensorRef;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Width of a style vector.
const STYLE: usize = 256;

/// The most phoneme symbols one run is given (the model takes 510 with its two pads; its memory
/// grows with the length, as a Piper voice's does).
const MAX_SYMBOLS: usize = 200;

/// Symbols eSpeak NG writes as two letters that Kokoro knows as one.
const JOINED: &[(&str, &str)] = &[("dʒ", "ʤ"), ("tʃ", "ʧ")];

pub struct Kokoro {
    session: Session,
    vocab: HashMap<char, i64>,
    /// One style vector for each length of input, row-major.
    styles: Vec<f32>,
    style: String,
    sounds: Sounds,
    spells_numbers: bool,
    speed: f32,
    volume: f32,
}

impl Kokoro {
    pub fn load(lexicon: &Lexicon, settings: &SpeechSettings) -> Result<Kokoro, TtsError> {
        let model = crate::runtime::models::installed(KOKORO, "voice")?;
        let styles =
            crate::runtime::models::installed(&format!("{KOKORO}-styles"), "voice styles")?;
        let vocab =
            crate::runtime::models::installed(&format!("{KOKORO}-vocab"), "voice vocabulary")?;
        let style = settings.style.as_deref().unwrap_or(DEFAULT_STYLE);
        let vocab = read_vocab(&vocab)?;
        let styles = read_style(&styles, style)?;
        let session =
            crate::runtime::onnx::session_with_threads(&model, "voice", settings.threads)?;
        Ok(Kokoro {
            session,
            vocab,
            styles,
            style: style.to_string(),
            sounds: Sounds::for_language(lexicon),
            spells_numbers: lexicon.speech.numbers_in_words,
            speed: settings.rate,
            volume: settings.volume,
        })
    }

    /// The model's ids for `sounds`, unknown symbols left out.
    fn ids(&self, sounds: &str) -> Vec<i64> {
        let mut s = sounds.to_string();
        for (two, one) in JOINED {
            s = s.replace(two, one);
        }
        s.chars()
            .filter_map(|c| self.vocab.get(&c).copied())
            .collect()
    }

    fn run(&mut self, ids: &[i64]) -> Result<Vec<f32>, TtsError> {
        let mut tokens = Vec::with_capacity(ids.len() + 2);
        tokens.push(0);
        tokens.extend_from_slice(ids);
        tokens.push(0);
        let rows = self.styles.len() / STYLE;
        let row = ids.len().min(rows - 1);
        let style = &self.styles[row * STYLE..(row + 1) * STYLE];
        let speed = [self.speed];
        let outputs = self
            .session
            .run(ort::inputs![
                "tokens" => TensorRef::from_array_view(([1usize, tokens.len()], &tokens[..])).map_err(run_error("voice"))?,
                "style" => TensorRef::from_array_view(([1usize, STYLE], style)).map_err(run_error("voice"))?,
                "speed" => TensorRef::from_array_view(([1usize], &speed[..])).map_err(run_error("voice"))?,
            ])
            .map_err(run_error("voice"))?;
        let (_, samples) = outputs["audio"]
            .try_extract_tensor::<f32>()
            .map_err(run_error("voice"))?;
        Ok(samples.to_vec())
    }
}

impl Voice for Kokoro {
    fn sample_rate(&self) -> u32 {
        24_000
    }

    fn name(&self) -> String {
        format!("Kokoro v1.0 {}", self.style)
    }

    fn spells_numbers(&self) -> bool {
        self.spells_numbers
    }

    fn synthesize(&mut self, sentence: &str) -> Result<Vec<f32>, TtsError> {
        let mut audio = Vec::new();
        for piece in crate::text::pieces(sentence, MAX_PIECE) {
            let sounds = self.sounds.of(piece)?;
            for run in crate::text::pieces(&sounds, MAX_SYMBOLS) {
                let ids = self.ids(run);
                if !ids.is_empty() {
                    audio.extend(self.run(&ids)?);
                }
            }
        }
        Ok(normalise(&audio, self.volume))
    }
}

fn config_error(path: &Path, message: impl ToString) -> TtsError {
    TtsError::Config {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// `{"vocab": {"a": 43, ...}}`: each symbol the model reads and its id.
fn read_vocab(path: &PathBuf) -> Result<HashMap<char, i64>, TtsError> {
    #[derive(serde::Deserialize)]
    struct File {
        vocab: HashMap<String, i64>,
    }
    let text = std::fs::read_to_string(path).map_err(|e| config_error(path, e))?;
    let file: File = serde_json::from_str(&text).map_err(|e| config_error(path, e))?;
    Ok(file
        .vocab
        .into_iter()
        .filter_map(|(s, id)| {
            let mut c = s.chars();
            match (c.next(), c.next()) {
                (Some(ch), None) => Some((ch, id)),
                _ => None,
            }
        })
        .collect())
}

/// One style of the styles file (a NumPy .npz: `style.npy`, little-endian f32, N × 1 × 256).
fn read_style(path: &PathBuf, style: &str) -> Result<Vec<f32>, TtsError> {
    let file = std::fs::File::open(path).map_err(|e| config_error(path, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| config_error(path, e))?;
    let names: Vec<String> = zip
        .file_names()
        .filter_map(|n| n.strip_suffix(".npy"))
        .map(str::to_string)
        .collect();
    let mut entry = zip.by_name(&format!("{style}.npy")).map_err(|_| {
        config_error(
            path,
            format!(
                "it has no style '{style}' (fix: [speech] style = one of {})",
                names.join(", ")
            ),
        )
    })?;
    let mut bytes = Vec::new();
    entry
        .read_to_end(&mut bytes)
        .map_err(|e| config_error(path, e))?;
    npy_f32(&bytes).map_err(|e| config_error(path, format!("style '{style}': {e}")))
}

/// The values of a NumPy array of little-endian f32 whose last dimension is [`STYLE`].
fn npy_f32(bytes: &[u8]) -> Result<Vec<f32>, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a NumPy array".into());
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize,
            12,
        ),
        v => return Err(format!("NumPy format version {v}")),
    };
    let header = bytes
        .get(start..start + header_len)
        .map(String::from_utf8_lossy)
        .ok_or("a truncated header")?;
    if !header.contains("'descr': '<f4'") || header.contains("'fortran_order': True") {
        return Err(format!("expected little-endian f32 in C order: {header}"));
    }
    if !header.contains(&format!(", {STYLE})")) {
        return Err(format!("expected rows of {STYLE}: {header}"));
    }
    let data = &bytes[start + header_len..];
    if data.is_empty() || !data.len().is_multiple_of(4 * STYLE) {
        return Err(format!("{} bytes of data", data.len()));
    }
    Ok(data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(header: &str, values: &[f32]) -> Vec<u8> {
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        for v in values {
            out.extend(v.to_le_bytes());
        }
        out
    }

    #[test]
    fn a_style_array_is_read_and_a_wrong_one_is_named() {
        let values: Vec<f32> = (0..2 * STYLE).map(|i| i as f32).collect();
        let good = npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1, 256), }",
            &values,
        );
        assert_eq!(npy_f32(&good).unwrap(), values);
        let f64s = npy(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 1, 256), }",
            &values,
        );
        assert!(npy_f32(&f64s).unwrap_err().contains("f32"));
        let short = &good[..good.len() - 4];
        assert!(npy_f32(short).unwrap_err().contains("bytes of data"));
        assert!(npy_f32(b"garbage").is_err());
    }
}
