//! The always-on front end with the real models `cabin models fetch` installs (openWakeWord,
//! Silero VAD on ONNX Runtime): wake word, end-pointing, push-to-talk, false wakes on real
//! speech, and bad models. Spoken commands are synthesised with eSpeak NG.
//!
//! Without the models these tests skip with a message, except under CI, where that fails.

use crate::common;

use common::missing;

use cabin::hear::{Engines, FrontEnd, Heard, Input, Playback};
use cabin::profile::{ListenSettings, Profile};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Whether the front end's models are installed.
fn models() -> bool {
    let p = Profile::load_or_default(None).unwrap();
    let dir = cabin::runtime::models::default_dir();
    for (_, name) in p.models.needed() {
        let m = cabin::runtime::models::find(&name).unwrap();
        if m.kind != "asr" && m.kind != "llm" && !dir.join(m.file).is_file() {
            return missing(format!(
                "{} (run `cabin models fetch`)",
                dir.join(m.file).display()
            ));
        }
    }
    true
}

/// 16 kHz samples of `text` spoken by eSpeak NG.
fn say(text: &str) -> Option<Vec<i16>> {
    say_as("en-gb", text)
}

/// 16 kHz samples of `text` spoken by eSpeak NG in `voice`.
fn say_as(voice: &str, text: &str) -> Option<Vec<i16>> {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("say.wav");
    match Command::new("espeak-ng")
        .args(["-v", voice, "-s", "150", "-w"])
        .arg(&wav)
        .arg(text)
        .status()
    {
        Ok(s) if s.success() => Some(cabin::hear::audio::read(&wav).unwrap()),
        _ => {
            missing("espeak-ng (scripts/setup installs it)".into());
            None
        }
    }
}

fn silence(seconds: f64) -> Vec<i16> {
    vec![0; (seconds * 16_000.0) as usize]
}

/// Everything the front end hears in `audio` (a recording, so it waits for each command),
/// every pause judged not a whole command.
fn hear(audio: &[i16], settings: ListenSettings, push_to_talk: bool) -> Vec<Heard> {
    hear_judged(audio, settings, push_to_talk, |_| false)
}

/// As [`hear`], each pause judged by `whole` (given the command's audio up to it).
fn hear_judged(
    audio: &[i16],
    settings: ListenSettings,
    push_to_talk: bool,
    whole: impl Fn(&[i16]) -> bool,
) -> Vec<Heard> {
    hear_over(audio, None, settings, push_to_talk, whole)
}

/// As [`hear_judged`], with what the car played meanwhile (`played`, sample for sample with
/// `audio`) given to the echo canceller as the media's capture.
fn hear_over(
    audio: &[i16],
    played: Option<&[i16]>,
    settings: ListenSettings,
    push_to_talk: bool,
    whole: impl Fn(&[i16]) -> bool,
) -> Vec<Heard> {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("in.wav");
    cabin::hear::audio::write_wav(&wav, audio).unwrap();
    let mut playback = Playback::default();
    if let Some(played) = played {
        let reference = dir.path().join("played.wav");
        cabin::hear::audio::write_wav(&reference, played).unwrap();
        playback.media = Some(Input::File(reference));
    }
    let profile = Profile::load_or_default(None).unwrap();
    let engines = Engines::load(&profile.models).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let front_end = FrontEnd::start(
        Input::File(wav),
        engines,
        settings,
        push_to_talk,
        playback,
        tx,
    )
    .unwrap();
    let judge = front_end.judge();
    let mut heard = Vec::new();
    let mut spoken = Vec::new();
    while let Some(h) = rx.blocking_recv() {
        match &h {
            Heard::Command { audio, .. } => {
                // The pieces sent while it was spoken are the command's audio.
                assert!(spoken == *audio, "{} pieces, {}", spoken.len(), audio.len());
                front_end.resume();
                spoken.clear();
            }
            Heard::Speech { audio, first } => {
                if *first {
                    spoken.clear();
                }
                spoken.extend_from_slice(audio);
            }
            Heard::Pause { speech_end, .. } => judge.judge(*speech_end, whole(&spoken)),
            _ => {}
        }
        let end = matches!(h, Heard::Ended { .. });
        heard.push(h);
        if end {
            break;
        }
    }
    heard
}

