//! End-pointing: Silero VAD gives a speech probability per 32 ms, and [`Endpointer`] turns
//! those into "the command has ended" (trailing silence), "nothing was said" (timeout) or
//! "too long" (cut off).

use crate::profile::ListenSettings;
use crate::runtime::onnx::{run_error, session, OnnxError};
use ort::session::Session;
use ort::value::{Tensor, TensorRef};
use std::path::Path;

/// Samples per VAD frame (32 ms at 16 kHz).
pub const FRAME: usize = 512;
/// Samples of the previous frame the model also sees.
const CONTEXT: usize = 64;
const STATE: usize = 2 * 128;

pub struct Silero {
    session: Session,
    input: Vec<f32>,
    state: Vec<f32>,
    rate: Tensor<i64>,
}

impl Silero {
    pub fn load(path: &Path) -> Result<Silero, OnnxError> {
        Ok(Silero {
            session: session(path, "voice activity model")?,
            input: vec![0.0; CONTEXT + FRAME],
            state: vec![0.0; STATE],
            rate: Tensor::from_array(((), vec![16_000i64])).map_err(run_error("voice activity"))?,
        })
    }

    pub fn reset(&mut self) {
        self.input.fill(0.0);
        self.state.fill(0.0);
    }

    /// The probability (0..1) that `frame` is speech.
    pub fn speech(&mut self, frame: &[i16; FRAME]) -> Result<f32, OnnxError> {
        self.input.copy_within(FRAME.., 0);
        for (x, s) in self.input[CONTEXT..].iter_mut().zip(frame) {
            *x = f32::from(*s) / 32768.0;
        }
        let fail = run_error("voice activity model");
        let outputs = self
            .session
            .run(ort::inputs![
                "input" => TensorRef::from_array_view(([1usize, CONTEXT + FRAME], &self.input[..]))
                    .map_err(run_error("voice activity model"))?,
                "state" => TensorRef::from_array_view(([2usize, 1, 128], &self.state[..]))
                    .map_err(run_error("voice activity model"))?,
                "sr" => &self.rate,
            ])
            .map_err(fail)?;
        let p = outputs["output"]
            .try_extract_tensor::<f32>()
            .map_err(run_error("voice activity model"))?
            .1
            .first()
            .copied()
            .unwrap_or(0.0);
        let (_, state) = outputs["stateN"]
            .try_extract_tensor::<f32>()
            .map_err(run_error("voice activity model"))?;
        if state.len() == STATE {
            self.state.copy_from_slice(state);
        }
        Ok(p)
    }
}

/// What the end-pointer decided after a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Keep listening.
    Listening,
    /// The command ended: speech from frame `start` to frame `end` (exclusive).
    Ended { start: usize, end: usize },
    /// Cut off at the maximum length.
    TooLong { start: usize, end: usize },
    /// No speech started before the timeout.
    NoSpeech,
}

/// Frames of speech in a row that start an utterance (64 ms: a click or a bump is shorter).
const START_FRAMES: usize = 2;
/// Speech probability falls this far under the threshold before a frame counts as silence.
const HYSTERESIS: f32 = 0.15;

/// Decides, frame by frame, where a command starts and ends. Pure logic: tests drive it with
/// probabilities.
#[derive(Debug)]
pub struct Endpointer {
    threshold: f32,
    trailing: usize,
    no_speech: usize,
    max: usize,
    frame: usize,
    run: usize,
    start: Option<usize>,
    last_speech: usize,
}

/// VAD frames in `d`, rounded up.
pub fn frames(d: std::time::Duration) -> usize {
    (d.as_secs_f64() * 16_000.0 / FRAME as f64).ceil() as usize
}

impl Endpointer {
    pub fn new(s: &ListenSettings) -> Endpointer {
        Endpointer {
            threshold: s.vad_threshold,
            trailing: frames(s.trailing_silence),
            no_speech: frames(s.no_speech_timeout),
            max: frames(s.max_utterance),
            frame: 0,
            run: 0,
            start: None,
            last_speech: 0,
        }
    }

    /// Whether speech has started.
    pub fn in_speech(&self) -> bool {
        self.start.is_some()
    }

    /// Where speech started (a frame index), once it has.
    pub fn start(&self) -> Option<usize> {
        self.start
    }

    /// Frames since the last speech frame (0 while speaking); None before speech starts.
    pub fn silence(&self) -> Option<usize> {
        self.start.map(|_| self.frame - 1 - self.last_speech)
    }

    /// The frame after the last speech frame so far.
    pub fn speech_end(&self) -> usize {
        self.last_speech + 1
    }

