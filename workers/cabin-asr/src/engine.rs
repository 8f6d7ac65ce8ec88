//! whisper.cpp on a thread of its own: inference blocks for hundreds of milliseconds, so it
//! never runs on a tokio worker. Requests queue on a channel; `Drop` joins the thread.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

/// How much of whisper's 30 s encoder window to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioCtx {
    /// The whole window, as the model was trained (slowest, safest).
    Full,
    /// The utterance's length plus a margin: a 3 s command encodes a tenth of the window.
    Fit,
}

impl std::str::FromStr for AudioCtx {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "full" => Ok(AudioCtx::Full),
            "fit" => Ok(AudioCtx::Fit),
            _ => Err(format!("'{s}' is not an audio context: use full or fit")),
        }
    }
}

/// Encoder frames per second of audio (whisper: 1500 frames for 30 s).
const FRAMES_PER_SECOND: usize = 50;
const FULL_WINDOW: usize = 1500;

impl AudioCtx {
    /// The `audio_ctx` for `samples` of 16 kHz audio; 0 means the model's full window.
    fn frames(self, samples: usize) -> i32 {
        match self {
            AudioCtx::Full => 0,
            AudioCtx::Fit => {
                // One second of margin, rounded up to 64 frames, at least 256: shorter
                // windows made tiny.en repeat phrases.
                let need = samples * FRAMES_PER_SECOND / 16_000 + FRAMES_PER_SECOND;
                let frames = need.div_ceil(64) * 64;
                frames.clamp(256, FULL_WINDOW) as i32
            }
        }
    }
}

/// The window a looping decode is tried again on: twice the fitted one, or the full window
/// (0) when that is as long.
fn wider(frames: i32) -> i32 {
    match frames.saturating_mul(2) {
        w if w >= FULL_WINDOW as i32 => 0,
        w => w,
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub threads: usize,
    pub audio_ctx: AudioCtx,
    /// Language when a request names none; `None`: "en" for an English-only model, detected
    /// by a multilingual one.
    pub language: Option<String>,
}

pub struct Request {
    /// 16 kHz mono samples in [-1, 1].
    pub samples: Vec<f32>,
    /// Text that biases the decoder towards the words the driver is likely to say.
    pub prompt: Option<String>,
    pub language: Option<String>,
    pub reply: oneshot::Sender<Result<Transcript, String>>,
}

#[derive(Debug, Clone)]
pub struct Transcript {
    pub text: String,
    pub language: Option<String>,
    pub decode_ms: f64,
    /// None when nothing was decoded (silence).
    pub confidence: Option<Confidence>,
}

/// How sure whisper was of its words: the probabilities it gave the text tokens it chose, and
/// the chance it saw no speech at all. Misheard words in noise come with low ones.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Confidence {
    /// The geometric mean of the text tokens' probabilities.
    pub mean: f32,
    /// The least likely text token's probability.
    pub lowest: f32,
    pub no_speech: f32,
}

impl Confidence {
    /// From the text tokens' probabilities; none without a text token.
    fn of(probabilities: &[f32], no_speech: f32) -> Option<Confidence> {
        if probabilities.is_empty() {
            return None;
        }
        let log: f32 = probabilities.iter().map(|p| p.max(1e-6).ln()).sum();
        Some(Confidence {
            mean: (log / probabilities.len() as f32).exp(),
            lowest: probabilities.iter().copied().fold(1.0, f32::min),
            no_speech,
        })
    }
}

/// What the engine learnt of its model when loading it.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub multilingual: bool,
    pub language: Option<String>,
}

pub struct Engine {
    tx: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    busy: Arc<Busy>,
}

/// One utterance decoding longer than this means whisper is hung: thirty seconds of audio, the
/// longest accepted, decode in a few seconds even on a slow core, retry included.
const STUCK_AFTER: Duration = Duration::from_secs(120);

/// Since when the engine thread has been decoding; shared with the server's `describe`.
struct Busy {
    /// ms since `epoch` when the running decode began; 0 while idle.
    since_ms: AtomicU64,
    epoch: Instant,
}

impl Busy {
    fn start(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.since_ms.store(ms.max(1), Ordering::Relaxed);
    }

    fn stop(&self) {
        self.since_ms.store(0, Ordering::Relaxed);
    }

    /// How long the running decode has taken; none while idle.
    fn running(&self) -> Option<Duration> {
        match self.since_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(
                self.epoch
                    .elapsed()
                    .saturating_sub(Duration::from_millis(ms)),
            ),
        }
    }
}