/// The default profile's listening settings: the wake word at the threshold that ships (the
/// one `cabin wake train` calibrated for the installed model).
fn shipped() -> ListenSettings {
    Profile::load_or_default(None).unwrap().listen
}

/// (when, score) of each wake: what a failing test prints, never the audio.
fn wake_scores(heard: &[Heard]) -> Vec<(f64, f32)> {
    heard
        .iter()
        .filter_map(|h| match h {
            Heard::Wake { at, score } => Some((*at, *score)),
            _ => None,
        })
        .collect()
}

fn wakes(heard: &[Heard]) -> Vec<f64> {
    heard
        .iter()
        .filter_map(|h| match h {
            Heard::Wake { at, .. } => Some(*at),
            _ => None,
        })
        .collect()
}

/// (start, seconds, cut off) of each command.
fn commands(heard: &[Heard]) -> Vec<(f64, f64, bool)> {
    heard
        .iter()
        .filter_map(|h| match h {
            Heard::Command {
                audio, at, cut_off, ..
            } => Some((*at, audio.len() as f64 / 16_000.0, *cut_off)),
            _ => None,
        })
        .collect()
}

/// Without the near-silent 10 ms frames at either end.
fn trimmed(s: &[i16]) -> &[i16] {
    &s[loud_span(s)]
}

/// The samples from the first to the last 10 ms frame that isn't near-silent.
fn loud_span(s: &[i16]) -> std::ops::Range<usize> {
    let loud = |f: &[i16]| f.iter().map(|x| (*x as i32).abs()).max().unwrap_or(0) > 300;
    let frames: Vec<&[i16]> = s.chunks(160).collect();
    let first = frames.iter().position(|f| loud(f)).unwrap_or(0);
    let last = frames.iter().rposition(|f| loud(f)).unwrap_or(0);
    first * 160..((last + 1) * 160).min(s.len())
}

fn secs(samples: &[i16]) -> f64 {
    samples.len() as f64 / 16_000.0
}

#[test]
fn the_wake_word_opens_a_command_that_ends_at_the_silence() {
    if !models() {
        return;
    }
    let (Some(wake), Some(command)) = (
        say("hey cabin"),
        say("set the temperature to twenty degrees"),
    ) else {
        return;
    };
    // Twice, so that the second wake also shows the detector is ready again.
    let mut audio = silence(1.0);
    for _ in 0..2 {
        audio.extend(&wake);
        audio.extend(silence(0.3));
        audio.extend(&command);
        audio.extend(silence(2.0));
    }
    let heard = hear(&audio, shipped(), false);
    let wakes = wakes(&heard);
    let commands = commands(&heard);
    eprintln!("wakes {wakes:?}, commands {commands:?}");
    assert_eq!(wakes.len(), 2, "{heard:?}");
    assert_eq!(commands.len(), 2, "{heard:?}");
    let turn = secs(&wake) + 0.3 + secs(&command) + 2.0;
    // eSpeak NG ends its recording with about 0.4 s of silence: the phrase ends before it.
    let phrase = loud_span(&wake).end as f64 / 16_000.0;
    for (i, (at, len, cut_off)) in commands.into_iter().enumerate() {
        let clip_start = 1.0 + i as f64 * turn;
        let command_start = clip_start + secs(&wake) + 0.3;
        // The wake word is heard within half a second of the phrase's last sound (regression:
        // timed from the end of the recording, a model that woke 70 ms after the phrase
        // failed as "early")...
        let wake_end = clip_start + phrase;
        assert!(
            wakes[i] > wake_end - 0.3 && wakes[i] < wake_end + 0.5,
            "wakes {wakes:?}, phrase {i} ends at {wake_end:.2} s"
        );
        // ...and the command is kept whole: its onset, and its end within the padding and the
        // 600 ms of silence that ends it.
        assert!(at <= command_start + 0.05, "command {i} starts at {at}");
        let end = at + len;
        let spoken_end = command_start + secs(&command);
        assert!(
            end >= spoken_end - 0.25 && end <= spoken_end + 0.5,
            "command {i} ends at {end}, speech at {spoken_end}"
        );
        assert!(!cut_off);
    }
    if let Some(Heard::Ended {
        audio_s,
        wake_cpu_s,
        vad_cpu_s,
        clean_cpu_s,
        error,
    }) = heard.last()
    {
        assert_eq!(error, &None);
        eprintln!(
            "front end CPU: wake word {:.1} %, voice activity {:.1} %, cleaning {:.1} % of one core",
            100.0 * wake_cpu_s / audio_s,
            100.0 * vad_cpu_s / audio_s,
            100.0 * clean_cpu_s / audio_s
        );
    }
}

