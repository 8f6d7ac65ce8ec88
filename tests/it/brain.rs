//! The brain's rules for what a local model says, against a scripted stand-in model: a call
//! with a made-up name or place, a command said in words, and answers not to speak (words
//! naming a tool it may not call, the instructions recited, the request said back).

use crate::common;

use cabin::profile::Profile;
use cabin::runtime::llm::ChatClient;
use cabin::runtime::worker::LlmWorker;
use cabin::understand::brain::{Brain, Thought};
use cabin::understand::turn::Route;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The English profile's reply for what Cabin can't do.
fn decline() -> &'static str {
    &cabin::text::Lexicon::english().replies.decline
}

type Requests = Arc<Mutex<Vec<Value>>>;

/// A brain on the default profile whose local model is a stand-in that answers the requests in
/// turn with `replies` (the `data:` payloads of a stream; past the last, an empty stream),
/// recording each request's body before answering.
fn scripted_brain(replies: Vec<Vec<Value>>) -> (Brain, Requests) {
    scripted_brain_on(&Profile::load_or_default(None).unwrap(), replies)
}

fn scripted_brain_on(profile: &Profile, replies: Vec<Vec<Value>>) -> (Brain, Requests) {
    let replies = Mutex::new(replies.into_iter());
    let (url, requests) =
        common::stand_in(move |_| common::sse(&replies.lock().unwrap().next().unwrap_or_default()));
    let brain = Brain::new(
        profile,
        LlmWorker::remote(ChatClient::new(&url, "test", None)),
        None,
    );
    (brain, requests)
}

const CANNOT_DRIVE: &str = "I can't drive the car for you.";

/// Asks "drive the car for me", expecting `answer`; the sentences given out to be spoken.
async fn answers_drive_me(brain: &Brain, answer: &str) -> Vec<String> {
    let (thought, spoken) = answer_to(brain, "drive the car for me").await;
    assert_eq!(thought, local(answer));
    spoken
}

/// What the brain makes of `request`, and the sentences it gave out to be spoken.
async fn answer_to(brain: &Brain, request: &str) -> (Thought, Vec<String>) {
    let mut spoken = Vec::new();
    let thought = brain
        .think(request, None, &mut BTreeMap::new(), &mut |s| {
            spoken.push(s.to_string())
        })
        .await;
    (thought, spoken)
}

fn local(text: &str) -> Thought {
    Thought::Answer {
        route: Route::LocalLlm,
        text: text.into(),
    }
}

fn said(text: &str) -> Value {
    json!({"choices": [{"index": 0, "delta": {"content": text}}]})
}

fn called(name: &str, arguments: &str) -> Value {
    json!({"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "id": "call", "type": "function", "function": {"name": name, "arguments": arguments}}
    ]}}]})
}

