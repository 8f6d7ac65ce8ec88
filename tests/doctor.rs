//! `cabin doctor` against a private bus: all green with the vehicle up, a named problem and
//! its fix without it.

mod common;

use common::*;

#[tokio::test]
async fn doctor_is_green_when_everything_runs() {
    let bus = TestBus::start();
    let _sim = bus.start_sim();
    let _daemon = bus.start_daemon(None).await;
    let out = bus.cabin(&["doctor", "--bus", &bus.address]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("vehicle service org.cabin.VehicleSim is on the session bus"),
        "{report}"
    );
    assert!(
        report.contains("the Cabin daemon serves org.cabin.Assistant1"),
        "{report}"
    );
    assert!(report.contains("driving state readable"), "{report}");
    assert!(report.ends_with("all checks passed\n"), "{report}");
}

#[tokio::test]
async fn doctor_names_a_missing_vehicle_service_and_the_fix() {
    let bus = TestBus::start();
    let out = bus.cabin(&["doctor", "--bus", &bus.address]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("FAIL  vehicle service org.cabin.VehicleSim is not on the session bus"),
        "{report}"
    );
    assert!(report.contains("fix: start the service"), "{report}");
    assert!(
        report.contains("warn  no Cabin daemon serves org.cabin.Assistant1"),
        "{report}"
    );
    assert!(
        report.contains("the 3 constrained intents will be refused"),
        "{report}"
    );
}