/// Issue 40: under steady noise, the command the recogniser gets is cleaned (the noise before
/// the speech is far quieter than the microphone's), while the wake word, which hears the
/// microphone as it is, still wakes.
#[test]
fn a_command_heard_in_noise_reaches_the_recogniser_cleaned() {
    if !models() {
        return;
    }
    let (Some(wake), Some(command)) = (say("hey cabin"), say("turn on the seat heating")) else {
        return;
    };
    let mut audio = silence(1.5);
    audio.extend(&wake);
    audio.extend(silence(0.3));
    audio.extend(&command);
    audio.extend(silence(2.0));
    // Hiss about 20 dB below the voice, the same for every run.
    let mut seed = 7u32;
    for s in audio.iter_mut() {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        *s = s.saturating_add(((seed >> 16) as i16) / 64);
    }
    let level = |settings: ListenSettings| {
        let heard = hear(&audio, settings, false);
        assert_eq!(wakes(&heard).len(), 1, "{:?}", wake_scores(&heard));
        let captured = heard.iter().find_map(|h| match h {
            Heard::Command { audio, .. } => Some(audio.clone()),
            _ => None,
        });
        let captured = captured.unwrap_or_else(|| panic!("no command: {heard:?}"));
        // The pre-roll: noise only.
        let head = &captured[..1600];
        (head.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / head.len() as f64).sqrt()
    };
    let mut raw = shipped();
    raw.clean.noise = None;
    let mut cleaned = shipped();
    cleaned.clean.noise = Some(cabin::profile::NoiseLevel::High);
    let (raw, cleaned) = (level(raw), level(cleaned));
    eprintln!("noise before the command: {raw:.0} raw, {cleaned:.0} cleaned");
    assert!(cleaned < raw / 3.0, "{raw:.0} raw, {cleaned:.0} cleaned");
}

/// `played` as a car's microphone hears it from the loudspeakers: 48 ms late (buffers and a
/// metre of air), with two of the cabin's reflections, at `gain`.
fn echo_of(played: &[i16], gain: f64) -> Vec<i16> {
    let mut out = vec![0f64; played.len()];
    for (delay, weight) in [(768, 1.0), (928, 0.4), (1248, -0.2)] {
        for (o, &s) in out[delay..].iter_mut().zip(played) {
            *o += weight * gain * f64::from(s);
        }
    }
    out.into_iter()
        .map(|s| s.clamp(-32768.0, 32767.0) as i16)
        .collect()
}

fn rms(s: &[i16]) -> f64 {
    let loud: Vec<f64> = s
        .iter()
        .map(|&x| f64::from(x))
        .filter(|x| x.abs() > 300.0)
        .collect();
    (loud.iter().map(|x| x * x).sum::<f64>() / loud.len().max(1) as f64).sqrt()
}

