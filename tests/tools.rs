//! The field tools: `cabin doctor` against a private bus (all green with the vehicle up, a
//! named problem and its fix without it) and `cabin bench`.

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

#[test]
fn bench_reports_every_figure() {
    let mut cmd = std::process::Command::new(CABIN);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    cmd.args(["bench", "--rounds", "1", "--idle-seconds", "1", "--json"])
        .arg(&json);
    let out = output_within(cmd, std::time::Duration::from_secs(60));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for row in [
        "start-up to READY",
        "understanding (fast path), median / p95",
        "D-Bus action, median / p95",
        "round trip seen by the caller",
        "RSS of cabin (daemon)",
        "RSS of cabin-vehicle-sim",
        "daemon CPU while idle",
    ] {
        assert!(table.contains(row), "no {row:?} in:\n{table}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(report["startup_to_ready_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(report["utterances"], 16);
}
