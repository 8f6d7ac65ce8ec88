use super::*;

fn default_profile() -> Profile {
    Profile::load_or_default(None).unwrap()
}

#[test]
fn every_intent_is_a_tool_and_nothing_else_is() {
    let p = default_profile();
    let (tools, names) = tools(&p);
    let tools = tools.as_array().unwrap();
    assert_eq!(tools.len(), p.intents.len());
    assert_eq!(names.len(), p.intents.len());
    for t in tools {
        let name = t["function"]["name"].as_str().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "{name}"
        );
        assert!(p.intents.iter().any(|i| i.name == names[name]));
    }
    let set = tools
        .iter()
        .find(|t| t["function"]["name"] == "climate-set_temperature")
        .unwrap();
    let params = &set["function"]["parameters"];
    assert_eq!(params["properties"]["temperature"]["minimum"], 16.0);
    assert_eq!(params["properties"]["zone"]["enum"][0], "driver");
    // The zone has a default; the temperature has none, so the model must give it.
    assert_eq!(params["required"], json!(["temperature"]));
}

#[test]
fn a_tool_the_profile_does_not_offer_is_never_an_intent() {
    let p = default_profile();
    let brain = Brain::new(&p, LlmWorker::down("test"), None);
    assert!(matches!(
        brain.intent(Route::LocalLlm, "org.freedesktop.login1.PowerOff", "{}"),
        Thought::Unavailable { .. }
    ));
    assert!(matches!(
        brain.intent(Route::LocalLlm, "climate-set_temperature", "[1]"),
        Thought::Unavailable { .. }
    ));
    assert_eq!(
        brain.intent(Route::Cloud, "climate-on", "{}"),
        Thought::Intent {
            route: Route::Cloud,
            intent: "climate.on".into(),
            args: Map::new()
        }
    );
}

#[tokio::test]
async fn no_worker_means_unavailable_not_a_hang() {
    let p = default_profile();
    let brain = Brain::new(&p, LlmWorker::down("the model is not installed"), None);
    let mut timings = BTreeMap::new();
    let thought = brain
        .think("it's freezing in here", &mut timings, &mut |_| {})
        .await;
    assert_eq!(
        thought,
        Thought::Unavailable {
            why: "the model is not installed".into()
        }
    );
}

#[test]
fn redaction_hides_names_and_numbers() {
    assert_eq!(
        redact("Tell me about Lyon and call Marie at 0612"),
        "Tell me about [name] and call [name] at [number]"
    );
    assert_eq!(redact("I think I like it"), "I think I like it");
}

#[test]
fn endpoints_resolve_to_host_and_port() {
    assert_eq!(
        host_port("https://api.example.com/v1").unwrap(),
        "api.example.com:443"
    );
    assert_eq!(
        host_port("http://127.0.0.1:8080/v1").unwrap(),
        "127.0.0.1:8080"
    );
    assert_eq!(host_port("nonsense"), None);
}

#[test]
fn spoken_answers_lose_markup() {
    assert_eq!(spoken("**Sure!**\n- one\n# two"), "Sure! - one two");
}

#[test]
fn words_that_name_an_offered_tool_are_read_as_that_tool() {
    let p = default_profile();
    let brain = Brain::new(&p, LlmWorker::down("test"), None);
    assert_eq!(
        brain
            .named_tool("You can call the `climate-set_temperature` function", None)
            .as_deref(),
        Some("climate-set_temperature")
    );
    assert_eq!(
        brain
            .named_tool("Use climate.warmer for that", None)
            .as_deref(),
        Some("climate-warmer")
    );
    assert_eq!(brain.named_tool("Why did the tomato turn red?", None), None);
    // A regression test: a tool the shortlist left out was called when the words named it
    // ("book me a table for two" became media.source).
    let offered = ["phone-hang_up".to_string(), "media-play".to_string()];
    assert_eq!(
        brain.named_tool("I'll use media-source for that", Some(&offered)),
        None
    );
    assert_eq!(
        brain
            .named_tool("I'll use media-play for that", Some(&offered))
            .as_deref(),
        Some("media-play")
    );
}

