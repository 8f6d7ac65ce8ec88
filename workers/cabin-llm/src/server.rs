//! The OpenAI-compatible HTTP API: `GET /health`, `GET /v1/models`, and of a chat model
//! `POST /v1/chat/completions` (JSON, or server-sent events with `"stream": true`), of an
//! embedding model `POST /v1/embeddings`.

use crate::chat::{ChatRequest, Output};
use crate::embed::Embedder;
use crate::engine::{Engine, EngineError, Event, Finish, Job, Stats};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// What the worker serves: one model, either kind (as llama.cpp's server with `--embedding`).
pub enum Backend {
    Chat(Engine),
    Embeddings(Embedder),
}

pub struct Shared {
    pub backend: Backend,
    pub model_name: String,
    pub default_max_tokens: u32,
    pub requests: AtomicU64,
}

/// How often a streamed answer sends an SSE comment while the model is silent (evaluating the
/// prompt): a client that has left makes the write fail, which stops the job.
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_millis(250);

/// Largest request body: a chat request with Cabin's persona and every tool is about 40 KiB,
/// a batch of texts to embed less.
const MAX_BODY: usize = 1 << 20;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared)
}

/// `ok` while the engine thread lives and its job moves; 503 and why otherwise, so that the
/// daemon supervising this worker restarts it.
async fn health(State(s): State<Arc<Shared>>) -> Response {
    let engine = match &s.backend {
        Backend::Chat(engine) => engine.health(),
        Backend::Embeddings(embedder) => embedder.health(),
    };
    match engine {
        Ok(()) => Json(json!({"status": "ok", "model": s.model_name})).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "error", "model": s.model_name,
                        "error": {"message": e.to_string(), "type": "server_error"}})),
        )
            .into_response(),
    }
}

async fn models(State(s): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({"object": "list", "data": [
        {"id": s.model_name, "object": "model", "created": 0, "owned_by": "cabin"}
    ]}))
}

fn error(status: StatusCode, kind: &str, message: String) -> Response {
    (
        status,
        Json(json!({"error": {"message": message, "type": kind}})),
    )
        .into_response()
}

/// A job the engine did not take: 503, busy (try again) or stopped (restart the worker).
fn refused(e: EngineError) -> Response {
    let message = match e {
        EngineError::Busy(_) => e.to_string(),
        _ => format!("{e}; restart cabin-llm"),
    };
    error(StatusCode::SERVICE_UNAVAILABLE, "server_error", message)
}

/// Stops generation when the response is dropped (client gone, stream closed).
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

