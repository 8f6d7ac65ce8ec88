use super::*;
use crate::understand::brain::cloud::host_port;
use crate::understand::brain::guards::spoken;
use crate::understand::brain::prompt::system_prompt;

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
        brain.intent(
            Route::LocalLlm,
            "org.freedesktop.login1.PowerOff",
            "{}",
            "",
            None
        ),
        Thought::Unavailable { .. }
    ));
    assert!(matches!(
        brain.intent(Route::LocalLlm, "climate-set_temperature", "[1]", "", None),
        Thought::Unavailable { .. }
    ));
    assert_eq!(
        brain.intent(Route::Cloud, "climate-on", "{}", "", None),
        Thought::Intent {
            route: Route::Cloud,
            intent: "climate.on".into(),
            args: Map::new(),
            rules: vec![],
        }
    );
}

#[tokio::test]
async fn no_worker_means_unavailable_not_a_hang() {
    let p = default_profile();
    let brain = Brain::new(&p, LlmWorker::down("the model is not installed"), None);
    let mut timings = BTreeMap::new();
    let thought = brain
        .think("it's freezing in here", None, &mut timings, &mut |_| {})
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

#[test]
fn tool_syntax_and_another_script_fail_the_answer_check() {
    use crate::understand::brain::guards::{answer_flaw, Flaw};
    let lexicon = |language: &str| crate::text::Lexicon::shipped(language).unwrap();
    for (said, flaw) in [
        (
            r#"jsonrpc {"name": "media-volume_up", "arguments": {}}"#,
            Flaw::ToolSyntax,
        ),
        ("Calling media_volume_up now.", Flaw::ToolSyntax),
        ("I will use media.mute for that.", Flaw::ToolSyntax),
        ("**Sure!** Here you go.", Flaw::Markup),
    ] {
        assert_eq!(
            answer_flaw("turn it up", said, &lexicon("en")),
            Some(flaw),
            "{said}"
        );
    }
    // The profile's language decides the script.
    assert_eq!(
        answer_flaw(
            "讲个笑话",
            "Sure, here is a joke about a chicken crossing the road.",
            &lexicon("zh-CN")
        ),
        Some(Flaw::OtherLanguage)
    );
    assert_eq!(
        answer_flaw("tell me a joke", "好的", &lexicon("en")),
        Some(Flaw::OtherLanguage)
    );
    // The same script, another language's words.
    assert_eq!(
        answer_flaw(
            "ceritakan lelucon",
            "I'm sorry, but I can't assist with that.",
            &lexicon("id")
        ),
        Some(Flaw::OtherLanguage)
    );
    for (said, language) in [
        ("It is 21.5 degrees inside, and the A.C. is on.", "en"),
        ("好的，已为你播放 FM 93.7。", "zh-CN"),
        ("Baik, saya putar radio sekarang.", "id"),
    ] {
        assert_eq!(
            answer_flaw("what is it", said, &lexicon(language)),
            None,
            "{said}"
        );
    }
}

#[test]
fn chinese_answers_are_cut_by_characters_and_loops_and_echoes_fail_the_check() {
    use crate::understand::brain::guards::{answer_flaw, spoken_length, within_words, Flaw};
    let zh = crate::text::Lexicon::shipped("zh-CN").unwrap();
    // Two Han characters a word: a 60-character sentence is 30 words, cut to 25.
    let long = "好".repeat(60);
    assert_eq!(spoken_length(&long), 30);
    assert_eq!(within_words(&long, 25).chars().count(), 50);
    assert_eq!(spoken_length("播放 FM 93.7"), 3);
    // The small model's ways of saying nothing.
    assert_eq!(
        answer_flaw("谁在披头士乐队", "他负责空调、空调、空调、空调。", &zh),
        Some(Flaw::Loop)
    );
    assert_eq!(
        answer_flaw(
            "提醒我星期六十二点钟预约",
            "提醒我星期六十二点钟预约。",
            &zh
        ),
        Some(Flaw::Echo)
    );
    assert_eq!(answer_flaw("讲个笑话", "好的，我们出发吧。", &zh), None);
}

#[test]
fn pieces_of_the_prompt_are_never_spoken() {
    use crate::understand::brain::guards::shows_prompt;
    for said in [
        "<programme-name> <arguments> <json-object>",
        "Sure, navigate to <place>.",
        "turn it up -> media-volume_up",
    ] {
        assert!(shows_prompt(said), "{said}");
    }
    for said in [
        "It is two degrees warmer now.",
        "I can't know the weather here, sorry.",
        "Less than 5 < 6, yes.",
    ] {
        assert!(!shows_prompt(said), "{said}");
    }
}

#[test]
fn the_prompt_says_what_the_model_cannot_know() {
    let prompt = system_prompt(&default_profile());
    for fact in [
        "weather",
        "time",
        "news",
        "where the car is",
        "who made you",
    ] {
        assert!(prompt.contains(fact), "{fact}");
    }
}

#[test]
fn a_question_may_get_a_read_a_route_or_words_but_no_other_action() {
    let p = default_profile();
    let brain = Brain::new(&p, LlmWorker::down("test"), None);
    // Without a shortlist every tool is offered; for a question only reads and text slots.
    let (choice, offered) = brain.tool_choice("why is the sky blue", None);
    let offered = offered.unwrap();
    assert_eq!(choice["allowed_tools"]["mode"], "auto");
    for tool in [
        "info-range",
        "info-tyre_pressure_wheel",
        "navigation-navigate_to",
        "phone-call",
    ] {
        assert!(offered.contains(&tool.to_string()), "{offered:?}");
    }
    for tool in ["lights-ambient_colour", "media-play", "windows-open"] {
        assert!(!offered.contains(&tool.to_string()), "{offered:?}");
    }
    // Suggestions and polite requests are not questions.
    for request in [
        "how about some music",
        "could you play some music",
        "do you mind opening my window",
    ] {
        assert_eq!(
            brain.tool_choice(request, None),
            (json!("auto"), None),
            "{request}"
        );
    }
    // The closest intents, less the actions: required stays required; none left is words only.
    let closest = |names: &[&str], mode: &str| {
        let tools: Vec<Value> = names
            .iter()
            .map(|n| json!({"type": "function", "function": {"name": n}}))
            .collect();
        (
            json!({"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": tools}}),
            Some(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()),
        )
    };
    let (choice, offered) = closest(&["lights-brighter", "lights-cabin_on"], "required");
    assert_eq!(
        brain.for_a_question(choice, offered),
        (json!("none"), Some(vec![]))
    );
    let (choice, offered) = closest(&["media-play", "navigation-navigate_to"], "required");
    assert_eq!(
        brain.for_a_question(choice, offered),
        closest(&["navigation-navigate_to"], "required")
    );
}

