//! One client for every OpenAI-compatible endpoint: Cabin's own `cabin-llm` workers on
//! loopback (chat, embeddings), or a cloud service. Chat requests stream (server-sent events),
//! so the first words are there as soon as the model has them; every failure is a typed
//! [`LlmError`].

use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    #[error("cannot reach {0}")]
    Unreachable(String),
    #[error("no answer within {0} ms")]
    Timeout(u64),
    #[error("HTTP {status}: {message}")]
    Status { status: u16, message: String },
    #[error("the answer stream ended before it was complete")]
    Truncated,
    #[error("the answer is not valid: {0}")]
    Malformed(String),
    #[error("the answer is over {0} bytes; the endpoint is not answering as a model would")]
    TooLarge(usize),
}

/// Most bytes a chat answer may stream: a spoken answer is a few hundred, a tool call less; an
/// endpoint sending more (or one endless line) is cut off instead of filling memory.
pub const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// Most bytes of an embeddings answer: a batch of 32 vectors of 768 numbers is about 0.5 MB.
const MAX_EMBEDDINGS_BYTES: usize = 16 * 1024 * 1024;

/// Most bytes of an error answer read for its message.
const MAX_ERROR_BYTES: usize = 16 * 1024;

/// What the model said: text, or a call of one of the offered tools.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub content: String,
    pub tool_call: Option<ToolCall>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub name: String,
    /// JSON object, as the model wrote it.
    pub arguments: String,
}

#[derive(Clone)]
pub struct ChatClient {
    http: reqwest::Client,
    /// Up to and including `/v1`.
    base: String,
    model: String,
    api_key: Option<String>,
}

impl std::fmt::Debug for ChatClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("ChatClient")
            .field("base", &self.base)
            .field("model", &self.model)
            .finish()
    }
}

impl ChatClient {
    pub fn new(base: &str, model: &str, api_key: Option<String>) -> ChatClient {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("the TLS backend is built in");
        ChatClient {
            http,
            base: base.trim_end_matches('/').to_string(),
            model: model.to_string(),
            api_key,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends `messages` (and `tools` with a `tool_choice`, if any) and collects the streamed
    /// answer. `on_text` sees each piece of content as it arrives and returns whether to go on:
    /// `false` ends the request there (closing the stream stops the generation). The caller bounds the time (dropping the future
    /// closes the connection, which stops generation on Cabin's worker).
    pub async fn complete(
        &self,
        messages: &[Value],
        tools: Option<(&Value, &Value)>,
        max_tokens: u32,
        mut on_text: impl FnMut(&str) -> bool,
    ) -> Result<Completion, LlmError> {
        let mut body = json!({
            "model": self.model, "messages": messages, "stream": true,
            "max_tokens": max_tokens, "temperature": 0,
        });
        if let Some((tools, choice)) = tools {
            body["tools"] = tools.clone();
            body["tool_choice"] = choice.clone();
        }
        let response = self.post("chat/completions", &body).await?;
        let mut stream = response.bytes_stream();
        let mut buffer = Vec::new();
        let mut out = Completion {
            content: String::new(),
            tool_call: None,
        };
        let mut call: Option<(String, String)> = None;
        let mut received = 0;
        loop {
            let Some(chunk) = stream.next().await else {
                return Err(LlmError::Truncated);
            };
            let chunk = chunk.map_err(|_| LlmError::Truncated)?;
            received += chunk.len();
            if received > MAX_ANSWER_BYTES {
                return Err(LlmError::TooLarge(MAX_ANSWER_BYTES));
            }
            buffer.extend_from_slice(&chunk);
            while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                let Some(data) = line.trim().strip_prefix("data:") else {
                    continue; // blank separators, comments, `event:` lines
                };
                let data = data.trim();
                if data == "[DONE]" {
                    out.tool_call = call.map(|(name, arguments)| ToolCall { name, arguments });
                    return Ok(out);
                }
                let v: Value = serde_json::from_str(data)
                    .map_err(|e| LlmError::Malformed(format!("{e} in {data:.80}")))?;
                if let Some(m) = v["error"]["message"].as_str() {
                    return Err(LlmError::Status {
                        status: 500,
                        message: m.into(),
                    });
                }
                if v["choices"][0].is_null() {
                    return Err(LlmError::Malformed(format!("no choices in {data:.80}")));
                }
                let delta = &v["choices"][0]["delta"];
                if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
                    out.content.push_str(text);
                    if !on_text(text) {
                        return Ok(out);
                    }
                }
                // Tool calls arrive as pieces by index; Cabin acts on the first only.
                if let Some(f) = delta["tool_calls"].get(0).map(|c| &c["function"]) {
                    let (name, args) = call.get_or_insert_with(Default::default);
                    name.push_str(f["name"].as_str().unwrap_or_default());
                    args.push_str(f["arguments"].as_str().unwrap_or_default());
                }
            }
        }
    }

    /// Whether the worker behind this client is well: `GET /health` beside `/v1` (as
    /// `cabin-llm` and llama.cpp's server answer it) succeeds within `limit`.
    pub async fn health(&self, limit: Duration) -> Result<(), LlmError> {
        let root = self.base.strip_suffix("/v1").unwrap_or(&self.base);
        let response = self
            .http
            .get(format!("{root}/health"))
            .timeout(limit)
            .send()
            .await
            .map_err(|e| match self.transport(e) {
                LlmError::Timeout(_) => LlmError::Timeout(limit.as_millis() as u64),
                other => other,
            })?;
        success(response).await.map(|_| ())
    }

