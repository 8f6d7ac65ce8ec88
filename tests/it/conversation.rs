//! Scripted multi-turn dialogs: text in through the daemon's D-Bus API, state checked in the
//! simulator.

use crate::common;

use cabin::act::vehicle::VehicleBus;
use cabin::profile::Profile;
use cabin::runtime::bus::BusAddress;
use cabin::understand::{Assistant, Context, Proposal, Route};
use common::*;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;

async fn set_driving(conn: &zbus::Connection, speed: f64, gear: &str, brake: bool) {
    conn.call_method(
        Some("org.cabin.VehicleSim"),
        "/org/cabin/VehicleSim",
        Some("org.cabin.VehicleSim.Control1"),
        "SetDriving",
        &(speed, gear, brake),
    )
    .await
    .unwrap();
}

async fn json(conn: &zbus::Connection, text: &str) -> serde_json::Value {
    serde_json::from_str(&submit(conn, "SubmitTextJson", text).await.unwrap()).unwrap()
}

async fn from(conn: &zbus::Connection, text: &str, input: &str) -> serde_json::Value {
    let reply = conn
        .call_method(
            Some("org.cabin.Assistant1"),
            "/org/cabin/Assistant1",
            Some("org.cabin.Assistant1"),
            "SubmitTextFrom",
            &(text, input),
        )
        .await
        .unwrap();
    serde_json::from_str(&reply.body().deserialize::<String>().unwrap()).unwrap()
}

#[tokio::test]
async fn clarification_then_answer() {
    let up = up().await;
    let conn = &up.conn;

    let asked = json(conn, "open the window").await;
    assert_eq!(asked["reply"], "Which window?");
    assert_eq!(asked["awaiting"], "slot:window");
    assert_eq!(
        json(conn, "the rear left one").await["reply"],
        "Opening the rear left window."
    );
    let state = snapshot(conn).await;
    assert_eq!(
        state["Vehicle.Cabin.Door.Row2.DriverSide.Window.Position"],
        100
    );
    assert_eq!(
        state["Vehicle.Cabin.Door.Row1.DriverSide.Window.Position"],
        0
    );
}

#[tokio::test]
async fn relative_follow_ups() {
    let up = up().await;
    let conn = &up.conn;

    json(conn, "make it 19 degrees for the passenger").await;
    assert_eq!(
        json(conn, "a bit warmer").await["reply"],
        "Warming up the passenger side."
    );
    assert_eq!(
        snapshot(conn).await["Vehicle.Cabin.HVAC.Station.Row1.Passenger.Temperature"],
        20.0
    );
    assert_eq!(
        json(conn, "and the driver side too").await["slots"]["zone"],
        "driver"
    );
    let state = snapshot(conn).await;
    assert_eq!(
        state["Vehicle.Cabin.HVAC.Station.Row1.Driver.Temperature"],
        21.0
    );
    assert_eq!(
        state["Vehicle.Cabin.HVAC.Station.Row1.Passenger.Temperature"],
        20.0
    );

    json(conn, "set the volume to 40").await;
    json(conn, "louder").await;
    assert_eq!(
        snapshot(conn).await["Vehicle.Cabin.Infotainment.Media.Volume"],
        50
    );
}

#[tokio::test]
async fn confirmation_yes_no_and_silence() {
    let bus = TestBus::start();
    let _sim = bus.start_sim();
    let dir = tempfile::tempdir().unwrap();
    let profile = default_profile_with_timeout(dir.path(), 2000);
    let text = std::fs::read_to_string(&profile)
        .unwrap()
        .replace("follow_up_seconds = 5.0", "follow_up_seconds = 1.5");
    std::fs::write(&profile, text).unwrap();
    let _daemon = bus.start_daemon(Some(&profile)).await;
    let conn = bus.connect().await;
    let call =
        || async { snapshot(&conn).await["Vehicle.Cabin.Infotainment.Phone.ActiveCall"].clone() };

    assert_eq!(json(&conn, "call Alex").await["reply"], "Call Alex?");
    assert_eq!(call().await, "", "nothing happens before the yes");
    assert_eq!(json(&conn, "no").await["reply"], "OK, I won't.");
    assert_eq!(call().await, "");

    assert_eq!(json(&conn, "call Mum").await["awaiting"], "confirmation");
    assert_eq!(json(&conn, "yes").await["reply"], "Calling Mum.");
    assert_eq!(call().await, "Mum");
    json(&conn, "hang up").await;
    // The hang-up's own answer window passes first, so that the Idle awaited below is the
    // question's (under load, the hang-up's came after the question and a yes confirmed it).
    common::until_state(&conn, "Idle", Duration::from_secs(10)).await;

    // Silence: the window passes (StateChanged to Idle), and a late yes confirms nothing.
    let mut states =
        zbus::MessageStream::for_match_rule("type='signal',member='StateChanged'", &conn, None)
            .await
            .unwrap();
    assert_eq!(json(&conn, "call Sam").await["reply"], "Call Sam?");
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), states.next())
            .await
            .expect("no Idle")
            .unwrap()
            .unwrap();
        if msg.body().deserialize::<String>().unwrap() == "Idle" {
            break;
        }
    }
    assert_eq!(json(&conn, "yes").await["route"], "decline");
    assert_eq!(call().await, "");
}