#[tokio::test]
async fn a_call_to_a_place_nobody_named_becomes_an_answer() {
    let (brain, requests) = scripted_brain(vec![
        vec![called("navigation-navigate_to", r#"{"place": "Alex"}"#)],
        vec![said(&format!("{CANNOT_DRIVE} "))],
    ]);
    assert_eq!(answers_drive_me(&brain, CANNOT_DRIVE).await, [CANNOT_DRIVE]);
    let requests = requests.lock().unwrap();
    assert_eq!(requests[0]["tool_choice"], "auto");
    // Asked again with the same prompt (its cache holds) and no call allowed.
    assert_eq!(requests[1]["tool_choice"], "none");
    assert_eq!(requests[1]["messages"], requests[0]["messages"]);
}

#[tokio::test]
async fn a_command_said_instead_of_called_is_made_and_not_spoken() {
    let (brain, _) = scripted_brain(vec![vec![
        said("Sure. "),
        said("Call "),
        said("mum. Right away."),
    ]]);
    let (thought, spoken) = answer_to(&brain, "I should ring mum, can you get her for me").await;
    assert_eq!(
        thought,
        Thought::Intent {
            route: Route::LocalLlm,
            intent: "phone.call".into(),
            args: json!({"contact": "mum"}).as_object().unwrap().clone(),
            rules: vec![],
        }
    );
    assert_eq!(spoken, ["Sure."]);
}

#[tokio::test]
async fn a_named_tool_whose_place_nobody_named_becomes_an_answer_too() {
    let (brain, requests) = scripted_brain(vec![
        vec![said("navigation-navigate_to")],
        vec![called("navigation-navigate_to", r#"{"place": "Alex"}"#)],
        vec![said(CANNOT_DRIVE)],
    ]);
    answers_drive_me(&brain, CANNOT_DRIVE).await;
    let choices: Vec<Value> = requests
        .lock()
        .unwrap()
        .iter()
        .map(|r| r["tool_choice"].clone())
        .collect();
    assert_eq!(
        choices,
        [
            json!("auto"),
            json!({"type": "function", "function": {"name": "navigation-navigate_to"}}),
            json!("none")
        ]
    );
}

#[tokio::test]
async fn an_answer_naming_a_tool_it_may_not_call_is_not_spoken() {
    // Asked again for an answer after a made-up place, the model names the tool instead.
    let (brain, _) = scripted_brain(vec![
        vec![called("navigation-navigate_to", r#"{"place": "home"}"#)],
        vec![said(
            "Call the navigation-navigate_to function with the argument home.",
        )],
    ]);
    let spoken = answers_drive_me(&brain, decline()).await;
    assert!(spoken.is_empty(), "{spoken:?}");
}

#[tokio::test]
async fn an_answer_reciting_the_instructions_is_not_spoken() {
    // On the dev set, "I'm so bored on this drive" got the system prompt's own words back.
    let (brain, _) = scripted_brain(vec![vec![
        said("I'm sorry. "),
        said("Your words are spoken while driving, so one or two short sentences."),
    ]]);
    let spoken = answers_drive_me(&brain, "I'm sorry.").await;
    assert_eq!(spoken, ["I'm sorry."]);

    // Nothing said before it: Cabin says it can't help. The same words in an answer of its
    // own are spoken.
    let (brain, _) = scripted_brain(vec![
        vec![said("your words are spoken while driving, so one or two")],
        vec![said("Your words matter. Say them again while driving.")],
    ]);
    assert!(answers_drive_me(&brain, decline()).await.is_empty());
    answers_drive_me(&brain, "Your words matter. Say them again while driving.").await;
}

#[tokio::test]
async fn a_request_said_back_is_not_spoken_as_if_done() {
    // From the eval set's declines: each answer would sound as if Cabin had done it.
    for (request, answer) in [
        (
            "send twenty euros to my brother",
            "send twenty euros to my brother.",
        ),
        (
            "set an alarm for six tomorrow",
            "set alarm for six tomorrow.",
        ),
        ("change the car's engine oil", "change-engine-oil."),
    ] {
        let (brain, _) = scripted_brain(vec![vec![said(answer)]]);
        assert_eq!(
            answer_to(&brain, request).await,
            (local(decline()), vec![]),
            "{answer}"
        );
    }
    // After a sentence of its own, that sentence is the answer.
    let (brain, _) = scripted_brain(vec![vec![
        said("Sure. "),
        said("Order pizza. "),
        said("Done."),
    ]]);
    assert_eq!(
        answer_to(&brain, "order me a pizza").await,
        (local("Sure."), vec!["Sure.".to_string()])
    );
    // Words of its own, or a question, are an answer.
    for answer in ["Order it on your phone once parked.", "Order a pizza?"] {
        let (brain, _) = scripted_brain(vec![vec![said(answer)]]);
        assert_eq!(answer_to(&brain, "order me a pizza").await.0, local(answer));
    }
}

#[tokio::test]
async fn an_unfit_answer_gives_way_to_the_cloud() {
    let (cloud, _) = common::stand_in(|_| common::sse(&[said("I can't send money, sorry.")]));
    let profile = common::with_cloud(Some(&cloud), 2500);
    let (brain, _) = scripted_brain_on(&profile, vec![vec![said("send money to my brother.")]]);
    let (thought, _) = answer_to(&brain, "send money to my brother").await;
    assert_eq!(
        thought,
        Thought::Answer {
            route: Route::Cloud,
            text: "I can't send money, sorry.".into()
        }
    );
}

/// Regression: the cloud's answer was spoken however long it was, and read however many bytes
/// the endpoint sent. It is cut to whole sentences within the 25 words a profile's replies may
/// have, and an endpoint that streams past the byte cap is cut off and not used.
/// Regression (#37): the local model's answer was bounded only by the worker's `max_tokens`
/// and the byte cap (10,013 characters came back from one that ignored it). It is stopped past
/// the words a reply may have, and what was spoken is the answer.
#[tokio::test]
async fn the_local_models_answer_is_capped_in_words() {
    let long = "Paris is the capital of France and has been for a very long time. \
        It sits on the Seine in the north of the country. \
        Many millions of people visit it every year to see its museums.";
    let pieces: Vec<Value> = long
        .split_inclusive(' ')
        .map(said)
        .chain((0..5000).map(|_| said("and more ")))
        .collect();
    let (brain, _) = scripted_brain(vec![pieces.clone(), pieces]);
    let (thought, spoken) = answer_to(&brain, "tell me about paris").await;
    let two = "Paris is the capital of France and has been for a very long time. It sits on the Seine in the north of the country.";
    assert_eq!(thought, local(two));
    assert_eq!(spoken.join(" "), two);

    let (flood, _) = scripted_brain(vec![(0..6000).map(|_| said("blah ")).collect()]);
    let (thought, spoken) = answer_to(&flood, "tell me about paris").await;
    let Thought::Answer { route, text } = thought else {
        panic!("not an answer: {thought:?}")
    };
    assert_eq!(route, Route::LocalLlm);
    assert!(text.split_whitespace().count() <= 25, "{text}");
    assert!(spoken.is_empty(), "{spoken:?}");
}

#[tokio::test]
async fn the_clouds_answer_is_capped_in_words_and_bytes() {
    let long = "Paris is the capital of France and has been for a very long time. \
        It sits on the Seine in the north of the country. \
        Many millions of people visit it every year to see its museums.";
    let (cloud, _) = common::stand_in(move |_| common::sse(&[said(long)]));
    let profile = common::with_cloud(Some(&cloud), 2500);
    let (brain, _) = scripted_brain_on(&profile, vec![vec![said("send money to my brother.")]]);
    let (thought, _) = answer_to(&brain, "send money to my brother").await;
    let Thought::Answer { route, text } = thought else {
        panic!("not an answer: {thought:?}")
    };
    assert_eq!(route, Route::Cloud);
    assert_eq!(
        text,
        "Paris is the capital of France and has been for a very long time. It sits on the Seine in the north of the country."
    );
    assert!(text.split_whitespace().count() <= 25);

    // A well-formed stream of 300 KB of words: over the byte cap, so the cloud is not used
    // (without the cap its first 25 words would be spoken).
    let (flood, _) = common::stand_in(|_| {
        let pieces: Vec<Value> = (0..6000).map(|_| said("blah ")).collect();
        common::sse(&pieces)
    });
    let profile = common::with_cloud(Some(&flood), 2500);
    let (brain, _) = scripted_brain_on(&profile, vec![vec![said("send money to my brother.")]]);
    let (thought, _) = answer_to(&brain, "send money to my brother").await;
    assert_eq!(
        thought,
        Thought::Answer {
            route: Route::LocalLlm,
            text: decline().into()
        }
    );
}
