//! Cabin's mouth: an actor that turns reply text into sound, sentence by sentence as the text
//! arrives, so the first sentence plays while the rest is still being generated.
//!
//! Two threads: the speaker thread owns the output and answers `stop` at once; the voice
//! thread synthesises (it blocks for as long as a sentence takes). Every sentence is also
//! run through the wake word detector, so the daemon knows when Cabin's own voice says the
//! wake word and can keep the microphone's wake word deaf to it.

use crate::hear::played::Played;
use crate::hear::wake::{WakeWord, CHUNK};
use crate::speak::cache::{Said, SpeechCache};
use crate::speak::playback::{Echoed, Output, PlaybackError, Sink};
use crate::speak::voice::{self, Voice};
use crate::text::take_phrases;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// What the speaker reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Spoken {
    /// A sentence's audio was queued to play (right away if nothing else is playing).
    Sentence {
        utterance: u64,
        /// As written in the reply (the voice hears it with numbers in words).
        text: String,
        /// How long it plays.
        audio: Duration,
        /// How long synthesising it took; none when its audio was kept from an earlier reply.
        synthesis: Option<Duration>,
        /// Cabin's voice says the wake word in it.
        own_wake: bool,
        /// For the first sentence: from the utterance's first text to its first audio.
        first_audio: Option<Duration>,
    },
    Done {
        utterance: u64,
        end: SpeechEnd,
    },
}

/// How an utterance ended.
#[derive(Debug, Clone, PartialEq)]
pub enum SpeechEnd {
    /// Its last sample played.
    Finished,
    /// `stop`, or a newer utterance, cut it short.
    Stopped,
    Failed(String),
}

enum Msg {
    Text {
        utterance: u64,
        text: String,
    },
    End {
        utterance: u64,
    },
    Stop,
    /// One piece of a sentence ([`crate::speak::voice::pieces`]); `last`: its sentence's last.
    Synthesised {
        utterance: u64,
        sentence: String,
        result: Result<Speech, String>,
        last: bool,
    },
    Shutdown,
}

struct Speech {
    said: Said,
    /// None: from the cache.
    took: Option<Duration>,
}

/// Utterance ids start here; `NONE` means nothing is being said.
const NONE: u64 = u64::MAX;

/// The handle: methods only send messages. Dropping it joins both threads.
pub struct Speaker {
    tx: mpsc::Sender<Msg>,
    threads: Vec<JoinHandle<()>>,
    voice_name: String,
}

impl Speaker {
    /// Starts speaking through `output` with `voice`; `wake` (the wake word and its
    /// threshold) checks every sentence for the wake word; what plays is also queued to
    /// `played` (the echo canceller's reference). Fails if the output can't open.
    pub fn start(
        voice: Box<dyn Voice>,
        output: Output,
        wake: Option<(WakeWord, f32)>,
        played: Option<Played>,
        events: UnboundedSender<Spoken>,
    ) -> Result<Speaker, PlaybackError> {
        let (tx, rx) = mpsc::channel();
        let (synth_tx, synth_rx) = mpsc::channel::<(u64, String)>();
        // The utterance being spoken: the voice skips sentences of any other.
        let current = Arc::new(AtomicU64::new(NONE));
        let voice_name = voice.name();
        let voice_thread = std::thread::Builder::new()
            .name("cabin-voice".into())
            .spawn({
                let tx = tx.clone();
                let current = current.clone();
                move || synthesise(voice, wake, synth_rx, tx, current)
            })
            .expect("spawning a thread");
        let (opened_tx, opened_rx) = mpsc::sync_channel(1);
        let device = output.to_string();
        let speaker_thread = std::thread::Builder::new()
            .name("cabin-speaker".into())
            .spawn(move || {
                let sink = match output.open() {
                    Ok(s) => {
                        let _ = opened_tx.send(Ok(()));
                        match played {
                            Some(p) => Box::new(Echoed::new(s, p)),
                            None => s,
                        }
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                        return;
                    }
                };
                play(sink, rx, synth_tx, current, events);
            })
            .expect("spawning a thread");
        let speaker = Speaker {
            tx,
            threads: vec![speaker_thread, voice_thread],
            voice_name,
        };
        match opened_rx.recv() {
            Ok(Ok(())) => Ok(speaker),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(PlaybackError::Device {
                device,
                message: "the playback thread stopped".into(),
            }),
        }
    }

