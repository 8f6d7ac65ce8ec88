//! An integrator adds an intent for a new D-Bus service by editing a profile only.

use crate::common;

use common::*;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The integrator's own service: a sunroof that records what it was asked.
struct Sunroof(Arc<Mutex<Vec<u32>>>);

#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.example.Sunroof1.Error")]
enum SunroofError {
    #[zbus(error)]
    ZBus(zbus::Error),
    Blocked(String),
}

#[zbus::interface(name = "org.example.Sunroof1")]
impl Sunroof {
    fn open(&self, percent: u32) -> Result<(), SunroofError> {
        if percent == 13 {
            return Err(SunroofError::Blocked("obstacle detected".into()));
        }
        self.0.lock().unwrap().push(percent);
        Ok(())
    }
}

fn profile_with_sunroof(dir: &std::path::Path) -> std::path::PathBuf {
    let root = env!("CARGO_MANIFEST_DIR");
    let base = std::fs::read_to_string(format!("{root}/profiles/default.toml")).unwrap();
    let snippet =
        std::fs::read_to_string(format!("{root}/profiles/examples/sunroof-intent.toml")).unwrap();
    let path = dir.join("with-sunroof.toml");
    std::fs::write(&path, format!("{base}\n{snippet}")).unwrap();
    path
}

#[tokio::test]
async fn a_profile_edit_adds_an_intent_for_a_new_service() {
    let bus = TestBus::start();
    // The vehicle reports its driving state; the sunroof intent is constrained by speed.
    let _sim = bus.start_sim();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let _service = zbus::connection::Builder::address(bus.address.as_str())
        .serve_at("/org/example/Sunroof", Sunroof(calls.clone()))
        .name("org.example.Sunroof")
        .build()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let profile = profile_with_sunroof(dir.path());

    let mut check = Command::new(CABIN);
    check.args(["profile", "check"]).arg(&profile);
    let out = output_within(check, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains("sunroof.open") && listing.contains("org.example.Sunroof1.Open(u)"),
        "{listing}"
    );

    let _daemon = bus.start_daemon(Some(&profile)).await;
    let conn = bus.connect().await;
    assert_eq!(
        submit(&conn, "SubmitText", "open the sunroof to forty percent")
            .await
            .unwrap(),
        "Opening the sunroof to 40 percent."
    );
    assert_eq!(
        submit(&conn, "SubmitText", "open the sunroof")
            .await
            .unwrap(),
        "Opening the sunroof to 100 percent."
    );
    assert_eq!(*calls.lock().unwrap(), vec![40, 100]);
    assert_eq!(
        submit(&conn, "SubmitText", "open the sunroof to thirteen percent")
            .await
            .unwrap(),
        "Something is in the way of the sunroof."
    );
}

#[test]
fn profile_check_reports_a_broken_profile_with_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let base = std::fs::read_to_string(format!("{root}/profiles/default.toml")).unwrap();
    let broken = base.replacen("signature = \"sd\"", "signature = \"sdd\"", 1);
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, broken).unwrap();

    let mut check = Command::new(CABIN);
    check.args(["profile", "check"]).arg(&path);
    let out = output_within(check, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.toml:"), "{err}");
    assert!(
        err.contains("intent 'climate.set_temperature'.action.signature"),
        "{err}"
    );
    assert!(err.contains("fix:"), "{err}");

    let mut check = Command::new(CABIN);
    check.args(["profile", "check", "/nonexistent/profile.toml"]);
    let out = output_within(check, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("cannot read profile /nonexistent/profile.toml"));
}

/// Regression: `cabin profile check FILE | head -1` panicked on the closed pipe.
#[test]
fn a_closed_stdout_is_not_a_crash() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(CABIN)
        .args([
            "profile",
            "check",
            "--sentences",
            concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/default.toml"),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("OK"), "{first}");
    // The reader is dropped here, closing the pipe mid-listing.
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