    /// Unit vectors of `texts`, in order, from `POST /embeddings`. The caller bounds the time.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, LlmError> {
        let body = json!({"model": self.model, "input": texts, "encoding_format": "float"});
        let response = self.post("embeddings", &body).await?;
        let text = read_capped(response, MAX_EMBEDDINGS_BYTES)
            .await?
            .ok_or(LlmError::TooLarge(MAX_EMBEDDINGS_BYTES))?;
        embeddings_of(&text, texts.len())
    }

    /// `body` posted to `path` under the base URL, with the key if there is one; the response
    /// if its status is a success.
    async fn post(&self, path: &str, body: &Value) -> Result<reqwest::Response, LlmError> {
        let mut request = self.http.post(format!("{}/{path}", self.base)).json(body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(|e| self.transport(e))?;
        success(response).await
    }

    fn transport(&self, e: reqwest::Error) -> LlmError {
        if e.is_timeout() {
            LlmError::Timeout(0)
        } else if e.is_connect() {
            LlmError::Unreachable(format!("{} ({})", self.base, root_cause(&e)))
        } else {
            LlmError::Malformed(root_cause(&e))
        }
    }
}

/// The response if its status is a success, else the error it carries.
async fn success(response: reqwest::Response) -> Result<reqwest::Response, LlmError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = match read_capped(response, MAX_ERROR_BYTES).await {
        Ok(Some(text)) => text,
        Ok(None) => format!("(an error body over {MAX_ERROR_BYTES} bytes)"),
        Err(_) => String::new(),
    };
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(String::from))
        .unwrap_or_else(|| text.chars().take(200).collect());
    Err(LlmError::Status {
        status: status.as_u16(),
        message,
    })
}

/// A response body as text, read up to `cap` bytes; None if it is longer.
async fn read_capped(response: reqwest::Response, cap: usize) -> Result<Option<String>, LlmError> {
    let mut stream = response.bytes_stream();
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk.map_err(|_| LlmError::Truncated)?);
        if body.len() > cap {
            return Ok(None);
        }
    }
    Ok(Some(String::from_utf8_lossy(&body).into_owned()))
}

/// The `expected` vectors of an embeddings response, in input order and scaled to unit length;
/// anything else (a missing or repeated index, vectors of different lengths, a number that is
/// not finite) is malformed.
fn embeddings_of(text: &str, expected: usize) -> Result<Vec<Vec<f32>>, LlmError> {
    let bad = |why: String| LlmError::Malformed(format!("embeddings: {why}"));
    let v: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let data = v["data"].as_array().ok_or_else(|| bad("no data".into()))?;
    if data.len() != expected {
        return Err(bad(format!("{} vectors for {expected} inputs", data.len())));
    }
    let mut out: Vec<Option<Vec<f32>>> = vec![None; expected];
    for (position, item) in data.iter().enumerate() {
        let index = item["index"].as_u64().map_or(position, |i| i as usize);
        let vector: Vec<f32> = item["embedding"]
            .as_array()
            .ok_or_else(|| bad(format!("item {position} has no embedding array")))?
            .iter()
            .map(|x| x.as_f64().map(|x| x as f32).filter(|x| x.is_finite()))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                bad(format!(
                    "item {position} holds a value that is not a number"
                ))
            })?;
        let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        if vector.is_empty() || norm == 0.0 || !norm.is_finite() {
            return Err(bad(format!("item {position} is empty or zero")));
        }
        match out.get_mut(index) {
            Some(slot @ None) => *slot = Some(vector.iter().map(|x| x / norm).collect()),
            _ => return Err(bad(format!("index {index} is out of range or repeated"))),
        }
    }
    let out: Vec<Vec<f32>> = out.into_iter().flatten().collect();
    if out.iter().any(|v| v.len() != out[0].len()) {
        return Err(bad("vectors of different lengths".into()));
    }
    Ok(out)
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut e = e;
    while let Some(s) = e.source() {
        e = s;
    }
    e.to_string()
}

pub fn ms(since: Instant) -> f64 {
    (since.elapsed().as_secs_f64() * 1e5).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_come_back_in_input_order_at_unit_length() {
        let text =
            r#"{"data": [{"index": 1, "embedding": [0, 2]}, {"index": 0, "embedding": [3, 4]}]}"#;
        assert_eq!(
            embeddings_of(text, 2).unwrap(),
            [vec![0.6, 0.8], vec![0.0, 1.0]]
        );
    }

    #[test]
    fn malformed_embeddings_are_named() {
        for (text, expected, why) in [
            ("garbage", 1, "expected value"),
            (r#"{"data": []}"#, 1, "0 vectors for 1 inputs"),
            (
                r#"{"data": [{"embedding": "AAAA"}]}"#,
                1,
                "no embedding array",
            ),
            (r#"{"data": [{"embedding": [1, "x"]}]}"#, 1, "not a number"),
            (r#"{"data": [{"embedding": [0, 0]}]}"#, 1, "empty or zero"),
            (
                r#"{"data": [{"index": 0, "embedding": [1]}, {"index": 0, "embedding": [1]}]}"#,
                2,
                "repeated",
            ),
            (
                r#"{"data": [{"embedding": [1]}, {"embedding": [1, 1]}]}"#,
                2,
                "different lengths",
            ),
        ] {
            let err = embeddings_of(text, expected).unwrap_err().to_string();
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