    pub fn voice_name(&self) -> &str {
        &self.voice_name
    }

    /// More text of `utterance` (a whole reply, or a piece of a streamed one). Text of a new
    /// utterance cuts the one before short.
    pub fn say(&self, utterance: u64, text: &str) {
        let _ = self.tx.send(Msg::Text {
            utterance,
            text: text.into(),
        });
    }

    /// `utterance` has no more text: speak what is left, then report `Done`.
    pub fn end(&self, utterance: u64) {
        let _ = self.tx.send(Msg::End { utterance });
    }

    /// Silence now: drops what is queued and cancels pending synthesis.
    pub fn stop(&self) {
        let _ = self.tx.send(Msg::Stop);
    }
}

impl Drop for Speaker {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Shutdown);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The voice thread: sentences in, audio out a piece at a time ([`voice::pieces`]: what one
/// synthesis takes is bounded whatever the sentence), skipping any of an utterance no longer
/// spoken, and taking the audio of a piece said before from its cache.
fn synthesise(
    mut voice: Box<dyn Voice>,
    mut wake: Option<(WakeWord, f32)>,
    sentences: mpsc::Receiver<(u64, String)>,
    out: mpsc::Sender<Msg>,
    current: Arc<AtomicU64>,
) {
    let mut cache = SpeechCache::new(crate::speak::cache::LIMIT_BYTES);
    while let Ok((utterance, sentence)) = sentences.recv() {
        let mut pieces = voice::pieces(&sentence, voice.spells_numbers());
        if pieces.is_empty() {
            // Nothing to say (markup only): the sentence still ends.
            pieces.push(String::new());
        }
        let count = pieces.len();
        for (i, text) in pieces.into_iter().enumerate() {
            if current.load(Ordering::Acquire) != utterance {
                break;
            }
            let cached = if text.is_empty() {
                Some(Said {
                    samples: Arc::new([]),
                    sample_rate: voice.sample_rate(),
                    own_wake: false,
                })
            } else {
                cache.get(&text)
            };
            let result = match cached {
                Some(said) => Ok(Speech { said, took: None }),
                None => {
                    let started = Instant::now();
                    voice
                        .synthesize(&text)
                        .map_err(|e| e.to_string())
                        .map(|samples| {
                            let own_wake = wake.as_mut().is_some_and(|(w, threshold)| {
                                says_wake_word(w, *threshold, &samples, voice.sample_rate())
                            });
                            let said = Said {
                                samples: samples.into(),
                                sample_rate: voice.sample_rate(),
                                own_wake,
                            };
                            cache.insert(&text, said.clone());
                            let (sentences, bytes) = cache.size();
                            tracing::debug!(
                                sentences,
                                kib = bytes >> 10,
                                limit_kib = crate::speak::cache::LIMIT_BYTES >> 10,
                                "audio of sentences said before"
                            );
                            Speech {
                                said,
                                took: Some(started.elapsed()),
                            }
                        })
                }
            };
            let failed = result.is_err();
            let sent = out.send(Msg::Synthesised {
                utterance,
                sentence: sentence.clone(),
                result,
                last: i + 1 == count,
            });
            if sent.is_err() {
                return;
            }
            if failed {
                break;
            }
        }
    }
}

/// A sentence is flagged at this share of the wake threshold. The microphone hears Cabin's voice
/// through the cabin, not as synthesised, and each Piper reading differs (one "…saying hey
/// Cabin." scored from 0.73 to 0.996 in eight readings), so a flag at the threshold itself
/// would miss readings the front end then wakes on. A missed flag lets Cabin wake itself; a
/// false one only ignores a wake word during that sentence.
const OWN_VOICE_SHARE: f32 = 0.5;

/// Whether the wake word detector would fire anywhere in `samples` (see [`OWN_VOICE_SHARE`]).
fn says_wake_word(wake: &mut WakeWord, threshold: f32, samples: &[f32], rate: u32) -> bool {
    let threshold = threshold * OWN_VOICE_SHARE;
    let Ok(audio) = crate::hear::audio::resample(samples, rate) else {
        return false;
    };
    wake.reset();
    // A second of silence after it: the detector decides on the tail of the phrase.
    let tail = vec![0.0; crate::hear::audio::RATE as usize];
    let mut chunk = [0i16; CHUNK];
    for block in audio.chunks(CHUNK).chain(tail.chunks(CHUNK)) {
        chunk.fill(0);
        for (c, s) in chunk.iter_mut().zip(block) {
            *c = (s * 32767.0).clamp(-32768.0, 32767.0) as i16;
        }
        if let Ok(score) = wake.push(&chunk) {
            if score >= threshold {
                return true;
            }
        }
    }
    false
}

/// An utterance being spoken.
struct Utterance {
    id: u64,
    /// Text not yet a whole sentence.
    pending: String,
    ended: bool,
    /// Sentences sent to the voice and not yet back.
    synthesising: usize,
    since: Instant,
    spoke: bool,
    /// Its first phrase has gone to the voice.
    phrased: bool,
    /// The sentence whose pieces are arriving: what has played of it so far.
    heard: Heard,
}

/// The pieces of a sentence heard so far, reported as one [`Spoken::Sentence`] after its last.
#[derive(Default)]
struct Heard {
    audio: Duration,
    /// None while every piece came from the cache.
    synthesis: Option<Duration>,
    own_wake: bool,
    first_audio: Option<Duration>,
}

/// The speaker thread: owns the sink; never blocks on synthesis.
fn play(
    mut sink: Box<dyn Sink>,
    rx: mpsc::Receiver<Msg>,
    voice: mpsc::Sender<(u64, String)>,
    current: Arc<AtomicU64>,
    events: UnboundedSender<Spoken>,
) {
    let mut now: Option<Utterance> = None;
    let done = |sink: &mut Box<dyn Sink>, now: &mut Option<Utterance>, end: SpeechEnd| {
        if let Some(u) = now.take() {
            current.store(NONE, Ordering::Release);
            if end != SpeechEnd::Finished {
                sink.stop();
            }
            let end = match (end, sink.finish()) {
                (SpeechEnd::Finished, Err(e)) => SpeechEnd::Failed(e.to_string()),
                (end, _) => end,
            };
            let _ = events.send(Spoken::Done {
                utterance: u.id,
                end,
            });
        }
    };
    loop {
        // While the last audio plays out, look every 10 ms for its end.
        let draining = now.as_ref().is_some_and(|u| u.ended && u.synthesising == 0);
        let msg = if draining {
            match rx.recv_timeout(Duration::from_millis(10)) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => Some(Msg::Shutdown),
            }
        } else {
            Some(rx.recv().unwrap_or(Msg::Shutdown))
        };
        match msg {
            None => {}
            Some(Msg::Shutdown) => {
                done(&mut sink, &mut now, SpeechEnd::Stopped);
                return;
            }
            Some(Msg::Stop) => done(&mut sink, &mut now, SpeechEnd::Stopped),
            Some(Msg::Text { utterance, text }) => {
                if now.as_ref().is_some_and(|u| u.id != utterance) {
                    done(&mut sink, &mut now, SpeechEnd::Stopped);
                }
                let u = now.get_or_insert_with(|| {
                    current.store(utterance, Ordering::Release);
                    Utterance {
                        id: utterance,
                        pending: String::new(),
                        ended: false,
                        synthesising: 0,
                        since: Instant::now(),
                        spoke: false,
                        phrased: false,
                        heard: Heard::default(),
                    }
                });
                if u.ended {
                    continue;
                }
                u.pending.push_str(&text);
                for sentence in take_phrases(&mut u.pending, false, !u.phrased) {
                    u.phrased = true;
                    u.synthesising += 1;
                    let _ = voice.send((u.id, sentence));
                }
            }
            Some(Msg::End { utterance }) => {
                if let Some(u) = now.as_mut().filter(|u| u.id == utterance) {
                    for sentence in take_phrases(&mut u.pending, true, !u.phrased) {
                        u.phrased = true;
                        u.synthesising += 1;
                        let _ = voice.send((u.id, sentence));
                    }
                    u.ended = true;
                }
            }
            Some(Msg::Synthesised {
                utterance,
                sentence,
                result,
                last,
            }) => {
                let Some(u) = now.as_mut().filter(|u| u.id == utterance) else {
                    continue;
                };
                let speech = match result {
                    Ok(s) => s,
                    Err(e) => {
                        done(&mut sink, &mut now, SpeechEnd::Failed(e));
                        continue;
                    }
                };
                let said = &speech.said;
                if !said.samples.is_empty() {
                    if let Err(e) = sink.append(&said.samples, said.sample_rate) {
                        done(&mut sink, &mut now, SpeechEnd::Failed(e.to_string()));
                        continue;
                    }
                    if !u.spoke {
                        u.heard.first_audio = Some(u.since.elapsed());
                        u.spoke = true;
                    }
                }
                let heard = &mut u.heard;
                heard.audio += Duration::from_secs_f64(
                    said.samples.len() as f64 / f64::from(said.sample_rate.max(1)),
                );
                if let Some(took) = speech.took {
                    heard.synthesis = Some(heard.synthesis.unwrap_or_default() + took);
                }
                heard.own_wake |= said.own_wake;
                if last {
                    u.synthesising -= 1;
                    let heard = std::mem::take(&mut u.heard);
                    let _ = events.send(Spoken::Sentence {
                        utterance,
                        text: sentence,
                        audio: heard.audio,
                        synthesis: heard.synthesis,
                        own_wake: heard.own_wake,
                        first_audio: heard.first_audio,
                    });
                }
            }
        }
        if now.as_ref().is_some_and(|u| u.ended && u.synthesising == 0) && !sink.playing() {
            done(&mut sink, &mut now, SpeechEnd::Finished);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn speaker() -> (Speaker, tokio::sync::mpsc::UnboundedReceiver<Spoken>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (
            Speaker::start(
                Box::new(crate::speak::voice::Beep),
                Output::Null,
                None,
                None,
                tx,
            )
            .unwrap(),
            rx,
        )
    }

    #[test]
    fn an_utterance_plays_in_real_time_and_then_is_done() {
        let (s, mut rx) = speaker();
        let started = Instant::now();
        s.say(1, "One. Two");
        s.end(1);
        let first = rx.blocking_recv().unwrap();
        assert!(
            matches!(&first, Spoken::Sentence { text, first_audio: Some(_), .. } if text == "One."),
            "{first:?}"
        );
        assert!(matches!(
            rx.blocking_recv().unwrap(),
            Spoken::Sentence {
                first_audio: None,
                ..
            }
        ));
        assert_eq!(
            rx.blocking_recv().unwrap(),
            Spoken::Done {
                utterance: 1,
                end: SpeechEnd::Finished
            }
        );
        // Two seconds of audio on the real-time null device.
        assert!(started.elapsed() >= Duration::from_millis(1900));
    }

    /// What plays is the echo canceller's reference, at 16 kHz, until it is stopped.
    #[test]
    fn what_plays_is_queued_for_the_echo_canceller_until_stopped() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let played = Played::new();
        let s = Speaker::start(
            Box::new(crate::speak::voice::Beep),
            Output::Null,
            None,
            Some(played.clone()),
            tx,
        )
        .unwrap();
        s.say(1, "One. Two.");
        let Spoken::Sentence { audio, .. } = rx.blocking_recv().unwrap() else {
            panic!("a sentence first");
        };
        let mut reference = crate::hear::played::Reference {
            voice: Some(played),
            media: None,
        };
        let mut heard = vec![0i16; (audio.as_secs_f64() * 16_000.0) as usize];
        reference.read(&mut heard);
        let loud = heard.iter().filter(|s| s.unsigned_abs() > 1000).count();
        assert!(loud > heard.len() / 4, "{loud} of {}", heard.len());
        s.stop();
        assert!(matches!(rx.blocking_recv().unwrap(), Spoken::Done { .. }));
        reference.read(&mut heard);
        assert!(heard.iter().all(|&s| s == 0));
    }

    #[test]
    fn stop_and_a_newer_utterance_cut_it_short() {
        let (s, mut rx) = speaker();
        s.say(1, "One. Two. Three.");
        assert!(matches!(
            rx.blocking_recv().unwrap(),
            Spoken::Sentence { .. }
        ));
        s.stop();
        let mut events = Vec::new();
        while let Some(e) = rx.blocking_recv() {
            let done = matches!(e, Spoken::Done { .. });
            events.push(e);
            if done {
                break;
            }
        }
        assert_eq!(
            events.last().unwrap(),
            &Spoken::Done {
                utterance: 1,
                end: SpeechEnd::Stopped
            }
        );
        s.say(2, "Four.");
        s.say(3, "Five.");
        s.end(3);
        let mut ends = Vec::new();
        while ends.len() < 2 {
            if let Spoken::Done { utterance, end } = rx.blocking_recv().unwrap() {
                ends.push((utterance, end));
            }
        }
        assert_eq!(ends, [(2, SpeechEnd::Stopped), (3, SpeechEnd::Finished)]);
    }

    /// Issue 25: a reply heard before plays without a synthesis.
    #[test]
    fn a_sentence_said_before_plays_from_the_cache() {
        let (s, mut rx) = speaker();
        let mut synthesis = Vec::new();
        for utterance in [1, 2] {
            s.say(utterance, "Which window?");
            s.end(utterance);
            while let Spoken::Sentence { synthesis: t, .. } = rx.blocking_recv().unwrap() {
                synthesis.push(t.is_some());
            }
        }
        assert_eq!(synthesis, [true, false]);
    }

    /// Records the length of every text it is given; a tenth of a second of audio each.
    struct Counting(Arc<std::sync::Mutex<Vec<usize>>>);

    impl Voice for Counting {
        fn sample_rate(&self) -> u32 {
            1000
        }

        fn synthesize(&mut self, text: &str) -> Result<Vec<f32>, crate::speak::voice::TtsError> {
            self.0.lock().unwrap().push(text.chars().count());
            Ok(vec![0.1; 100])
        }

        fn name(&self) -> String {
            "counting".into()
        }
    }

    /// Issue 37: a sentence was given to the voice whole, however long (a voice's memory grows
    /// faster than the length of what it is given at once). It goes a piece at a time, and is
    /// reported once, with all its audio.
    #[test]
    fn a_long_sentence_goes_to_the_voice_a_piece_at_a_time() {
        let given = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let s = Speaker::start(
            Box::new(Counting(given.clone())),
            Output::Null,
            None,
            None,
            tx,
        )
        .unwrap();
        let text = format!(
            "{}and call {}",
            "the driver wants to open the window ".repeat(28),
            "9".repeat(600)
        );
        s.say(1, &text);
        s.end(1);
        let Spoken::Sentence { audio, .. } = rx.blocking_recv().unwrap() else {
            panic!("not a sentence");
        };
        // Pieces said before come from the cache: the voice hears each only once.
        let given = given.lock().unwrap().clone();
        assert!(given.len() >= 8, "{given:?}");
        assert!(given.iter().all(|n| *n <= voice::MAX_PIECE), "{given:?}");
        let pieces = voice::pieces(&text, true).len();
        assert_eq!(pieces, 16);
        assert_eq!(audio, Duration::from_millis(100) * pieces as u32);
    }

    #[test]
    fn a_synthesis_error_ends_the_utterance() {
        let (s, mut rx) = speaker();
        s.say(7, "Please fail now.");
        s.end(7);
        assert!(matches!(
            rx.blocking_recv().unwrap(),
            Spoken::Done { utterance: 7, end: SpeechEnd::Failed(e) } if e.contains("told to fail")
        ));
    }
}