/// Issue 40: Cabin reads a long answer through the loudspeakers, as loud at the microphone as
/// the driver, who barges in with "Hey Cabin" and a command; with what played given to the
/// echo canceller, the wake word hears the driver and the command is captured.
#[test]
fn the_driver_barges_in_over_the_cars_playback_with_its_echo_cancelled() {
    if !models() {
        return;
    }
    let (Some(answer), Some(wake), Some(command)) = (
        say_as(
            "en-us+f3",
            "The traffic ahead is light, and you will arrive in about twenty minutes. \
             Would you like me to play some music while you drive? You can always ask me \
             for the weather, the news, or directions to the nearest charging station.",
        ),
        say("hey cabin"),
        say("turn on the seat heating"),
    ) else {
        return;
    };
    let start = 48_000;
    let mut driver = silence(3.0);
    driver.extend(&wake);
    driver.extend(silence(0.3));
    driver.extend(&command);
    driver.resize(driver.len().max(answer.len()) + 32_000, 0);
    let mut played = answer.clone();
    played.resize(driver.len(), 0);
    let echo = echo_of(&played, rms(&driver) / rms(&echo_of(&answer, 1.0)));
    let mic: Vec<i16> = driver
        .iter()
        .zip(&echo)
        .map(|(d, e)| d.saturating_add(*e))
        .collect();
    let heard = hear_over(&mic, Some(&played), shipped(), false, |_| false);
    let scores = wake_scores(&heard);
    eprintln!("wakes {scores:?}, commands {:?}", commands(&heard));
    let woke = wakes(&heard);
    assert_eq!(woke.len(), 1, "{scores:?}");
    let wake_end = (start + loud_span(&wake).end) as f64 / 16_000.0;
    assert!(
        (woke[0] - wake_end).abs() < 0.5,
        "{scores:?}, the phrase ends at {wake_end:.2} s"
    );
    let (at, len, _) = commands(&heard)[0];
    let spoken = (start + wake.len() + 4_800) as f64 / 16_000.0;
    assert!(
        at <= spoken + 0.05 && at + len >= spoken + secs(trimmed(&command)),
        "{:?}",
        commands(&heard)
    );
}

/// Issue 40 (regression): a wake word trained with no other speech around its positives took
/// speech anywhere near the phrase for "not the phrase", and talk radio 40 dB below the driver,
/// not even cancelled, hid "Hey Cabin" on half of `cabin wake playback`'s tries. Here the radio
/// plays 30 dB below, under six voices.
#[test]
fn faint_talk_radio_does_not_hide_the_wake_word() {
    if !models() {
        return;
    }
    let Some(talk) = say_as(
        "en-gb-x-rp",
        "Good evening, here is the news. Heavy rain is expected across the north tonight, and \
         drivers are asked to take care on the motorways. In sport, the home side won again \
         after a late goal, and the match next week is already sold out.",
    ) else {
        return;
    };
    let voices = [
        "en-us",
        "en-gb",
        "en-us+f3",
        "en-gb-scotland",
        "en-us+m4",
        "en-029",
    ];
    let mut heard = Vec::new();
    for voice in voices {
        let Some(phrase) = say_as(voice, "hey cabin, turn on the seat heating") else {
            return;
        };
        let mut driver = silence(3.0);
        driver.extend(&phrase);
        driver.extend(silence(1.0));
        let gain = rms(&phrase) / rms(&talk) / 10f64.powf(30.0 / 20.0);
        let mic: Vec<i16> = driver
            .iter()
            .zip(talk.iter().cycle())
            .map(|(d, t)| d.saturating_add((f64::from(*t) * gain) as i16))
            .collect();
        let woke = hear(&mic, shipped(), false);
        let end = (48_000 + loud_span(&phrase).end) as f64 / 16_000.0;
        let on_time = wakes(&woke).iter().any(|&at| at > 3.0 && at < end);
        heard.push((voice, on_time, wake_scores(&woke)));
    }
    eprintln!("{heard:?}");
    // One miss in six is allowed: the model is trained on each machine.
    assert!(heard.iter().filter(|h| h.1).count() >= 5, "{heard:?}");
}

