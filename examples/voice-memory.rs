//! Memory of one Piper (VITS) run by its length in phonemes: how the default profile's voice
//! grows with what it is given at once, the figure behind `voice::MAX_PHONEMES`
//! (docs/speech.md). Each length runs in a fresh process (peak RSS only ever rises): the model
//! is loaded and warmed on a short phrase, then given N phonemes of unpunctuated English.
//!
//! cargo run --release --example voice-memory -- 100 200 400 800 1600 2400/150
//!
//! Prints one line per length: phonemes, the process's peak RSS before and after the run
//! (VmHWM, MiB), the audio's length and the run's time. `N/CAP` gives N phonemes in runs of at
//! most CAP, cut at words. With `--bounded N` instead, about N phonemes' worth of the text
//! goes through `Voice::synthesize`, which caps each run itself.

use ort::value::TensorRef;
use std::collections::HashMap;
use std::time::Instant;

/// The words of the measured phonemes: no punctuation, so eSpeak NG's clauses are all the
/// pauses there are.
const WORDS: &str = "the car is driving along the road and the driver wants to open the window while the music plays";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--child") => run(args[1].parse()?, args[2].parse()?, false),
        Some("--bounded") => run(args[1].parse()?, 0, true),
        _ => {
            println!("phonemes  peak before MiB  peak after MiB  audio s  run s");
            for n in &args {
                // N, or N/CAP: N phonemes in runs of at most CAP.
                let (n, cap) = n.split_once('/').unwrap_or((n, n));
                let out = std::process::Command::new(std::env::current_exe()?)
                    .args(["--child", n, cap])
                    .output()?;
                print!("{}", String::from_utf8_lossy(&out.stdout));
                if !out.status.success() {
                    println!("{n}: failed: {}", String::from_utf8_lossy(&out.stderr));
                }
            }
            Ok(())
        }
    }
}

fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn run(n: usize, cap: usize, bounded: bool) -> anyhow::Result<()> {
    let profile = cabin::Profile::embedded_default();
    let tts = profile
        .models
        .tts
        .clone()
        .expect("the default profile has a voice");
    // Phonemes of enough words, cut to n.
    let mut text = String::from(WORDS);
    let mut phonemes = cabin::speak::voice::phonemes(&text, "en-us")?;
    while phonemes.chars().count() < n {
        text = format!("{text} {WORDS}");
        phonemes = cabin::speak::voice::phonemes(&text, "en-us")?;
    }
    if bounded {
        let mut voice = cabin::speak::voice::load(&profile)?;
        voice.synthesize("Warming up.")?;
        let before = peak_mib();
        // As many words as make about n phonemes.
        let words = text.split_whitespace().count() * n / phonemes.chars().count().max(1);
        let text: Vec<&str> = text.split_whitespace().take(words.max(1)).collect();
        let started = Instant::now();
        let audio = voice.synthesize(&text.join(" "))?;
        println!(
            "{n:>8}  {before:>14.0}  {:>14.0}  {:>7.1}  {:>5.2}  (bounded, {} characters)",
            peak_mib(),
            audio.len() as f64 / f64::from(voice.sample_rate()),
            started.elapsed().as_secs_f64(),
            text.join(" ").len()
        );
        return Ok(());
    }
    let phonemes: String = phonemes.chars().take(n).collect();
    let model = cabin::runtime::models::installed(&tts, "voice")?;
    let config = cabin::runtime::models::installed(&format!("{tts}-config"), "voice config")?;
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(config)?)?;
    let map: HashMap<char, i64> = config["phoneme_id_map"]
        .as_object()
        .expect("a phoneme_id_map")
        .iter()
        .filter_map(|(k, v)| Some((k.chars().next()?, v[0].as_i64()?)))
        .collect();
    let rate = config["audio"]["sample_rate"].as_f64().unwrap_or(22_050.0);
    let mut session =
        cabin::runtime::onnx::session_with_threads(&model, "voice", profile.speech.threads)?;
    let mut synthesize = |phonemes: &str| -> anyhow::Result<usize> {
        let mut ids = vec![map[&'^'], map[&'_']];
        for p in phonemes.chars() {
            if let Some(id) = map.get(&p) {
                ids.extend([*id, map[&'_']]);
            }
        }
        ids.push(map[&'$']);
        let lengths = [ids.len() as i64];
        let scales = [0.667f32, 1.0, 0.8];
        let outputs = session.run(ort::inputs![
            "input" => TensorRef::from_array_view(([1usize, ids.len()], &ids[..]))?,
            "input_lengths" => TensorRef::from_array_view(([1usize], &lengths[..]))?,
            "scales" => TensorRef::from_array_view(([3usize], &scales[..]))?,
        ])?;
        let (_, audio) = outputs["output"].try_extract_tensor::<f32>()?;
        Ok(audio.len())
    };
    synthesize("wˈɔɹmɪŋ ˈʌp.")?;
    let before = peak_mib();
    let started = Instant::now();
    let mut samples = 0;
    for run in cabin::text::pieces(&phonemes, cap) {
        samples += synthesize(run)?;
    }
    let runs = if cap < n {
        format!("  (runs of at most {cap})")
    } else {
        String::new()
    };
    println!(
        "{n:>8}  {before:>14.0}  {:>14.0}  {:>7.1}  {:>5.2}{runs}",
        peak_mib(),
        samples as f64 / rate,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
