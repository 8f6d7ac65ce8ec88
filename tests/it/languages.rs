//! The Mandarin and Indonesian profiles (`profiles/zh-CN.toml`, `profiles/id.toml`): the same
//! demo car in each language, checked as the English one is by `fastpath`: every sentence of
//! every intent reaches its intent, a few commands said as a driver would say them reach theirs
//! with their values, and what is no command reaches none.

use cabin::profile::sentences::example_sentences;
use cabin::profile::Profile;
use cabin::understand::grammar::Matcher;

fn load(name: &str) -> (Profile, Matcher) {
    let path = format!("{}/profiles/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    let p = Profile::load(std::path::Path::new(&path)).unwrap_or_else(|e| panic!("{e}"));
    let m = Matcher::new(&p);
    (p, m)
}

fn intent_of(p: &Profile, m: &Matcher, text: &str) -> Option<String> {
    m.match_text(text).map(|h| p.intents[h.intent].name.clone())
}

/// Every intent of the English profile, and every sentence reaching its own intent.
fn check_whole(name: &str) {
    let (p, m) = load(name);
    let english = Profile::embedded_default();
    let names = |p: &Profile| p.intents.iter().map(|i| i.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&p), names(&english), "{name}: not the same car");
    let mut wrong = Vec::new();
    let examples = example_sentences(&p);
    for (i, sentence) in &examples {
        match m.match_text(sentence) {
            Some(hit) if hit.intent == *i => {}
            hit => wrong.push(format!(
                "{sentence:?} → {:?} (wanted {})",
                hit.map(|h| &p.intents[h.intent].name),
                p.intents[*i].name
            )),
        }
    }
    assert!(
        wrong.is_empty(),
        "{name}: {} of {} sentences went wrong:\n{}",
        wrong.len(),
        examples.len(),
        wrong.join("\n")
    );
}

#[test]
fn the_mandarin_car_is_the_english_one_and_its_sentences_reach_their_intents() {
    check_whole("zh-CN");
}

#[test]
fn the_indonesian_car_is_the_english_one_and_its_sentences_reach_their_intents() {
    check_whole("id");
}

#[test]
fn mandarin_commands_reach_their_intents_and_talk_reaches_none() {
    let (p, m) = load("zh-CN");
    for (text, intent) in [
        ("请把车内的灯打开", "lights.cabin_on"),
        ("关灯吧", "lights.cabin_off"),
        ("把灯调暗一点", "lights.dimmer"),
        ("声音大一点", "media.volume_up"),
        ("音量调小", "media.volume_down"),
        ("静音", "media.mute"),
        ("打开收音机", "media.radio_on"),
    ] {
        assert_eq!(intent_of(&p, &m, text).as_deref(), Some(intent), "{text}");
    }
    for text in ["今天天气怎么样", "给我讲个笑话", "你叫什么名字呀我想知道"] {
        assert_eq!(intent_of(&p, &m, text), None, "{text}");
    }
}

#[test]
fn indonesian_commands_reach_their_intents_and_talk_reaches_none() {
    let (p, m) = load("id");
    for (text, intent) in [
        ("tolong nyalakan lampu kabin", "lights.cabin_on"),
        ("matiin lampunya dong", "lights.cabin_off"),
        ("redupkan lampu", "lights.dimmer"),
        ("kerasin volumenya", "media.volume_up"),
        ("kecilkan suaranya", "media.volume_down"),
        ("bisukan suara", "media.mute"),
        ("nyalakan radio", "media.radio_on"),
    ] {
        assert_eq!(intent_of(&p, &m, text).as_deref(), Some(intent), "{text}");
    }
    for text in ["bagaimana cuaca hari ini", "ceritakan lelucon", "siapa presiden pertama"] {
        assert_eq!(intent_of(&p, &m, text), None, "{text}");
    }
}
