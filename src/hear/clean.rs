//! The microphone's signal cleaned before it is heard: SpeexDSP's echo canceller takes out
//! what the car plays, given it as a reference, and WebRTC's audio processing module
//! (PulseAudio's package of it, Debian's `libwebrtc-audio-processing`) can suppress steady
//! noise (road, engine, fan). The WebRTC module runs at 48 kHz in 10 ms frames; Cabin's 16 kHz
//! audio is resampled on the way in and out.
//!
//! The echo is SpeexDSP's (the multidelay block frequency-domain filter, with its residual
//! echo suppressor) because WebRTC's legacy canceller, the one Debian packages, suppressed the
//! driver's voice whenever the car played: with Cabin's voice at the microphone as loud as
//! the driver's, the wake word missed "Hey Cabin" through it and heard it through SpeexDSP's.

use crate::profile::{CleanSettings, NoiseLevel};
use aec_rs_sys as speex;
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::Resampler;
use std::time::Duration;
use webrtc_audio_processing as apm;

/// 16 kHz samples per 10 ms frame: the unit both cleaners work in.
pub const FRAME: usize = 160;
const RATE: usize = 16_000;
const APM_RATE: usize = 48_000;
const APM_FRAME: usize = FRAME * APM_RATE / RATE;

#[derive(Debug, thiserror::Error)]
pub enum CleanError {
    #[error("WebRTC audio processing failed: {0} (is libwebrtc-audio-processing installed? `scripts/setup` installs it)")]
    Apm(String),
    #[error("SpeexDSP's echo canceller: {0}")]
    Speex(String),
    #[error("resampling for WebRTC audio processing: {0}")]
    Resample(String),
}

/// One microphone's noise suppressor: its noise estimate adapts over seconds, so one serves a
/// whole session of audio.
struct Cleaner {
    apm: apm::Processor,
    capture_up: rubato::Fft<f32>,
    down: rubato::Fft<f32>,
    /// Cleaned 16 kHz samples waiting for their place: the resamplers delay the signal.
    ready: std::collections::VecDeque<f32>,
    cpu: Duration,
}

fn resampler(from: usize, to: usize, chunk: usize) -> Result<rubato::Fft<f32>, CleanError> {
    rubato::Fft::<f32>::new(from, to, chunk, 1, rubato::FixedSync::Input)
        .map_err(|e| CleanError::Resample(e.to_string()))
}

impl Cleaner {
    fn new(level: NoiseLevel) -> Result<Cleaner, CleanError> {
        let mut processor = apm::Processor::new(&apm::InitializationConfig {
            num_capture_channels: 1,
            num_render_channels: 1,
            ..Default::default()
        })
        .map_err(|e| CleanError::Apm(format!("{e:?}")))?;
        processor.set_config(apm::Config {
            noise_suppression: Some(apm::NoiseSuppression {
                suppression_level: match level {
                    NoiseLevel::Low => apm::NoiseSuppressionLevel::Low,
                    NoiseLevel::Moderate => apm::NoiseSuppressionLevel::Moderate,
                    NoiseLevel::High => apm::NoiseSuppressionLevel::High,
                    NoiseLevel::VeryHigh => apm::NoiseSuppressionLevel::VeryHigh,
                },
            }),
            enable_high_pass_filter: true,
            ..Default::default()
        });
        let mut cleaner = Cleaner {
            apm: processor,
            capture_up: resampler(RATE, APM_RATE, FRAME)?,
            down: resampler(APM_RATE, RATE, APM_FRAME)?,
            ready: Default::default(),
            cpu: Duration::ZERO,
        };
        // The resamplers' delay, filled with silence once so that every later frame gives a
        // whole frame back.
        let delay = cleaner.capture_up.output_delay() / 3 + cleaner.down.output_delay();
        cleaner
            .ready
            .extend(std::iter::repeat_n(0.0, delay.min(4 * FRAME)));
        Ok(cleaner)
    }

    /// Cleans 16 kHz microphone audio in place, in whole [`FRAME`]s (a partial last frame is
    /// left as it is). The result lags the input by a few milliseconds.
    fn capture(&mut self, audio: &mut [i16]) -> Result<(), CleanError> {
        let started = crate::hear::cpu::thread_cpu();
        for frame in audio.chunks_exact_mut(FRAME) {
            let mut up = upsample(&mut self.capture_up, frame)?;
            self.apm
                .process_capture_frame(&mut up)
                .map_err(|e| CleanError::Apm(format!("{e:?}")))?;
            let input = InterleavedSlice::new(&up[..], 1, up.len())
                .map_err(|e| CleanError::Resample(e.to_string()))?;
            let down = self
                .down
                .process(&input, None)
                .map_err(|e| CleanError::Resample(e.to_string()))?;
            self.ready.extend(down.take_data());
            for s in frame.iter_mut() {
                let cleaned = self.ready.pop_front().unwrap_or(0.0);
                *s = crate::hear::audio::to_i16(cleaned);
            }
        }
        self.cpu += crate::hear::cpu::thread_cpu() - started;
        Ok(())
    }