impl Engine {
    /// Loads the model (seconds) and starts the engine thread.
    pub fn start(model: &Path, mut settings: Settings) -> anyhow::Result<(Engine, ModelInfo)> {
        let params = WhisperContextParameters {
            use_gpu: false,
            ..Default::default()
        };
        let ctx = WhisperContext::new_with_params(model, params).map_err(|e| {
            anyhow::anyhow!(
                "cannot load the whisper model {}: {e}; is it a whisper.cpp ggml file? \
                 (`cabin models fetch` installs one)",
                model.display()
            )
        })?;
        let multilingual = ctx.is_multilingual();
        if !multilingual {
            settings.language.get_or_insert_with(|| "en".into());
        }
        let info = ModelInfo {
            multilingual,
            language: settings.language.clone(),
        };
        // Token ids from end-of-text up are whisper's own markers, not words.
        let first_special = ctx.token_eot();
        let mut state = ctx
            .create_state()
            .map_err(|e| anyhow::anyhow!("cannot allocate whisper's state: {e}"))?;
        let (tx, rx) = mpsc::channel::<Request>();
        let busy = Arc::new(Busy {
            since_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        });
        let decoding = busy.clone();
        let thread = std::thread::Builder::new()
            .name("whisper".into())
            .spawn(move || {
                for req in rx {
                    decoding.start();
                    let result = transcribe(&mut state, &settings, first_special, &req);
                    decoding.stop();
                    let _ = req.reply.send(result);
                }
                drop(state);
                drop(ctx);
            })?;
        Ok((
            Engine {
                tx: Some(tx),
                thread: Some(thread),
                busy,
            },
            info,
        ))
    }

    /// Why the engine can no longer transcribe: its thread ended (a panic), or one decode has
    /// run past [`STUCK_AFTER`].
    pub fn health(&self) -> Result<(), String> {
        if self.thread.as_ref().is_none_or(JoinHandle::is_finished) {
            return Err("the whisper engine has stopped".into());
        }
        match self.busy.running() {
            Some(d) if d > STUCK_AFTER => Err(format!(
                "one decode has run for {} s; the whisper engine is hung",
                d.as_secs()
            )),
            _ => Ok(()),
        }
    }

    pub fn submit(&self, req: Request) -> Result<(), Request> {
        self.tx
            .as_ref()
            .expect("sender lives until drop")
            .send(req)
            .map_err(|e| e.0)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn transcribe(
    state: &mut whisper_rs::WhisperState,
    settings: &Settings,
    first_special: i32,
    req: &Request,
) -> Result<Transcript, String> {
    let started = Instant::now();
    let language = req.language.as_deref().or(settings.language.as_deref());
    let fit = settings.audio_ctx.frames(req.samples.len());
    let decoder = Decoder {
        threads: settings.threads,
        language,
        first_special,
    };
    let (mut text, mut confidence) = decoder.decode(state, fit, req)?;
    // The commonest loop on a command: the whole sentence, then the sentence again from its
    // start (the decoder reached the end of the audio and began once more). Its first time
    // is the transcript; no second decode is needed.
    let seconds = req.samples.len() as f32 / 16_000.0;
    if let Some(first) = echoed_sentence(&text).or_else(|| echoed_words(&text, seconds)) {
        tracing::info!(looped = %text, kept = %first, "decoder repeated the sentence; kept its first time");
        text = first.to_string();
    }
    // A shortened window sometimes sends small models into a loop ("seven of clubs seven of
    // clubs …"); a window twice as long mostly does not, at a fraction of the full window's
    // cost, and the full one, as trained, is the last resort.
    let mut window = fit;
    for next in [wider(fit), 0] {
        if window == 0 || !looped(&text) {
            break;
        }
        tracing::info!(first = %text, window, wider = next, "decoder looped; retrying on a wider window (0: the full one)");
        window = next;
        (text, confidence) = decoder.decode(state, window, req)?;
    }
    Ok(Transcript {
        text,
        language: language.map(str::to_string),
        decode_ms: started.elapsed().as_secs_f64() * 1000.0,
        confidence,
    })
}

/// What every decode of one request shares.
struct Decoder<'a> {
    threads: usize,
    language: Option<&'a str>,
    first_special: i32,
}

impl Decoder<'_> {
    /// One decode on a window of `audio_ctx` frames: the text and how sure whisper was of it.
    fn decode(
        &self,
        state: &mut whisper_rs::WhisperState,
        audio_ctx: i32,
        req: &Request,
    ) -> Result<(String, Option<Confidence>), String> {
        let (threads, language) = (self.threads, self.language);
        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        params.set_n_threads(threads as i32);
        params.set_audio_ctx(audio_ctx);
        params.set_language(language);
        params.set_detect_language(false);
        params.set_no_context(true);
        params.set_single_segment(true);
        params.set_no_timestamps(true);
        params.set_suppress_blank(true);
        params.set_suppress_nst(true);
        params.set_print_special(false);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_timestamps(false);
        // Speech runs at under 6 tokens a second; a cap bounds the time a loop can waste.
        let seconds = req.samples.len().div_ceil(16_000);
        params.set_max_tokens((MAX_TOKENS_BASE + MAX_TOKENS_PER_SECOND * seconds) as i32);
        // Retrying at higher temperatures is what makes whisper invent text on noise.
        params.set_temperature_inc(0.0);
        let prompt = req.prompt.as_deref().map(|p| p.replace('\0', " "));
        if let Some(p) = prompt.as_deref().filter(|p| !p.trim().is_empty()) {
            params.set_initial_prompt(p);
        }
        state
            .full(params, &req.samples)
            .map_err(|e| format!("whisper failed: {e}"))?;
        let mut text = String::new();
        let (mut probabilities, mut no_speech) = (Vec::new(), 0.0f32);
        for segment in state.as_iter() {
            if let Ok(s) = segment.to_str_lossy() {
                text.push_str(&s);
            }
            no_speech = no_speech.max(segment.no_speech_probability());
            for i in 0..segment.n_tokens() {
                if let Some(token) = segment.get_token(i) {
                    if token.token_id() < self.first_special {
                        probabilities.push(token.token_probability());
                    }
                }
            }
        }
        Ok((clean(&text), Confidence::of(&probabilities, no_speech)))
    }
}

