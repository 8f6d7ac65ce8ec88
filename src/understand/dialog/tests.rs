//! Dialog logic without a vehicle: the bus is unreachable, so actions fail with a spoken reply
//! while everything before them (slots, questions, confirmations, policy) is observable.

use super::*;
use crate::runtime::bus::BusAddress;
use std::time::Duration;

/// The English profile's own replies.
pub(super) static REPLIES: std::sync::LazyLock<crate::text::lexicon::Replies> =
    std::sync::LazyLock::new(|| crate::text::Lexicon::english().replies.clone());

pub(super) fn assistant() -> Assistant {
    assistant_of(Profile::embedded_default())
}

fn assistant_of(profile: Profile) -> Assistant {
    let bus = BusAddress::Address("unix:path=/nonexistent/cabin-test-bus".into());
    Assistant::new(
        Arc::new(profile),
        VehicleBus::new(bus, Duration::from_millis(200)),
    )
}

pub(super) async fn say(a: &Assistant, text: &str, zone: Option<&str>, ctx: Context) -> Turn {
    a.turn(text, zone, Hearing::Sure, ctx, |_| {}).await
}

fn slot(t: &Turn, name: &str) -> serde_json::Value {
    t.outcome
        .slots
        .get(name)
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

#[tokio::test]
async fn out_of_range_numbers_are_explained_not_clamped() {
    let t = say(
        &assistant(),
        "set the temperature to forty degrees",
        None,
        Context::default(),
    )
    .await;
    assert_eq!(t.outcome.intent.as_deref(), Some("climate.set_temperature"));
    assert_eq!(
        t.outcome.reply,
        "I can only set the temperature between 16 and 28 degrees."
    );
    assert!(t.outcome.action.is_none());
}

#[tokio::test]
async fn unreachable_bus_gives_a_spoken_failure_not_an_error() {
    let t = say(
        &assistant(),
        "turn on the air conditioning",
        None,
        Context::default(),
    )
    .await;
    assert_eq!(t.outcome.route, Route::Fast);
    assert_eq!(
        t.outcome.reply,
        "Sorry, I couldn't reach the climate control."
    );
    let action = t.outcome.action.unwrap();
    assert!(!action.success);
    assert!(
        action.detail.contains("vehicle bus unavailable"),
        "{}",
        action.detail
    );
}

#[tokio::test]
async fn declines_politely() {
    let t = say(&assistant(), "tell me a joke", None, Context::default()).await;
    assert_eq!(t.outcome.route, Route::Decline);
    assert_eq!(t.outcome.reply, REPLIES.decline);
    assert!(t.outcome.intent.is_none() && t.outcome.action.is_none() && !t.follow_up);
}

#[tokio::test]
async fn a_missing_slot_is_asked_for_and_the_answer_fills_it() {
    let a = assistant();
    let t = say(&a, "close the window", None, Context::default()).await;
    assert_eq!(t.outcome.reply, "Which window?");
    assert_eq!(t.outcome.awaiting.as_deref(), Some("slot:window"));
    assert!(t.follow_up && t.outcome.action.is_none());

    let t = say(&a, "the rear left one", None, t.context).await;
    assert_eq!(t.outcome.intent.as_deref(), Some("windows.close"));
    assert_eq!(slot(&t, "window"), "rear_left");
    assert!(t.outcome.action.is_some(), "the answer runs the intent");
}

#[tokio::test]
async fn clarification_gives_up_after_the_profile_limit() {
    let a = assistant();
    let t = say(&a, "close the window", None, Context::default()).await;
    let t = say(&a, "banana", None, t.context).await;
    assert_eq!(t.outcome.reply, "Sorry, which window?");
    assert!(t.follow_up);
    let t = say(&a, "banana", None, t.context).await;
    assert_eq!(t.outcome.reply, REPLIES.give_up);
    assert!(!t.follow_up && t.context.pending.is_none());
}

#[tokio::test]
async fn a_new_command_instead_of_an_answer_is_handled_as_such() {
    let a = assistant();
    let t = say(&a, "open the window", None, Context::default()).await;
    let t = say(&a, "pause the music", None, t.context).await;
    assert_eq!(t.outcome.intent.as_deref(), Some("media.pause"));
}

#[tokio::test]
async fn the_speakers_zone_resolves_my_and_missing_zones() {
    let a = assistant();
    let t = say(&a, "open my window", Some("rear_left"), Context::default()).await;
    assert_eq!(slot(&t, "window"), "rear_left");
    let t = say(&a, "open the window", Some("passenger"), Context::default()).await;
    assert_eq!(
        slot(&t, "window"),
        "passenger",
        "one seat's window, not a question"
    );
    let t = say(&a, "i'm cold", Some("rear_right"), Context::default()).await;
    assert_eq!(t.outcome.intent.as_deref(), Some("climate.warmer"));
    assert_eq!(slot(&t, "zone"), "rear_right");
    // "my" with no known seat: ask.
    let t = say(&a, "open my window", None, Context::default()).await;
    assert_eq!(t.outcome.reply, "Which window?");
}

#[tokio::test]
async fn relative_follow_ups_use_the_dialog_context() {
    let a = assistant();
    let t = say(
        &a,
        "make it 19 degrees for the passenger",
        None,
        Context::default(),
    )
    .await;
    assert!(t.follow_up);
    let t = say(&a, "a bit warmer", None, t.context).await;
    assert_eq!(t.outcome.intent.as_deref(), Some("climate.warmer"));
    assert_eq!(slot(&t, "zone"), "passenger", "the zone carries over");

    let t = say(
        &a,
        "set the temperature to twenty two on the passenger side",
        None,
        Context::default(),
    )
    .await;
    let t = say(&a, "and the driver side too", None, t.context).await;
    assert_eq!(t.outcome.intent.as_deref(), Some("climate.set_temperature"));
    assert_eq!(slot(&t, "zone"), "driver");
    assert_eq!(slot(&t, "temperature"), 22.0);
    let t = say(&a, "twenty four", None, t.context).await;
    assert_eq!(slot(&t, "temperature"), 24.0);
    assert_eq!(slot(&t, "zone"), "driver");

    // Without a session, the same words are a bare value: what it is for is asked.
    let t = say(&a, "and the driver side too", None, Context::default()).await;
    assert_eq!(t.outcome.reply, "What would you like for the driver?");
    assert!(t.outcome.intent.is_none() && t.outcome.action.is_none());
}

#[tokio::test]
async fn free_text_slots_never_take_a_follow_up() {
    let a = assistant();
    let t = say(&a, "navigate to Munich", None, Context::default()).await;
    let t = say(&a, "sounds good", None, t.context).await;
    assert_eq!(t.outcome.route, Route::Decline);
}

#[tokio::test]
async fn confirmation_yes_no_and_something_else() {
    let a = assistant();
    let t = say(&a, "call Mum", None, Context::default()).await;
    assert_eq!(t.outcome.reply, "Call Mum?");
    assert_eq!(t.outcome.awaiting.as_deref(), Some("confirmation"));
    assert!(t.outcome.action.is_none() && t.follow_up);

    let no = say(&a, "no thanks", None, t.context.clone()).await;
    assert_eq!(no.outcome.reply, REPLIES.confirm_cancelled);
    assert!(no.outcome.action.is_none() && !no.follow_up);

    let yes = say(&a, "yes please", None, t.context.clone()).await;
    assert_eq!(yes.outcome.intent.as_deref(), Some("phone.call"));
    assert!(yes.outcome.action.is_some(), "yes runs the call");

    let other = say(&a, "pause", None, t.context).await;
    assert_eq!(other.outcome.intent.as_deref(), Some("media.pause"));
    assert!(other.context.pending.is_none());
}

#[tokio::test]
async fn unknown_vehicle_state_refuses_constrained_intents() {
    let t = say(&assistant(), "open the boot", None, Context::default()).await;
    assert_eq!(
        t.outcome.reply,
        "I can only open the boot when the car is in park."
    );
    assert_eq!(t.outcome.refused.as_deref(), Some("gear unknown"));
    assert!(t.outcome.action.is_none());
}

#[tokio::test]
async fn model_proposals_are_validated_like_matches() {
    let a = &assistant();
    let proposal = |intent: &str, args: serde_json::Value| Proposal {
        route: Route::LocalLlm,
        intent: intent.into(),
        args: args.as_object().unwrap().clone(),
    };
    let propose =
        |p: Proposal| async move { a.propose("x", &p, None, Context::default(), |_| {}).await };

    let t = propose(proposal(
        "org.freedesktop.login1.PowerOff",
        serde_json::json!({}),
    ))
    .await;
    assert_eq!(t.outcome.route, Route::Decline);
    assert!(t.outcome.action.is_none());
    let t = propose(proposal(
        "climate.set_temperature",
        serde_json::json!({"temperature": 21, "zone": "roof"}),
    ))
    .await;
    assert_eq!(t.outcome.route, Route::Decline);
    let t = propose(proposal(
        "climate.set_fan_speed",
        serde_json::json!({"fan_level": 2.5}),
    ))
    .await;
    assert_eq!(
        t.outcome.route,
        Route::Decline,
        "a fraction for an integer slot"
    );
    let t = propose(proposal(
        "climate.set_temperature",
        serde_json::json!({"temperature": 45}),
    ))
    .await;
    assert_eq!(
        t.outcome.reply,
        "I can only set the temperature between 16 and 28 degrees."
    );
    let t = propose(proposal("body.open_trunk", serde_json::json!({}))).await;
    assert_eq!(t.outcome.route, Route::LocalLlm);
    assert_eq!(t.outcome.refused.as_deref(), Some("gear unknown"));
    assert!(t.outcome.action.is_none());
    let t = propose(proposal(
        "climate.set_temperature",
        serde_json::json!({"temperature": 21.5, "zone": "passenger"}),
    ))
    .await;
    assert_eq!(t.outcome.route, Route::LocalLlm);
    assert_eq!(t.outcome.action.unwrap().action.member, "SetTemperature");
}

#[test]
fn yes_and_no() {
    for y in ["yes", "Yeah.", "sure", "yes please", "go ahead", "OK"] {
        assert_eq!(
            yes_or_no(y, crate::text::Lexicon::english(), "Cabin"),
            Some(true),
            "{y}"
        );
    }
    for n in ["no", "No thanks", "cancel", "never mind", "don't"] {
        assert_eq!(
            yes_or_no(n, crate::text::Lexicon::english(), "Cabin"),
            Some(false),
            "{n}"
        );
    }
    for other in ["yes and open the window", "maybe", "call Mum"] {
        assert_eq!(
            yes_or_no(other, crate::text::Lexicon::english(), "Cabin"),
            None,
            "{other}"
        );
    }
}

#[tokio::test]
async fn context_carries_over_only_to_the_same_seat() {
    let a = assistant();
    let t = say(
        &a,
        "make it 19 degrees for the passenger",
        Some("driver"),
        Context::default(),
    )
    .await;
    let same = say(&a, "a bit warmer", Some("driver"), t.context.clone()).await;
    assert_eq!(slot(&same, "zone"), "passenger");
    let other = say(&a, "a bit warmer", Some("rear_right"), t.context).await;
    assert_eq!(
        slot(&other, "zone"),
        "rear_right",
        "another seat's request starts afresh"
    );
}

#[tokio::test]
async fn small_talk_gets_a_short_reply_and_no_action() {
    let t = say(&assistant(), "thank you", None, Context::default()).await;
    assert_eq!(t.outcome.intent.as_deref(), Some("small_talk.thanks"));
    assert_eq!(t.outcome.reply, "You're welcome.");
    assert!(t.outcome.action.is_none() && !t.follow_up);
}

/// Regression (#37): "to twenty" set the driver's temperature to 20, and "the rear left one"
/// from a new caller warmed the rear left: a bare value, with no question open and no request
/// to follow up, is asked about, never acted on.
#[tokio::test]
async fn a_bare_value_is_asked_about_never_acted_on() {
    let a = &assistant();
    for (text, question) in [
        ("to twenty", "What would you like to set to 20?"),
        (
            "the rear left one",
            "What would you like for the rear left?",
        ),
        ("fifty percent", "What would you like to set to 50?"),
        ("mine", &REPLIES.fragment),
        (&format!("to {}", "9".repeat(40)), &REPLIES.fragment),
    ] {
        let t = say(a, text, None, Context::default()).await;
        assert_eq!(t.outcome.reply, question, "{text}");
        assert!(t.outcome.intent.is_none(), "{text}: {:?}", t.outcome);
        assert!(t.outcome.action.is_none(), "{text}");
    }
    // After a request of the same seat, a value follows it up.
    let first = say(a, "set the temperature to 19", None, Context::default()).await;
    let t = say(a, "to twenty", None, first.context).await;
    assert_eq!(t.outcome.intent.as_deref(), Some("climate.set_temperature"));
    assert_eq!(slot(&t, "temperature"), 20.0);
}

/// Regression (#37): "open the driver door", "unlock the doors" and "unlock the car" ended in
/// SetTrunk(true), the nearest thing the profile has. What the car lacks is said so, whichever
/// route would have picked an intent.
#[tokio::test]
async fn what_the_car_lacks_is_said_never_acted_on_with_the_nearest_intent() {
    let a = &assistant();
    for (text, reply) in [
        (
            "open the driver door",
            "Sorry, I can't open or close the doors.",
        ),
        ("unlock the doors", "Sorry, I can't lock or unlock the car."),
        (
            "could you unlock the car please",
            "Sorry, I can't lock or unlock the car.",
        ),
        // The grammar drops a word about what a command names, not one the car lacks.
        (
            "turn on the fog lights",
            "Sorry, I can't control the car's outside lights.",
        ),
    ] {
        let t = say(a, text, None, Context::default()).await;
        assert_eq!(t.outcome.reply, reply, "{text}");
        assert!(
            t.outcome.intent.is_none() && t.outcome.action.is_none(),
            "{text}"
        );
    }
    // A model's pick of the nearest intent is not acted on; one the words name is.
    let open_trunk = Proposal {
        route: Route::Classifier,
        intent: "body.open_trunk".into(),
        args: serde_json::Map::new(),
    };
    let t = a
        .propose(
            "open the driver door",
            &open_trunk,
            None,
            Context::default(),
            |_| panic!("no call"),
        )
        .await;
    assert_eq!(t.outcome.reply, "Sorry, I can't open or close the doors.");
    assert_eq!(t.outcome.route, Route::Classifier);
    let t = a
        .propose(
            "close the boot and lock it",
            &open_trunk,
            None,
            Context::default(),
            |_| {},
        )
        .await;
    assert_eq!(
        t.outcome.refused.as_deref(),
        Some("gear unknown"),
        "{:?}",
        t.outcome
    );
    // Words about nothing the car lacks need no object named ("I need to load bags").
    let t = a
        .propose(
            "i need to put my bags in",
            &open_trunk,
            None,
            Context::default(),
            |_| {},
        )
        .await;
    assert_eq!(t.outcome.refused.as_deref(), Some("gear unknown"));
}

/// Regression (#38): "nyalakan penyedot debu" (switch on the vacuum cleaner) switched the
/// climate on, by the local model, the nearest thing it was offered. A home appliance is named
/// by each profile's `[[lacks]]`, in its language, and said so before any model is asked.
#[tokio::test]
async fn a_home_appliance_never_actuates_the_car_in_any_language() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (profile, text) in [
        ("default.toml", "please start the robot vacuum"),
        ("default.toml", "switch the dishwasher on"),
        ("id.toml", "nyalakan penyedot debu"),
        ("id.toml", "hidupkan mesin cuci sekarang"),
        ("zh-CN.toml", "打开洗碗机"),
        ("zh-CN.toml", "帮我开一下扫地机器人"),
    ] {
        let a = assistant_of(Profile::load(&root.join("profiles").join(profile)).unwrap());
        let t = say(&a, text, None, Context::default()).await;
        let appliances = a
            .profile()
            .lacks
            .iter()
            .find(|l| l.name == "home appliances");
        assert_eq!(
            Some(&t.outcome.reply),
            appliances.map(|l| &l.reply),
            "{text}"
        );
        assert!(t.outcome.action.is_none(), "{text}");
    }
}

