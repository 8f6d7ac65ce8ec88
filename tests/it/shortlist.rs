//! The semantic shortlist with the real embedding models: MiniLM (the default, in the daemon,
//! on ONNX Runtime) and nomic-embed-text (in a `cabin-llm serve --embedding` worker, over
//! OpenAI's `/v1/embeddings`); and what the brain then allows the local model to call (against
//! a stand-in model that records its requests).
//!
//! Needs both models (`cabin models fetch`, and `--model nomic-embed-text-v1.5`); skips without
//! them, except under CI.

use crate::common;

use base64::Engine as _;
use cabin::profile::Profile;
use cabin::runtime::llm::ChatClient;
use cabin::runtime::worker::{LlmWorker, Worker};
use cabin::understand::brain::{Brain, Thought};
use cabin::understand::shortlist::{Embedder, EmbeddingModel, IndexCache, IntentIndex, Shortlist};
use cabin::understand::Route;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

const NOMIC: &str = "nomic-embed-text-v1.5";
const MINILM: &str = "minilm-l6-v2";

/// Paraphrases the fast path does not match (not taken from eval/router.jsonl or eval/dev.jsonl).
const COMMANDS: [(&str, &str); 4] = [
    ("get me to the train station", "navigation.navigate_to"),
    ("play the music from my phone instead", "media.source"),
    (
        "the interior light is dazzling me, turn it off",
        "lights.cabin_off",
    ),
    ("how much petrol is there", "info.fuel"),
];
const TALK: [&str; 2] = ["what's the capital of australia", "who invented the car"];

fn profile() -> Profile {
    Profile::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/profiles/default.toml"
    )))
    .unwrap()
}

/// A model's file, or None (skipping) when it is not installed.
fn installed(name: &str) -> Option<PathBuf> {
    match cabin::runtime::models::installed(name, "intent shortlist model") {
        Ok(path) => Some(path),
        Err(why) => {
            common::missing(why.to_string());
            None
        }
    }
}

/// One `cabin-llm serve --embedding` for the whole test binary (the kernel ends it with the
/// test process); its base URL.
fn embedding_worker() -> Option<&'static str> {
    static URL: OnceLock<Option<String>> = OnceLock::new();
    URL.get_or_init(|| {
        let model = installed(NOMIC)?;
        let mut cmd = Command::new(common::cabin_llm());
        cmd.args(["serve", "--embedding", "--model"]).arg(&model);
        Some(common::worker_for_the_process(cmd))
    })
    .as_deref()
}

/// The nomic index's cache, shared by this binary's tests so that it is built once per run
/// (most of a minute); emptied when the binary starts.
fn shared_cache(p: &Profile) -> IndexCache {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("shortlist-cache");
        let _ = std::fs::remove_dir_all(&dir);
        dir
    });
    let nomic = cabin::runtime::models::find(NOMIC).unwrap();
    IndexCache::new(
        dir,
        nomic.sha256,
        EmbeddingModel::named(NOMIC).unwrap().prefix,
        &cabin::understand::shortlist::intent_texts(p),
    )
}

/// Tests that build the shared index take turns, so the second reads what the first built.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A nomic shortlist of the default profile through the test binary's worker.
fn nomic_shortlist(p: &Profile, url: &str) -> Shortlist {
    Shortlist::remote(
        p,
        Worker::remote(ChatClient::new(url, NOMIC, None)),
        EmbeddingModel::named(NOMIC).unwrap(),
        Some(shared_cache(p)),
    )
}

/// Sends `body` to `path` of the worker at `url`; the status and the answer.
fn post(url: &str, path: &str, body: &str) -> (u16, Value) {
    let (status, body) = common::post(url, path, body, Duration::from_secs(120));
    (status, serde_json::from_str(&body).unwrap())
}