    pub fn push(&mut self, p: f32) -> Endpoint {
        let i = self.frame;
        self.frame += 1;
        let speech = if self.start.is_some() {
            p >= self.threshold - HYSTERESIS
        } else {
            p >= self.threshold
        };
        self.run = if speech { self.run + 1 } else { 0 };
        match self.start {
            None => {
                if self.run >= START_FRAMES {
                    self.start = Some(i + 1 - START_FRAMES);
                    self.last_speech = i;
                } else if self.frame >= self.no_speech {
                    return Endpoint::NoSpeech;
                }
                Endpoint::Listening
            }
            Some(start) => {
                if speech {
                    self.last_speech = i;
                }
                if i + 1 - start >= self.max {
                    Endpoint::TooLong { start, end: i + 1 }
                } else if i - self.last_speech >= self.trailing {
                    Endpoint::Ended {
                        start,
                        end: self.last_speech + 1,
                    }
                } else {
                    Endpoint::Listening
                }
            }
        }
    }

    /// The input ended: what was heard so far.
    pub fn finish(&self) -> Endpoint {
        match self.start {
            Some(start) => Endpoint::Ended {
                start,
                end: self.last_speech + 1,
            },
            None => Endpoint::NoSpeech,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn settings() -> ListenSettings {
        ListenSettings {
            trailing_silence: Duration::from_millis(600),
            no_speech_timeout: Duration::from_millis(1000),
            max_utterance: Duration::from_millis(3000),
            ..ListenSettings::default()
        }
    }

    fn run(e: &mut Endpointer, ps: impl IntoIterator<Item = f32>) -> Vec<Endpoint> {
        ps.into_iter()
            .map(|p| e.push(p))
            .filter(|r| *r != Endpoint::Listening)
            .collect()
    }

    #[test]
    fn ends_after_trailing_silence() {
        let mut e = Endpointer::new(&settings());
        // 5 frames of silence, 20 of speech, then silence: 600 ms is 19 frames.
        let ps = std::iter::repeat_n(0.0, 5)
            .chain(std::iter::repeat_n(0.9, 20))
            .chain(std::iter::repeat_n(0.0, 30));
        assert_eq!(run(&mut e, ps)[0], Endpoint::Ended { start: 5, end: 25 });
    }

    #[test]
    fn a_short_pause_does_not_end_the_command() {
        let mut e = Endpointer::new(&settings());
        let ps = std::iter::repeat_n(0.9, 10)
            .chain(std::iter::repeat_n(0.1, 10))
            .chain(std::iter::repeat_n(0.9, 10))
            .chain(std::iter::repeat_n(0.0, 19));
        assert_eq!(run(&mut e, ps), vec![Endpoint::Ended { start: 0, end: 30 }]);
    }

    #[test]
    fn hysteresis_keeps_soft_speech_in() {
        let mut e = Endpointer::new(&settings());
        // Once speaking, 0.4 (under the 0.5 threshold, over 0.35) is still speech.
        let ps = std::iter::repeat_n(0.9, 3)
            .chain(std::iter::repeat_n(0.4, 30))
            .chain(std::iter::repeat_n(0.0, 19));
        assert_eq!(run(&mut e, ps), vec![Endpoint::Ended { start: 0, end: 33 }]);
    }

    #[test]
    fn a_click_is_not_speech_and_silence_times_out() {
        let mut e = Endpointer::new(&settings());
        let ps = [0.0, 0.9, 0.0].into_iter().chain(std::iter::repeat(0.0));
        let first = ps
            .map(|p| e.push(p))
            .find(|r| *r != Endpoint::Listening)
            .unwrap();
        assert_eq!(first, Endpoint::NoSpeech);
        assert_eq!(e.frame, frames(Duration::from_millis(1000)));
    }

    #[test]
    fn cut_off_at_the_maximum_length() {
        let mut e = Endpointer::new(&settings());
        let got = run(&mut e, std::iter::repeat_n(0.9, 200));
        assert_eq!(got[0], Endpoint::TooLong { start: 0, end: 94 });
    }

    #[test]
    fn silence_is_counted_from_the_last_speech_frame() {
        let mut e = Endpointer::new(&settings());
        run(&mut e, std::iter::repeat_n(0.0, 3));
        assert_eq!(e.silence(), None);
        run(&mut e, std::iter::repeat_n(0.9, 4));
        assert_eq!(
            (e.start(), e.silence(), e.speech_end()),
            (Some(3), Some(0), 7)
        );
        run(&mut e, std::iter::repeat_n(0.0, 5));
        assert_eq!((e.silence(), e.speech_end()), (Some(5), 7));
    }

    #[test]
    fn end_of_input_keeps_what_was_said() {
        let mut e = Endpointer::new(&settings());
        run(&mut e, std::iter::repeat_n(0.9, 10));
        assert_eq!(e.finish(), Endpoint::Ended { start: 0, end: 10 });
        let e = Endpointer::new(&settings());
        assert_eq!(e.finish(), Endpoint::NoSpeech);
    }
}
