//! The semantic shortlist: a sentence-embedding model ranks the profile's intents by how close
//! the driver's words are to each intent's own sentences. The local model is then allowed to
//! call only the best few (OpenAI's `allowed_tools`; every tool stays in its cached prompt),
//! which is a much easier choice for a small model than one of forty.
//!
//! The model is nomic-embed-text, served by a `cabin-llm serve --embedding` worker (or any
//! OpenAI-compatible embeddings endpoint), or, for the smallest SoCs, all-MiniLM-L6-v2 (int8)
//! on ONNX Runtime in the daemon's own thread. The profile's sentences are embedded once, in
//! the background, and their vectors cached on disk between starts.

use crate::profile::Profile;
use crate::runtime::llm::{ChatClient, LlmError};
use crate::runtime::onnx::{run_error, OnnxError};
use crate::runtime::worker::{Worker, WorkerState};
use ort::session::Session;
use ort::value::TensorRef;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

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
            session: crate::runtime::onnx::session(model, EMBEDDING)?,
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

/// The embedding models a shortlist can use, and how each is used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmbeddingModel {
    /// The catalogue name.
    pub name: &'static str,
    /// Where it runs: in the daemon on ONNX Runtime (with a WordPiece tokenizer), or in a
    /// `cabin-llm serve --embedding` worker.
    pub runs: Runs,
    /// What each text is prefixed with (nomic-embed was trained with task prefixes; with
    /// `classification: ` on both sides it ranked best on the development set).
    pub prefix: &'static str,
    /// Cosine similarity to an intent's sentences at which the brain takes that intent. Chosen
    /// on `eval/dev.jsonl`, kept apart from `eval/router.jsonl`: the best score of most
    /// commands there is above it, that of most questions and chat below.
    pub confident: f32,
    /// Intents this close to the closest one (cosine similarity) are offered with it, as
    /// likely.
    pub near: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runs {
    Onnx,
    Worker,
}

pub const EMBEDDING_MODELS: &[EmbeddingModel] = &[
    // Small and fast (a few ms a sentence): for the smallest SoCs.
    EmbeddingModel {
        name: "minilm-l6-v2",
        runs: Runs::Onnx,
        prefix: "",
        confident: 0.5,
        // Near senses such as "warm up" and "turn the heating on" embed alike with MiniLM.
        near: 0.05,
    },
    // The default: its top intent was right for 90 % of the development set's commands, where
    // MiniLM's was for 81 % (README, Hybrid brain). 40 ms a sentence on a 2-core x86.
    EmbeddingModel {
        name: "nomic-embed-text-v1.5",
        runs: Runs::Worker,
        prefix: "classification: ",
        confident: 0.80,
        // The closest alone: on the development set no intent within 0.05 of nomic's closest
        // was ever the right one where the closest was wrong, so more only gave the model
        // more to get wrong.
        near: 0.0,
    },
];

