//! llama.cpp as an actor on its own thread: the model and context live there, requests arrive
//! as [`Job`]s and answer with a stream of [`Event`]s. Inference never runs on the async
//! runtime, and dropping the [`Engine`] stops and joins the thread.
//!
//! The KV cache holds the tokens of the previous request; a new prompt reuses its longest common
//! prefix (the persona and tool list the daemon sends with every request), so only the new turn
//! is evaluated. With a prompt-state directory, a long prompt once evaluated is saved there
//! and restored at the next start ([`PromptState`]).

use crate::prompt_state::{PromptState, StateError, SAVE_AFTER_TOKENS};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub model: PathBuf,
    pub context: u32,
    pub threads: i32,
    pub batch: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot initialise llama.cpp: {0}")]
    Backend(String),
    #[error("cannot load the model {path}: {problem} (is it a GGUF file? reinstall it with `cabin models fetch`)")]
    Model { path: PathBuf, problem: String },
    #[error("cannot create a llama.cpp context of {context} tokens: {problem}")]
    Context { context: u32, problem: String },
    #[error("the engine thread stopped")]
    Gone,
    #[error("{0} requests are waiting already; try again when one has finished")]
    Busy(usize),
    #[error("the engine has made no progress for {0} s")]
    Stuck(u64),
}

/// What the model is, for `/v1/models` and the log.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub parameters: u64,
    pub size_bytes: u64,
    pub context: u32,
}

/// One generation request: a fully rendered prompt.
pub struct Job {
    pub prompt: String,
    /// GBNF the output must match (root rule `root`), or none.
    pub grammar: Option<String>,
    /// The start of the output, which the grammar allows and nothing else: evaluated with the
    /// prompt and given out as the first text, not generated.
    pub forced: String,
    pub max_tokens: u32,
    /// 0 = greedy (deterministic decisions).
    pub temperature: f32,
    pub events: UnboundedSender<Event>,
    /// Set by the server when the client is gone; checked between tokens.
    pub cancel: Arc<AtomicBool>,
}

#[derive(Debug)]
pub enum Event {
    Text(String),
    Done(Stats),
    Failed(JobError),
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum JobError {
    #[error("the prompt has {prompt} tokens and {max_tokens} more were asked for, but the context holds {context}; shorten the conversation or raise the context")]
    TooLong {
        prompt: usize,
        max_tokens: u32,
        context: u32,
    },
    #[error("the grammar is not valid GBNF (llama.cpp rejected it)")]
    Grammar,
    #[error("llama.cpp failed to decode: {0}")]
    Decode(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// End of generation (the model's end token, or the grammar completed).
    Stop,
    /// `max_tokens` reached.
    Length,
    /// The client went away.
    Cancelled,
}

#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub prompt_tokens: usize,
    /// Prompt tokens whose KV entries were reused from the previous request.
    pub cached_tokens: usize,
    pub completion_tokens: usize,
    pub prompt_ms: f64,
    pub decode_ms: f64,
    pub finish: Finish,
}

/// Most jobs waiting or running on one engine; more are refused as busy rather than queued
/// behind minutes of work whose clients will have given up.
pub const MAX_PENDING: usize = 4;
/// A job that makes no progress (no batch evaluated, no token generated) for this long means
/// the engine is hung: `/health` says so and the supervising daemon restarts the worker.
const STUCK_AFTER: Duration = Duration::from_secs(60);
/// How often a long prompt's evaluation is logged (Cabin's first start takes a minute).
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// What an engine thread is doing, shared with the server.
pub struct Load {
    /// Jobs submitted and not yet finished, the running one included.
    pending: AtomicUsize,
    /// When the running job last made progress, in ms since `epoch`; 0 while idle.
    progressed_ms: AtomicU64,
    epoch: Instant,
}

impl Load {
    fn new() -> Load {
        Load {
            pending: AtomicUsize::new(0),
            progressed_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// The running job has moved on (a batch evaluated, a token generated).
    pub fn progressed(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.progressed_ms.store(ms.max(1), Ordering::Relaxed);
    }

    /// How long the running job has gone without progress; none while idle.
    fn stalled(&self) -> Option<Duration> {
        match self.progressed_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(
                self.epoch
                    .elapsed()
                    .saturating_sub(Duration::from_millis(ms)),
            ),
        }
    }
}

/// The engine thread's side of the job channel: taking the next job finishes the last one.
pub struct Inbox<J> {
    jobs: mpsc::Receiver<J>,
    load: Arc<Load>,
    running: bool,
}

impl<J> Inbox<J> {
    /// Waits for the next job; none once the actor is dropped.
    pub fn next(&mut self) -> Option<J> {
        if std::mem::take(&mut self.running) {
            self.load.progressed_ms.store(0, Ordering::Relaxed);
            self.load.pending.fetch_sub(1, Ordering::Relaxed);
        }
        let job = self.jobs.recv().ok()?;
        self.running = true;
        self.load.progressed();
        Some(job)
    }

