//! The field tools: `cabin doctor` against a private bus (all green with the vehicle up, a
//! named problem and its fix without it) and `cabin bench`.

use crate::common;

use common::*;

/// Whether the default profile's models are installed; outside CI their absence skips.
fn default_models_installed() -> bool {
    let p = cabin::profile::Profile::embedded_default();
    let dir = cabin::runtime::models::default_dir();
    let missing: Vec<_> = [&p.models.asr, &p.models.llm]
        .into_iter()
        .flatten()
        .map(|n| dir.join(cabin::runtime::models::find(n).unwrap().file))
        .filter(|f| !f.is_file())
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{missing:?} missing in CI"
    );
    eprintln!("SKIPPED: {missing:?} missing (run `cabin models fetch`)");
    false
}

#[tokio::test]
async fn doctor_is_green_when_everything_runs() {
    if !default_models_installed() {
        return;
    }
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
    assert!(
        report.contains("wake word cabin-hey-cabin: loads"),
        "{report}"
    );
    assert!(
        report.contains("speech model whisper-tiny.en: installed, sha256 OK"),
        "{report}"
    );
    for worker in ["the language model worker", "the speech recognition worker"] {
        assert!(report.contains(&format!("{worker} starts")), "{report}");
    }
    assert!(report.ends_with("all checks passed\n"), "{report}");
}

#[test]
fn doctor_names_missing_and_corrupt_models_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    // The speech model at its right size but with the wrong bytes; the language model absent.
    let tiny = cabin::runtime::models::find("whisper-tiny.en").unwrap();
    std::fs::File::create(dir.path().join(tiny.file))
        .unwrap()
        .set_len(tiny.size)
        .unwrap();
    let mut cmd = std::process::Command::new(CABIN);
    cmd.args(["doctor", "--bus", "unix:path=/nonexistent"])
        .env("CABIN_MODELS_DIR", dir.path());
    let out = output_within(cmd, std::time::Duration::from_secs(60));
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("the speech model at") && report.contains("is corrupt"),
        "{report}"
    );
    assert!(
        report.contains("the language model qwen2.5-coder-0.5b-instruct-q4_k_m is not installed"),
        "{report}"
    );
    assert!(report.contains("fix: run `cabin models fetch`"), "{report}");
    // The worker is tried on it, and its own complaint is shown.
    assert!(
        report.contains("FAIL  the speech recognition worker does not start: exited with"),
        "{report}"
    );
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
        report.contains("the 5 constrained intents will be refused"),
        "{report}"
    );
}

#[test]
fn bench_reports_every_figure() {
    let mut cmd = std::process::Command::new(CABIN);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    cmd.args([
        "bench",
        "--no-llm",
        "--rounds",
        "1",
        "--idle-seconds",
        "1",
        "--json",
    ])
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
    assert_eq!(report["llm_skipped"], "--no-llm");
    // CI installs the voice: the replies are spoken and timed.
    if std::env::var_os("CI").is_some() || !report["voice"].is_null() {
        for row in [
            "request to first audio, fast path",
            "first sentence synthesis",
            "speech synthesis CPU per second of speech",
        ] {
            assert!(table.contains(row), "no {row:?} in:\n{table}");
        }
    }
    // CI installs the speech models: the spoken fixtures' timeline (issue 25).
    if std::env::var_os("CI").is_some() || report["speech_skipped"].is_null() {
        assert!(
            table.contains(
                "| fixture | end-pointer fired | final transcript | action done | first audio |"
            ),
            "no timeline in:\n{table}"
        );
        let p95 = &report["timeline_ms"]["p95"];
        let at = |stage: &str| {
            p95[stage]
                .as_f64()
                .unwrap_or_else(|| panic!("{stage}: {p95}"))
        };
        // A transcript at the pause may be the final one: ready as the end-pointer fires.
        assert!(at("end_pointer") <= at("transcript"), "{p95}");
        assert!(at("transcript") < at("action"), "{p95}");
        let fixtures = std::fs::read_dir(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"),
        )
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "wav"))
        .count();
        assert_eq!(
            report["timeline_ms"].as_object().unwrap().len(),
            fixtures + 1,
            "each fixture and p95: {}",
            report["timeline_ms"]
        );
    }
    assert_eq!(report["utterances"], 16);
}