    fn cpu(&self) -> Duration {
        self.cpu
    }
}

/// SpeexDSP's echo canceller with its residual echo suppressor. It adapts to the echo path
/// over a second or two of playback, so one serves a whole session of audio. Not `Send` (it
/// holds SpeexDSP's states): it lives on the thread that made it.
struct Canceller {
    echo: *mut speex::SpeexEchoState,
    residual: *mut speex::SpeexPreprocessState,
    out: [i16; FRAME],
    cpu: Duration,
}

/// How far SpeexDSP's preprocessor turns the echo left after the filter down, in dB: while the
/// car plays alone, and while the driver talks over it. Its defaults (-40, -15) let the wake
/// word hear "Hey Cabin" over the car's playback at 0 dB on 29 of 50 tries with a false wake in
/// ten minutes of it; these on 38 of 50, with none (`cabin wake playback`; -60/-40 and -80/-50
/// did worse, 35 and 34). Its noise suppression stays on: off, 20 of 50, with five false wakes.
const RESIDUAL_SUPPRESS_DB: i32 = -60;
const RESIDUAL_SUPPRESS_ACTIVE_DB: i32 = -30;

impl Canceller {
    fn new(tail: Duration) -> Result<Canceller, CleanError> {
        let taps = (tail.as_secs_f64() * RATE as f64) as i32;
        // SAFETY: plain constructors; a null state is checked before any use.
        let (echo, residual) = unsafe {
            (
                speex::speex_echo_state_init(FRAME as i32, taps),
                speex::speex_preprocess_state_init(FRAME as i32, RATE as i32),
            )
        };
        // Dropped on every path from here: Drop skips a null state.
        let canceller = Canceller {
            echo,
            residual,
            out: [0; FRAME],
            cpu: Duration::ZERO,
        };
        if echo.is_null() || residual.is_null() {
            return Err(CleanError::Speex("could not create its state".into()));
        }
        for (request, value) in [
            (
                speex::SPEEX_PREPROCESS_SET_ECHO_SUPPRESS,
                RESIDUAL_SUPPRESS_DB,
            ),
            (
                speex::SPEEX_PREPROCESS_SET_ECHO_SUPPRESS_ACTIVE,
                RESIDUAL_SUPPRESS_ACTIVE_DB,
            ),
        ] {
            let mut value = value;
            // SAFETY: both states are live; each request reads one spx_int32_t.
            let done = unsafe {
                speex::speex_preprocess_ctl(
                    residual,
                    request as i32,
                    (&mut value as *mut i32).cast(),
                )
            };
            if done != 0 {
                return Err(CleanError::Speex(format!("request {request} refused")));
            }
        }
        // SAFETY: as above; the preprocessor keeps the pointer to the echo state, which
        // lives exactly as long (both are destroyed together in Drop).
        let linked = unsafe {
            speex::speex_preprocess_ctl(
                residual,
                speex::SPEEX_PREPROCESS_SET_ECHO_STATE as i32,
                echo.cast(),
            )
        };
        if linked != 0 {
            return Err(CleanError::Speex("could not link its two states".into()));
        }
        Ok(canceller)
    }

    /// Takes the echo of `played` out of `mic` in whole [`FRAME`]s (a partial last frame is
    /// left as it is).
    fn cancel(&mut self, mic: &mut [i16], played: &[i16]) {
        let started = crate::hear::cpu::thread_cpu();
        for (frame, reference) in mic.chunks_exact_mut(FRAME).zip(played.chunks_exact(FRAME)) {
            // SAFETY: live states made for FRAME samples; every buffer holds FRAME samples.
            unsafe {
                speex::speex_echo_cancellation(
                    self.echo,
                    frame.as_ptr(),
                    reference.as_ptr(),
                    self.out.as_mut_ptr(),
                );
                speex::speex_preprocess_run(self.residual, self.out.as_mut_ptr());
            }
            frame.copy_from_slice(&self.out);
        }
        self.cpu += crate::hear::cpu::thread_cpu() - started;
    }
}

impl Drop for Canceller {
    fn drop(&mut self) {
        // SAFETY: each state was made by its init and is destroyed once; null ones are skipped.
        unsafe {
            if !self.residual.is_null() {
                speex::speex_preprocess_state_destroy(self.residual);
            }
            if !self.echo.is_null() {
                speex::speex_echo_state_destroy(self.echo);
            }
        }
    }
}