    pub fn load(&self) -> &Load {
        &self.load
    }
}

/// A thread that owns a model, and the channel of its jobs. Dropping it closes the channel,
/// which ends the thread, and joins it.
pub struct Actor<J> {
    jobs: Option<mpsc::Sender<J>>,
    thread: Option<JoinHandle<()>>,
    load: Arc<Load>,
}

impl<J: Send + 'static> Actor<J> {
    /// Runs `body` on a new thread named `name`; `body` reports on its `loaded` channel first,
    /// and this returns once it has.
    pub fn start(
        name: &str,
        body: impl FnOnce(Inbox<J>, mpsc::Sender<Result<ModelInfo, EngineError>>) + Send + 'static,
    ) -> Result<(Actor<J>, ModelInfo), EngineError> {
        let (jobs, inbox) = mpsc::channel::<J>();
        let load = Arc::new(Load::new());
        let inbox = Inbox {
            jobs: inbox,
            load: load.clone(),
            running: false,
        };
        let (loaded, load_result) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || body(inbox, loaded))
            .map_err(|e| EngineError::Backend(e.to_string()))?;
        let actor = Actor {
            jobs: Some(jobs),
            thread: Some(thread),
            load,
        };
        match load_result.recv() {
            Ok(Ok(info)) => Ok((actor, info)),
            // Dropping the actor joins the thread, which has ended.
            Ok(Err(e)) => Err(e),
            Err(_) => Err(EngineError::Gone),
        }
    }

    /// Queues `job`, unless [`MAX_PENDING`] are there already or the thread has stopped.
    pub fn submit(&self, job: J) -> Result<(), EngineError> {
        let pending = self.load.pending.fetch_add(1, Ordering::Relaxed);
        if pending >= MAX_PENDING {
            self.load.pending.fetch_sub(1, Ordering::Relaxed);
            return Err(EngineError::Busy(pending));
        }
        let sent = self.jobs.as_ref().and_then(|j| j.send(job).ok());
        if sent.is_none() {
            self.load.pending.fetch_sub(1, Ordering::Relaxed);
        }
        sent.ok_or(EngineError::Gone)
    }

    /// Whether the engine can still answer: its thread is alive (a panic ends it) and the job
    /// it runs is moving.
    pub fn health(&self) -> Result<(), EngineError> {
        if self.thread.as_ref().is_none_or(JoinHandle::is_finished) {
            return Err(EngineError::Gone);
        }
        match self.load.stalled() {
            Some(d) if d > STUCK_AFTER => Err(EngineError::Stuck(d.as_secs())),
            _ => Ok(()),
        }
    }
}

