//! The settings sections checked: models, speech, listening, dialog, the model routes, the
//! vehicle's driving-state source, inputs and small talk.

use super::Validator;
use crate::profile::raw::{self};
use crate::profile::template::Template;
use crate::profile::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

impl Validator<'_> {
    /// The model names, each a catalogue model of its kind (or, where a file may stand in, a
    /// path or "espeak"): a typo is reported here, not when the daemon starts that engine.
    pub(super) fn models(&mut self, raw: &raw::RawModels) -> Models {
        let wake_targets = self.wake_targets(&raw.wake_targets);
        /// Names a field takes besides its catalogue models, and how the fix says so.
        struct Besides {
            takes: fn(&str) -> bool,
            hint: &'static str,
        }
        const NOTHING: Besides = Besides {
            takes: |_| false,
            hint: "",
        };
        let mut model = |v: &Option<Spanned<String>>,
                         field: &str,
                         what: &str,
                         kinds: &[&str],
                         besides: Besides| {
            let v = v.as_ref()?;
            let name = v.get_ref();
            let known = |m: &crate::runtime::models::Model| kinds.contains(&m.kind);
            if (besides.takes)(name)
                || crate::runtime::models::all().any(|m| known(m) && m.name == name)
            {
                return Some(name.clone());
            }
            let names: Vec<&str> = crate::runtime::models::all()
                .filter(|m| known(m))
                .map(|m| m.name)
                .collect();
            self.error(
                Some(v.span()),
                &format!("models.{field}"),
                format!("'{name}' is not {what} (known: {})", names.join(", ")),
                &format!(
                    "name one of them{}; `cabin models list` shows them all",
                    besides.hint
                ),
            );
            None
        };
        Models {
            wake_targets,
            asr: model(
                &raw.asr,
                "asr",
                "a speech recognition model",
                &["asr"],
                NOTHING,
            ),
            llm: model(&raw.llm, "llm", "a language model", &["llm"], NOTHING),
            tts: model(
                &raw.tts,
                "tts",
                "a voice",
                &["tts"],
                Besides {
                    takes: |name| !is_piper(name) || crate::runtime::models::is_path(name),
                    hint: ", \"espeak\", \"kokoro-v1.0\", or the path of a Piper voice (.onnx)",
                },
            ),
            wake: model(
                &raw.wake,
                "wake",
                "a wake word model",
                &["wake"],
                Besides {
                    takes: crate::runtime::models::is_path,
                    hint: ", or the path of a keyword model (.onnx)",
                },
            ),
            vad: model(&raw.vad, "vad", "a voice activity model", &["vad"], NOTHING),
            shortlist: model(
                &raw.shortlist,
                "shortlist",
                "an intent shortlist model",
                &["embedding", "embedding-gguf"],
                NOTHING,
            ),
        }
    }

    /// `[models.wake_targets]`: shares and rates in their ranges.
    fn wake_targets(&mut self, raw: &raw::RawWakeTargets) -> WakeTargets {
        let mut t = WakeTargets::default();
        let mut field = |v: &Option<Spanned<f64>>, name: &str, max: f64, fix: &str| {
            let v = v.as_ref()?;
            if (0.0..=max).contains(v.get_ref()) {
                Some(*v.get_ref())
            } else {
                self.error(
                    Some(v.span()),
                    &format!("models.wake_targets.{name}"),
                    format!("{} is outside 0..={max}", v.get_ref()),
                    fix,
                );
                None
            }
        };
        if let Some(v) = field(
            &raw.max_false_reject,
            "max_false_reject",
            0.5,
            "a share of the phrase's trials, e.g. 0.05 for 5 % missed",
        ) {
            t.max_false_reject = v;
        }
        if let Some(v) = field(
            &raw.max_false_accepts_per_hour,
            "max_false_accepts_per_hour",
            10.0,
            "false wakes an hour, e.g. 0.1 for one in ten hours",
        ) {
            t.max_false_accepts_per_hour = v;
        }
        t
    }

    pub(super) fn check_spoken(
        &mut self,
        here: Option<std::ops::Range<usize>>,
        field: &str,
        text: &str,
    ) {
        let words = text.split_whitespace().count();
        if words > MAX_SPOKEN_WORDS {
            self.error(
                here,
                field,
                format!("the spoken text has {words} words"),
                &format!(
                    "keep it under {MAX_SPOKEN_WORDS} words: the driver hears it while driving"
                ),
            );
        }
    }

    /// Plain sentences (no template syntax), each with words: an intent's examples or the
    /// classifier's negatives.
    pub(super) fn plain_sentences(
        &mut self,
        here: Option<std::ops::Range<usize>>,
        field: &str,
        raw: &[String],
    ) -> Vec<String> {
        for (i, sentence) in raw.iter().enumerate() {
            if sentence.contains(['{', '}', '[', ']', '(', ')', '|']) {
                self.error(
                    here.clone(),
                    &format!("{field}[{i}]"),
                    format!(
                        "\"{sentence}\" uses template syntax, but examples are plain sentences"
                    ),
                    "write it out as people say it, or move it to sentences",
                );
            } else if crate::text::tokenize_with(sentence, &self.lexicon.numbers).is_empty() {
                self.error(
                    here.clone(),
                    &format!("{field}[{i}]"),
                    "the sentence has no words".into(),
                    "remove it or write the sentence",
                );
            }
        }
        raw.to_vec()
    }

    pub(super) fn classifier(&mut self, raw: &raw::RawClassifier) -> ClassifierSettings {
        let confident = self.probability(
            raw.confident.as_ref(),
            "classifier.confident",
            DEFAULT_CLASSIFIER_CONFIDENT,
        );
        let mut agreed = self.probability(raw.agreed.as_ref(), "classifier.agreed", confident);
        if let Some(a) = raw.agreed.as_ref().filter(|_| agreed > confident) {
            self.error(
                Some(a.span()),
                "classifier.agreed",
                format!(
                    "{agreed} is above classifier.confident ({confident}): the classifier decides from there anyway"
                ),
                "make it at most classifier.confident, or leave it out",
            );
            agreed = confident;
        }
        ClassifierSettings {
            negatives: raw.negatives.as_ref().map_or_else(Vec::new, |n| {
                self.plain_sentences(Some(n.span()), "classifier.negatives", n.get_ref())
            }),
            confident,
            agreed,
            answers: self.probability(
                raw.answers.as_ref(),
                "classifier.answers",
                DEFAULT_ANSWER_CONFIDENT,
            ),
        }
    }

    /// A probability setting, or `default` when it is left out (or, with an error, wrong).
    fn probability(&mut self, raw: Option<&Spanned<f32>>, field: &str, default: f32) -> f32 {
        match raw {
            Some(c) if !(0.0..=1.0).contains(c.get_ref()) => {
                self.error(
                    Some(c.span()),
                    field,
                    format!("{} is not a probability", c.get_ref()),
                    "use a number from 0 to 1, e.g. 0.6",
                );
                default
            }
            Some(c) => *c.get_ref(),
            None => default,
        }
    }

    /// What the car lacks: named once, with words and a short reply. An entry one of whose
    /// words the intents' sentences or slot values use is one the car has (an integrator added
    /// the sunroof): it is left out, not refused.
    pub(super) fn lacks(
        &mut self,
        raw: &[Spanned<raw::RawLack>],
        intents: &[Intent],
        types: &BTreeMap<String, SlotType>,
    ) -> Vec<Lack> {
        let mut used: BTreeSet<String> = intents
            .iter()
            .flat_map(|i| &i.sentences)
            .flat_map(Template::words)
            .collect();
        for ty in types.values() {
            if let SlotType::Enum { values, .. } = ty {
                used.extend(
                    values
                        .iter()
                        .flat_map(|v| v.synonyms.iter().flatten().cloned()),
                );
            }
        }
        let mut out: Vec<Lack> = Vec::new();
        for spanned in raw {
            let lack = spanned.get_ref();
            let here = Some(spanned.span());
            let field = format!("lacks '{}'", lack.name);
            let start = self.errors.len();
            if lack.name.trim().is_empty() || out.iter().any(|o| o.name == lack.name) {
                self.error(
                    here.clone(),
                    &field,
                    "names of what the car lacks must be unique and not empty".into(),
                    "give each [[lacks]] its own name, e.g. \"doors\"",
                );
            }
            let mut words = Vec::new();
            for (i, w) in lack.words.iter().enumerate() {
                let tokens: Vec<String> = crate::text::tokenize_with(w, &self.lexicon.numbers)
                    .into_iter()
                    .map(|t| t.norm)
                    .collect();
                if tokens.is_empty() {
                    self.error(
                        here.clone(),
                        &format!("{field}.words[{i}]"),
                        "the entry has no words".into(),
                        "write the word people say, e.g. \"door\"",
                    );
                }
                words.push(tokens);
            }
            let had = words
                .iter()
                .any(|w| matches!(w.as_slice(), [one] if used.contains(one)));
            if lack.words.is_empty() {
                self.error(
                    here.clone(),
                    &format!("{field}.words"),
                    "no words name it".into(),
                    "list the words people say for it, e.g. [\"door\", \"doors\"]",
                );
            }
            if lack.reply.trim().is_empty() {
                self.error(
                    here.clone(),
                    &format!("{field}.reply"),
                    "the reply is empty".into(),
                    "say what Cabin can't do, e.g. \"Sorry, I can't open the doors.\"",
                );
            }
            self.check_spoken(here, &format!("{field}.reply"), &lack.reply);
            if self.errors.len() == start && !had {
                out.push(Lack {
                    name: lack.name.clone(),
                    words,
                    reply: lack.reply.clone(),
                });
            }
        }
        out
    }

    pub(super) fn small_talk(&mut self, raw: &[Spanned<raw::RawSmallTalk>]) -> Vec<SmallTalk> {
        let mut out: Vec<SmallTalk> = Vec::new();
        for spanned in raw {
            let st = spanned.get_ref();
            let here = Some(spanned.span());
            let field = format!("small_talk '{}'", st.name);
            let start = self.errors.len();
            if out.iter().any(|o| o.name == st.name) || st.name.is_empty() {
                self.error(
                    here.clone(),
                    &field,
                    "small-talk names must be unique and not empty".into(),
                    "give each entry its own name",
                );
            }
            if st.silent && !st.reply.is_empty() {
                self.error(
                    here.clone(),
                    &format!("{field}.reply"),
                    "a silent exchange has a reply".into(),
                    "remove the reply, or remove silent = true",
                );
            } else if !st.silent && st.reply.trim().is_empty() {
                self.error(
                    here.clone(),
                    &format!("{field}.reply"),
                    "the reply is empty".into(),
                    "write a short reply in the persona's voice, or set silent = true",
                );
            }
            self.check_spoken(here.clone(), &format!("{field}.reply"), &st.reply);
            let mut sentences = Vec::new();
            for (i, sentence) in st.sentences.iter().enumerate() {
                match Template::parse(sentence) {
                    Ok(t) if !t.slots().is_empty() => self.error(
                        here.clone(),
                        &format!("{field}.sentences[{i}]"),
                        format!("\"{sentence}\" has a slot, but small talk takes none"),
                        "remove the slot, or make this an intent",
                    ),
                    Ok(t) => match t.expand_with(&self.lexicon.numbers) {
                        Ok(_) => sentences.push(t),
                        Err(e) => self.error(
                            here.clone(),
                            &format!("{field}.sentences[{i}]"),
                            e.problem,
                            &e.fix,
                        ),
                    },
                    Err(e) => self.error(
                        here.clone(),
                        &format!("{field}.sentences[{i}]"),
                        format!("\"{sentence}\": {}", e.problem),
                        &e.fix,
                    ),
                }
            }
            let examples =
                self.plain_sentences(here.clone(), &format!("{field}.examples"), &st.examples);
            if st.sentences.is_empty() && st.examples.is_empty() {
                self.error(
                    here,
                    &format!("{field}.sentences"),
                    "no sentences and no examples".into(),
                    "add a sentence the grammar matches, or examples the answer model learns",
                );
            }
            if self.errors.len() == start {
                out.push(SmallTalk {
                    name: st.name.clone(),
                    sentences,
                    examples,
                    reply: st.reply.clone(),
                });
            }
        }
        out
    }

    /// Checks the bus name, object path and interface of a D-Bus endpoint the profile names.
    pub(super) fn endpoint(
        &mut self,
        here: Option<std::ops::Range<usize>>,
        field: &str,
        service: &str,
        path: &str,
        interface: &str,
    ) {
        match zbus::names::BusName::try_from(service) {
            Err(e) => self.error(
                here.clone(),
                &format!("{field}.service"),
                format!("'{service}' is not a valid bus name: {e}"),
                "use a well-known name such as \"org.example.Climate\"",
            ),
            Ok(zbus::names::BusName::Unique(_)) => self.error(
                here.clone(),
                &format!("{field}.service"),
                format!("'{service}' is a unique connection name, which is another process at every start"),
                "use the vehicle service's well-known name, such as \"org.example.Climate\"",
            ),
            Ok(_) => {}
        }
        // A profile names vehicle services: never the bus itself (names, policy, monitoring)
        // nor Cabin, which a profile's call would turn against itself.
        let bus = |name: &str| name == BUS_NAME || name.starts_with(&format!("{BUS_NAME}."));
        for (what, name) in [("service", service), ("interface", interface)] {
            if bus(name) || name == ASSISTANT_SERVICE {
                self.error(
                    here.clone(),
                    &format!("{field}.{what}"),
                    format!("'{name}' is the bus's own or Cabin's own, not a vehicle service's"),
                    "name the vehicle service's interface; for its properties use kind = \"set_property\" or \"get_property\"",
                );
            }
        }
        if let Err(e) = zbus::ObjectPath::try_from(path) {
            self.error(
                here.clone(),
                &format!("{field}.path"),
                format!("'{path}' is not a valid object path: {e}"),
                "use a path such as \"/org/example/Climate\"",
            );
        }
        if let Err(e) = zbus::names::InterfaceName::try_from(interface) {
            self.error(
                here,
                &format!("{field}.interface"),
                format!("'{interface}' is not a valid interface name: {e}"),
                "use a name such as \"org.example.Climate1\"",
            );
        }
    }

    pub(super) fn state_source(
        &mut self,
        raw: &StateSource,
        span: std::ops::Range<usize>,
    ) -> Option<StateSource> {
        let start = self.errors.len();
        let here = Some(span);
        self.endpoint(
            here.clone(),
            "vehicle.state",
            &raw.service,
            &raw.path,
            &raw.interface,
        );
        for (field, prop) in [
            ("speed", &raw.speed),
            ("gear", &raw.gear),
            ("parking_brake", &raw.parking_brake),
        ] {
            if zbus::names::MemberName::try_from(prop.as_str()).is_err() {
                self.error(
                    here.clone(),
                    &format!("vehicle.state.{field}"),
                    format!("'{prop}' is not a valid property name"),
                    "name the D-Bus property, e.g. \"Speed\"",
                );
            }
        }
        (self.errors.len() == start).then(|| raw.clone())
    }

    pub(super) fn speech(&mut self, raw: &raw::RawSpeech) -> SpeechSettings {
        let mut s = SpeechSettings {
            // Checked against the voice's file when it loads.
            style: raw.style.clone(),
            ..SpeechSettings::default()
        };
        if let Some(r) = self.within(
            &raw.rate,
            "speech.rate",
            0.5..=2.0,
            "use 1.0, the voice's own pace; 1.1 is a little brisker",
        ) {
            s.rate = r;
        }
        if let Some(v) = self.within(&raw.volume, "speech.volume", 0.05..=1.0, "use 0.9") {
            s.volume = v;
        }
        if let Some(t) = self.within(
            &raw.threads,
            "speech.threads",
            1..=8,
            "use 1, or 2 on a SoC with cores to spare",
        ) {
            s.threads = t as usize;
        }
        if let Some(d) = &raw.ducking {
            let here = Some(d.span());
            let duck = d.get_ref();
            let start = self.errors.len();
            self.endpoint(
                here.clone(),
                "speech.ducking",
                &duck.service,
                &duck.path,
                &duck.interface,
            );
            for (field, method) in [("duck", &duck.duck), ("restore", &duck.restore)] {
                if zbus::names::MemberName::try_from(method.as_str()).is_err() {
                    self.error(
                        here.clone(),
                        &format!("speech.ducking.{field}"),
                        format!("'{method}' is not a valid method name"),
                        "name the media service's method, e.g. \"Duck\"",
                    );
                }
            }
            if duck.level > 100 {
                self.error(
                    here,
                    "speech.ducking.level",
                    format!("{} is over 100", duck.level),
                    "give the media's volume while Cabin speaks as a percentage of its own, e.g. 30",
                );
            }
            if self.errors.len() == start {
                s.ducking = Some(duck.clone());
            }
        }
        s
    }

    pub(super) fn listen(&mut self, raw: &raw::RawListen) -> ListenSettings {
        let mut s = ListenSettings::default();
        let mut share = |v: &Option<Spanned<f32>>, field: &str, fix: &str| {
            let v = v.as_ref()?;
            if (0.05..=0.99).contains(v.get_ref()) {
                return Some(*v.get_ref());
            }
            self.error(
                Some(v.span()),
                field,
                format!("{} is outside 0.05..=0.99", v.get_ref()),
                fix,
            );
            None
        };
        if let Some(t) = share(
            &raw.wake_threshold,
            "listen.wake_threshold",
            "leave it out for the threshold `cabin wake train` calibrated; raise it for fewer false wakes, lower it if the wake word is missed",
        ) {
            s.wake_threshold = Some(t);
        }
        if let Some(t) = share(&raw.vad_threshold, "listen.vad_threshold", "use 0.5") {
            s.vad_threshold = t;
        }
        if let Some(t) = share(
            &raw.confirm_below,
            "listen.confirm_below",
            "leave it out to let heard words always act; higher asks \"Did you say …?\" more often",
        ) {
            s.confirm_below = Some(t);
        }
        let mut millis = |v: &Option<Spanned<u64>>,
                          field: &str,
                          range: std::ops::RangeInclusive<u64>,
                          fix: &str| {
            let v = v.as_ref()?;
            if range.contains(v.get_ref()) {
                return Some(Duration::from_millis(*v.get_ref()));
            }
            self.error(
                Some(v.span()),
                field,
                format!("{} ms is outside {range:?}", v.get_ref()),
                fix,
            );
            None
        };
        if let Some(d) = millis(
            &raw.refractory_ms,
            "listen.refractory_ms",
            0..=10_000,
            "use 2000",
        ) {
            s.refractory = d;
        }
        if let Some(d) = millis(
            &raw.trailing_silence_ms,
            "listen.trailing_silence_ms",
            200..=3000,
            "use 600: shorter cuts drivers off mid-sentence, longer makes Cabin feel slow",
        ) {
            s.trailing_silence = d;
        }
        if let Some(d) = millis(
            &raw.complete_silence_ms,
            "listen.complete_silence_ms",
            100..=3000,
            "use 200: a whole command needs no longer pause; set it to trailing_silence_ms to \
             always wait that long",
        ) {
            s.complete_silence = d;
        }
        if let Some(d) = millis(
            &raw.no_speech_timeout_ms,
            "listen.no_speech_timeout_ms",
            1000..=30_000,
            "use 4000",
        ) {
            s.no_speech_timeout = d;
        }
        if let Some(d) = millis(
            &raw.max_utterance_ms,
            "listen.max_utterance_ms",
            2000..=30_000,
            "use 10000 (the speech recogniser takes at most 30 s)",
        ) {
            s.max_utterance = d;
        }
        if let Some(d) = millis(
            &raw.asr_timeout_ms,
            "listen.asr_timeout_ms",
            1000..=600_000,
            "use 30000; raise it where a slow head unit takes longer to transcribe",
        ) {
            s.asr_timeout = d;
        }
        s.vocabulary = raw
            .vocabulary
            .iter()
            .map(|w| w.trim().to_string())
            .filter(|w| !w.is_empty())
            .collect();
        if raw.echo_cancellation.unwrap_or(true) {
            let mut echo = EchoSettings::default();
            if let Some(d) = millis(
                &raw.echo_tail_ms,
                "listen.echo_tail_ms",
                20..=1000,
                "use 200; longer where the head unit's audio buffers add more delay",
            ) {
                echo.tail = d;
            }
            s.clean.echo = Some(echo);
        }
        if let Some(level) = &raw.noise_suppression {
            match level.get_ref().as_str() {
                "off" => {}
                other => match other.parse() {
                    Ok(l) => s.clean.noise = Some(l),
                    Err(e) => self.error(
                        Some(level.span()),
                        "listen.noise_suppression",
                        e,
                        "use off, low, moderate, high or very_high",
                    ),
                },
            }
        }
        s
    }

    pub(super) fn dialog(&mut self, raw: &raw::RawDialog) -> DialogSettings {
        let mut settings = DialogSettings {
            follow_up: Duration::from_secs(5),
            max_clarifications: 2,
        };
        if let Some(f) = &raw.follow_up_seconds {
            if (0.0..=30.0).contains(f.get_ref()) {
                settings.follow_up = Duration::from_secs_f64(*f.get_ref());
            } else {
                self.error(
                    Some(f.span()),
                    "dialog.follow_up_seconds",
                    format!("{} s is outside 0..=30", f.get_ref()),
                    "use a window of a few seconds (default 5), or 0 to turn follow-ups off",
                );
            }
        }
        if let Some(m) = &raw.max_clarifications {
            if (1..=5).contains(m.get_ref()) {
                settings.max_clarifications = *m.get_ref();
            } else {
                self.error(
                    Some(m.span()),
                    "dialog.max_clarifications",
                    format!("{} is outside 1..=5", m.get_ref()),
                    "ask at most a few times (default 2)",
                );
            }
        }
        settings
    }

    pub(super) fn llm(&mut self, raw: &raw::RawLlm) -> LlmSettings {
        let mut s = LlmSettings {
            context: 6144,
            threads: None,
            batch: 512,
            max_tokens: 64,
            budget: Duration::from_secs(20),
        };
        if let Some(c) = self.within(
            &raw.context,
            "llm.context",
            1024..=32768,
            "use 6144 (the persona and tool list take about 3,000 tokens)",
        ) {
            s.context = c;
        }
        s.threads = self.within(
            &raw.threads,
            "llm.threads",
            1..=64,
            "leave it out to use one thread per core",
        );
        if let Some(b) = self.within(&raw.batch, "llm.batch", 16..=4096, "use 512") {
            s.batch = b;
        }
        if let Some(m) = self.within(
            &raw.max_tokens,
            "llm.max_tokens",
            16..=1024,
            "use 64: replies are spoken while driving",
        ) {
            s.max_tokens = m;
        }
        if let Some(b) = &raw.budget_ms {
            if (500..=120_000).contains(b.get_ref()) {
                s.budget = Duration::from_millis(*b.get_ref());
            } else {
                self.error(
                    Some(b.span()),
                    "llm.budget_ms",
                    format!("{} ms is outside 500..=120000", b.get_ref()),
                    "use 20000",
                );
            }
        }
        s
    }

    pub(super) fn cloud(&mut self, raw: &raw::RawCloud) -> CloudSettings {
        let mut s = CloudSettings {
            policy: raw.policy,
            base_url: String::new(),
            model: raw.model.clone().unwrap_or_default(),
            api_key_env: raw.api_key_env.clone(),
            api_key_file: raw.api_key_file.as_ref().map(PathBuf::from),
            budget: Duration::from_millis(2500),
            redact_names: raw.redact_names,
        };
        if let Some(k) = &raw.api_key {
            self.error(
                Some(k.span()),
                "cloud.api_key",
                "an API key in the profile would be readable by anyone who can read the profile".into(),
                "remove it; set api_key_env = \"NAME\" (an environment variable) or api_key_file = \"/etc/cabin/cloud-key\" (mode 0600, root-owned)",
            );
        }
        if let Some(b) = &raw.budget_ms {
            if (100..=30_000).contains(b.get_ref()) {
                s.budget = Duration::from_millis(*b.get_ref());
            } else {
                self.error(
                    Some(b.span()),
                    "cloud.budget_ms",
                    format!("{} ms is outside 100..=30000", b.get_ref()),
                    "use 2500: past that the local answer is used",
                );
            }
        }
        match &raw.base_url {
            Some(u) => {
                let url = u.get_ref().trim_end_matches('/');
                let keyed = raw.api_key_env.is_some() || raw.api_key_file.is_some();
                if let Some(host) = url
                    .strip_prefix("http://")
                    .filter(|_| keyed)
                    .map(url_host)
                    .filter(|h| !is_loopback(h))
                {
                    self.error(
                        Some(u.span()),
                        "cloud.base_url",
                        format!("the API key would be sent unencrypted to {host} over http://"),
                        "use the endpoint's https:// URL (http:// is only for a proxy on this machine: 127.0.0.1, localhost or [::1])",
                    );
                } else if url.starts_with("https://") || url.starts_with("http://") {
                    s.base_url = url.to_string();
                } else {
                    self.error(Some(u.span()), "cloud.base_url", format!("'{url}' is not an http(s) URL"), "give the endpoint's base URL, e.g. \"https://api.example.com/v1\"");
                }
            }
            None if raw.policy != CloudPolicy::Off => self.error(
                None,
                "cloud.base_url",
                "the cloud policy is not off, but no endpoint is given".into(),
                "set base_url (an OpenAI-compatible endpoint up to /v1) and model, or policy = \"off\"",
            ),
            None => {}
        }
        if raw.policy != CloudPolicy::Off && s.model.is_empty() {
            self.error(
                None,
                "cloud.model",
                "the cloud policy is not off, but no model is named".into(),
                "set model = \"...\" to the endpoint's model name",
            );
        }
        s
    }

    pub(super) fn inputs(
        &mut self,
        raw: &[Spanned<raw::RawInput>],
        types: &BTreeMap<String, SlotType>,
    ) -> Vec<InputZone> {
        let zones: BTreeSet<&str> = types
            .values()
            .filter_map(|t| match t {
                SlotType::Enum {
                    values,
                    zones: true,
                } => Some(values.iter().map(|v| v.key.as_str())),
                _ => None,
            })
            .flatten()
            .collect();
        let mut out: Vec<InputZone> = Vec::new();
        for spanned in raw {
            let input = spanned.get_ref();
            let field = format!("inputs '{}'", input.name);
            if input.name.trim().is_empty() || out.iter().any(|i| i.name == input.name) {
                self.error(
                    Some(spanned.span()),
                    &field,
                    "input names must be unique and not empty".into(),
                    "name each microphone or push-to-talk source once",
                );
                continue;
            }
            if !zones.contains(input.zone.as_str()) {
                let known: Vec<&str> = zones.iter().copied().collect();
                self.error(Some(spanned.span()), &format!("{field}.zone"), format!("'{}' is not a zone of any slot type with zones = true (known: {})", input.zone, if known.is_empty() { "none".into() } else { known.join(", ") }), "use a seat zone such as \"driver\", and mark the zone slot types with zones = true");
                continue;
            }
            out.push(InputZone {
                name: input.name.clone(),
                zone: input.zone.clone(),
            });
        }
        out
    }
}

/// The host of a URL's authority ("user@host:port/path" → "host", "[::1]:80" → "::1").
fn url_host(rest: &str) -> &str {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    }
}

/// Whether `host` is this machine: a bearer key sent there in the clear stays on it.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