#[test]
fn an_intents_objects_are_its_own_words_not_shared_ones() {
    let a = assistant();
    let index = |name: &str| {
        a.profile
            .intents
            .iter()
            .position(|i| i.name == name)
            .unwrap()
    };
    let boot = a.objects.of(index("body.open_trunk"));
    for w in ["boot", "trunk", "tailgate"] {
        assert!(boot.contains(w), "{w}: {boot:?}");
    }
    for w in ["open", "the"] {
        assert!(!boot.contains(w), "{w}: {boot:?}");
    }
    // "car" says where the lights are dark, in an optional part: not what they are.
    assert!(!a.objects.of(index("lights.cabin_on")).contains("car"));
    assert!(!a.objects.of(index("windows.open")).contains("driver"));
}

/// Regression (#37): "call" and 160 digits became "Call 999…?", said back whole. A value
/// longer than its type allows is refused before a question or reply says it, from the
/// grammar or a model.
#[tokio::test]
async fn a_reply_says_back_only_a_bounded_part_of_the_request() {
    let a = &assistant();
    let digits = "9".repeat(160);
    let t = say(a, &format!("call {digits}"), None, Context::default()).await;
    assert_eq!(
        t.outcome.reply,
        "Sorry, that contact is too long for me. Please say it in a few words."
    );
    assert!(t.outcome.awaiting.is_none() && t.context.pending.is_none());
    let long_name = "Bartholomew Maximilian Wolfeschlegelsteinhausen Bergerdorff";
    let proposal = Proposal {
        route: Route::LocalLlm,
        intent: "phone.call".into(),
        args: serde_json::json!({ "contact": long_name })
            .as_object()
            .unwrap()
            .clone(),
    };
    let t = a
        .propose("ring him", &proposal, None, Context::default(), |_| {
            panic!("no call")
        })
        .await;
    assert!(
        !t.outcome.reply.contains("Bartholomew"),
        "{}",
        t.outcome.reply
    );
    assert!(t.outcome.awaiting.is_none());
    // A name of ordinary length is asked about as before.
    let t = say(a, "call Mum", None, Context::default()).await;
    assert_eq!(t.outcome.reply, "Call Mum?");
}