#[test]
fn wake_eval_prints_the_false_reject_rate_and_false_accepts_per_hour() {
    if !default_models_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("wake.json");
    let out = std::process::Command::new(CABIN)
        .args(["wake", "eval", "--hours", "0.05"])
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        table.contains(
            "| threshold | false rejects | false-reject rate | false accepts | per hour |"
        ),
        "{table}"
    );
    let ships = report_threshold(&json);
    assert!(table.contains(&format!("{ships:.2} (ships)")), "{table}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = report["rows"].as_array().unwrap();
    // A higher threshold misses at least as often and wakes falsely at most as often.
    for pair in rows.windows(2) {
        assert!(
            pair[0]["false_rejects"].as_u64() <= pair[1]["false_rejects"].as_u64(),
            "{report}"
        );
        assert!(
            pair[0]["false_accepts"].as_u64() >= pair[1]["false_accepts"].as_u64(),
            "{report}"
        );
    }
    // The default word, in voices its training did not use, is heard at the threshold it ships
    // with as often as its targets ask (training measured it so).
    let at_profile = rows
        .iter()
        .find(|r| (r["threshold"].as_f64().unwrap() - ships).abs() < 1e-3)
        .unwrap();
    assert!(
        at_profile["false_reject_rate"].as_f64().unwrap() <= 0.05,
        "{report}"
    );
}

/// The threshold a `cabin wake eval --json` report says the model wakes at.
fn report_threshold(json: &std::path::Path) -> f64 {
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    report["threshold"].as_f64().unwrap()
}

/// A quick model for a phrase no model knows: it is written, wakes on the phrase in voices it
/// was not trained on, loads in `cabin doctor`, and a file that is not a keyword model fails
/// there with the fix.
#[test]
fn wake_train_builds_a_model_for_a_new_phrase_that_wakes_on_it() {
    if !default_models_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("hey-aurora.onnx");
    let mut cmd = std::process::Command::new(CABIN);
    cmd.args(["wake", "train", "hey aurora", "--quick", "--out"])
        .arg(&model);
    let out = output_within(cmd, std::time::Duration::from_secs(600));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("round 1: pass 10/10"), "{log}");

    let json = dir.path().join("wake.json");
    let mut cmd = std::process::Command::new(CABIN);
    cmd.args(["wake", "eval"])
        .arg(&model)
        .args(["--phrase", "hey aurora", "--hours", "0.1", "--json"])
        .arg(&json);
    let out = output_within(cmd, std::time::Duration::from_secs(600));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let at_profile = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| (r["threshold"].as_f64().unwrap() - report_threshold(&json)).abs() < 1e-3)
        .unwrap()
        .clone();
    // At the threshold its gate chose, even the quick model hears most of 159 held-apart trials
    // and rarely wakes on the rest.
    assert!(
        at_profile["false_reject_rate"].as_f64().unwrap() <= 0.10,
        "{table}"
    );
    assert!(
        at_profile["false_accepts"].as_u64().unwrap() <= 3,
        "{table}"
    );

    let profile = |wake: &std::path::Path| {
        let path = dir.path().join("profile.toml");
        let text = std::fs::read_to_string("profiles/default.toml")
            .unwrap()
            .replace(
                "wake = \"cabin-hey-cabin\"",
                &format!("wake = \"{}\"", wake.display()),
            );
        std::fs::write(&path, text).unwrap();
        path
    };
    let doctor = |wake: &std::path::Path| {
        let mut cmd = std::process::Command::new(CABIN);
        cmd.args(["doctor", "--bus", "unix:path=/nonexistent", "--profile"])
            .arg(profile(wake));
        let out = output_within(cmd, std::time::Duration::from_secs(120));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let report = doctor(&model);
    assert!(
        report.contains(&format!("wake word {}: loads", model.display())),
        "{report}"
    );
    // The mel spectrogram model is ONNX, but not a keyword model.
    let mel = cabin::runtime::models::installed("openwakeword-melspectrogram", "test").unwrap();
    let report = doctor(&mel);
    assert!(
        report.contains(&format!(
            "FAIL  the wake word {} does not load",
            mel.display()
        )),
        "{report}"
    );
    assert!(
        report.contains("fix: run `cabin models fetch`, or point [models] wake"),
        "{report}"
    );
}

/// A measurement of a profile whose classifier's model is missing is refused with the fix: the
/// daemon goes on without it, but the figures would not be the profile's (the Mandarin half
/// scored 98 of 128 so, where it scores 122).
#[test]
fn eval_refuses_to_measure_a_profile_without_its_classifier() {
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("set.jsonl");
    std::fs::write(&set, "{\"text\": \"打开车窗\", \"expect\": \"chat\"}\n").unwrap();
    let mut cmd = std::process::Command::new(CABIN);
    cmd.args(["eval", set.to_str().unwrap(), "--llm", "off"])
        .args(["--profile", "profiles/zh-CN.toml"])
        .env("CABIN_MODELS_DIR", dir.path());
    let out = output_within(cmd, std::time::Duration::from_secs(60));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("multilingual-e5-small")
            && err.contains("cabin models fetch --model multilingual-e5-small"),
        "{err}"
    );
}