/// Issue 40: Cabin's own voice saying its wake word (explaining how to talk to it), heard
/// through the cabin, never wakes it once the canceller is given what played, and the
/// end-pointer hears little speech in it (push-to-talk over the echo alone), where without the
/// reference it hears all of it.
#[test]
fn what_the_car_plays_never_wakes_it_with_its_echo_cancelled() {
    if !models() {
        return;
    }
    // In Cabin's own voice (the profile's Piper voice).
    let profile = Profile::load_or_default(None).unwrap();
    let mut voice = cabin::speak::voice::load(&profile).unwrap();
    let own = voice
        .synthesize(
            "To talk to me, say Hey Cabin, then what you need. For example: Hey Cabin, turn \
             on the seat heating. Or: Hey Cabin, call Jordan.",
        )
        .unwrap();
    let own: Vec<i16> = cabin::hear::audio::resample(&own, voice.sample_rate())
        .unwrap()
        .iter()
        .map(|&s| (s * 32767.0) as i16)
        .collect();
    let mut played = own.clone();
    played.resize(own.len() + 16_000, 0);
    let mic = echo_of(&played, 0.5);
    let cancelled = hear_over(&mic, Some(&played), shipped(), false, |_| false);
    assert!(
        wakes(&cancelled).is_empty(),
        "{:?}",
        wake_scores(&cancelled)
    );
    eprintln!(
        "the echo without the reference wakes at {:?}",
        wake_scores(&hear(&mic, shipped(), false))
    );
    // Seconds of speech the end-pointer hears from the first sample on (push-to-talk).
    let speech = |heard: &[Heard]| commands(heard).iter().map(|c| c.1).sum::<f64>();
    let cancelled = speech(&hear_over(&mic, Some(&played), shipped(), true, |_| false));
    let raw = speech(&hear(&mic, shipped(), true));
    eprintln!("speech heard in the echo: {raw:.1} s raw, {cancelled:.1} s cancelled");
    // What is left is the canceller's first second, while it learns the cabin.
    assert!(
        cancelled < raw / 3.0,
        "{raw:.1} s raw, {cancelled:.1} s cancelled"
    );
}

/// A media reference that cannot be read is a start-up error naming it and the fix, not a
/// front end that cancels nothing.
#[test]
fn a_missing_media_reference_is_named_with_the_fix() {
    if !models() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("in.wav");
    cabin::hear::audio::write_wav(&wav, &silence(1.0)).unwrap();
    let profile = Profile::load_or_default(None).unwrap();
    let playback = Playback {
        voice: None,
        media: Some(Input::File(dir.path().join("no-such-capture.wav"))),
    };
    let (tx, _rx) = tokio::sync::mpsc::channel(16);
    let e = FrontEnd::start(
        Input::File(wav),
        Engines::load(&profile.models).unwrap(),
        shipped(),
        false,
        playback,
        tx,
    )
    .err()
    .expect("a missing reference");
    let e = e.to_string();
    assert!(e.contains("no-such-capture.wav"), "{e}");
    assert!(e.contains("[audio] reference"), "{e}");
}

#[test]
fn a_pause_judged_whole_ends_the_turn_early_unless_speech_goes_on() {
    if !models() {
        return;
    }
    let (Some(first), Some(more)) = (say("turn on the seat heating"), say("and the fan")) else {
        return;
    };
    let (first, more) = (trimmed(&first), trimmed(&more));
    let mut audio = silence(0.5);
    audio.extend(first);
    // Shorter than the short wait of a whole command (224 ms), longer than the 96 ms after
    // which the front end asks.
    audio.extend(silence(0.18));
    audio.extend(more);
    audio.extend(silence(1.5));
    let spoken = secs(first) + 0.18 + secs(more);
    for whole in [true, false] {
        let heard = hear_judged(&audio, shipped(), true, |_| whole);
        let pauses = heard
            .iter()
            .filter(|h| matches!(h, Heard::Pause { .. }))
            .count();
        let ended: Vec<(f64, bool)> = heard
            .iter()
            .filter_map(|h| match h {
                Heard::Command { audio, early, .. } => Some((secs(audio), *early)),
                _ => None,
            })
            .collect();
        eprintln!("whole {whole}: {pauses} pauses, commands {ended:?}");
        assert!(pauses >= 2, "{pauses} pauses");
        // One command, all of it: the pause inside was asked about, judged whole, and yet
        // the driver went on before the short wait was over.
        assert_eq!(ended.len(), 1, "{ended:?}");
        let (len, early) = ended[0];
        assert!(len > spoken, "{len} s of {spoken} s");
        // Its end: after the short wait when judged whole, else after the trailing silence.
        assert_eq!(early, whole);
    }
}

