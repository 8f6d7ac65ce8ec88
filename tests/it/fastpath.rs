//! The grammar fast path over the default profile: reachability of every intent, slot typing,
//! number normalisation, and no matches on what it doesn't understand.

use cabin::profile::sentences::example_sentences;
use cabin::profile::{Profile, SlotValue};
use cabin::understand::grammar::Matcher;

fn setup() -> (Profile, Matcher) {
    let p = Profile::embedded_default();
    let m = Matcher::new(&p);
    (p, m)
}

#[test]
fn every_sentence_of_every_intent_reaches_its_intent() {
    let (p, m) = setup();
    let mut wrong = Vec::new();
    let examples = example_sentences(&p);
    let checked = examples.len();
    for (i, sentence) in &examples {
        let intent = &p.intents[*i];
        match m.match_text(sentence) {
            Some(hit) if hit.intent == *i => {}
            Some(hit) => wrong.push(format!(
                "{sentence:?} → {} (wanted {})",
                p.intents[hit.intent].name, intent.name
            )),
            None => wrong.push(format!("{sentence:?} → no match (wanted {})", intent.name)),
        }
    }
    // Every intent is among them.
    for (i, intent) in p.intents.iter().enumerate() {
        assert!(
            examples.iter().any(|(j, _)| *j == i),
            "{} has no sentence",
            intent.name
        );
    }
    assert!(checked >= 1000, "{checked}");
    assert!(
        wrong.is_empty(),
        "{} of {checked} sentences went wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

fn slots_of(m: &Matcher, p: &Profile, text: &str) -> (String, Vec<(String, SlotValue)>) {
    let hit = m
        .match_text(text)
        .unwrap_or_else(|| panic!("no match for {text:?}"));
    (p.intents[hit.intent].name.clone(), hit.slots)
}

fn enum_value(key: &str, spoken: &str) -> SlotValue {
    SlotValue::Enum {
        key: key.into(),
        spoken: spoken.into(),
    }
}

#[test]
fn spoken_commands_give_typed_slots() {
    let (p, m) = setup();
    let (intent, slots) = slots_of(
        &m,
        &p,
        "Set the temperature to twenty one and a half degrees on the passenger side.",
    );
    assert_eq!(intent, "climate.set_temperature");
    assert!(slots.contains(&("temperature".into(), SlotValue::Number(21.5))));
    assert!(slots.contains(&("zone".into(), enum_value("passenger", "passenger"))));

    let (intent, slots) = slots_of(&m, &p, "make it 19 degrees for the passenger");
    assert_eq!(intent, "climate.set_temperature");
    assert!(slots.contains(&("temperature".into(), SlotValue::Number(19.0))));

    let (intent, slots) = slots_of(&m, &p, "open the rear-left window to seventy percent");
    assert_eq!(intent, "windows.set_position");
    assert!(slots.contains(&("percent".into(), SlotValue::Number(70.0))));
    assert!(slots.contains(&("window".into(), enum_value("rear_left", "rear left"))));

    let (intent, slots) = slots_of(&m, &p, "tune the radio to ninety eight point five");
    assert_eq!(intent, "media.tune_radio");
    assert_eq!(slots, vec![("frequency".into(), SlotValue::Number(98.5))]);

    let (intent, slots) = slots_of(&m, &p, "Navigate to Munich Central Station, please");
    assert_eq!(intent, "navigation.navigate_to");
    assert_eq!(
        slots,
        vec![(
            "place".into(),
            SlotValue::Text("Munich Central Station".into())
        )]
    );

    let (intent, _) = slots_of(&m, &p, "Hey Cabin, could you turn on the A/C");
    assert_eq!(intent, "climate.ac_on");
}

/// What people say in a car (classes of phrasing from real requests: generic "the lights",
/// brightness, mute apart from lowering, radio by name or kind, polite wrappers and the names
/// of other assistants) reaches the intent that does it.
#[test]
fn what_people_say_in_a_car_reaches_its_intent() {
    let (p, m) = setup();
    let small_talk = Matcher::small_talk(&p);
    let cases = [
        ("turn off the lights", "lights.cabin_off"),
        ("switch the lamp on", "lights.cabin_on"),
        ("lights out", "lights.cabin_off"),
        ("could you brighten the lights for me", "lights.brighter"),
        ("increase the brightness", "lights.brighter"),
        ("dim the interior lights please", "lights.dimmer"),
        ("turn the lights down", "lights.dimmer"),
        ("mute the speakers", "media.mute"),
        ("silence the radio", "media.mute"),
        ("turn the volume down a bit", "media.volume_down"),
        ("lower the sound", "media.volume_down"),
        ("speak louder", "media.volume_up"),
        ("increase the volume", "media.volume_up"),
        ("put the radio on", "media.radio_on"),
        ("radio on", "media.radio_on"),
        ("alexa, turn the music up", "media.volume_up"),
        ("hey google can you mute the sound please", "media.mute"),
        (
            "olly could you switch off the light for me",
            "lights.cabin_off",
        ),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(text, want)| {
            let got = m.match_text(text).map(|h| p.intents[h.intent].name.clone());
            (got.as_deref() != Some(*want)).then(|| format!("{text:?} → {got:?}, wanted {want}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    let (intent, slots) = slots_of(&m, &p, "set the lights to level three");
    assert_eq!(intent, "lights.set_brightness");
    assert_eq!(slots, vec![("level".into(), SlotValue::Number(3.0))]);
    let (intent, slots) = slots_of(&m, &p, "play a rock station");
    assert_eq!(intent, "media.play_station");
    assert_eq!(
        slots,
        vec![("station".into(), enum_value("rock_fm", "rock fm"))]
    );
    let (intent, slots) = slots_of(&m, &p, "play bbc radio four please");
    assert_eq!(intent, "media.play_station");
    assert_eq!(
        slots,
        vec![("station".into(), enum_value("radio_four", "radio four"))]
    );

    // Said to Cabin itself: it goes quiet, and says nothing back.
    for text in [
        "be quiet",
        "stop talking",
        "please don't speak",
        "go away cabin",
        "never mind",
    ] {
        let hit = small_talk
            .match_text(text)
            .unwrap_or_else(|| panic!("{text}"));
        let talk = &p.small_talk[hit.intent];
        assert_eq!(talk.name, "be_quiet", "{text}");
        assert_eq!(talk.reply, "", "{text}");
        assert!(m.match_text(text).is_none(), "{text} is no vehicle command");
    }
}

/// A station's frequency in every way it is said: with its point, digit by digit, "oh" for
/// zero, or as a whole number without its point.
#[test]
fn radio_frequencies_are_read_in_every_spoken_form() {
    let (p, m) = setup();
    for (text, mhz) in [
        ("tune to ninety three point seven", 93.7),
        ("radio one oh one point one", 101.1),
        ("tune to nine three seven", 93.7),
        ("tune to one hundred and four point three", 104.3),
        ("play nine hundred and seventy one", 97.1),
        ("tune into eighty eight point two fm", 88.2),
        ("put on 105.4 fm", 105.4),
        ("play station one oh two point two", 102.2),
        // Said with the station, the channel or the dial around it.
        ("switch to the station at ninety seven point one", 97.1),
        ("find one oh four point three on the dial", 104.3),
        ("radio channel eighty nine point five please", 89.5),
    ] {
        let (intent, slots) = slots_of(&m, &p, text);
        assert_eq!(intent, "media.tune_radio", "{text}");
        assert_eq!(
            slots,
            vec![("frequency".into(), SlotValue::Number(mhz))],
            "{text}"
        );
    }
    // No reading fits: the number as said, for the reply to give the range.
    let (_, slots) = slots_of(&m, &p, "tune to two hundred and fifty");
    assert_eq!(slots, vec![("frequency".into(), SlotValue::Number(250.0))]);
    // A decimal slot without `digits` reads numbers as they are.
    let (_, slots) = slots_of(&m, &p, "set the temperature to two hundred and ten");
    assert_eq!(
        slots,
        vec![("temperature".into(), SlotValue::Number(210.0))]
    );
}

#[test]
fn integer_slots_refuse_fractions() {
    let (_, m) = setup();
    assert!(m
        .match_text("set the fan speed to two and a half")
        .is_none());
}

#[test]
fn slot_values_are_found_anywhere_in_free_words() {
    let (_, m) = setup();
    assert_eq!(
        m.values_in("heat_level", "my seat heater on maximum, it's cold"),
        [enum_value("high", "high")]
    );
    assert_eq!(
        m.values_in("percent", "let the window down sixty or so"),
        [SlotValue::Number(60.0)]
    );
    assert!(m.values_in("heat_level", "warm my seat").is_empty());
    // A number with another type's unit is not this type's.
    assert!(m
        .values_in("percent", "open my window, it's thirty degrees out")
        .is_empty());
    assert_eq!(
        m.values_in("temperature", "open my window, it's thirty degrees out"),
        [SlotValue::Number(30.0)]
    );
    assert_eq!(
        m.values_in("percent", "my window down thirty percent"),
        [SlotValue::Number(30.0)]
    );
    // Any words would do for a text slot, so none are reported; nor for an unknown type.
    assert!(m.values_in("place", "take me to Munich").is_empty());
    assert!(m.values_in("no_such_type", "maximum").is_empty());
}

#[test]
fn chit_chat_and_questions_do_not_match() {
    let (p, m) = setup();
    let negatives = [
        "tell me a joke",
        "how are you today",
        "what's the weather like in Paris",
        "what time is it",
        "is it going to rain tomorrow",
        "who won the football last night",
        "I love this song",
        "thank you",
        "good morning",
        "what can you do",
        "call me maybe",
        "call it a day",
        "open the pod bay doors",
        "what's the temperature",
        "I can't see a thing, the windscreen is fogged",
        "tell me something fun about the place we're driving to",
        "play some jazz tomorrow with my friends",
        "what is the radio",
        "how bright is the sun",
        "be quiet about it",
        "set an alarm for seven",
        "remind me to buy milk",
        "how do I change a tyre",
        "why is the sky blue",
        "what is the capital of France",
        "navigate",
        "turn",
        "please",
        "hey cabin",
        "",
        "   ",
        "!!!",
        "the temperature is nice",
        "I want to go home later maybe",
        "could you call",
        "who is calling",
        "my window is dirty",
        "the music is too loud",
        "set",
        "volume",
        "twenty one",
        "what's my name",
    ];
    let hits: Vec<String> = negatives
        .iter()
        .filter_map(|n| {
            m.match_text(n)
                .map(|h| format!("{n:?} → {}", p.intents[h.intent].name))
        })
        .collect();
    assert!(hits.is_empty(), "false positives:\n{}", hits.join("\n"));
}

#[test]
fn how_far_may_be_said_as_a_part() {
    let (p, m) = setup();
    for (text, percent) in [
        ("open my window halfway", 50.0),
        ("lower the rear left window a third", 33.0),
        ("put the driver window three quarters down", 75.0),
        ("open the passenger window to 40 percent", 40.0),
    ] {
        let (intent, slots) = slots_of(&m, &p, text);
        assert_eq!(intent, "windows.set_position", "{text}");
        assert!(
            slots.contains(&("percent".into(), SlotValue::Number(percent))),
            "{text}: {slots:?}"
        );
    }
    // Parts are words of the percent type only: a fan level is no part.
    assert!(m.match_text("set the fan speed to half").is_none());
}

#[test]
fn a_programme_is_found_by_its_name() {
    let (p, m) = setup();
    for (text, name) in [
        ("put on the morning mix show", "morning mix"),
        (
            "play the latest episode of the history hour",
            "the history hour",
        ),
        ("listen to the podcast car talk", "car talk"),
    ] {
        let (intent, slots) = slots_of(&m, &p, text);
        assert_eq!(intent, "media.play_programme", "{text}");
        assert_eq!(
            slots,
            [("programme".into(), SlotValue::Text(name.into()))],
            "{text}"
        );
    }
    // A station by its name is the station's, not a programme's.
    assert_eq!(
        slots_of(&m, &p, "put on a talk show").0,
        "media.play_station"
    );
}

#[test]
fn a_few_words_the_profile_does_not_know_do_not_defeat_the_grammar() {
    let (p, m) = setup();
    for (text, intent) in [
        ("switch the porch light off", "lights.cabin_off"),
        ("could you dim the bedroom lights", "lights.dimmer"),
        ("turn my reading lamp on please", "lights.cabin_on"),
        ("turn the tv volume up", "media.volume_up"),
        ("roll down the tiny window", "windows.open"),
    ] {
        let hit = m
            .match_text(text)
            .map(|h| p.intents[h.intent].name.as_str());
        assert_eq!(hit, Some(intent), "{text}");
    }
    // Too much the profile has no word for, or nothing it knows left to match.
    for text in [
        "turn on the robot vacuum cleaner",
        "open the garage door",
        "switch on the coffee machine",
        "turn off the oven",
        "turn on the lights in my house",
        "lamp",
        "turn the purple flashing disco lights on",
    ] {
        assert!(m.match_text(text).is_none(), "{text}");
    }
    // Regression (issue 40): another form of a word the profile knows names that thing, and is
    // not dropped as a word about something else. "Turn on the seat heating", said over Cabin's
    // own voice and heard as "turn on the seats heating", switched the climate control on.
    for text in ["turn on the seats heating", "switch the heated seats on"] {
        let hit = m.match_text(text).map(|h| p.intents[h.intent].name.clone());
        assert_eq!(hit, None, "{text}");
    }
}

#[test]
fn free_text_does_not_swallow_whole_sentences() {
    let (_, m) = setup();
    // Longer than the slot's max_words.
    assert!(m
        .match_text("navigate to the little bakery on the corner of main street")
        .is_none());
}

/// Arbitrary text never panics the tokenizer, the matcher or the slot-value parser
/// (a deterministic pseudo-random sweep over awkward characters and number words).
/// The texts of a labelled set under `eval/`.
fn eval_texts(name: &str) -> Vec<(String, Option<String>)> {
    let path = format!("{}/eval/{name}", env!("CARGO_MANIFEST_DIR"));
    let set = std::fs::read_to_string(&path).unwrap();
    set.lines()
        .filter(|l| !l.starts_with("//"))
        .map(|line| {
            let case: serde_json::Value = serde_json::from_str(line).unwrap();
            let intent = case["intent"].as_str().map(str::to_string);
            (case["text"].as_str().unwrap().to_string(), intent)
        })
        .collect()
}

/// The labelled sets (`eval/router.jsonl`, and `eval/dev.jsonl` that thresholds are chosen on)
/// were written beyond the fast path. As the grammar grows to what people say it takes a few;
/// those it must get right, and it must never take one that asks for no action. And they share
/// no sentence, so router.jsonl stays held out.
#[test]
fn the_eval_sets_are_right_on_the_fast_path_and_apart() {
    let (p, m) = setup();
    let small_talk = Matcher::small_talk(&p);
    let router = eval_texts("router.jsonl");
    let dev = eval_texts("dev.jsonl");
    for (text, intent) in router.iter().chain(&dev) {
        if let Some(hit) = m.match_text(text) {
            assert_eq!(
                Some(&p.intents[hit.intent].name),
                intent.as_ref(),
                "the fast path takes {text:?}"
            );
        }
        assert!(
            small_talk.match_text(text).is_none(),
            "small talk matches {text:?}"
        );
        if let Some(intent) = intent {
            assert!(p.intents.iter().any(|i| &i.name == intent), "{intent}");
        }
    }
    // Nor near twins: a rule chosen on "no more air conditioning" would be measured on "no more
    // air conditioning please" (26 such pairs were found and rewritten).
    let router_words: Vec<_> = router.iter().map(|(r, _)| (r, content_words(r))).collect();
    for (text, _) in &dev {
        let a = content_words(text);
        for (r, b) in &router_words {
            let shared = a.intersection(b).count() as f64;
            assert!(
                shared / (a.union(b).count().max(1) as f64) < 0.5,
                "{text:?} (eval/dev.jsonl) is too like {r:?} (eval/router.jsonl)"
            );
        }
    }
    assert!(
        router.len() >= 200,
        "the issue asks for at least 200 cases, there are {}",
        router.len()
    );
}

/// The words of `text` that carry its meaning: lower case, apostrophes dropped, without the
/// small words every request has.
fn content_words(text: &str) -> std::collections::BTreeSet<String> {
    const SMALL: &[&str] = &[
        "the", "a", "an", "my", "it", "its", "please", "in", "to", "up", "down", "is", "i", "me",
        "on", "of", "this", "can", "you", "and", "for", "at", "be", "we", "some", "now", "could",
        "would",
    ];
    text.to_lowercase()
        .replace('\'', "")
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty() && !SMALL.contains(w))
        .map(str::to_string)
        .collect()
}

/// The small intent model's training sentences (intents' examples and the negatives) are kept
/// apart from the labelled sets, like the sets from each other: a model trained on "pump up the
/// volume" would be measured on "pump up the volume" (the first draft had 13 such copies).
#[test]
fn the_classifiers_sentences_are_apart_from_the_eval_sets() {
    let p = Profile::embedded_default();
    let eval: Vec<(String, std::collections::BTreeSet<String>)> = eval_texts("router.jsonl")
        .into_iter()
        .chain(eval_texts("dev.jsonl"))
        .map(|(t, _)| {
            let w = content_words(&t);
            (t, w)
        })
        .collect();
    let training = p
        .intents
        .iter()
        .flat_map(|i| &i.examples)
        .chain(&p.classifier.negatives);
    let mut near = Vec::new();
    for sentence in training {
        let a = content_words(sentence);
        for (text, b) in &eval {
            let shared = a.intersection(b).count() as f64;
            if shared / (a.union(b).count().max(1) as f64) >= 0.5 {
                near.push(format!("{sentence:?} is too like {text:?}"));
            }
        }
    }
    assert!(near.is_empty(), "{}", near.join("\n"));
}

#[test]
fn only_a_whole_command_ends_the_turn_early() {
    let (_, m) = setup();
    for whole in [
        "Turn on the seat heating.",
        "Set the temperature to 21 degrees.",
        "could you open the windows please",
        "Mute.",
    ] {
        assert!(m.is_whole_command(whole), "{whole}");
    }
    for part in [
        // A pause before the value.
        "Set the temperature to",
        // More to come.
        "Open the window and",
        "Turn on the",
        // A free-text slot may go on after a pause ("… central station").
        "Navigate to Munich",
        // Not commands.
        "What's the weather like?",
        "",
    ] {
        assert!(!m.is_whole_command(part), "{part}");
    }
}

/// Regression (#37): "make it really cold, minus 10" warmed the car and "i am a bit chilly"
/// cooled it (the small intent model). A target said with a plain adjective ("make it cold") and
/// a hedged feeling ("i am a bit chilly") are frames of the profile's own templates, so the
/// grammar reads them, and the small intent model learns them apart.
#[test]
fn a_target_and_a_feeling_go_opposite_ways() {
    let (p, m) = setup();
    for (text, intent) in [
        ("make it really cold", "climate.cooler"),
        ("get it nice and cool in here", "climate.cooler"),
        ("make it warm", "climate.warmer"),
        ("i am a bit chilly", "climate.warmer"),
        ("im getting cold", "climate.warmer"),
        ("its a little chilly in here", "climate.warmer"),
        ("i am a bit warm", "climate.cooler"),
        // A feeling said by its degree: the classifier once took "freezing" for a target.
        ("it's freezing in here", "climate.warmer"),
        ("im boiling", "climate.cooler"),
    ] {
        assert_eq!(slots_of(&m, &p, text).0, intent, "{text}");
    }
}
