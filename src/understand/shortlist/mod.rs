//! The semantic shortlist: a sentence-embedding model ranks the profile's intents by how close
//! the driver's words are to each intent's own sentences. The local model is then allowed to
//! call only the best few (OpenAI's `allowed_tools`; every tool stays in its cached prompt),
//! which is a much easier choice for a small model than one of forty.
//!
//! The model is nomic-embed-text, served by a `cabin-llm serve --embedding` worker (or any
//! OpenAI-compatible embeddings endpoint), or, for the smallest SoCs, all-MiniLM-L6-v2 (int8)
//! on ONNX Runtime in the daemon's own thread. The profile's sentences are embedded once, in
//! the background, and their vectors cached on disk between starts.

mod classifier;
mod embedder;
mod index;

pub use classifier::Classifier;
pub use embedder::{Embedder, WordPiece};
pub use index::{
    intent_texts, not_a_command, Classified, EmbeddingModel, IndexCache, IntentIndex, Runs,
    ShortlistError, EMBEDDING_MODELS,
};

use crate::profile::Profile;
use crate::runtime::llm::{ChatClient, LlmError};
use crate::runtime::onnx::OnnxError;
use crate::runtime::worker::{Worker, WorkerState};
use index::{embed_all, BATCH};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

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

/// One sentence against the profile's intents.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranking {
    /// Every intent with its best cosine similarity to the sentence, best first.
    pub intents: Vec<(String, f32)>,
    pub classified: Classified,
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
    /// Starts loading an in-process model (`load`: MiniLM on ONNX Runtime, or e5) and
    /// building the index on a thread of its own; the index is cached in `cache` where one is
    /// given.
    pub fn local(
        profile: &Profile,
        load: impl FnOnce() -> Result<Embedder, OnnxError> + Send + 'static,
        spec: EmbeddingModel,
        cache: Option<IndexCache>,
    ) -> Shortlist {
        let (jobs, rx) = mpsc::channel::<(String, VectorReply)>();
        let (built_tx, index) = tokio::sync::watch::channel(None);
        let profile = profile.clone();
        let thread = std::thread::Builder::new()
            .name("cabin-shortlist".into())
            .spawn(move || {
                let started = std::time::Instant::now();
                let mut embedder = load().map_err(|e| e.to_string());
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
                let built = vectors
                    .map(|v| Arc::new(IntentIndex::new(&profile, &texts, v, cache.as_ref())));
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
                    if let (Ok(v), Some(cache)) = (&built, cache.clone()) {
                        let v = v.clone();
                        let _ = tokio::task::spawn_blocking(move || save(&cache, &v)).await;
                    }
                    built
                }
            };
            // Training the classifier is CPU work: off the async runtime.
            let built = match vectors {
                Ok(v) => tokio::task::spawn_blocking(move || {
                    IntentIndex::new(&profile, &texts, v, cache.as_ref())
                })
                .await
                .map(Arc::new)
                .map_err(|e| format!("training the intent classifier failed: {e}")),
                Err(e) => Err(e),
            };
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

    /// The profile's intents ranked by closeness to `text`, best first, and the small intent
    /// model's class for it.
    pub async fn rank(&self, text: &str) -> Result<Ranking, String> {
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
        Ok(Ranking {
            intents: index.rank(&v),
            classified: index.classify(&v),
        })
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
            "intent shortlist and classifier ready: {} sentences in {} ms",
            index.sentences(),
            started.elapsed().as_millis()
        ),
        Err(e) => tracing::warn!("no intent shortlist ({e}); the local model sees every intent"),
    }
}

#[cfg(test)]
mod tests {
    use super::embedder::MAX_TOKENS;
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
    fn the_answer_model_tells_the_small_talk_apart_and_the_intent_model_counts_it_as_no_command() {
        let profile = Profile::embedded_default();
        let texts = intent_texts(&profile);
        let classes = texts.iter().map(|(c, _)| c + 1).max().unwrap();
        let none = not_a_command(&profile);
        assert_eq!(classes, none + 1 + profile.small_talk.len());
        // Each class its own direction: what each model learns is then plain to see.
        let axis = |c: usize| -> Vec<f32> { (0..classes).map(|i| f32::from(i == c)).collect() };
        let vectors = texts.iter().map(|(c, _)| axis(*c)).collect();
        let dir = tempfile::tempdir().unwrap();
        let cache = IndexCache::new(dir.path(), "sha", "", &texts);
        let index = IntentIndex::new(&profile, &texts, vectors, Some(&cache));

        let weather = profile.small_talk.iter().position(|t| t.name == "weather");
        let c = index.classify(&axis(none + 1 + weather.unwrap()));
        assert_eq!(c.intent, None);
        assert_eq!(c.answer.as_ref().map(|a| a.0.as_str()), Some("weather"));
        // The negatives are no answer of the bank; an intent is no answer at all.
        let c = index.classify(&axis(none));
        assert_eq!((c.intent, c.answer), (None, None));
        let c = index.classify(&axis(0));
        assert_eq!(c.intent.as_deref(), Some(profile.intents[0].name.as_str()));
        assert_eq!(c.answer, None);

        // Both models are cached; read back, they decide alike.
        let cached = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(cached, 2, "the intent and the answer model");
        let vectors = texts.iter().map(|(c, _)| axis(*c)).collect();
        let again = IntentIndex::new(&profile, &texts, vectors, Some(&cache));
        assert_eq!(
            again.classify(&axis(none + 1)),
            index.classify(&axis(none + 1))
        );
        // A sentence moved to another class trains them again, under another name.
        let mut moved = texts.clone();
        moved[0].0 = none;
        let vectors = moved.iter().map(|(c, _)| axis(*c)).collect();
        IntentIndex::new(&profile, &moved, vectors, Some(&cache));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4);
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