#[test]
fn the_system_prompt_shows_each_intents_phrasings_indirect_ones_included() {
    let p = default_profile();
    let prompt = system_prompt(&p);
    assert!(
        prompt.contains("\nits cold in here -> climate-warmer"),
        "{prompt}"
    );
    for intent in &p.intents {
        let tool = tool_name(&intent.name);
        assert!(
            prompt.contains(&format!(" -> {tool}\n")) || prompt.ends_with(&format!(" -> {tool}")),
            "{tool}"
        );
    }
    // A regression test: text slots were filled with "Alex", which the model then copied into
    // calls ("drive the car for me" → a route to Alex) and answers.
    assert!(
        prompt.contains("\ntake me to <place> -> navigation-navigate_to"),
        "{prompt}"
    );
    assert!(!prompt.contains("Alex"), "{prompt}");
}

#[test]
fn a_text_slot_the_driver_never_said_is_invented() {
    let p = default_profile();
    let brain = Brain::new(&p, LlmWorker::down("test"), None);
    let navigate = "navigation-navigate_to";
    // The prompt's examples used to fill text slots with "Alex", and the model copied it.
    assert_eq!(
        brain
            .invented("drive the car for me", navigate, r#"{"place": "Alex"}"#)
            .as_deref(),
        Some("place")
    );
    assert_eq!(
        brain.invented(
            "I need to go to the hospital",
            navigate,
            r#"{"place": "the Hospital"}"#
        ),
        None
    );
    assert_eq!(
        brain.invented(
            "I should ring mum, can you get her for me",
            "phone-call",
            r#"{"contact": "Mum"}"#
        ),
        None
    );
    // Only text slots are the driver's own words: enums and numbers are the model's reading.
    assert_eq!(
        brain.invented(
            "it's freezing in here",
            "climate-set_temperature",
            r#"{"temperature": 24, "zone": "driver"}"#
        ),
        None
    );
}

#[test]
fn an_answer_that_is_an_offered_command_is_that_call() {
    let p = default_profile();
    let brain = Brain::new(&p, LlmWorker::down("test"), None);
    assert_eq!(
        brain.spoken_command("Call Mum.", None),
        Some(("phone-call".into(), r#"{"contact":"Mum"}"#.into()))
    );
    assert_eq!(
        brain.spoken_command("stop navigation.", None),
        Some(("navigation-cancel".into(), "{}".into()))
    );
    assert_eq!(
        brain.spoken_command("The train station is on Main Street.", None),
        None
    );
    // Only what the shortlist offered: the words are the model's, not the driver's.
    let offered = ["navigation-navigate_to".to_string()];
    assert_eq!(
        brain.spoken_command("Call the hospital.", Some(&offered)),
        None
    );
}

type Requests = std::sync::Arc<std::sync::Mutex<Vec<Value>>>;

/// A brain on the default profile whose local model is a stand-in that answers the requests in
/// turn with `replies` (the `data:` payloads of a stream), recording each request's body
/// before answering.
fn scripted_brain(replies: Vec<Vec<Value>>) -> (Brain, Requests) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = requests.clone();
    std::thread::spawn(move || {
        for (conn, events) in listener.incoming().zip(replies) {
            let mut conn = BufReader::new(conn.unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                conn.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            conn.read_exact(&mut body).unwrap();
            seen.lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap());
            let mut reply = String::from(
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n",
            );
            for event in events {
                reply.push_str(&format!("data: {event}\n\n"));
            }
            reply.push_str("data: [DONE]\n\n");
            let _ = conn.get_mut().write_all(reply.as_bytes());
        }
    });
    let brain = Brain::new(
        &default_profile(),
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
    let spoken = answers_drive_me(&brain, crate::understand::DECLINE_REPLY).await;
    assert!(spoken.is_empty(), "{spoken:?}");
}