impl<J> Drop for Actor<J> {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The chat model's actor.
pub type Engine = Actor<Job>;

/// Loads the chat model on a new thread; returns once it is loaded (or failed to). With
/// `prompt_state`, a directory, the last long prompt is kept there between starts.
pub fn start(
    config: EngineConfig,
    prompt_state: Option<PathBuf>,
) -> Result<(Engine, ModelInfo), EngineError> {
    Actor::start("llama", move |inbox, loaded| {
        engine_thread(config, prompt_state, inbox, loaded)
    })
}

/// llama.cpp's backend and the model of `config`; or none, once the actor's `loaded` channel
/// has been told why.
pub fn load(
    config: &EngineConfig,
    loaded: &mpsc::Sender<Result<ModelInfo, EngineError>>,
) -> Option<(LlamaBackend, LlamaModel)> {
    let loading = LlamaBackend::init()
        .map_err(|e| EngineError::Backend(e.to_string()))
        .and_then(|mut backend| {
            backend.void_logs();
            LlamaModel::load_from_file(&backend, &config.model, &model_params())
                .map(|model| (backend, model))
                .map_err(|e| EngineError::Model {
                    path: config.model.clone(),
                    problem: e.to_string(),
                })
        });
    match loading {
        Ok(loaded) => Some(loaded),
        Err(e) => {
            let _ = loaded.send(Err(e));
            None
        }
    }
}

/// A context on `model`, once the actor's `loaded` channel has been told so (or why not, and
/// then none); none too when nobody waits for it any more.
pub fn context<'m>(
    backend: &LlamaBackend,
    model: &'m LlamaModel,
    params: LlamaContextParams,
    context: u32,
    loaded: &mpsc::Sender<Result<ModelInfo, EngineError>>,
) -> Option<LlamaContext<'m>> {
    match model.new_context(backend, params) {
        Ok(ctx) => {
            let info = ModelInfo {
                parameters: model.n_params(),
                size_bytes: model.size(),
                context: ctx.n_ctx(),
            };
            loaded.send(Ok(info)).ok().map(|()| ctx)
        }
        Err(e) => {
            let _ = loaded.send(Err(EngineError::Context {
                context,
                problem: e.to_string(),
            }));
            None
        }
    }
}

fn engine_thread(
    config: EngineConfig,
    prompt_state: Option<PathBuf>,
    mut inbox: Inbox<Job>,
    loaded: mpsc::Sender<Result<ModelInfo, EngineError>>,
) {
    let Some((backend, model)) = load(&config, &loaded) else {
        return;
    };
    let params = context_params(&config, config.batch);
    let Some(ctx) = context(&backend, &model, params, config.context, &loaded) else {
        return;
    };
    let prompt_state = prompt_state.map(|dir| PromptState::new(&dir, &config.model, ctx.n_ctx()));
    let mut state = State {
        model: &model,
        ctx,
        batch: LlamaBatch::new(config.batch as usize, 1),
        cached: Vec::new(),
    };
    // Before the first job, which waits for it: reading back is far quicker than evaluating.
    if let Some(saved) = &prompt_state {
        state.restore(saved);
    }
    while let Some(job) = inbox.next() {
        let events = job.events.clone();
        match state.run(&job, inbox.load()) {
            Ok(stats) => {
                let _ = events.send(Event::Done(stats));
                let evaluated = stats.prompt_tokens - stats.cached_tokens;
                if let Some(saved) = &prompt_state {
                    if evaluated >= SAVE_AFTER_TOKENS && stats.finish != Finish::Cancelled {
                        state.save(saved, stats.prompt_tokens);
                    }
                }
            }
            Err(e) => {
                // The cache may hold half a batch now: start the next request from scratch.
                state.forget();
                let _ = events.send(Event::Failed(e));
            }
        }
    }
}

struct State<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    /// The tokens whose KV entries are in the cache, in position order.
    cached: Vec<LlamaToken>,
}

