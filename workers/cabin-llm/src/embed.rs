//! A sentence-embedding model (a BERT-family GGUF such as nomic-embed-text) as an actor on its
//! own thread, for `cabin-llm serve --embedding`: texts in, unit vectors out (mean pooling).
//! Several texts go through the model in one batch, one sequence each, which is several times
//! faster than one at a time.

use crate::engine::{context, load, Actor, EngineConfig, EngineError, Inbox, ModelInfo};
use llama_cpp_2::context::params::{LlamaContextParams, LlamaPoolingType};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use std::num::NonZeroU32;
use std::sync::mpsc;
use tokio::sync::oneshot;

/// Texts (sequences) evaluated together in one batch.
const SEQUENCES: usize = 16;

#[derive(Debug, Clone, thiserror::Error)]
pub enum EmbedError {
    #[error("input {index} is empty")]
    Empty { index: usize },
    #[error("input {index} has {tokens} tokens; this worker takes at most {limit} per input (its --context)")]
    TooLong {
        index: usize,
        tokens: usize,
        limit: usize,
    },
    #[error("the model gives no sentence embedding ({0}); is it an embedding model?")]
    NoEmbedding(String),
    #[error("llama.cpp failed to embed: {0}")]
    Decode(String),
}

/// Unit vectors, one per text, and the tokens they took.
#[derive(Debug)]
pub struct Embedded {
    pub vectors: Vec<Vec<f32>>,
    pub tokens: usize,
}

struct Job {
    texts: Vec<String>,
    reply: oneshot::Sender<Result<Embedded, EmbedError>>,
}

/// The embedding model's actor.
pub struct Embedder(Actor<Job>);

impl Embedder {
    /// Loads the model on a new thread; returns once it is loaded (or failed to).
    pub fn start(config: EngineConfig) -> Result<(Embedder, ModelInfo), EngineError> {
        let (actor, info) = Actor::start("llama-embed", move |inbox, loaded| {
            embed_thread(config, inbox, loaded)
        })?;
        Ok((Embedder(actor), info))
    }

    pub fn health(&self) -> Result<(), EngineError> {
        self.0.health()
    }

    /// Embeds `texts`; the answer comes when the whole request is done.
    pub fn submit(
        &self,
        texts: Vec<String>,
    ) -> Result<oneshot::Receiver<Result<Embedded, EmbedError>>, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.0.submit(Job { texts, reply })?;
        Ok(rx)
    }
}

fn embed_thread(
    config: EngineConfig,
    mut inbox: Inbox<Job>,
    loaded: mpsc::Sender<Result<ModelInfo, EngineError>>,
) {
    let Some((backend, model)) = load(&config, &loaded) else {
        return;
    };
    // A text's tokens must all be in one micro-batch (the model attends both ways), so the
    // batch is the context.
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(config.context))
        .with_n_batch(config.context)
        .with_n_ubatch(config.context)
        .with_n_seq_max(SEQUENCES as u32)
        .with_embeddings(true)
        .with_pooling_type(LlamaPoolingType::Mean)
        .with_n_threads(config.threads)
        .with_n_threads_batch(config.threads);
    let Some(mut ctx) = context(&backend, &model, params, config.context, &loaded) else {
        return;
    };
    while let Some(job) = inbox.next() {
        let result = embed(&model, &mut ctx, &job.texts);
        let _ = job.reply.send(result);
    }
}

fn embed(
    model: &LlamaModel,
    ctx: &mut LlamaContext,
    texts: &[String],
) -> Result<Embedded, EmbedError> {
    let limit = ctx.n_batch() as usize;
    let vocab = model.vocab();
    // [CLS] … [SEP] for BERT-family models: the vocabulary adds its special tokens.
    let tokenized: Vec<Vec<LlamaToken>> = texts
        .iter()
        .enumerate()
        .map(|(index, text)| {
            if text.trim().is_empty() {
                return Err(EmbedError::Empty { index });
            }
            let tokens = vocab.tokenize(text.as_bytes(), true, false);
            if tokens.len() > limit {
                return Err(EmbedError::TooLong {
                    index,
                    tokens: tokens.len(),
                    limit,
                });
            }
            Ok(tokens)
        })
        .collect::<Result<_, _>>()?;
    let mut batch = LlamaBatch::new(limit, 1);
    let mut vectors = Vec::with_capacity(texts.len());
    let mut start = 0;
    while start < tokenized.len() {
        let mut end = start;
        let mut used = 0;
        while end < tokenized.len()
            && end - start < SEQUENCES
            && used + tokenized[end].len() <= limit
        {
            used += tokenized[end].len();
            end += 1;
        }
        batch.clear();
        for (seq, tokens) in tokenized[start..end].iter().enumerate() {
            for (pos, &token) in tokens.iter().enumerate() {
                batch
                    .add(token, pos as i32, &[seq as i32], true)
                    .map_err(|e| EmbedError::Decode(e.to_string()))?;
            }
        }
        ctx.clear_kv_cache();
        ctx.decode(&mut batch)
            .map_err(|e| EmbedError::Decode(e.to_string()))?;
        for seq in 0..end - start {
            let v = ctx
                .embeddings_seq_ith(seq as i32)
                .map_err(|e| EmbedError::NoEmbedding(e.to_string()))?;
            vectors.push(unit(v));
        }
        start = end;
    }
    Ok(Embedded {
        vectors,
        tokens: tokenized.iter().map(Vec::len).sum(),
    })
}

/// `v` scaled to length 1, as OpenAI's embeddings are (cosine similarity is then a dot product).
fn unit(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter().map(|x| x / norm).collect()
}