/// Why the profile's shortlist can't start.
#[derive(Debug, thiserror::Error)]
pub enum ShortlistError {
    #[error("'{name}' is not an intent shortlist model (known: {known})")]
    UnknownModel { name: String, known: String },
    #[error(transparent)]
    NotInstalled(#[from] crate::runtime::models::ModelError),
}

impl EmbeddingModel {
    /// The shortlist model called `name`, or why there is none.
    pub fn named(name: &str) -> Result<EmbeddingModel, ShortlistError> {
        EMBEDDING_MODELS
            .iter()
            .find(|m| m.name == name)
            .copied()
            .ok_or_else(|| ShortlistError::UnknownModel {
                name: name.to_string(),
                known: EMBEDDING_MODELS
                    .iter()
                    .map(|m| m.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// The texts that stand for the profile's intents: each intent's description and a spread of
/// its sentences, with the intent's index.
pub fn intent_texts(profile: &Profile) -> Vec<(usize, String)> {
    let mut texts: Vec<(usize, String)> = Vec::new();
    for (i, intent) in profile.intents.iter().enumerate() {
        texts.push((i, intent.description.clone()));
        for sentences in crate::profile::sentences::template_sentences(profile, i, VARIANTS) {
            let step = sentences.len().div_ceil(PER_TEMPLATE).max(1);
            texts.extend(sentences.into_iter().step_by(step).map(|s| (i, s)));
        }
    }
    texts
}

/// The profile's intents and the embeddings of their sentences and descriptions.
pub struct IntentIndex {
    intents: Vec<String>,
    /// (intent index, unit vector).
    examples: Vec<(usize, Vec<f32>)>,
}

impl IntentIndex {
    /// `vectors` are those of [`intent_texts`], in order.
    pub fn new(profile: &Profile, texts: &[(usize, String)], vectors: Vec<Vec<f32>>) -> Self {
        IntentIndex {
            intents: profile.intents.iter().map(|i| i.name.clone()).collect(),
            examples: texts.iter().map(|(i, _)| *i).zip(vectors).collect(),
        }
    }

    /// Embeds the profile's sentences with an in-process model.
    pub fn build(profile: &Profile, embedder: &mut Embedder) -> Result<IntentIndex, OnnxError> {
        let texts = intent_texts(profile);
        let vectors = embed_all(&texts, |batch| embedder.embed(batch))?;
        Ok(IntentIndex::new(profile, &texts, vectors))
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

    /// The length of its vectors.
    pub fn dimensions(&self) -> usize {
        self.examples.first().map_or(0, |(_, v)| v.len())
    }
}

/// The vectors of a profile's texts, kept on disk between starts: the large model takes most
/// of a minute to embed them on a 2-core machine. The file's name is a hash of the model, the
/// prefix and the texts, so any change to them makes a new one; a file that does not read back
/// whole is ignored (and made again).
#[derive(Clone)]
pub struct IndexCache {
    path: PathBuf,
}

const CACHE_MAGIC: &[u8; 8] = b"CABINIX1";

impl IndexCache {
    /// The cache of `texts` embedded by `model` (identified by its file's sha256) under `dir`.
    pub fn new(dir: &Path, model_sha256: &str, prefix: &str, texts: &[(usize, String)]) -> Self {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for part in [model_sha256, prefix] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        for (_, text) in texts {
            h.update(text.as_bytes());
            h.update([0]);
        }
        let hash: String = h.finalize()[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        IndexCache {
            path: dir.join(format!("shortlist-{hash}.f32")),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `count` vectors, if the file holds exactly that many of one length.
    pub fn load(&self, count: usize) -> Option<Vec<Vec<f32>>> {
        let bytes = std::fs::read(&self.path).ok()?;
        let body = bytes.strip_prefix(CACHE_MAGIC)?;
        let (header, floats) = body.split_at_checked(8)?;
        let n = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
        let dim = u32::from_le_bytes(header[4..].try_into().ok()?) as usize;
        if n != count || dim == 0 || floats.len() != n * dim * 4 {
            return None;
        }
        let values: Vec<f32> = floats
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        values
            .iter()
            .all(|x| x.is_finite())
            .then(|| values.chunks(dim).map(<[f32]>::to_vec).collect())
    }

    /// Writes the vectors (to a temporary file, renamed into place, so a reader never sees
    /// half of one).
    pub fn save(&self, vectors: &[Vec<f32>]) -> std::io::Result<()> {
        let dim = vectors.first().map_or(0, Vec::len);
        let mut bytes = CACHE_MAGIC.to_vec();
        bytes.extend((vectors.len() as u32).to_le_bytes());
        bytes.extend((dim as u32).to_le_bytes());
        for v in vectors {
            bytes.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let partial = self
            .path
            .with_extension(format!("partial-{}", std::process::id()));
        std::fs::write(&partial, bytes)?;
        std::fs::rename(&partial, &self.path)
    }
}

/// The index, once built (or why it could not be).
type Built = Option<Result<Arc<IntentIndex>, String>>;

type VectorReply = tokio::sync::oneshot::Sender<Result<Vec<f32>, String>>;

/// Where query texts are embedded.
enum Embed {
    /// On the shortlist's own thread (inference never runs on the async runtime).
    Onnx {
        jobs: Option<mpsc::Sender<(String, VectorReply)>>,
        thread: Option<JoinHandle<()>>,
    },
    /// By an OpenAI-compatible embeddings endpoint: the supervised `cabin-llm --embedding`.
    Worker {
        worker: Worker<ChatClient>,
        build: tokio::task::JoinHandle<()>,
    },
}

/// How long a turn waits for its words to be embedded before it goes on without a shortlist.
const QUERY_LIMIT: Duration = Duration::from_secs(2);
/// How long one request of the index's texts may take ([`BATCH`] texts, a slow SoC).
const BATCH_LIMIT: Duration = Duration::from_secs(60);
/// How long building the index waits before asking an endpoint that failed again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The intents closest to the driver's words. The index of the profile's sentences is built
/// in the background (or read from its cache); requests before it is there get an error at
/// once rather than waiting for it: a turn never waits seconds for the shortlist. Dropping it
/// stops the work and joins its thread.
pub struct Shortlist {
    index: tokio::sync::watch::Receiver<Built>,
    embed: Embed,
    model: EmbeddingModel,
}

impl Shortlist {
    /// Starts loading an ONNX `model` (such as `minilm-l6-v2`) and building the index on a
    /// thread of its own; the index is cached in `cache` where one is given.
    pub fn onnx(
        profile: &Profile,
        model: &Path,
        tokenizer: &Path,
        spec: EmbeddingModel,
        cache: Option<IndexCache>,
    ) -> Shortlist {
        let (jobs, rx) = mpsc::channel::<(String, VectorReply)>();
        let (built_tx, index) = tokio::sync::watch::channel(None);
        let (profile, model, tokenizer) = (profile.clone(), model.to_owned(), tokenizer.to_owned());
        let thread = std::thread::Builder::new()
            .name("cabin-shortlist".into())
            .spawn(move || {
                let started = std::time::Instant::now();
                let mut embedder = Embedder::load(&model, &tokenizer).map_err(|e| e.to_string());
                let texts = intent_texts(&profile);
                let vectors = match (
                    &mut embedder,
                    cache.as_ref().and_then(|c| c.load(texts.len())),
                ) {
                    (_, Some(vectors)) => Ok(vectors),
                    (Err(e), None) => Err(e.clone()),
                    (Ok(e), None) => {
                        embed_all(&texts, |batch| e.embed(batch)).map_err(|e| e.to_string())
                    }
                };
                if let (Ok(v), Some(cache)) = (&vectors, &cache) {
                    save(cache, v);
                }
                let built = vectors.map(|v| Arc::new(IntentIndex::new(&profile, &texts, v)));
                announce(&built, started);
                let _ = built_tx.send(Some(built));
                for (text, reply) in rx {
                    let v = match &mut embedder {
                        Ok(e) => e
                            .embed(&[&text])
                            .map(|mut v| v.remove(0))
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(e.clone()),
                    };
                    let _ = reply.send(v);
                }
            })
            .expect("spawning a thread");
        Shortlist {
            index,
            embed: Embed::Onnx {
                jobs: Some(jobs),
                thread: Some(thread),
            },
            model: spec,
        }
    }

    /// A shortlist whose texts `worker` embeds (an OpenAI-compatible `/v1/embeddings`), with
    /// `model`'s prefix and threshold; the index is cached in `cache` where one is given.
    pub fn remote(
        profile: &Profile,
        worker: Worker<ChatClient>,
        model: EmbeddingModel,
        cache: Option<IndexCache>,
    ) -> Shortlist {
        let (built_tx, index) = tokio::sync::watch::channel(None);
        let texts = intent_texts(profile);
        let profile = profile.clone();
        let mut state = worker.watch();
        let build = tokio::spawn(async move {
            let started = std::time::Instant::now();
            let cached = match &cache {
                Some(c) => {
                    let (c, n) = (c.clone(), texts.len());
                    tokio::task::spawn_blocking(move || c.load(n))
                        .await
                        .ok()
                        .flatten()
                }
                None => None,
            };
            let vectors = match cached {
                Some(v) => Ok(v),
                None => {
                    // Waits for the worker, through restarts; a worker that stays down leaves
                    // the index unbuilt (every turn then offers every intent).
                    let built = loop {
                        let ready = state
                            .wait_for(|s| matches!(s, WorkerState::Ready(_)))
                            .await
                            .map(|s| s.clone());
                        let Ok(WorkerState::Ready(client)) = ready else {
                            return;
                        };
                        match embed_remote(&client, model.prefix, &texts).await {
                            Ok(v) => break Ok(v),
                            // It stopped meanwhile: try again once it is back (a restarted
                            // worker), or in a while (an endpoint somebody else runs).
                            Err(e @ (LlmError::Unreachable(_) | LlmError::Truncated)) => {
                                tracing::warn!("intent shortlist: {e}; trying again when the embedding worker is back");
                                let down = state.wait_for(|s| !matches!(s, WorkerState::Ready(_)));
                                // No supervisor to say so: wait anyway rather than spin.
                                let unsupervised = matches!(
                                    tokio::time::timeout(RETRY_AFTER, down).await,
                                    Ok(Err(_))
                                );
                                if unsupervised {
                                    tokio::time::sleep(RETRY_AFTER).await;
                                }
                            }
                            Err(e) => break Err(format!("the embedding worker: {e}")),
                        }
                    };
                    if let (Ok(v), Some(cache)) = (&built, cache) {
                        let v = v.clone();
                        let _ = tokio::task::spawn_blocking(move || save(&cache, &v)).await;
                    }
                    built
                }
            };
            let built = vectors.map(|v| Arc::new(IntentIndex::new(&profile, &texts, v)));
            announce(&built, started);
            let _ = built_tx.send(Some(built));
        });
        Shortlist {
            index,
            embed: Embed::Worker { worker, build },
            model,
        }
    }

    /// The similarity at which the brain takes the closest intent.
    pub fn confident(&self) -> f32 {
        self.model.confident
    }

    /// How close to the closest intent others must be to be offered with it.
    pub fn near(&self) -> f32 {
        self.model.near
    }

    /// Waits until the index is built (or has failed to build).
    pub async fn built(&self) {
        let _ = self.index.clone().wait_for(Option::is_some).await;
    }

    /// The profile's intents ranked by closeness to `text`, best first.
    pub async fn rank(&self, text: &str) -> Result<Vec<(String, f32)>, String> {
        let index = match &*self.index.borrow() {
            None => return Err("it is still embedding the profile's sentences".into()),
            Some(Err(e)) => return Err(e.clone()),
            Some(Ok(index)) => index.clone(),
        };
        let v = match &self.embed {
            Embed::Onnx { jobs, .. } => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                jobs.as_ref()
                    .ok_or("the shortlist has stopped")?
                    .send((text.to_string(), tx))
                    .map_err(|_| "the shortlist thread has stopped")?;
                rx.await
                    .map_err(|_| "the shortlist thread has stopped".to_string())??
            }
            Embed::Worker { worker, .. } => {
                let WorkerState::Ready(client) = worker.state() else {
                    return Err("the embedding worker is not ready".into());
                };
                let query = [format!("{}{text}", self.model.prefix)];
                tokio::time::timeout(QUERY_LIMIT, client.embed(&query))
                    .await
                    .map_err(|_| {
                        format!("the embedding worker took over {} s", QUERY_LIMIT.as_secs())
                    })?
                    .map_err(|e| format!("the embedding worker: {e}"))?
                    .remove(0)
            }
        };
        if v.len() != index.dimensions() {
            return Err(format!(
                "the embedding has {} dimensions, the index {}",
                v.len(),
                index.dimensions()
            ));
        }
        Ok(index.rank(&v))
    }
}

impl Drop for Shortlist {
    fn drop(&mut self) {
        match &mut self.embed {
            Embed::Onnx { jobs, thread } => {
                jobs.take();
                if let Some(t) = thread.take() {
                    let _ = t.join();
                }
            }
            Embed::Worker { build, .. } => build.abort(),
        }
    }
}

/// Texts embedded in one batch while the index is built.
const BATCH: usize = 32;

/// The vectors of `texts`, [`BATCH`] at a time.
fn embed_all<E>(
    texts: &[(usize, String)],
    mut embed: impl FnMut(&[&str]) -> Result<Vec<Vec<f32>>, E>,
) -> Result<Vec<Vec<f32>>, E> {
    let mut vectors = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(BATCH) {
        let batch: Vec<&str> = chunk.iter().map(|(_, t)| t.as_str()).collect();
        vectors.extend(embed(&batch)?);
    }
    Ok(vectors)
}

/// The vectors of `texts` (each with `prefix`) from an embeddings endpoint, [`BATCH`] at a
/// time.
async fn embed_remote(
    client: &ChatClient,
    prefix: &str,
    texts: &[(usize, String)],
) -> Result<Vec<Vec<f32>>, LlmError> {
    let mut vectors = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(BATCH) {
        let batch: Vec<String> = chunk.iter().map(|(_, t)| format!("{prefix}{t}")).collect();
        let v = tokio::time::timeout(BATCH_LIMIT, client.embed(&batch))
            .await
            .map_err(|_| LlmError::Timeout(BATCH_LIMIT.as_millis() as u64))??;
        vectors.extend(v);
    }
    if vectors.iter().any(|v| v.len() != vectors[0].len()) {
        return Err(LlmError::Malformed(
            "embeddings of different lengths".into(),
        ));
    }
    Ok(vectors)
}

fn save(cache: &IndexCache, vectors: &[Vec<f32>]) {
    if let Err(e) = cache.save(vectors) {
        tracing::warn!(
            "cannot cache the intent shortlist's index at {} ({e}); it is made again at the next start",
            cache.path().display()
        );
    }
}

fn announce(built: &Result<Arc<IntentIndex>, String>, started: std::time::Instant) {
    match built {
        Ok(index) => tracing::info!(
            "intent shortlist ready: {} sentences in {} ms",
            index.sentences(),
            started.elapsed().as_millis()
        ),
        Err(e) => tracing::warn!("no intent shortlist ({e}); the local model sees every intent"),
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
    fn the_index_cache_reads_back_what_it_wrote_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let texts = [(0, "open the window".to_string()), (1, "hello".to_string())];
        let cache = IndexCache::new(dir.path(), "sha", "p: ", &texts);
        assert_eq!(cache.load(2), None, "nothing written yet");
        let vectors = vec![vec![0.6, 0.8], vec![1.0, 0.0]];
        cache.save(&vectors).unwrap();
        assert_eq!(cache.load(2), Some(vectors));
        assert_eq!(cache.load(3), None, "another count of texts");
        // Another model, prefix or text: another file.
        for other in [
            IndexCache::new(dir.path(), "sha2", "p: ", &texts),
            IndexCache::new(dir.path(), "sha", "", &texts),
            IndexCache::new(dir.path(), "sha", "p: ", &texts[..1]),
        ] {
            assert_ne!(other.path(), cache.path());
        }
        // A file cut short, or holding something else, is not read.
        let bytes = std::fs::read(cache.path()).unwrap();
        std::fs::write(cache.path(), &bytes[..bytes.len() - 1]).unwrap();
        assert_eq!(cache.load(2), None);
        std::fs::write(cache.path(), b"garbage").unwrap();
        assert_eq!(cache.load(2), None);
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
