//! Dialog logic without a vehicle: the bus is unreachable, so actions fail with a spoken reply
//! while everything before them (slots, questions, confirmations, policy) is observable.

use super::*;
use crate::runtime::bus::BusAddress;
use std::time::Duration;

fn assistant() -> Assistant {
    let bus = BusAddress::Address("unix:path=/nonexistent/cabin-test-bus".into());
    Assistant::new(
        Arc::new(Profile::embedded_default()),
        VehicleBus::new(bus, Duration::from_millis(200)),
    )
}

async fn say(a: &Assistant, text: &str, zone: Option<&str>, ctx: Context) -> Turn {
    a.turn(text, zone, ctx, |_| {}).await
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
    assert_eq!(t.outcome.reply, DECLINE_REPLY);
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
    assert_eq!(t.outcome.reply, GIVE_UP_REPLY);
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

    // Without a session, the same words mean nothing.
    let t = say(&a, "and the driver side too", None, Context::default()).await;
    assert_eq!(t.outcome.route, Route::Decline);
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
    assert_eq!(no.outcome.reply, CONFIRM_CANCELLED_REPLY);
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
        assert_eq!(yes_or_no(y), Some(true), "{y}");
    }
    for n in ["no", "No thanks", "cancel", "never mind", "don't"] {
        assert_eq!(yes_or_no(n), Some(false), "{n}");
    }
    for other in ["yes and open the window", "maybe", "call Mum"] {
        assert_eq!(yes_or_no(other), None, "{other}");
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