#[test]
fn words_the_classifier_leans_to_take_for_talk_get_no_action_but_a_read_or_a_route() {
    use crate::understand::shortlist::{Classified, Ranking};
    let p = default_profile();
    let brain = Brain::new(&p, LlmWorker::down("test"), None);
    let leaning = |intent: Option<&str>| Ranking {
        intents: vec![("climate.on".into(), 0.4)],
        classified: Classified {
            intent: intent.map(str::to_string),
            probability: 0.3,
            no_command: 0.0,
            answer: None,
        },
    };
    let text = "switch on the dishwasher at home";
    let (_, offered) = brain.tool_choice(text, Some(&leaning(None)));
    let offered = offered.unwrap();
    assert!(!offered.contains(&"climate-on".to_string()), "{offered:?}");
    assert!(offered.contains(&"info-range".to_string()), "{offered:?}");
    assert!(offered.contains(&"navigation-navigate_to".to_string()));
    // Leaning to a command, however unsure, keeps every action open.
    assert_eq!(
        brain.tool_choice(text, Some(&leaning(Some("climate.on")))),
        (json!("auto"), None)
    );
}

#[test]
fn the_answer_bank_answers_only_what_both_small_models_are_sure_of() {
    use crate::understand::shortlist::{Classified, Ranking};
    let p = default_profile();
    let brain = Brain::new(&p, LlmWorker::down("test"), None);
    let ranked = |probability: f32, answer: f32| Ranking {
        intents: vec![("climate.on".into(), 0.4)],
        classified: Classified {
            intent: None,
            probability,
            no_command: probability,
            answer: Some(("identity".into(), answer)),
        },
    };
    let text = "who might you be";
    assert_eq!(
        brain.classified(text, &ranked(0.9, 0.9)),
        Some(Thought::Talk {
            name: "identity".into()
        })
    );
    // Unsure of the answer, or unsure it is no command: the local model is asked.
    assert_eq!(brain.classified(text, &ranked(0.9, 0.2)), None);
    assert_eq!(brain.classified(text, &ranked(0.2, 0.9)), None);
}