impl State<'_> {
    fn forget(&mut self) {
        self.ctx.clear_kv_cache();
        self.cached.clear();
    }

    /// The saved prompt into the cache; a state that cannot be used is named and removed, and
    /// the next long prompt is evaluated and saved afresh.
    fn restore(&mut self, saved: &PromptState) {
        let started = Instant::now();
        match saved.restore(&mut self.ctx) {
            Ok(tokens) => {
                tracing::info!(
                    "restored the evaluated prompt ({} tokens) from {} in {:.2} s",
                    tokens.len(),
                    saved.file.display(),
                    started.elapsed().as_secs_f64()
                );
                self.cached = tokens;
            }
            Err(StateError::Read(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::info!(
                    "no evaluated prompt saved at {} yet: the first long prompt is evaluated (about a minute on two cores) and saved there for the next start",
                    saved.file.display()
                );
            }
            Err(e) => {
                tracing::warn!(
                    "the saved prompt at {} is not used: {e}; it is evaluated again and saved afresh",
                    saved.file.display()
                );
                saved.discard();
                self.forget();
            }
        }
    }

    /// Saves the cache with the first `prompt` tokens (the prompt, without the reply).
    fn save(&mut self, saved: &PromptState, prompt: usize) {
        let started = Instant::now();
        let trimmed = self
            .ctx
            .clear_kv_cache_seq(Some(0), Some(prompt as u32), None)
            .unwrap_or(false);
        if !trimmed {
            return self.forget();
        }
        self.cached.truncate(prompt);
        match saved.save(&self.ctx, &self.cached) {
            Ok(bytes) => tracing::info!(
                "saved the evaluated prompt ({prompt} tokens, {} MiB) to {} in {:.2} s",
                bytes >> 20,
                saved.file.display(),
                started.elapsed().as_secs_f64()
            ),
            Err(e) => tracing::warn!(
                "cannot save the evaluated prompt to {}: {e}; the next start evaluates it again",
                saved.file.display()
            ),
        }
    }

    fn run(&mut self, job: &Job, load: &Load) -> Result<Stats, JobError> {
        let vocab = self.model.vocab();
        let started = Instant::now();
        let cancelled = |prompt_tokens, cached_tokens| Stats {
            prompt_tokens,
            cached_tokens,
            completion_tokens: 0,
            prompt_ms: started.elapsed().as_secs_f64() * 1000.0,
            decode_ms: 0.0,
            finish: Finish::Cancelled,
        };
        // A client that left while the job waited costs nothing more.
        if job.cancel.load(Ordering::Relaxed) {
            return Ok(cancelled(0, 0));
        }
        let mut tokens = vocab.tokenize(job.prompt.as_bytes(), vocab.should_add_bos(), true);
        let forced = vocab.tokenize(job.forced.as_bytes(), false, true);
        tokens.extend_from_slice(&forced);
        let context = self.ctx.n_ctx();
        if tokens.is_empty() || tokens.len() + job.max_tokens as usize > context as usize {
            return Err(JobError::TooLong {
                prompt: tokens.len(),
                max_tokens: job.max_tokens,
                context,
            });
        }
        let mut sampler = sampler(job);
        let mut grammar = match &job.grammar {
            Some(g) => {
                Some(LlamaSampler::grammar(self.model, g, "root").map_err(|_| JobError::Grammar)?)
            }
            None => None,
        };

        // Reuse the common prefix; at least the last prompt token is evaluated again, for its
        // logits.
        let mut reused = self
            .cached
            .iter()
            .zip(&tokens)
            .take_while(|(a, b)| a == b)
            .count();
        reused = reused.min(tokens.len() - 1);
        let trimmed = self
            .ctx
            .clear_kv_cache_seq(Some(0), Some(reused as u32), None)
            .unwrap_or(false);
        if !trimmed {
            self.forget();
            reused = 0;
        }
        self.cached.truncate(reused);
        let capacity = self.ctx.n_batch() as usize;
        let mut told = Instant::now();
        for (n, chunk) in tokens[reused..].chunks(capacity).enumerate() {
            // Checked between batches: a long prompt stops evaluating when its client leaves.
            if job.cancel.load(Ordering::Relaxed) {
                return Ok(cancelled(tokens.len(), reused));
            }
            self.batch.clear();
            let start = reused + n * capacity;
            for (i, &token) in chunk.iter().enumerate() {
                let pos = start + i;
                self.batch
                    .add(token, pos as i32, &[0], pos + 1 == tokens.len())
                    .map_err(|e| JobError::Decode(e.to_string()))?;
            }
            self.ctx
                .decode(&mut self.batch)
                .map_err(|e| JobError::Decode(e.to_string()))?;
            self.cached.extend_from_slice(chunk);
            load.progressed();
            if told.elapsed() >= PROGRESS_EVERY {
                told = Instant::now();
                tracing::info!(
                    "evaluating the prompt: {} of {} tokens",
                    self.cached.len(),
                    tokens.len()
                );
            }
        }
        let prompt_ms = started.elapsed().as_secs_f64() * 1000.0;
        // The grammar moves past the forced start as if the model had chosen it.
        for &token in &forced {
            if let Some(g) = grammar.as_mut() {
                g.accept(token);
            }
            sampler.accept(token);
        }
        if !job.forced.is_empty() && job.events.send(Event::Text(job.forced.clone())).is_err() {
            return Ok(cancelled(tokens.len(), reused));
        }

        let decoding = Instant::now();
        let mut pending = Vec::new(); // bytes of a character split across tokens
        let mut completion_tokens = 0;
        let mut finish = Finish::Length;
        while completion_tokens < job.max_tokens as usize {
            if job.cancel.load(Ordering::Relaxed) {
                finish = Finish::Cancelled;
                break;
            }
            let token = next_token(
                &self.ctx,
                self.batch.n_tokens() - 1,
                &mut sampler,
                grammar.as_mut(),
            );
            if vocab.is_eog(token) {
                finish = Finish::Stop;
                break;
            }
            completion_tokens += 1;
            pending.extend(vocab.token_to_piece(token, true, None));
            let valid = match std::str::from_utf8(&pending) {
                Ok(s) => s.len(),
                Err(e) => e.valid_up_to(),
            };
            if valid > 0 {
                let text = String::from_utf8_lossy(&pending[..valid]).into_owned();
                pending.drain(..valid);
                if job.events.send(Event::Text(text)).is_err() {
                    finish = Finish::Cancelled;
                    break;
                }
            }
            self.batch.clear();
            let pos = self.cached.len();
            self.batch
                .add(token, pos as i32, &[0], true)
                .map_err(|e| JobError::Decode(e.to_string()))?;
            self.ctx
                .decode(&mut self.batch)
                .map_err(|e| JobError::Decode(e.to_string()))?;
            self.cached.push(token);
            load.progressed();
            if self.cached.len() >= context as usize {
                break;
            }
        }
        Ok(Stats {
            prompt_tokens: tokens.len(),
            cached_tokens: reused,
            completion_tokens,
            prompt_ms,
            decode_ms: decoding.elapsed().as_secs_f64() * 1000.0,
            finish,
        })
    }
}

