//! The brain's rules for what a local model says, against a scripted stand-in model: a call
//! with a made-up name or place, a command said in words, words naming a tool it may not call
//! or reciting the instructions.

mod common;

use cabin::brain::{Brain, Thought};
use cabin::llm::ChatClient;
use cabin::profile::Profile;
use cabin::understand::{Route, DECLINE_REPLY};
use cabin::worker::LlmWorker;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

type Requests = Arc<Mutex<Vec<Value>>>;

/// A brain on the default profile whose local model is a stand-in that answers the requests in
/// turn with `replies` (the `data:` payloads of a stream; past the last, an empty stream),
/// recording each request's body before answering.
fn scripted_brain(replies: Vec<Vec<Value>>) -> (Brain, Requests) {
    let replies = Mutex::new(replies.into_iter());
    let (url, requests) =
        common::stand_in(move |_| common::sse(&replies.lock().unwrap().next().unwrap_or_default()));
    let brain = Brain::new(
        &Profile::load_or_default(None).unwrap(),
        LlmWorker::remote(ChatClient::new(&url, "test", None)),
        None,
    );
    (brain, requests)
}

const CANNOT_DRIVE: &str = "I can't drive the car for you.";

/// Asks "drive the car for me", expecting `answer`; the sentences given out to be spoken.
async fn answers_drive_me(brain: &Brain, answer: &str) -> Vec<String> {
    let mut spoken = Vec::new();
    let thought = brain
        .think("drive the car for me", &mut BTreeMap::new(), &mut |s| {
            spoken.push(s.to_string())
        })
        .await;
    assert_eq!(
        thought,
        Thought::Answer {
            route: Route::LocalLlm,
            text: answer.into()
        }
    );
    spoken
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
    let mut spoken = Vec::new();
    let thought = brain
        .think(
            "I should ring mum, can you get her for me",
            &mut BTreeMap::new(),
            &mut |s| spoken.push(s.to_string()),
        )
        .await;
    assert_eq!(
        thought,
        Thought::Intent {
            route: Route::LocalLlm,
            intent: "phone.call".into(),
            args: json!({"contact": "mum"}).as_object().unwrap().clone()
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
    let spoken = answers_drive_me(&brain, DECLINE_REPLY).await;
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
    assert!(answers_drive_me(&brain, DECLINE_REPLY).await.is_empty());
    answers_drive_me(&brain, "Your words matter. Say them again while driving.").await;
}