#[test]
fn below_confident_the_classifier_decides_only_where_the_closest_sentence_agrees() {
    use crate::understand::shortlist::{Classified, Ranking};
    let mut p = default_profile();
    p.classifier.confident = 0.6;
    let ranked = |probability: f32, closest: &str| Ranking {
        intents: vec![(closest.into(), 0.9), ("lights.dimmer".into(), 0.8)],
        classified: Classified {
            intent: Some("lights.dimmer".into()),
            probability,
            no_command: 0.0,
            answer: None,
        },
    };
    let text = "the lights a little less";
    let dimmer = Some(Thought::Intent {
        route: Route::Classifier,
        intent: "lights.dimmer".into(),
        args: serde_json::Map::new(),
        rules: Vec::new(),
    });
    // Without `agreed`, it is `confident`.
    let brain = Brain::new(&p, LlmWorker::down("test"), None);
    assert_eq!(brain.classified(text, &ranked(0.35, "lights.dimmer")), None);
    assert_eq!(
        brain.classified(text, &ranked(0.6, "lights.brighter")),
        dimmer
    );

    p.classifier.agreed = 0.3;
    let brain = Brain::new(&p, LlmWorker::down("test"), None);
    assert_eq!(
        brain.classified(text, &ranked(0.35, "lights.dimmer")),
        dimmer
    );
    // The closest sentence is another intent's, or the classifier is too unsure.
    assert_eq!(
        brain.classified(text, &ranked(0.35, "lights.brighter")),
        None
    );
    assert_eq!(brain.classified(text, &ranked(0.25, "lights.dimmer")), None);
    // Likely to be no command as well.
    let mut unsure = ranked(0.35, "lights.dimmer");
    unsure.classified.no_command = 0.2;
    assert_eq!(brain.classified(text, &unsure), None);
    // A question is taken as a command only by the sure classifier.
    let question = "why are the lights so dim";
    assert_eq!(
        brain.classified(question, &ranked(0.35, "lights.dimmer")),
        None
    );
}

#[test]
fn questions_are_told_from_requests_by_their_first_words() {
    use crate::understand::brain::guards::asks_a_question;
    let english = crate::text::Lexicon::english();
    for q in [
        "why is the sky blue",
        "What's the speed of light?",
        "do you like music",
        "how far away is the moon",
        "does it rain",
    ] {
        assert!(asks_a_question(q, &english.questions), "{q}");
    }
    for r in [
        "turn on the lights",
        "how about some music",
        "what about the radio",
        "do you mind turning it down",
        "play something",
        "",
    ] {
        assert!(!asks_a_question(r, &english.questions), "{r}");
    }
}

/// Heard aloud, "please tell me to take my umbrella because it will be very hot today" became
/// 告诉我…今天很冷 ("tell me … today is very cold"), and the agreeing small models warmed the
/// climate. Asking to be told is a question in these lexicons.
#[test]
fn a_request_to_be_told_is_a_question_in_mandarin_and_indonesian() {
    use crate::understand::brain::guards::asks_a_question;
    let zh = crate::text::Lexicon::shipped("zh-CN").unwrap();
    assert!(asks_a_question(
        "告诉我待上我的散音位今天很冷",
        &zh.questions
    ));
    assert!(!asks_a_question("车里太冷了", &zh.questions));
    let id = crate::text::Lexicon::shipped("id").unwrap();
    assert!(asks_a_question(
        "beri tahu saya untuk membawa payung",
        &id.questions
    ));
    assert!(!asks_a_question("nyalakan pemanas", &id.questions));
}