#[test]
fn real_speech_without_the_wake_word_never_wakes_it() {
    if !models() {
        return;
    }
    let dir = std::env::var_os("CABIN_SPEECH_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/cabin/speech")))
        .unwrap();
    if !dir.join("goforward.raw").is_file() {
        missing(format!("{} (run scripts/fetch-speech)", dir.display()));
        return;
    }
    // Eleven recordings of real people, another assistant's wake phrase, and the wake word's
    // second word inside a command.
    let mut audio = cabin::hear::audio::read(&dir.join("goforward.raw")).unwrap();
    for sub in ["cards", "librivox"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(sub))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "wav"))
            .collect();
        files.sort();
        for f in files {
            audio.extend(cabin::hear::audio::read(&f).unwrap());
            audio.extend(silence(0.5));
        }
    }
    for text in ["hey jarvis, open the window", "turn on the cabin lights"] {
        if let Some(s) = say(text) {
            audio.extend(s);
            audio.extend(silence(0.5));
        }
    }
    let heard = hear(&audio, shipped(), false);
    eprintln!("{:.0} s of speech without the wake word", secs(&audio));
    let woke = wake_scores(&heard);
    assert!(woke.is_empty(), "woke at (seconds, score): {woke:?}");
}

#[test]
fn push_to_talk_listens_without_the_wake_word_and_times_out_on_silence() {
    if !models() {
        return;
    }
    let Some(command) = say("open the window") else {
        return;
    };
    let mut audio = silence(0.5);
    audio.extend(&command);
    audio.extend(silence(1.0));
    let heard = hear(&audio, shipped(), true);
    assert_eq!(wakes(&heard), Vec::<f64>::new());
    let c = commands(&heard);
    assert_eq!(c.len(), 1, "{heard:?}");
    assert!(c[0].1 >= secs(&command) - 0.2, "{c:?}");

    let settings = ListenSettings {
        no_speech_timeout: Duration::from_millis(1500),
        ..shipped()
    };
    let heard = hear(&silence(3.0), settings, true);
    assert!(commands(&heard).is_empty(), "{heard:?}");
    assert!(
        matches!(heard[0], Heard::NoSpeech { at } if (1.5..=1.7).contains(&at)),
        "{heard:?}"
    );
}

#[test]
fn a_command_longer_than_the_maximum_is_cut_off() {
    if !models() {
        return;
    }
    let Some(speech) =
        say("set the temperature to twenty degrees and then open every window and play some music")
    else {
        return;
    };
    let settings = ListenSettings {
        max_utterance: Duration::from_secs(2),
        ..shipped()
    };
    let heard = hear(&speech, settings, true);
    let c = commands(&heard);
    assert_eq!(c.len(), 1, "{heard:?}");
    assert!(c[0].2, "not cut off: {heard:?}");
    assert!(c[0].1 <= 2.0 + 0.5, "{c:?}");
}

/// Runs `cabin listen` on a second of silence with `models` as the models directory.
fn listen_with_models(models: &Path) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("silence.wav");
    cabin::hear::audio::write_wav(&wav, &silence(1.0)).unwrap();
    let mut cmd = Command::new(common::CABIN);
    cmd.args([
        "listen",
        "--llm",
        "off",
        "--asr",
        "tcp://127.0.0.1:9",
        "--input",
    ])
    .arg(&wav)
    .env("CABIN_MODELS_DIR", models)
    .env_remove("ORT_DYLIB_PATH");
    common::output_within(cmd, Duration::from_secs(60))
}

#[test]
fn missing_or_corrupt_front_end_models_are_named_with_the_fix() {
    let empty = tempfile::tempdir().unwrap();
    let out = listen_with_models(empty.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("is not installed at"), "{err}");
    assert!(err.contains("run `cabin models fetch`"), "{err}");

    if !models() {
        return;
    }
    // Every model in place, but the voice activity model is garbage.
    let real = cabin::runtime::models::default_dir();
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&real).unwrap().flatten() {
        std::os::unix::fs::symlink(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let vad = cabin::runtime::models::find("silero-vad").unwrap().file;
    std::fs::remove_file(dir.path().join(vad)).unwrap();
    std::fs::write(dir.path().join(vad), b"not a model").unwrap();
    let out = listen_with_models(dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("cannot load the voice activity model"),
        "{err}"
    );
    assert!(err.contains("cabin models fetch"), "{err}");
}
