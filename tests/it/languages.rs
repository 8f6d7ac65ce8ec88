//! The Mandarin and Indonesian profiles (`profiles/zh-CN.toml`, `profiles/id.toml`): the same
//! demo car in each language, checked as the English one is by `fastpath`: every sentence of
//! every intent reaches its intent, a few commands said as a driver would say them reach theirs
//! with their values, and what is no command reaches none.

use cabin::profile::sentences::example_sentences;
use cabin::profile::Profile;
use cabin::understand::grammar::Matcher;
use cabin::understand::shortlist::{Embedder, EmbeddingModel, Shortlist};

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
    let (mut wrong, mut missed) = (Vec::new(), Vec::new());
    let examples = example_sentences(&p);
    for (i, sentence) in &examples {
        match m.match_text(sentence) {
            Some(hit) if hit.intent == *i => {}
            Some(hit) => wrong.push(format!(
                "{sentence:?} → {} (wanted {})",
                p.intents[hit.intent].name, p.intents[*i].name
            )),
            None => missed.push(format!("{sentence:?} (wanted {})", p.intents[*i].name)),
        }
    }
    // No sentence reaches another intent. A few expansions may reach none: the optional
    // polite words of a template combine into phrasings the lexicon reads as a question
    // ("帮我…吗"), which the local model then answers.
    assert!(
        wrong.is_empty(),
        "{name}: {} of {} sentences reached another intent:\n{}",
        wrong.len(),
        examples.len(),
        wrong.join("\n")
    );
    assert!(
        missed.len() * 100 <= examples.len(),
        "{name}: {} of {} sentences reached no intent:\n{}",
        missed.len(),
        examples.len(),
        missed.join("\n")
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
    for text in ["今天天气怎么样", "给我讲个笑话", "你叫什么名字呀我想知道"]
    {
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
    for text in [
        "bagaimana cuaca hari ini",
        "ceritakan lelucon",
        "siapa presiden pertama",
    ] {
        assert_eq!(intent_of(&p, &m, text), None, "{text}");
    }
}

/// The Mandarin car cut to its lights, volume and mute (a classifier trains on it in seconds).
fn mandarin_lights_and_sound() -> Profile {
    let path = format!("{}/profiles/zh-CN.toml", env!("CARGO_MANIFEST_DIR"));
    let mut raw: toml::Table = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let keep = |name: &str| {
        name.starts_with("lights.cabin")
            || [
                "lights.brighter",
                "lights.dimmer",
                "media.volume_up",
                "media.volume_down",
                "media.mute",
                "media.unmute",
            ]
            .contains(&name)
    };
    let intents = raw["intents"].as_array().unwrap().clone();
    raw.insert(
        "intents".into(),
        toml::Value::Array(
            intents
                .into_iter()
                .filter(|i| keep(i["name"].as_str().unwrap()))
                .collect(),
        ),
    );
    Profile::parse(
        &toml::to_string(&raw).unwrap(),
        "zh-CN-lights-and-sound.toml",
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_multilingual_classifier_decides_mandarin_it_was_never_shown() {
    let name = "multilingual-e5-small";
    let model = match cabin::runtime::models::installed(name, "intent shortlist model") {
        Ok(path) => path,
        Err(why) => {
            crate::common::missing(why.to_string());
            return;
        }
    };
    let p = mandarin_lights_and_sound();
    let sha256 = cabin::runtime::models::find(name).unwrap().sha256;
    let shortlist = Shortlist::local(
        &p,
        move || Embedder::e5(&model, sha256),
        EmbeddingModel::named(name).unwrap(),
        None,
    );
    shortlist.built().await;
    let m = Matcher::new(&p);
    let mut wrong = Vec::new();
    // Said otherwise than any template or example: the grammar knows none of them.
    for (text, intent) in [
        ("车里黑乎乎的什么都看不见", "lights.cabin_on"),
        ("音响的声音再放大一些", "media.volume_up"),
        ("让音响完全安静下来", "media.mute"),
    ] {
        assert!(m.match_text(text).is_none(), "{text}: the grammar knows it");
        let c = shortlist.rank(text).await.unwrap().classified;
        if c.intent.as_deref() != Some(intent) || c.probability < p.classifier.confident {
            wrong.push(format!("{text:?}: {c:?}, wanted {intent}"));
        }
    }
    for text in ["明天会下雨吗", "帮我订一张去北京的机票"] {
        let c = shortlist.rank(text).await.unwrap().classified;
        if c.intent.is_some() && c.probability >= p.classifier.confident {
            wrong.push(format!("{text:?}: {c:?}, wanted no command"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Issue 39: a driver in Shanghai or Jakarta says the wake word, then a command in the profile's
/// language; `cabin listen` hears it with whisper base (the language told, the Simplified
/// prompt, the transcript folded to Simplified) and the simulator acts. The commands are
/// Kokoro's (tests/fixtures/README.md).
#[tokio::test]
async fn spoken_mandarin_and_indonesian_commands_change_the_simulator() {
    let _whisper = crate::asr::WHISPER.lock().await;
    for name in ["whisper-base", "multilingual-e5-small"] {
        if let Err(e) = cabin::runtime::models::installed(name, "model") {
            crate::common::missing(format!("{e}"));
            return;
        }
    }
    let bus = crate::common::TestBus::start();
    let _sim = bus.start_sim();
    let conn = bus.connect().await;
    // The climate starts on; the Mandarin command turns it on.
    conn.call_method(
        Some("org.cabin.VehicleSim"),
        "/org/cabin/VehicleSim/Hvac",
        Some("org.cabin.VehicleSim.Hvac1"),
        "SetPower",
        &(false,),
    )
    .await
    .unwrap();
    let cases = [
        (
            "zh-CN",
            "kokoro-zh-hey-cabin-qing-dakai-kongtiao.wav",
            "climate.on",
            "Vehicle.Cabin.HVAC.IsOn",
            serde_json::json!(true),
        ),
        (
            "id",
            "kokoro-id-hey-cabin-putar-lagu-berikutnya.wav",
            "media.next",
            "Vehicle.Cabin.Infotainment.Media.Played.Track",
            serde_json::json!(2),
        ),
    ];
    for (language, wav, intent, key, value) in cases {
        let before = crate::common::snapshot(&conn).await[key].clone();
        assert_ne!(before, value, "{language}: the simulator starts otherwise");
        let profile = format!("{}/profiles/{language}.toml", env!("CARGO_MANIFEST_DIR"));
        let wav = crate::common::fixture(&format!("languages/{wav}"));
        let out = bus.cabin(&[
            "listen",
            "--profile",
            &profile,
            "--json",
            "--input",
            wav.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{language}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["wakes"].as_array().unwrap().len(), 1, "{language}: {v}");
        assert_eq!(
            v["commands"][0]["outcome"]["intent"], intent,
            "{language}: {v}"
        );
        assert_eq!(
            crate::common::snapshot(&conn).await[key],
            value,
            "{language}: {v}"
        );
    }
}