/// Regression (#37): the sign was dropped, so "-20" set 20 °C and "minus 30" set the volume
/// to 30. Signed values are checked against the range like any other.
#[tokio::test]
async fn a_negative_value_is_out_of_range_not_its_opposite() {
    let a = &assistant();
    for (text, reply) in [
        (
            "set the temperature to -20",
            "I can only set the temperature between 16 and 28 degrees.",
        ),
        (
            "set the temperature to \u{2212}20 degrees",
            "I can only set the temperature between 16 and 28 degrees.",
        ),
        (
            "set the volume to minus 30",
            "I can only set the volume between 0 and 100 percent.",
        ),
        (
            "set the fan speed to negative one",
            "I can only set the fan level between 0 and 7.",
        ),
        (
            "tune to -100.5 FM",
            "I can only set the frequency between 87.5 and 108 megahertz.",
        ),
    ] {
        let t = say(a, text, None, Context::default()).await;
        assert_eq!(t.outcome.reply, reply, "{text}");
        assert!(t.outcome.action.is_none(), "{text}");
    }
}

#[test]
fn a_reply_may_be_written_for_one_value() {
    let a = assistant();
    let open = a
        .profile
        .intents
        .iter()
        .find(|i| i.name == "windows.open")
        .unwrap();
    let window = |key: &str| {
        BTreeMap::from([(
            "window".to_string(),
            a.profile.slot_types["window"].value_for_key(key).unwrap(),
        )])
    };
    assert_eq!(
        fill(open.reply_for(&window("all")), &window("all")),
        "Opening all the windows."
    );
    assert_eq!(
        fill(open.reply_for(&window("rear_left")), &window("rear_left")),
        "Opening the rear left window."
    );
}