#[test]
fn the_embedding_worker_speaks_openai_and_names_bad_input() {
    let Some(url) = embedding_worker() else {
        return;
    };
    let (status, v) = post(
        url,
        "embeddings",
        r#"{"input": ["warm the car up", "make it warmer in here", "who won the cup"]}"#,
    );
    assert_eq!(status, 200, "{v}");
    let vectors: Vec<Vec<f64>> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| serde_json::from_value(d["embedding"].clone()).unwrap())
        .collect();
    assert_eq!(vectors.len(), 3);
    assert_eq!(vectors[0].len(), 768);
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    assert!(
        (dot(&vectors[0], &vectors[0]) - 1.0).abs() < 1e-3,
        "unit length"
    );
    assert!(dot(&vectors[0], &vectors[1]) > dot(&vectors[0], &vectors[2]));
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 6, "{v}");

    // base64: the same floats, little-endian.
    let (status, b) = post(
        url,
        "embeddings",
        r#"{"input": "warm the car up", "encoding_format": "base64"}"#,
    );
    assert_eq!(status, 200, "{b}");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let first = f32::from_le_bytes(bytes[..4].try_into().unwrap());
    assert_eq!(bytes.len(), 768 * 4);
    assert!((first as f64 - vectors[0][0]).abs() < 1e-5);

    let long = format!(r#"{{"input": "{}"}}"#, "word ".repeat(600));
    for (path, body, expect) in [
        ("embeddings", "{not json", "not an embeddings request"),
        (
            "embeddings",
            r#"{"input": [[1, 2, 3]]}"#,
            "array of strings",
        ),
        ("embeddings", r#"{"input": []}"#, "has 0 texts"),
        (
            "embeddings",
            r#"{"input": ["ok", " "]}"#,
            "input 1 is empty",
        ),
        (
            "embeddings",
            r#"{"input": "x", "encoding_format": "int8"}"#,
            "'int8' is not supported",
        ),
        ("embeddings", &long, "takes at most 512"),
        (
            "chat/completions",
            r#"{"messages": [{"role": "user", "content": "hi"}]}"#,
            "serves an embedding model",
        ),
    ] {
        let (status, v) = post(url, path, body);
        assert_eq!(status, 400, "{body:.60}: {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(expect), "{body:.60}: {message}");
    }
    // Still serving.
    assert_eq!(post(url, "embeddings", r#"{"input": "hi"}"#).0, 200);
}

/// `ranked`'s top intent is `intent`, at or above `confident`.
fn assert_top(text: &str, ranked: &[(String, f32)], intent: &str, confident: f32) {
    assert_eq!(ranked[0].0, intent, "{text}: {:?}", &ranked[..3]);
    assert!(ranked[0].1 >= confident, "{text}: {:?}", &ranked[..3]);
}

#[tokio::test(flavor = "multi_thread")]
async fn nomic_ranks_intents_by_meaning_and_talk_is_not_close_to_any() {
    let Some(url) = embedding_worker() else {
        return;
    };
    let _turn = TURN.lock().await;
    let p = profile();
    let shortlist = nomic_shortlist(&p, url);
    shortlist.built().await;
    let confident = shortlist.confident();
    for (text, intent) in COMMANDS {
        assert_top(
            text,
            &shortlist.rank(text).await.unwrap().intents,
            intent,
            confident,
        );
    }
    for text in TALK {
        let ranked = shortlist.rank(text).await.unwrap().intents;
        assert!(ranked[0].1 < confident, "{text}: {:?}", &ranked[..3]);
    }
    // The index was cached; a shortlist started again reads it and ranks alike.
    let cache = shared_cache(&p);
    let texts = cabin::understand::shortlist::intent_texts(&p);
    assert_eq!(cache.load(texts.len()).map(|v| v.len()), Some(texts.len()));
    let again = nomic_shortlist(&p, url);
    again.built().await;
    let text = COMMANDS[0].0;
    assert_eq!(
        again.rank(text).await.unwrap().intents,
        shortlist.rank(text).await.unwrap().intents
    );
}

#[test]
fn minilm_ranks_intents_by_meaning_and_talk_is_not_close_to_any() {
    let (Some(model), Some(tokenizer)) = (installed(MINILM), installed("minilm-l6-v2-tokenizer"))
    else {
        return;
    };
    let p = profile();
    let confident = EmbeddingModel::named(MINILM).unwrap().confident;
    let mut e = Embedder::load(&model, &tokenizer).unwrap();
    let index = IntentIndex::build(&p, &mut e).unwrap();
    for (text, intent) in COMMANDS {
        let ranked = index.rank(&e.embed(&[text]).unwrap()[0]);
        assert_top(text, &ranked, intent, confident);
    }
    for text in TALK {
        let ranked = index.rank(&e.embed(&[text]).unwrap()[0]);
        assert!(ranked[0].1 < confident, "{text}: {:?}", &ranked[..3]);
    }
}

/// A stand-in local model that answers every request with a short reply.
fn recording_model() -> (String, Arc<Mutex<Vec<Value>>>) {
    common::stand_in(|_| {
        common::sse(&[
            serde_json::json!({"choices": [{"index": 0, "delta": {"content": "Sure."}}]}),
        ])
    })
}

/// An embeddings endpoint that cuts its answers short for its first 2 seconds, then answers
/// every text with the same unit vector.
fn flaky_embeddings(body: &Value) -> String {
    static STARTED: OnceLock<std::time::Instant> = OnceLock::new();
    let started = STARTED.get_or_init(std::time::Instant::now);
    let n = body["input"].as_array().map_or(1, Vec::len);
    let data: Vec<Value> = (0..n)
        .map(|i| serde_json::json!({"index": i, "embedding": [1.0, 0.0]}))
        .collect();
    let json = serde_json::json!({"data": data}).to_string();
    let cut = if started.elapsed() < Duration::from_secs(2) {
        json.len() / 2
    } else {
        json.len()
    };
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        json.len(),
        &json[..cut]
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_that_fails_is_asked_again_in_a_while_not_at_once() {
    // A regression test: an embeddings endpoint somebody else runs (no supervisor to say when
    // it is back) that cut an answer short was asked again at once, in a loop.
    let p = profile();
    let (url, seen) = common::stand_in(flaky_embeddings);
    let shortlist = Shortlist::remote(
        &p,
        Worker::remote(ChatClient::new(&url, "stand-in", None)),
        EmbeddingModel::named(NOMIC).unwrap(),
        None,
    );
    tokio::time::timeout(Duration::from_secs(60), shortlist.built())
        .await
        .expect("the index is built once the endpoint answers");
    let ranked = shortlist.rank("open the window").await.unwrap().intents;
    assert_eq!(ranked.len(), p.intents.len());
    let seen = seen.lock().unwrap();
    // The first batch was cut short, the next asked seconds later; then the rest of the
    // 1,100-odd texts, 32 a batch, and the query.
    let batches = cabin::understand::shortlist::intent_texts(&p)
        .len()
        .div_ceil(32);
    assert_eq!(seen.len(), 1 + batches + 1, "asked again at once");
    // With the model's prefix.
    let first = seen[0]["input"][0].as_str().unwrap();
    assert!(first.starts_with("classification: "), "{first}");
}

#[tokio::test]
async fn a_turn_does_not_wait_for_an_index_that_is_not_built() {
    // A regression test: the first turn after start used to wait for the index. Here the
    // embedding worker never comes up, so the index is never built: every tool is allowed.
    let p = profile();
    let (url, seen) = recording_model();
    let shortlist = Shortlist::remote(
        &p,
        Worker::down("still loading"),
        EmbeddingModel::named(NOMIC).unwrap(),
        None,
    );
    let brain = Brain::new(
        &p,
        LlmWorker::remote(ChatClient::new(&url, "stand-in", None)),
        Some(shortlist),
    );
    let mut timings = BTreeMap::new();
    think(&brain, "get me to the train station", &mut timings).await;
    assert_eq!(seen.lock().unwrap()[0]["tool_choice"], "auto");
}

/// The brain's model route as a turn asks it: ranked by the shortlist, then thought about.
async fn think(brain: &Brain, text: &str, timings: &mut BTreeMap<&'static str, f64>) -> Thought {
    let ranking = brain.rank(text, timings).await;
    brain
        .think(text, ranking.as_ref(), timings, &mut |_| {})
        .await
}

/// A brain whose local model is [`recording_model`], with a built nomic shortlist; the
/// requests it makes.
async fn recorded_brain(p: &Profile, embeddings: &str) -> (Brain, Arc<Mutex<Vec<Value>>>) {
    let (url, seen) = recording_model();
    let brain = Brain::new(
        p,
        LlmWorker::remote(ChatClient::new(&url, "stand-in", None)),
        Some(nomic_shortlist(p, embeddings)),
    );
    brain.shortlist_built().await;
    (brain, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_local_model_may_only_call_the_closest_intents() {
    let Some(embeddings) = embedding_worker() else {
        return;
    };
    let _turn = TURN.lock().await;
    let p = profile();
    let (brain, seen) = recorded_brain(&p, embeddings).await;
    let mut timings = BTreeMap::new();
    let choice = |n: usize| seen.lock().unwrap()[n]["tool_choice"].clone();
    let allowed = |n: usize| -> Vec<String> {
        choice(n)["allowed_tools"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["function"]["name"].as_str().unwrap().to_string())
            .collect()
    };

    // Close to one intent: a call of that intent is required (nomic offers the closest alone).
    let thought = think(&brain, "get me to the train station", &mut timings).await;
    assert!(timings.contains_key("shortlist"), "{timings:?}");
    let c = choice(0);
    assert_eq!(c["type"], "allowed_tools", "{c}");
    assert_eq!(c["allowed_tools"]["mode"], "required", "{c}");
    assert_eq!(allowed(0), ["navigation-navigate_to"], "{c}");
    // The stand-in answered in words anyway: that is an answer, never an action.
    assert!(matches!(thought, Thought::Answer { .. }), "{thought:?}");

    // No car command, says the classifier: the model may only answer.
    think(&brain, "what's the capital of australia", &mut timings).await;
    assert_eq!(choice(1), "none");

    // Of an intent and its opposite, only the closer is offered, however close the other:
    // given both, the model follows surface words ("cool" → warmer).
    let text = "I'm sweltering, cool the car";
    let ranked = nomic_shortlist(&p, embeddings);
    ranked.built().await;
    let ranked = ranked.rank(text).await.unwrap().intents;
    let rank = |intent: &str| ranked.iter().position(|r| r.0 == intent).unwrap();
    assert!(
        rank("climate.cooler") < rank("climate.warmer"),
        "{ranked:?}"
    );
    assert!(
        rank("climate.warmer") < 3,
        "not a test of opposites: {ranked:?}"
    );
    think(&brain, text, &mut timings).await;
    assert!(
        allowed(2).contains(&"climate-cooler".into()),
        "{:?}",
        choice(2)
    );
    assert!(
        !allowed(2).contains(&"climate-warmer".into()),
        "{:?}",
        choice(2)
    );

    // Every tool stays in the request, so the model's cached prompt is the same.
    let tools = |n: usize| seen.lock().unwrap()[n]["tools"].as_array().unwrap().len();
    for n in 0..3 {
        assert_eq!(tools(n), p.intents.len());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_value_only_a_near_intent_takes_chooses_that_intent() {
    let Some(embeddings) = embedding_worker() else {
        return;
    };
    let _turn = TURN.lock().await;
    let p = profile();
    let (brain, seen) = recorded_brain(&p, embeddings).await;
    let allowed = |n: usize| seen.lock().unwrap()[n]["tool_choice"]["allowed_tools"].clone();

    // Closest to switching the seat heating on, but "low" is a heat level, which only
    // setting the level takes.
    let text = "seat warmer on low please";
    let ranking = nomic_shortlist(&p, embeddings);
    ranking.built().await;
    let ranked = ranking.rank(text).await.unwrap().intents;
    assert_eq!(ranked[0].0, "seats.heating_on", "{:?}", &ranked[..3]);
    let level = ranked
        .iter()
        .find(|r| r.0 == "seats.heating_level")
        .unwrap();
    assert!(
        ranked[0].1 - level.1 < 0.05,
        "not a test of near intents: {:?}",
        &ranked[..3]
    );
    let mut timings = BTreeMap::new();
    think(&brain, text, &mut timings).await;
    let c = allowed(0);
    assert_eq!(c["mode"], "required", "{c}");
    assert_eq!(
        c["tools"][0]["function"]["name"], "seats-heating_level",
        "{c}"
    );
    assert_eq!(c["tools"].as_array().unwrap().len(), 1, "{c}");

    // No level said: the seat heating goes on.
    think(&brain, "seat warmer on please", &mut timings).await;
    let c = allowed(1);
    assert_eq!(c["tools"][0]["function"]["name"], "seats-heating_on", "{c}");
}

/// Commands in words none of the profile's sentences use, and the intents they ask for.
const CLASSIFIED: [(&str, &str); 5] = [
    ("could you make the lights a little dimmer", "lights.dimmer"),
    ("the cabin is far too dark, brighten it", "lights.brighter"),
    (
        "i can hardly hear the music, louder please",
        "media.volume_up",
    ),
    ("kill the sound completely", "media.mute"),
    ("seat warmer for the passenger please", "seats.heating_on"),
];
/// Requests that are no car command.
const NOT_COMMANDS: [&str; 4] = [
    "book me a table at an italian restaurant",
    "what's the weather in rome tomorrow",
    "tell me about the roman empire",
    "send a message to my brother",
];

/// Requests the answer bank answers, and the small talk that does.
const ANSWERED: [(&str, &str); 6] = [
    ("is it going to be rainy in glasgow on saturday", "weather"),
    ("read me today's top stories", "news"),
    ("remind me to call the plumber at noon", "elsewhere"),
    ("could you tell me the current time", "time"),
    ("which company made you", "maker"),
    ("is the motorway jammed this evening", "road"),
];

/// A MiniLM shortlist (the default profile's) of `p`, cached in `cache`.
fn minilm_shortlist(p: &Profile, cache: Option<IndexCache>) -> Option<Shortlist> {
    let model = installed(MINILM)?;
    let tokenizer = installed("minilm-l6-v2-tokenizer")?;
    Some(Shortlist::local(
        p,
        move || Embedder::load(&model, &tokenizer),
        EmbeddingModel::named(MINILM).unwrap(),
        cache,
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_small_model_decides_commands_and_refuses_what_is_not_one() {
    let p = profile();
    let dir = tempfile::tempdir().unwrap();
    let minilm = cabin::runtime::models::find(MINILM).unwrap();
    let cache = IndexCache::new(
        dir.path(),
        minilm.sha256,
        "",
        &cabin::understand::shortlist::intent_texts(&p),
    );
    let Some(shortlist) = minilm_shortlist(&p, Some(cache.clone())) else {
        return;
    };
    shortlist.built().await;
    let confident = p.classifier.confident;
    let mut wrong = Vec::new();
    for (text, intent) in CLASSIFIED {
        let c = shortlist.rank(text).await.unwrap().classified;
        if c.intent.as_deref() != Some(intent) || c.probability < confident {
            wrong.push(format!("{text:?}: {c:?}, wanted {intent}"));
        }
    }
    for text in NOT_COMMANDS {
        let c = shortlist.rank(text).await.unwrap().classified;
        if c.intent.is_some() {
            wrong.push(format!("{text:?}: {c:?}, wanted no command"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // Trained once: the weights are cached beside the vectors, and a shortlist started again
    // reads them and decides alike.
    let file = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|f| f.extension().is_some_and(|e| e == "classifier"))
        .expect("the classifier was cached");
    let trained = std::fs::read(&file).expect("the classifier was cached");
    let again = minilm_shortlist(&p, Some(cache.clone())).unwrap();
    again.built().await;
    let text = CLASSIFIED[0].0;
    assert_eq!(again.rank(text).await, shortlist.rank(text).await);
    assert_eq!(std::fs::read(&file).unwrap(), trained, "not trained again");

    // A cached file that does not read back whole is not trusted: it is trained again.
    std::fs::write(&file, &trained[..trained.len() / 2]).unwrap();
    let third = minilm_shortlist(&p, Some(cache)).unwrap();
    third.built().await;
    assert_eq!(third.rank(text).await, shortlist.rank(text).await);
    assert_eq!(std::fs::read(&file).unwrap().len(), trained.len());
}

/// What the classifier decides for `text` on its own.
async fn classified(brain: &Brain, text: &str) -> Option<Thought> {
    let ranking = brain.rank(text, &mut BTreeMap::new()).await.unwrap();
    brain.classified(text, &ranking)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_router_uses_each_model_for_what_it_is_good_at() {
    let p = profile();
    let Some(shortlist) = minilm_shortlist(&p, None) else {
        return;
    };
    let (url, seen) = recording_model();
    let brain = Brain::new(
        &p,
        LlmWorker::remote(ChatClient::new(&url, "stand-in", None)),
        Some(shortlist),
    );
    brain.shortlist_built().await;
    let mut timings = BTreeMap::new();

    // A command the classifier is sure of is decided without the local model, its slots read
    // by the grammar from the words.
    let thought = classified(&brain, "could you make the lights a little dimmer").await;
    assert_eq!(
        thought,
        Some(Thought::Intent {
            route: Route::Classifier,
            intent: "lights.dimmer".into(),
            args: Default::default(),
            rules: vec![],
        })
    );
    let Some(Thought::Intent { intent, args, .. }) =
        classified(&brain, "could you set it to twenty two degrees in here").await
    else {
        panic!("not decided");
    };
    assert_eq!(intent, "climate.set_temperature");
    assert_eq!(args["temperature"], 22.0);
    assert!(seen.lock().unwrap().is_empty(), "the local model was asked");

    // What Cabin can't know, or does beyond the car, is the answer bank's, in words none of
    // the profile's sentences or examples use: the local model is never asked to make it up.
    for (text, talk) in ANSWERED {
        assert_eq!(
            classified(&brain, text).await,
            Some(Thought::Talk { name: talk.into() }),
            "{text}"
        );
    }
    assert!(seen.lock().unwrap().is_empty(), "the local model was asked");

    // What is no car command and no answer of the bank goes to the local model with no tool
    // it may call.
    assert_eq!(
        classified(&brain, "tell me about the roman empire").await,
        None
    );
    think(&brain, "tell me about the roman empire", &mut timings).await;
    assert_eq!(seen.lock().unwrap()[0]["tool_choice"], "none");

    // A command whose words only a language model can pick out (a place) is that model's:
    // the classifier does not decide it, and the model must call that intent.
    let text = "i need directions to the airport";
    assert_eq!(classified(&brain, text).await, None);
    think(&brain, text, &mut timings).await;
    let choice = seen.lock().unwrap()[1]["tool_choice"].clone();
    assert_eq!(choice["allowed_tools"]["mode"], "required", "{choice}");
    assert_eq!(
        choice["allowed_tools"]["tools"][0]["function"]["name"], "navigation-navigate_to",
        "{choice}"
    );
}