#[tokio::test]
async fn zones_come_from_the_input() {
    let up = up().await;
    let conn = &up.conn;

    assert_eq!(
        from(conn, "open my window", "mic-rear-left").await["reply"],
        "Opening the rear left window."
    );
    assert_eq!(
        from(conn, "turn on my seat heating", "mic-passenger").await["reply"],
        "Heating the passenger seat."
    );
    assert_eq!(
        from(conn, "I'm cold", "mic-rear-right").await["slots"]["zone"],
        "rear_right"
    );
    let state = snapshot(conn).await;
    assert_eq!(
        state["Vehicle.Cabin.Door.Row2.DriverSide.Window.Position"],
        100
    );
    assert_eq!(
        state["Vehicle.Cabin.Door.Row1.DriverSide.Window.Position"],
        0
    );
    assert_eq!(
        state["Vehicle.Cabin.Seat.Row1.PassengerSide.HeatingLevel"],
        "medium"
    );
    assert_eq!(
        state["Vehicle.Cabin.Seat.Row1.DriverSide.HeatingLevel"],
        "off"
    );
    assert_eq!(
        state["Vehicle.Cabin.HVAC.Station.Row2.Passenger.Temperature"],
        21.0
    );
}

#[tokio::test]
async fn the_safety_policy_follows_the_vehicle() {
    let up = up().await;
    let conn = &up.conn;
    let trunk = || async { snapshot(conn).await["Vehicle.Body.Trunk.Rear.IsOpen"].clone() };

    set_driving(conn, 100.0, "drive", false).await;
    let v = json(conn, "open the boot").await;
    assert_eq!(
        v["reply"],
        "I can only open the boot when the car is in park."
    );
    assert_eq!(v["refused"], "gear is drive");
    assert!(v["action"].is_null());
    assert_eq!(trunk().await, false);
    let v = json(conn, "open the rear left window").await;
    assert_eq!(v["refused"], "speed 100 km/h is above 80 km/h", "{v}");
    assert_eq!(
        json(conn, "open the rear left window to thirty percent").await["reply"],
        "Opening the rear left window to 30 percent."
    );

    // The cached state follows the vehicle's PropertiesChanged.
    set_driving(conn, 60.0, "drive", false).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        json(conn, "open the rear left window").await["reply"],
        "Opening the rear left window."
    );
    set_driving(conn, 0.0, "park", true).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        json(conn, "open the boot").await["reply"],
        "Opening the boot."
    );
    assert_eq!(trunk().await, true);
}

/// Regression: a driving state read while the state service was alive is not trusted after it
/// died (zbus answered from its cache, so a dead service still said "park"). Gone means
/// unknown, and unknown is refused; a replacement service is read afresh.
#[tokio::test]
async fn a_dead_state_service_means_refused_not_the_last_known_park() {
    let bus = TestBus::start();
    let sim = bus.start_sim();
    let _daemon = bus.start_daemon(None).await;
    let conn = bus.connect().await;
    set_driving(&conn, 0.0, "park", true).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        json(&conn, "open the boot").await["reply"],
        "Opening the boot."
    );

    drop(sim);
    let v = json(&conn, "open the boot").await;
    assert_eq!(v["refused"], "gear unknown", "{v}");
    assert!(v["action"].is_null(), "{v}");

    let _sim = bus.start_sim();
    set_driving(&conn, 30.0, "drive", false).await;
    let v = json(&conn, "open the boot").await;
    assert_eq!(v["refused"], "gear is drive", "{v}");
    assert!(v["action"].is_null(), "{v}");
}