const MAX_TOKENS_BASE: usize = 10;
const MAX_TOKENS_PER_SECOND: usize = 8;

/// Whether the text has a phrase repeated back to back: one word four times, two or three words
/// three times, or four to twelve words twice ("he was not an old supposed young man he was
/// not an old supposed young man"). Spoken commands don't repeat themselves like that.
pub fn looped(text: &str) -> bool {
    let words = words(text);
    (1..=12).any(|n| {
        let times = match n {
            1 => 4,
            2 | 3 => 3,
            _ => 2,
        };
        words.len() >= n * times
            && words.windows(n * times).any(|w| {
                let first = &w[..n];
                w.chunks(n).all(|c| c == first)
            })
    })
}

/// The first sentence of `text` when all that follows it is that sentence again, whole or
/// cut short ("Switch the seat heating on. Switch the seat heating on. Switch the se").
pub fn echoed_sentence(text: &str) -> Option<&str> {
    let end = text.find(['.', '!', '?'])? + 1;
    let (first, rest) = text.split_at(end);
    let sentence = words(first);
    let echoed = !sentence.is_empty() && only_repeats(&sentence, &words(rest));
    echoed.then_some(first.trim())
}

/// The words of `text`, lower-cased. Hyphens split words: loops also happen inside one
/// ("old-s-y-y-y-y").
fn words(text: &str) -> Vec<String> {
    word_spans(text)
        .into_iter()
        .map(|(s, e)| text[s..e].to_lowercase())
        .collect()
}

/// Where each word of `text` starts and ends (bytes), as [`words`] splits them.
fn word_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        if c.is_alphanumeric() {
            start.get_or_insert(i);
        } else if let Some(s) = start.take() {
            spans.push((s, i));
        }
    }
    if let Some(s) = start {
        spans.push((s, text.len()));
    }
    spans
}

/// Whether `rest` is at least one whole `unit` again and nothing else: the unit over and over,
/// its last word maybe cut short.
fn only_repeats(unit: &[String], rest: &[String]) -> bool {
    rest.len() >= unit.len()
        && rest.iter().enumerate().all(|(i, w)| {
            let said = &unit[i % unit.len()];
            w == said || (i + 1 == rest.len() && said.starts_with(w.as_str()))
        })
}

/// Words a second that the first words of a looped decode must reach, over the whole audio,
/// to be taken as all that was said: speech runs at two to three.
const WORDS_A_SECOND: f32 = 1.5;

/// The first words of `text` when all that follows them is those words again (the last cut
/// short) and no sentence end marks them: "turn on the seat heating turn on the seat heating
/// turn on the". At least three words, and enough of them for the `seconds` of audio they came
/// from: a loop on the first three words of a long recording ("seven of clubs seven of clubs
/// …" over a list of cards) is not what was said, and is decoded again on a wider window.
pub fn echoed_words(text: &str, seconds: f32) -> Option<&str> {
    let spans = word_spans(text);
    let words = words(text);
    (3..=words.len() / 2).find_map(|n| {
        let (unit, rest) = words.split_at(n);
        (only_repeats(unit, rest) && n as f32 >= seconds * WORDS_A_SECOND)
            .then(|| text[..spans[n - 1].1].trim())
    })
}

