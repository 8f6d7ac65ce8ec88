//! The semantic shortlist with the real embedding model, and what the brain then allows the
//! local model to call (against a stand-in model that records its requests).
//!
//! Needs `minilm-l6-v2` and its tokenizer (`cabin models fetch`); skips without them, except
//! under CI.

mod common;

use cabin::brain::{Brain, Thought};
use cabin::llm::ChatClient;
use cabin::profile::Profile;
use cabin::semantic::{Embedder, IntentIndex, Shortlist, CONFIDENT};
use cabin::worker::LlmWorker;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

fn profile() -> Profile {
    Profile::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/profiles/default.toml"
    )))
    .unwrap()
}

/// The model and tokenizer files, or None (skipping) when they are not installed.
fn files() -> Option<(PathBuf, PathBuf)> {
    let model = cabin::models::installed("minilm-l6-v2", "intent shortlist model");
    let tokenizer =
        cabin::models::installed("minilm-l6-v2-tokenizer", "intent shortlist tokenizer");
    match (model, tokenizer) {
        (Ok(m), Ok(t)) => Some((m, t)),
        (Err(why), _) | (_, Err(why)) => {
            common::missing(why);
            None
        }
    }
}

#[test]
fn intents_are_ranked_by_meaning_and_talk_is_not_close_to_any() {
    let Some((model, tokenizer)) = files() else {
        return;
    };
    let p = profile();
    let mut e = Embedder::load(&model, &tokenizer).unwrap();
    let index = IntentIndex::build(&p, &mut e).unwrap();
    // Paraphrases the fast path does not match (not taken from eval/router.jsonl).
    for (text, intent) in [
        ("get me to the train station", "navigation.navigate_to"),
        ("listen to the radio instead", "media.source"),
        (
            "the interior light is dazzling me, turn it off",
            "lights.cabin_off",
        ),
        ("how much petrol is there", "info.fuel"),
    ] {
        let ranked = index.rank(&e.embed(&[text]).unwrap()[0]);
        assert_eq!(ranked[0].0, intent, "{text}: {:?}", &ranked[..3]);
        assert!(ranked[0].1 >= CONFIDENT, "{text}: {:?}", &ranked[..3]);
    }
    for text in ["what's the capital of australia", "who invented the car"] {
        let ranked = index.rank(&e.embed(&[text]).unwrap()[0]);
        assert!(ranked[0].1 < CONFIDENT, "{text}: {:?}", &ranked[..3]);
    }
}

/// A stand-in local model: records each request's body and answers with a short reply.
fn recording_model() -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut request = Vec::new();
            let mut buf = [0u8; 65536];
            // Headers, then Content-Length bytes of body.
            let body = loop {
                let n = conn.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    break None;
                }
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request);
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        break Some(request[end + 4..end + 4 + length].to_vec());
                    }
                }
            };
            if let Some(body) = body.and_then(|b| serde_json::from_slice(&b).ok()) {
                record.lock().unwrap().push(body);
            }
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: {\"choices\": [{\"index\": 0, \"delta\": {\"content\": \"Sure.\"}}]}\n\ndata: [DONE]\n\n");
        }
    });
    (url, seen)
}

#[tokio::test]
async fn the_local_model_may_only_call_the_closest_intents() {
    let Some((model, tokenizer)) = files() else {
        return;
    };
    let p = profile();
    let (url, seen) = recording_model();
    let brain = Brain::new(
        &p,
        LlmWorker::remote(ChatClient::new(&url, "stand-in", None)),
        Some(Shortlist::start(&p, &model, &tokenizer)),
    );
    let mut timings = BTreeMap::new();
    let choice = |n: usize| seen.lock().unwrap()[n]["tool_choice"].clone();

    // The index takes seconds to build; a request meanwhile does not wait for it: every tool
    // is allowed (a regression test: the first turn after start used to wait).
    brain
        .think("get me to the train station", &mut timings, &mut |_| {})
        .await;
    assert_eq!(choice(0), "auto");
    brain.shortlist_built().await;

    // Close to one intent: that intent is the only one allowed, and a call is required.
    let thought = brain
        .think("get me to the train station", &mut timings, &mut |_| {})
        .await;
    assert!(timings.contains_key("shortlist"), "{timings:?}");
    let c = choice(1);
    assert_eq!(c["type"], "allowed_tools", "{c}");
    assert_eq!(c["allowed_tools"]["mode"], "required", "{c}");
    let allowed = c["allowed_tools"]["tools"].as_array().unwrap();
    assert_eq!(allowed.len(), 1, "{c}");
    assert_eq!(allowed[0]["function"]["name"], "navigation-navigate_to");
    // The stand-in answered in words anyway: that is an answer, never an action.
    assert!(matches!(thought, Thought::Answer { .. }), "{thought:?}");

    // Far from every intent: the model may answer, or call one of the closest three.
    brain
        .think("what's the capital of australia", &mut timings, &mut |_| {})
        .await;
    let c = choice(2);
    assert_eq!(c["allowed_tools"]["mode"], "auto", "{c}");
    assert_eq!(
        c["allowed_tools"]["tools"].as_array().unwrap().len(),
        3,
        "{c}"
    );
    // Of an intent and its opposite, only the closer is offered, however close the other:
    // given both, the model follows surface words ("cool" → warmer).
    let text = "I'm sweltering, cool the car";
    let ranked = shortlist_rank(&p, &model, &tokenizer, text).await;
    let rank = |intent: &str| ranked.iter().position(|r| r.0 == intent).unwrap();
    assert!(
        rank("climate.cooler") < rank("climate.warmer"),
        "{ranked:?}"
    );
    assert!(
        rank("climate.warmer") < 3,
        "not a test of opposites: {ranked:?}"
    );
    brain.think(text, &mut timings, &mut |_| {}).await;
    let c = choice(3);
    let allowed: Vec<&str> = c["allowed_tools"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert!(allowed.contains(&"climate-cooler"), "{c}");
    assert!(!allowed.contains(&"climate-warmer"), "{c}");

    // Every tool stays in the request, so the model's cached prompt is the same.
    let tools = |n: usize| seen.lock().unwrap()[n]["tools"].as_array().unwrap().len();
    for n in 0..4 {
        assert_eq!(tools(n), p.intents.len());
    }
}

/// The intents ranked for `text` by a shortlist of its own.
async fn shortlist_rank(
    p: &Profile,
    model: &std::path::Path,
    tokenizer: &std::path::Path,
    text: &str,
) -> Vec<(String, f32)> {
    let shortlist = Shortlist::start(p, model, tokenizer);
    shortlist.built().await;
    shortlist.rank(text).await.unwrap()
}