#[tokio::test]
async fn a_model_proposing_an_unsafe_intent_is_refused_the_same_way() {
    let bus = TestBus::start();
    let _sim = bus.start_sim();
    let conn = bus.connect().await;
    set_driving(&conn, 50.0, "drive", false).await;
    let profile = Arc::new(Profile::embedded_default());
    let vehicle = VehicleBus::new(
        BusAddress::Address(bus.address.clone()),
        profile.vehicle.timeout,
    );
    let assistant = Assistant::new(profile, vehicle);
    let args = serde_json::Map::new();
    let turn = assistant
        .propose(
            "could you pop the boot for me",
            &Proposal {
                route: Route::LocalLlm,
                intent: "body.open_trunk".into(),
                args,
            },
            None,
            Context::default(),
            |_| panic!("the boot must not be called"),
        )
        .await;
    assert_eq!(turn.outcome.route, Route::LocalLlm);
    assert_eq!(
        turn.outcome.reply,
        "I can only open the boot when the car is in park."
    );
    assert_eq!(turn.outcome.refused.as_deref(), Some("gear is drive"));
    assert_eq!(
        snapshot(&conn).await["Vehicle.Body.Trunk.Rear.IsOpen"],
        false
    );
}

#[tokio::test]
async fn no_small_talk_while_reversing() {
    let up = up().await;
    let conn = &up.conn;

    assert_eq!(
        json(conn, "good morning").await["reply"],
        "Hello! What can I do for you?"
    );
    set_driving(conn, 4.0, "reverse", false).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let v = json(conn, "thanks").await;
    assert_eq!(v["reply"], "");
    assert_eq!(v["refused"], "the driver is manoeuvring");
    // Commands still work while reversing.
    assert_eq!(json(conn, "pause").await["reply"], "Paused.");
}

fn window_positions(state: &serde_json::Value) -> Vec<i64> {
    [
        "Row1.DriverSide",
        "Row1.PassengerSide",
        "Row2.DriverSide",
        "Row2.PassengerSide",
    ]
    .iter()
    .map(|side| {
        state[format!("Vehicle.Cabin.Door.{side}.Window.Position")]
            .as_i64()
            .unwrap_or_else(|| panic!("no {side} window in {state}"))
    })
    .collect()
}

/// Regression (#37): at 130 km/h "open the driver window" was refused, but "open the driver
/// window to 100 percent" opened it fully, and "lower the window 100 percent" then "all"
/// opened all four. Every way to the window's call carries its rule, which holds on the value.
#[tokio::test]
async fn the_window_rule_holds_for_every_way_to_open_a_window() {
    let up = up().await;
    let conn = &up.conn;
    set_driving(conn, 130.0, "drive", false).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let v = json(conn, "open the driver window to 100 percent").await;
    assert_eq!(v["refused"], "speed 130 km/h is above 80 km/h", "{v}");
    assert!(v["action"].is_null(), "{v}");
    assert_eq!(
        json(conn, "lower the window 100 percent").await["reply"],
        "Which window?"
    );
    let v = json(conn, "all").await;
    assert_eq!(v["refused"], "speed 130 km/h is above 80 km/h", "{v}");
    assert_eq!(
        v["reply"],
        "I'll only open a window more than 30 percent below 80 kilometres per hour."
    );
    let v = json(conn, "put the rear right window 60 percent open").await;
    assert!(v["action"].is_null(), "{v}");
    assert_eq!(window_positions(&snapshot(conn).await), [0, 0, 0, 0]);

    // Part way is allowed at any speed, and closing is.
    assert_eq!(
        json(conn, "open the driver window to 30 percent").await["reply"],
        "Opening the driver window to 30 percent."
    );
    assert_eq!(window_positions(&snapshot(conn).await), [30, 0, 0, 0]);
    assert_eq!(
        json(conn, "close all the windows").await["reply"],
        "Closing all the windows."
    );

    // Below the speed, all of it; "all" reads as people say it (#37: "Opening the all window.").
    set_driving(conn, 50.0, "drive", false).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        json(conn, "open all the windows").await["reply"],
        "Opening all the windows."
    );
    assert_eq!(
        window_positions(&snapshot(conn).await),
        [100, 100, 100, 100]
    );
}
