//! The semantic shortlist: a small sentence-embedding model (all-MiniLM-L6-v2, int8, on ONNX
//! Runtime) ranks the profile's intents by how close the driver's words are to each intent's
//! own sentences. The local model is then allowed to call only the best few (OpenAI's
//! `allowed_tools`; every tool stays in its cached prompt), which is a much easier choice for
//! a small model than one of forty.
//!
//! Embedding a sentence takes a few milliseconds on one core; the profile's sentences are
//! embedded once, on the shortlist's own thread, while the local model loads.

use crate::onnx::{run_error, OnnxError};
use crate::profile::Profile;
use ort::session::Session;
use ort::value::TensorRef;
use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

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
const MAX_TOKENS: usize = 128;
const MAX_WORD_CHARS: usize = 100;

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
fn basic_tokens(text: &str) -> Vec<String> {
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
const EMBEDDING: &str = "intent embedding model";

/// Sentence embeddings: the mean of the model's last hidden states, unit length.
pub struct Embedder {
    session: Session,
    tokenizer: WordPiece,
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
        Ok(Embedder {
            session: crate::onnx::session(model, EMBEDDING)?,
            tokenizer,
        })
    }

    /// One unit vector per text (texts are padded to the longest of the batch).
    pub fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, OnnxError> {
        let fail = || run_error(EMBEDDING);
        let encoded: Vec<Vec<i64>> = texts.iter().map(|t| self.tokenizer.encode(t)).collect();
        let width = encoded.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = vec![0i64; texts.len() * width];
        let mut mask = vec![0i64; texts.len() * width];
        for (row, e) in encoded.iter().enumerate() {
            ids[row * width..][..e.len()].copy_from_slice(e);
            mask[row * width..][..e.len()].fill(1);
        }
        let types = vec![0i64; ids.len()];
        let shape = [texts.len(), width];
        let outputs = self
            .session
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

/// At most this many sentences of one template are embedded (spread over its expansions):
/// they differ in optional words, and a few hundred per intent would add nothing but start-up
/// time.
const PER_TEMPLATE: usize = 16;
/// Each expansion is rendered with up to this many values of its enum slots.
const VARIANTS: usize = 3;

/// The profile's intents and the embeddings of their sentences and descriptions.
pub struct IntentIndex {
    intents: Vec<String>,
    /// (intent index, unit vector).
    examples: Vec<(usize, Vec<f32>)>,
}

impl IntentIndex {
    pub fn build(profile: &Profile, embedder: &mut Embedder) -> Result<IntentIndex, OnnxError> {
        let mut texts: Vec<(usize, String)> = Vec::new();
        for (i, intent) in profile.intents.iter().enumerate() {
            texts.push((i, intent.description.clone()));
            for sentences in crate::grammar::template_sentences(profile, i, VARIANTS) {
                let step = sentences.len().div_ceil(PER_TEMPLATE).max(1);
                texts.extend(sentences.into_iter().step_by(step).map(|s| (i, s)));
            }
        }
        let mut examples = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(32) {
            let batch: Vec<&str> = chunk.iter().map(|(_, t)| t.as_str()).collect();
            let vectors = embedder.embed(&batch)?;
            examples.extend(chunk.iter().map(|(i, _)| *i).zip(vectors));
        }
        Ok(IntentIndex {
            intents: profile.intents.iter().map(|i| i.name.clone()).collect(),
            examples,
        })
    }

    /// Every intent with its best cosine similarity to `v`, best first.
    pub fn rank(&self, v: &[f32]) -> Vec<(String, f32)> {
        let mut best = vec![f32::MIN; self.intents.len()];
        for (i, e) in &self.examples {
            let s: f32 = e.iter().zip(v).map(|(a, b)| a * b).sum();
            best[*i] = best[*i].max(s);
        }
        let mut ranked: Vec<(String, f32)> = self.intents.iter().cloned().zip(best).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked
    }

    /// How many sentences were embedded.
    pub fn sentences(&self) -> usize {
        self.examples.len()
    }
}

/// Cosine similarity to an intent's sentences at which the brain takes that intent (chosen on a
/// development set kept apart from `eval/router.jsonl`: its questions and chat stayed below 0.46).
pub const CONFIDENT: f32 = 0.5;

type Reply = tokio::sync::oneshot::Sender<Result<Vec<(String, f32)>, String>>;

/// The embedder and the index on their own thread (inference never runs on the async
/// runtime). Requests before the index is built get an error at once rather than waiting for
/// it: a turn never waits seconds for the shortlist. Dropping it joins the thread.
pub struct Shortlist {
    jobs: Option<mpsc::Sender<(String, Reply)>>,
    built: tokio::sync::watch::Receiver<bool>,
    thread: Option<JoinHandle<()>>,
}

impl Shortlist {
    /// Starts loading the models and embedding the profile's sentences.
    pub fn start(profile: &Profile, model: &Path, tokenizer: &Path) -> Shortlist {
        let (jobs, rx) = mpsc::channel::<(String, Reply)>();
        let (built_tx, built) = tokio::sync::watch::channel(false);
        let (profile, model, tokenizer) = (profile.clone(), model.to_owned(), tokenizer.to_owned());
        let thread = std::thread::Builder::new()
            .name("cabin-shortlist".into())
            .spawn(move || {
                let started = std::time::Instant::now();
                let ready = Embedder::load(&model, &tokenizer)
                    .and_then(|mut e| IntentIndex::build(&profile, &mut e).map(|index| (e, index)));
                let mut ready = match ready {
                    Ok((e, index)) => {
                        tracing::info!(
                            "intent shortlist ready: {} sentences embedded in {} ms",
                            index.sentences(),
                            started.elapsed().as_millis()
                        );
                        Ok((e, index))
                    }
                    Err(e) => {
                        tracing::warn!(
                            "no intent shortlist ({e}); the local model sees every intent"
                        );
                        Err(e.to_string())
                    }
                };
                let _ = built_tx.send(true);
                for (text, reply) in rx {
                    let ranked = match &mut ready {
                        Ok((e, index)) => e
                            .embed(&[&text])
                            .map(|v| index.rank(&v[0]))
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(e.clone()),
                    };
                    let _ = reply.send(ranked);
                }
            })
            .expect("spawning a thread");
        Shortlist {
            jobs: Some(jobs),
            built,
            thread: Some(thread),
        }
    }

    /// Waits until the index is built (or has failed to build).
    pub async fn built(&self) {
        let _ = self.built.clone().wait_for(|built| *built).await;
    }

    /// The profile's intents ranked by closeness to `text`, best first.
    pub async fn rank(&self, text: &str) -> Result<Vec<(String, f32)>, String> {
        if !*self.built.borrow() {
            return Err("it is still embedding the profile's sentences".into());
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .as_ref()
            .ok_or("the shortlist has stopped")?
            .send((text.to_string(), tx))
            .map_err(|_| "the shortlist thread has stopped")?;
        rx.await
            .map_err(|_| "the shortlist thread has stopped".to_string())?
    }
}

impl Drop for Shortlist {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer() -> WordPiece {
        let vocab: serde_json::Map<String, serde_json::Value> = [
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "it", "'", "s", "freez", "##ing", "in", "here",
            "!", "warm", "##er",
        ]
        .iter()
        .enumerate()
        .map(|(i, t)| (t.to_string(), i.into()))
        .collect();
        let json = serde_json::json!({"model": {"type": "WordPiece", "vocab": vocab}});
        WordPiece::from_tokenizer_json(&json.to_string()).unwrap()
    }

    #[test]
    fn words_are_split_into_pieces_with_punctuation_apart() {
        let t = tokenizer();
        // [CLS] it ' s freez ##ing in here ! [SEP]
        assert_eq!(
            t.encode("It's FREEZING in here!"),
            [2, 4, 5, 6, 7, 8, 9, 10, 11, 3]
        );
        // An unknown word is one [UNK], whatever its length.
        assert_eq!(t.encode("warmer xyz"), [2, 12, 13, 1, 3]);
        assert_eq!(t.encode(&"in ".repeat(500)).len(), MAX_TOKENS);
    }

    #[test]
    fn a_tokenizer_that_is_not_wordpiece_is_named() {
        let err = WordPiece::from_tokenizer_json(r#"{"model": {"type": "BPE"}}"#)
            .err()
            .unwrap();
        assert!(err.contains("BPE"), "{err}");
        assert!(WordPiece::from_tokenizer_json("garbage").is_err());
    }
}