/// Drops whisper's non-speech annotations ("[BLANK_AUDIO]", "(engine revving)", "*music*")
/// and squeezes spaces.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut close: Option<char> = None;
    for c in text.chars() {
        match close {
            Some(end) if c == end => close = None,
            Some(_) => {}
            None => match c {
                '[' => close = Some(']'),
                '(' => close = Some(')'),
                '*' => close = Some('*'),
                _ => out.push(c),
            },
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decode_past_the_limit_is_stuck_and_an_idle_engine_is_not() {
        let busy = Busy {
            since_ms: AtomicU64::new(0),
            epoch: Instant::now() - Duration::from_secs(200),
        };
        assert_eq!(busy.running(), None);
        busy.since_ms.store(1, Ordering::Relaxed);
        assert!(busy.running().unwrap() > STUCK_AFTER);
        busy.start();
        assert!(busy.running().unwrap() < Duration::from_secs(1));
        busy.stop();
        assert_eq!(busy.running(), None);
    }

    #[test]
    fn confidence_is_the_geometric_mean_and_the_least_likely_token() {
        assert_eq!(Confidence::of(&[], 0.1), None);
        let c = Confidence::of(&[0.9, 0.1, 0.9], 0.2).unwrap();
        assert!((c.mean - (0.9f32 * 0.1 * 0.9).powf(1.0 / 3.0)).abs() < 1e-5);
        assert_eq!((c.lowest, c.no_speech), (0.1, 0.2));
    }

    #[test]
    fn annotations_are_dropped() {
        assert_eq!(clean(" [BLANK_AUDIO]"), "");
        assert_eq!(
            clean(" Turn it up. (music) *laughs*  now"),
            "Turn it up. now"
        );
        assert_eq!(clean("set it to 21.5 degrees"), "set it to 21.5 degrees");
    }

    #[test]
    fn loops_are_recognised_and_ordinary_repeats_are_not() {
        assert!(looped(
            "Go forward 10 meters. Go forward 10 meters. Go forward 10 meters."
        ));
        assert!(looped("7 of clubs. 7 7 7 7"));
        assert!(looped("He was not an old-s-y-y-y-y-y-y"));
        // Regression: a whole sentence twice, seen with the "hey jarvis" vocabulary prompt.
        assert!(looped(
            "He was not an old supposed young man. He was not an old supposed young man?"
        ));
        assert!(!looped("Five five."));
        assert!(!looped("Eight of spades. Four of clubs. Seven of hearts."));
        assert!(!looped("set it to twenty two, no, twenty two"));
        assert!(!looped(""));
    }

    #[test]
    fn a_sentence_said_again_from_its_start_is_kept_once() {
        assert_eq!(
            echoed_sentence(
                "Switch the seat heating on. Switch the seat heating on. Switch the se"
            ),
            Some("Switch the seat heating on.")
        );
        assert_eq!(
            echoed_sentence("Set the temperature to. Set the temperature to."),
            Some("Set the temperature to.")
        );
        // Something else after it, a repeat cut before it is whole, or no sentence end.
        assert_eq!(
            echoed_sentence("Seven of clubs. Seven of clubs seven of hearts."),
            None
        );
        assert_eq!(echoed_sentence("Go forward. Go"), None);
        assert_eq!(
            echoed_sentence("seven of clubs seven of clubs seven of clubs"),
            None
        );
        assert_eq!(echoed_sentence("Turn it on. Turn it off."), None);
        assert_eq!(echoed_sentence(""), None);
    }

    #[test]
    fn words_said_again_from_their_start_are_kept_once_when_they_fill_the_audio() {
        // The "Hey Cabin, turn on the seat heating" fixture's pause, as tiny.en decoded it.
        let looped =
            "turn on the seat heating turn on the seat heating turn on the seat heating turn";
        assert_eq!(echoed_words(looped, 1.8), Some("turn on the seat heating"));
        // Five words are too few for six seconds of audio: something else was said.
        assert_eq!(echoed_words(looped, 6.0), None);
        assert_eq!(
            echoed_words("seven of clubs seven of clubs seven of clubs", 6.0),
            None
        );
        // Not a repeat from the first word, fewer than three words, or no repeat at all.
        assert_eq!(
            echoed_words("please turn it on turn it on turn it on", 1.0),
            None
        );
        assert_eq!(echoed_words("no no no no", 1.0), None);
        assert_eq!(echoed_words("turn on the seat heating", 1.0), None);
        assert_eq!(echoed_words("", 1.0), None);
    }

    #[test]
    fn fit_window_covers_the_utterance_with_a_margin() {
        assert_eq!(AudioCtx::Full.frames(16_000), 0);
        assert_eq!(AudioCtx::Fit.frames(16_000), 256);
        // 8 s: 400 frames + 50 margin -> 512.
        assert_eq!(AudioCtx::Fit.frames(8 * 16_000), 512);
        assert_eq!(AudioCtx::Fit.frames(60 * 16_000), 1500);
    }
}
