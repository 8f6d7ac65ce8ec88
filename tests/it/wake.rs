//! `cabin wake train`'s gate and the wake word that ships: a model that does not meet the
//! profile's targets on held-apart audio is refused (and nothing is written), and the installed
//! default word carries the figures and threshold training measured.
//!
//! Without the wake word's models these tests skip with a message, except under CI, where
//! that fails.

use crate::common::{self, missing};
use std::process::Command;

fn feature_models() -> bool {
    let dir = cabin::runtime::models::default_dir();
    for name in [
        "openwakeword-melspectrogram",
        "openwakeword-embedding",
        "onnxruntime",
    ] {
        let m = cabin::runtime::models::find(name).unwrap();
        if !dir.join(m.file).is_file() {
            return missing(format!(
                "{} (run `cabin models fetch`)",
                dir.join(m.file).display()
            ));
        }
    }
    true
}

#[test]
fn a_weak_model_is_refused_by_the_gate_and_nothing_is_written() {
    if !feature_models() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("weak.onnx");
    // No training pass, one round: an untrained model, no mining, no second chance (one pass
    // was once enough to meet the targets on --quick's fifth of an hour).
    let run = Command::new(common::CABIN)
        .args([
            "wake",
            "train",
            "hey cabin",
            "--quick",
            "--passes",
            "0",
            "--rounds",
            "1",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    eprintln!("{stderr}");
    assert!(!run.status.success(), "an untrained model was accepted");
    assert!(
        stderr.contains("met the targets") && stderr.contains("Fix:"),
        "no figures and fix in: {stderr}"
    );
    assert!(!out.exists(), "a refused model was written");
    assert!(!cabin::hear::wake::Calibration::path_for(&out).exists());
}

#[test]
fn the_default_wake_word_ships_with_the_figures_training_measured() {
    if !feature_models() {
        return;
    }
    let profile = cabin::Profile::load_or_default(None).unwrap();
    let keyword = profile.models.wake.as_deref().unwrap();
    let models = match cabin::hear::wake::WakeModels::resolve(keyword) {
        Ok(m) => m,
        Err(e) => {
            missing(format!("the default wake word ({e})"));
            return;
        }
    };
    let calibration = cabin::hear::wake::Calibration::of(&models.keyword)
        .expect("the trained default wake word has no calibration beside it (or another model's)");
    let targets = profile.models.wake_targets;
    eprintln!("{calibration:?}");
    // The profile sets no threshold: the daemon wakes at the calibrated one.
    assert_eq!(profile.listen.wake_threshold, None);
    assert!(calibration.false_reject_rate <= targets.max_false_reject);
    assert!(calibration.false_accepts_per_hour <= targets.max_false_accepts_per_hour);
    assert!((0.3..1.0).contains(&calibration.threshold));
    assert_eq!(
        cabin::hear::wake::threshold_for(None, &models.keyword),
        calibration.threshold
    );
}