async fn chat(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let Backend::Chat(engine) = &s.backend else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "this worker serves an embedding model (it was started with --embedding); send chat completions to a chat worker".into(),
        );
    };
    let request: ChatRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                format!("the body is not a chat-completion request: {e}"),
            )
        }
    };
    let prepared = match request.prepare() {
        Ok(p) => p,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                e.to_string(),
            )
        }
    };
    let (events, mut rx) = mpsc::unbounded_channel();
    let cancel = Arc::new(AtomicBool::new(false));
    let job = Job {
        prompt: prepared.prompt,
        grammar: prepared.grammar,
        forced: prepared.forced,
        max_tokens: request.max_tokens.unwrap_or(s.default_max_tokens).max(1),
        temperature: request.temperature.unwrap_or(0.0),
        events,
        cancel: cancel.clone(),
    };
    if let Err(e) = engine.submit(job) {
        return refused(e);
    }
    let n = s.requests.fetch_add(1, Ordering::Relaxed);
    let id = format!("chatcmpl-cabin-{n}");
    let model = request.model.unwrap_or_else(|| s.model_name.clone());
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let guard = CancelOnDrop(cancel);

    if !request.stream {
        let mut text = String::new();
        let stats = loop {
            match rx.recv().await {
                Some(Event::Text(t)) => text.push_str(&t),
                Some(Event::Done(stats)) => break stats,
                Some(Event::Failed(e)) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request_error",
                        e.to_string(),
                    )
                }
                None => {
                    return error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "server_error",
                        "the model engine stopped mid-request".into(),
                    )
                }
            }
        };
        drop(guard);
        let (message, finish) = message_of(&text, &stats);
        return Json(json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage(&stats), "timings": timings(&stats),
        }))
        .into_response();
    }

    let chunk = move |delta: Value, finish: Option<&str>| {
        json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let stream = async_stream(move |tx| async move {
        let _guard = guard;
        let send = |v: Value| tx.send(Ok(SseEvent::default().data(v.to_string()))).is_ok();
        if !send(chunk(json!({"role": "assistant", "content": ""}), None)) {
            return;
        }
        // Output that may be a tool call is held back until it is complete.
        let mut text = String::new();
        let mut streamed = 0;
        loop {
            // The client gone (the keep-alive comments no longer get through) stops the job,
            // even while its prompt is still being evaluated.
            let event = tokio::select! {
                event = rx.recv() => event,
                () = tx.closed() => return,
            };
            match event {
                Some(Event::Text(t)) => {
                    text.push_str(&t);
                    if !Output::may_be_call(&text) {
                        if !send(chunk(json!({"content": &text[streamed..]}), None)) {
                            return;
                        }
                        streamed = text.len();
                    }
                }
                Some(Event::Done(stats)) => {
                    let (message, finish) = message_of(&text, &stats);
                    let delta = match message.get("tool_calls") {
                        Some(calls) => {
                            let mut calls = calls.clone();
                            calls[0]["index"] = json!(0);
                            json!({"tool_calls": calls})
                        }
                        None if streamed < text.len() => json!({"content": &text[streamed..]}),
                        None => json!({}),
                    };
                    let mut last = chunk(delta, Some(finish));
                    last["usage"] = usage(&stats);
                    last["timings"] = timings(&stats);
                    send(last);
                    let _ = tx.send(Ok(SseEvent::default().data("[DONE]")));
                    return;
                }
                Some(Event::Failed(e)) => {
                    send(json!({"error": {"message": e.to_string(), "type": "server_error"}}));
                    return;
                }
                None => return,
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

/// Most inputs in one embeddings request (OpenAI's limit).
const MAX_INPUTS: usize = 2048;

#[derive(serde::Deserialize)]
struct EmbeddingRequest {
    input: Input,
    model: Option<String>,
    encoding_format: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Input {
    One(String),
    Many(Vec<String>),
}

async fn embeddings(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let bad = |message: String| error(StatusCode::BAD_REQUEST, "invalid_request_error", message);
    let Backend::Embeddings(embedder) = &s.backend else {
        return bad("this worker serves a chat model; start one with --embedding and an embedding model for /v1/embeddings".into());
    };
    let request: EmbeddingRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return bad(format!(
                "the body is not an embeddings request ({e}); `input` must be a string or an array of strings"
            ))
        }
    };
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return bad(format!(
                "encoding_format '{other}' is not supported; use float or base64"
            ))
        }
    };
    let texts = match request.input {
        Input::One(text) => vec![text],
        Input::Many(texts) => texts,
    };
    if texts.is_empty() || texts.len() > MAX_INPUTS {
        return bad(format!(
            "`input` has {} texts; send 1 to {MAX_INPUTS}",
            texts.len()
        ));
    }
    let reply = match embedder.submit(texts) {
        Ok(reply) => reply,
        Err(e) => return refused(e),
    };
    let embedded = match reply.await {
        Ok(Ok(e)) => e,
        Ok(Err(e)) => return bad(e.to_string()),
        Err(_) => return refused(EngineError::Gone),
    };
    let data: Vec<Value> = embedded
        .vectors
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    Json(json!({
        "object": "list", "data": data,
        "model": request.model.unwrap_or_else(|| s.model_name.clone()),
        "usage": {"prompt_tokens": embedded.tokens, "total_tokens": embedded.tokens},
    }))
    .into_response()
}

/// A stream fed by a task; the task ends when the receiver (the response) is dropped.
fn async_stream<F, Fut>(
    f: F,
) -> tokio_stream::wrappers::UnboundedReceiverStream<Result<SseEvent, Infallible>>
where
    F: FnOnce(mpsc::UnboundedSender<Result<SseEvent, Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(f(tx));
    tokio_stream::wrappers::UnboundedReceiverStream::new(rx)
}

fn log(stats: &Stats) {
    tracing::info!(
        prompt = stats.prompt_tokens,
        cached = stats.cached_tokens,
        prompt_ms = stats.prompt_ms as u64,
        generated = stats.completion_tokens,
        decode_ms = stats.decode_ms as u64,
        finish = ?stats.finish,
        "request done"
    );
}

fn message_of(text: &str, stats: &Stats) -> (Value, &'static str) {
    log(stats);
    match Output::parse(text) {
        Output::ToolCall { name, arguments } => (
            json!({"role": "assistant", "content": null, "tool_calls": [{
                "id": "call_0", "type": "function",
                "function": {"name": name, "arguments": arguments}}]}),
            "tool_calls",
        ),
        Output::Content(content) => (
            json!({"role": "assistant", "content": content}),
            match stats.finish {
                Finish::Length => "length",
                Finish::Stop | Finish::Cancelled => "stop",
            },
        ),
    }
}

fn usage(s: &Stats) -> Value {
    json!({"prompt_tokens": s.prompt_tokens, "completion_tokens": s.completion_tokens,
           "total_tokens": s.prompt_tokens + s.completion_tokens,
           "prompt_tokens_details": {"cached_tokens": s.cached_tokens}})
}

/// llama.cpp server's `timings` extension: what the prompt and the generation cost.
fn timings(s: &Stats) -> Value {
    let per_s = |n: usize, ms: f64| {
        if ms > 0.0 {
            n as f64 * 1000.0 / ms
        } else {
            0.0
        }
    };
    let evaluated = s.prompt_tokens - s.cached_tokens;
    json!({"prompt_n": evaluated, "cache_n": s.cached_tokens, "prompt_ms": s.prompt_ms,
           "prompt_per_second": per_s(evaluated, s.prompt_ms),
           "predicted_n": s.completion_tokens, "predicted_ms": s.decode_ms,
           "predicted_per_second": per_s(s.completion_tokens, s.decode_ms)})
}
