//! The rules over the model routes' proposals, each on the words it reads.

use super::super::{direction, Brain};
use crate::profile::{Profile, Rule};
use crate::runtime::worker::LlmWorker;
use crate::understand::brain::Thought;
use crate::understand::grammar::Matcher;
use crate::understand::turn::Route;
use serde_json::{json, Value};
use std::collections::BTreeSet;

fn default_profile() -> Profile {
    Profile::load_or_default(None).unwrap()
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
fn a_pick_of_one_of_two_opposites_follows_the_direction_the_words_say() {
    let p = default_profile();
    let d = direction::Directions::new(&p, &Matcher::new(&p));
    // Words of direction, not of one pair's topic or phrasing.
    assert!(d.words_of("lights.cabin_off").contains(&"off"));
    assert!(d.words_of("lights.cabin_on").contains(&"on"));
    assert!(d.words_of("media.volume_down").contains(&"down"));
    assert!(d.words_of("windows.close").contains(&"up"));
    assert!(!d.words_of("climate.cooler").contains(&"warm"));
    assert!(!d.words_of("lights.brighter").contains(&"please"));
    for (text, picked, meant) in [
        (
            "turn off my desk lamp",
            "lights.cabin_on",
            "lights.cabin_off",
        ),
        (
            "bring the volume down a notch",
            "media.volume_up",
            "media.volume_down",
        ),
        ("roll it up", "windows.open", "windows.close"),
        // Nothing of the opposite's direction, or both directions said: the pick stands.
        ("warm up the car", "climate.warmer", "climate.warmer"),
        ("it's too warm", "climate.cooler", "climate.cooler"),
        ("lights on, not off", "lights.cabin_on", "lights.cabin_on"),
        ("open it up", "windows.open", "windows.open"),
        (
            "turn off my desk lamp",
            "navigation.go_home",
            "navigation.go_home",
        ),
        // A comparative is a direction whatever the topic.
        ("make the cabin darker", "lights.brighter", "lights.dimmer"),
        // Too much of what the pick gives: its opposite.
        (
            "the speakers are too loud",
            "media.volume_up",
            "media.volume_down",
        ),
        (
            "this lamp is too bright",
            "lights.brighter",
            "lights.dimmer",
        ),
        (
            "it is too dark back here",
            "lights.dimmer",
            "lights.brighter",
        ),
        ("far too quiet", "media.volume_down", "media.volume_up"),
        (
            "no more heat in the driver seat",
            "seats.heating_on",
            "seats.heating_off",
        ),
        ("no more lamps", "lights.cabin_off", "lights.cabin_off"),
        // "hot" is the cooler's own word, not a comparative of the warmer's.
        ("it's too hot in here", "climate.cooler", "climate.cooler"),
    ] {
        assert_eq!(d.of(text, picked, &BTreeSet::new()).0, meant, "{text}");
    }
    // Each direction rule is named where it fires, and a profile may leave it out.
    let too = BTreeSet::from([Rule::Too]);
    assert_eq!(
        d.of("far too quiet", "media.volume_down", &BTreeSet::new()),
        ("media.volume_up", Some(Rule::Too))
    );
    assert_eq!(
        d.of("far too quiet", "media.volume_down", &too),
        ("media.volume_down", None)
    );
    assert_eq!(
        d.of("no more lamps", "lights.cabin_on", &too),
        ("lights.cabin_off", Some(Rule::NoMore))
    );
    // The local model's pick against the classifier's side of the pair: the classifier's,
    // unless the words say the pick's own words or a direction.
    for (text, picked, classified, meant) in [
        (
            "the side glass is fogged",
            "climate.defrost_off",
            Some("climate.defrost_on"),
            "climate.defrost_on",
        ),
        (
            "turn the heat down a bit",
            "climate.cooler",
            Some("climate.warmer"),
            "climate.cooler",
        ),
        (
            "open the back left window",
            "windows.open",
            Some("windows.close"),
            "windows.open",
        ),
        (
            "the side glass is fogged",
            "climate.defrost_off",
            None,
            "climate.defrost_off",
        ),
        (
            "the side glass is fogged",
            "climate.defrost_off",
            Some("windows.close"),
            "climate.defrost_off",
        ),
    ] {
        assert_eq!(d.sided(text, picked, classified), meant, "{text}");
    }
    // The local model's call is turned the same way.
    let brain = Brain::new(&p, LlmWorker::down("test"), None);
    assert!(matches!(
        brain.intent(Route::LocalLlm, "lights-cabin_on", "{}", "switch the reading light off", None),
        Thought::Intent { intent, .. } if intent == "lights.cabin_off"
    ));
}

/// The local model's call holds what the words say: their values, the plainer intent where
/// they say nothing only its refinement takes, no window or source nobody named (a question
/// asks for it), and no call at all where the value it turns on is the model's guess.
#[test]
fn a_call_of_the_local_model_is_read_against_the_words() {
    let p = default_profile();
    let brain = Brain::new(&p, LlmWorker::down("test"), None);
    let call = |tool: &str, args: &str, text: &str| match brain.intent(
        Route::LocalLlm,
        tool,
        args,
        text,
        None,
    ) {
        Thought::Intent { intent, args, .. } => (intent, Value::Object(args)),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        call(
            "climate-set_temperature",
            r#"{"temperature": 22, "zone": "passenger"}"#,
            "twenty degrees for the passenger please"
        ),
        (
            "climate.set_temperature".into(),
            json!({"temperature": 20.0, "zone": "passenger"})
        )
    );
    assert_eq!(
        call(
            "windows-set_position",
            r#"{"percent": 50, "window": "rear_right"}"#,
            "wind the rear right window down"
        ),
        ("windows.open".into(), json!({"window": "rear_right"}))
    );
    assert_eq!(
        call(
            "windows-open",
            r#"{"window": "all"}"#,
            "open the back left window for the dog"
        ),
        ("windows.open".into(), json!({"window": "rear_left"}))
    );
    // A window nobody named is left for "Which window?".
    assert_eq!(
        call("windows-open", r#"{"window": "driver"}"#, "let some air in"),
        ("windows.open".into(), json!({}))
    );
    // A zone nobody named is the intent's default's, not the model's pick.
    assert_eq!(
        call(
            "climate-warmer",
            r#"{"zone": "rear_left"}"#,
            "it's freezing in here"
        ),
        ("climate.warmer".into(), json!({}))
    );
    // Said, the refinement stands.
    assert_eq!(
        call(
            "windows-set_position",
            r#"{"percent": 50, "window": "driver"}"#,
            "put my window halfway"
        )
        .0,
        "windows.set_position"
    );

    // "mobile": a source nobody said is left for "Which source?".
    assert_eq!(
        call("media-source", r#"{"source": "bluetooth"}"#, "mobile"),
        ("media.source".into(), json!({}))
    );
    let station = r#"{"station": "jazz_fm"}"#;
    assert_eq!(
        brain.invented("some cool jokes", "media-play_station", station),
        Some("station".into())
    );
    assert_eq!(
        brain.invented("put some jazz on", "media-play_station", station),
        None
    );
    // A zone has a default, a window a question: neither is made up.
    assert_eq!(
        brain.invented(
            "make it warmer",
            "climate-warmer",
            r#"{"zone": "passenger"}"#
        ),
        None
    );
}

/// The thought names the rules that changed the model's call, in the order they ran; a profile
/// that leaves a rule out gets the call without it, and an unknown rule is refused by name.
#[test]
fn each_rule_that_changes_a_call_is_named_and_a_profile_may_leave_it_out() {
    let p = default_profile();
    let rules_of = |p: &Profile, tool: &str, args: &str, text: &str| {
        let brain = Brain::new(p, LlmWorker::down("test"), None);
        match brain.intent(Route::LocalLlm, tool, args, text, None) {
            Thought::Intent {
                intent,
                args,
                rules,
                ..
            } => (intent, Value::Object(args), rules),
            other => panic!("{other:?}"),
        }
    };
    let set = r#"{"percent": 50, "window": "driver"}"#;
    let wind_down = "wind the rear right window down";
    assert_eq!(
        rules_of(&p, "windows-set_position", set, wind_down),
        (
            "windows.open".into(),
            json!({"window": "rear_right"}),
            // The plain intents are closing and opening; with no ranking the first by name,
            // turned by "down".
            vec![Rule::Plain, Rule::OppositeWords, Rule::SaidValues]
        )
    );
    let twenty = r#"{"temperature": 22, "zone": "passenger"}"#;
    let passenger = "twenty degrees for the passenger please";
    assert_eq!(
        rules_of(&p, "climate-set_temperature", twenty, passenger).2,
        vec![Rule::SaidValues]
    );
    // The words' own values agree with the model's: nothing changed, no rule named.
    let agreed = r#"{"temperature": 20, "zone": "passenger"}"#;
    assert_eq!(
        rules_of(&p, "climate-set_temperature", agreed, passenger).2,
        vec![]
    );

    let without = |off: &str| {
        let text = include_str!("../../../../../profiles/default.toml");
        Profile::parse(&format!("{text}\n[rules]\noff = [{off}]\n"), "x.toml")
    };
    let p = without(r#""plain", "said_values""#).unwrap();
    assert_eq!(p.rules_off, BTreeSet::from([Rule::Plain, Rule::SaidValues]));
    assert_eq!(
        rules_of(&p, "windows-set_position", set, wind_down),
        ("windows.set_position".into(), set_args(set), vec![])
    );
    let refused = without(r#""sided""#).unwrap_err().to_string();
    assert!(
        refused.contains("sided") && refused.contains("classifier_side"),
        "{refused}"
    );
}

fn set_args(args: &str) -> Value {
    serde_json::from_str(args).unwrap()
}