/// The model is read into memory rather than mapped: llama.cpp repacks the mapped weights
/// for its CPU kernels into memory of its own and keeps the mapping too, so a mapped 1.5B
/// model cost its file twice (RSS 1,949 MiB after the prompt against 1,340 MiB read, the
/// same speed; 680 against 651 MiB for the 0.5B).
fn model_params() -> LlamaModelParams {
    LlamaModelParams::default().with_use_mmap(false)
}

/// Context length and threads from the configuration; `batch` tokens per decode call.
fn context_params(config: &EngineConfig, batch: u32) -> LlamaContextParams {
    LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(config.context))
        .with_n_batch(batch)
        .with_n_ubatch(batch)
        .with_n_threads(config.threads)
        .with_n_threads_batch(config.threads)
}

fn sampler(job: &Job) -> LlamaSampler {
    if job.temperature <= 0.0 {
        return LlamaSampler::greedy();
    }
    LlamaSampler::chain_simple([
        LlamaSampler::top_k(40),
        LlamaSampler::top_p(0.9, 1),
        LlamaSampler::temp(job.temperature),
        LlamaSampler::dist(rand_seed()),
    ])
}

/// The next token. With a grammar, the unconstrained choice is tried first and kept if the
/// grammar allows it; only otherwise is the grammar applied to the whole vocabulary (150,000
/// tokens for Qwen), which is what makes constrained decoding slow. llama.cpp's own sampler
/// does the same.
fn next_token(
    ctx: &LlamaContext,
    idx: i32,
    sampler: &mut LlamaSampler,
    grammar: Option<&mut LlamaSampler>,
) -> LlamaToken {
    let Some(grammar) = grammar else {
        return sampler.sample(ctx, idx);
    };
    let mut candidates = ctx.token_data_array_ith(idx);
    candidates.apply_sampler(sampler);
    let first = candidates
        .selected_token()
        .unwrap_or_else(|| candidates.sample_token_greedy());
    let mut single = LlamaTokenDataArray::new(vec![LlamaTokenData::new(first, 1.0, 1.0)], false);
    single.apply_sampler(grammar);
    let token = if single.data[0].logit() != f32::NEG_INFINITY {
        first
    } else {
        let mut all = ctx.token_data_array_ith(idx);
        all.apply_sampler(grammar);
        all.apply_sampler(sampler);
        all.selected_token()
            .unwrap_or_else(|| all.sample_token_greedy())
    };
    grammar.accept(token);
    sampler.accept(token);
    token
}