/// The front end's cleaning in its order: the echo of what the car plays taken out first
/// (what the wake word hears), then steady noise suppressed (what the end-pointer and the
/// recogniser hear). Two modules, so that the wake word, trained on noisy audio, never hears
/// the suppression.
pub struct Cleaning {
    echo: Option<Canceller>,
    noise: Option<Cleaner>,
}

impl Cleaning {
    /// As `settings` ask; the echo canceller only where something is `played` to cancel.
    pub fn new(settings: &CleanSettings, played: bool) -> Result<Cleaning, CleanError> {
        Ok(Cleaning {
            echo: settings
                .echo
                .filter(|_| played)
                .map(|e| Canceller::new(e.tail))
                .transpose()?,
            noise: settings.noise.map(Cleaner::new).transpose()?,
        })
    }

    /// Whether the echo is cancelled (a reference must then go with every frame).
    pub fn cancels_echo(&self) -> bool {
        self.echo.is_some()
    }

    /// Takes the echo of `played` (as long as `mic`) out of `mic`, in place.
    pub fn echo(&mut self, mic: &mut [i16], played: &[i16]) {
        if let Some(c) = &mut self.echo {
            c.cancel(mic, played);
        }
    }

    /// Suppresses noise in `audio`, in place.
    pub fn noise(&mut self, audio: &mut [i16]) -> Result<(), CleanError> {
        match &mut self.noise {
            Some(c) => c.capture(audio),
            None => Ok(()),
        }
    }

    /// Processor time both took so far.
    pub fn cpu(&self) -> Duration {
        self.echo.as_ref().map_or(Duration::ZERO, |c| c.cpu)
            + self.noise.as_ref().map_or(Duration::ZERO, Cleaner::cpu)
    }
}

fn upsample(r: &mut rubato::Fft<f32>, frame: &[i16]) -> Result<Vec<f32>, CleanError> {
    let samples: Vec<f32> = frame.iter().map(|&s| f32::from(s) / 32768.0).collect();
    let input = InterleavedSlice::new(&samples[..], 1, samples.len())
        .map_err(|e| CleanError::Resample(e.to_string()))?;
    let mut out = r
        .process(&input, None)
        .map_err(|e| CleanError::Resample(e.to_string()))?
        .take_data();
    out.resize(APM_FRAME, 0.0);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::EchoSettings;

    fn tone(n: usize, hz: f32, amplitude: f32) -> Vec<i16> {
        (0..n)
            .map(|i| {
                (amplitude * (2.0 * std::f32::consts::PI * hz * i as f32 / RATE as f32).sin())
                    as i16
            })
            .collect()
    }

    fn rms(audio: &[i16]) -> f64 {
        (audio.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / audio.len() as f64).sqrt()
    }

    #[test]
    fn no_cleaning_asked_is_none_done() {
        let mut c = Cleaning::new(&CleanSettings::default(), true).unwrap();
        assert!(!c.cancels_echo());
        let mut audio = tone(RATE, 440.0, 8000.0);
        let before = audio.clone();
        c.echo(&mut audio, &before);
        c.noise(&mut audio).unwrap();
        assert_eq!(audio, before);
    }

    #[test]
    fn the_echo_of_what_the_car_plays_is_taken_out() {
        let settings = CleanSettings {
            noise: None,
            echo: Some(EchoSettings::default()),
        };
        let mut cleaning = Cleaning::new(&settings, true).unwrap();
        assert!(cleaning.cancels_echo());
        // Something like speech in the loudspeaker: a tone that moves, with pauses.
        let played: Vec<i16> = (0..RATE * 4)
            .map(|i| {
                let on = (i / 4000) % 3 != 2;
                let hz = 300.0 + 200.0 * ((i / 4000) % 4) as f32;
                if on {
                    (6000.0 * (2.0 * std::f32::consts::PI * hz * i as f32 / RATE as f32).sin())
                        as i16
                } else {
                    0
                }
            })
            .collect();
        // The echo: 40 % of what was played, 3 ms late.
        let mut heard: Vec<i16> = std::iter::repeat_n(0, 48)
            .chain(played.iter().map(|&s| (f32::from(s) * 0.4) as i16))
            .take(played.len())
            .collect();
        let echo = rms(&heard[heard.len() - RATE..]);
        for (mic, reference) in heard.chunks_mut(1280).zip(played.chunks(1280)) {
            cleaning.echo(mic, reference);
        }
        let last = rms(&heard[heard.len() - RATE..]);
        assert!(last < echo / 10.0, "{last} left of {echo}");
    }
}