fn rand_seed() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

/// Prompt processing and generation speed, measured the way llama.cpp's `llama-bench` does
/// (pp: one batch of `prompt` tokens; tg: `generate` tokens one at a time, no sampling).
pub fn bench(config: &EngineConfig, prompt: usize, generate: usize) -> anyhow::Result<(f64, f64)> {
    let mut backend = LlamaBackend::init()?;
    backend.void_logs();
    let model = LlamaModel::load_from_file(&backend, &config.model, &model_params())?;
    let batch = config.batch.max(prompt as u32);
    let mut ctx = model.new_context(&backend, context_params(config, batch))?;
    let n_vocab = model.n_vocab();
    let token = |i: usize| LlamaToken((i as i32 * 7919) % n_vocab);
    let mut batch = LlamaBatch::new(prompt.max(1), 1);
    // Warm-up, as llama-bench does.
    batch.add(token(1), 0, &[0], true)?;
    ctx.decode(&mut batch)?;
    ctx.clear_kv_cache();

    batch.clear();
    for i in 0..prompt {
        batch.add(token(i), i as i32, &[0], i + 1 == prompt)?;
    }
    let t = Instant::now();
    ctx.decode(&mut batch)?;
    let pp = prompt as f64 / t.elapsed().as_secs_f64();
    ctx.clear_kv_cache();

    let t = Instant::now();
    for i in 0..generate {
        batch.clear();
        batch.add(token(i), i as i32, &[0], true)?;
        ctx.decode(&mut batch)?;
    }
    let tg = generate as f64 / t.elapsed().as_secs_f64();
    Ok((pp, tg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ModelInfo {
        ModelInfo {
            parameters: 0,
            size_bytes: 0,
            context: 0,
        }
    }

    /// An actor whose jobs are channels: each job runs until its channel says go (or closes);
    /// a job of `None` panics the thread.
    fn actor() -> Actor<Option<mpsc::Receiver<()>>> {
        let (actor, _) = Actor::start(
            "test",
            |mut inbox: Inbox<Option<mpsc::Receiver<()>>>, loaded| {
                loaded.send(Ok(info())).unwrap();
                while let Some(job) = inbox.next() {
                    let go: mpsc::Receiver<()> = job.expect("a job that panics the engine thread");
                    let _ = go.recv();
                }
            },
        )
        .unwrap();
        actor
    }

    #[test]
    fn a_full_queue_is_refused_as_busy_and_takes_work_again_once_drained() {
        let actor = actor();
        let mut release = Vec::new();
        for _ in 0..MAX_PENDING {
            let (go, job) = mpsc::channel();
            actor.submit(Some(job)).unwrap();
            release.push(go);
        }
        let (_go, job) = mpsc::channel();
        assert!(matches!(
            actor.submit(Some(job)),
            Err(EngineError::Busy(MAX_PENDING))
        ));
        assert!(actor.health().is_ok(), "a busy engine is not a sick one");
        release.clear();
        let deadline = Instant::now() + Duration::from_secs(10);
        while actor.load.pending.load(Ordering::Relaxed) > 0 {
            assert!(Instant::now() < deadline, "the queue never drained");
            std::thread::sleep(Duration::from_millis(5));
        }
        let (go, job) = mpsc::channel();
        actor.submit(Some(job)).unwrap();
        drop(go);
    }

    #[test]
    fn an_engine_thread_that_panicked_fails_its_health_check() {
        let actor = actor();
        assert!(actor.health().is_ok());
        actor.submit(None).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while actor.health().is_ok() {
            assert!(
                Instant::now() < deadline,
                "the dead thread still looks healthy"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(matches!(actor.health(), Err(EngineError::Gone)));
    }

    #[test]
    fn a_job_without_progress_is_stalled_and_an_idle_engine_is_not() {
        let load = Load {
            pending: AtomicUsize::new(1),
            progressed_ms: AtomicU64::new(0),
            epoch: Instant::now() - Duration::from_secs(100),
        };
        assert_eq!(load.stalled(), None);
        load.progressed_ms.store(1, Ordering::Relaxed);
        assert!(load.stalled().unwrap() > STUCK_AFTER);
        load.progressed();
        assert!(load.stalled().unwrap() < Duration::from_secs(1));
    }
}
