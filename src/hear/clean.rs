//! The microphone's signal cleaned before it is end-pointed and recognised: WebRTC's audio
//! processing module (PulseAudio's package of it, Debian's `libwebrtc-audio-processing`)
//! suppresses steady noise (road, engine, fan) and, given what the car plays as a reference,
//! cancels its echo. The module runs at 48 kHz in 10 ms frames; Cabin's 16 kHz audio is
//! resampled on the way in and out.

use crate::profile::{CleanSettings, NoiseLevel};
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::Resampler;
use std::time::Duration;
use webrtc_audio_processing as apm;

/// 16 kHz samples per 10 ms frame: what [`Cleaner::capture`] and [`Cleaner::render`] take.
pub const FRAME: usize = 160;
const RATE: usize = 16_000;
const APM_RATE: usize = 48_000;
const APM_FRAME: usize = FRAME * APM_RATE / RATE;

#[derive(Debug, thiserror::Error)]
pub enum CleanError {
    #[error("WebRTC audio processing failed: {0} (is libwebrtc-audio-processing installed? `scripts/setup` installs it)")]
    Apm(String),
    #[error("resampling for WebRTC audio processing: {0}")]
    Resample(String),
}

/// One microphone's cleaner. Echo cancellation adapts to the echo path over seconds, so one
/// cleaner serves a whole session of audio.
pub struct Cleaner {
    apm: apm::Processor,
    capture_up: rubato::Fft<f32>,
    render_up: rubato::Fft<f32>,
    down: rubato::Fft<f32>,
    echo: bool,
    /// Cleaned 16 kHz samples waiting for their place: the resamplers delay the signal.
    ready: std::collections::VecDeque<f32>,
    cpu: Duration,
}

fn resampler(from: usize, to: usize, chunk: usize) -> Result<rubato::Fft<f32>, CleanError> {
    rubato::Fft::<f32>::new(from, to, chunk, 1, rubato::FixedSync::Input)
        .map_err(|e| CleanError::Resample(e.to_string()))
}

impl Cleaner {
    /// A cleaner as the profile's `[listen]` section asks; `None` when it asks for no cleaning.
    pub fn new(settings: &CleanSettings) -> Result<Option<Cleaner>, CleanError> {
        if settings.noise.is_none() && !settings.echo {
            return Ok(None);
        }
        let mut processor = apm::Processor::new(&apm::InitializationConfig {
            num_capture_channels: 1,
            num_render_channels: 1,
            ..Default::default()
        })
        .map_err(|e| CleanError::Apm(format!("{e:?}")))?;
        processor.set_config(apm::Config {
            echo_cancellation: settings.echo.then_some(apm::EchoCancellation {
                suppression_level: apm::EchoCancellationSuppressionLevel::High,
                enable_extended_filter: true,
                // The delay from the reference to the microphone is unknown on a head unit
                // (and differs between cars): the module finds it.
                enable_delay_agnostic: true,
                stream_delay_ms: None,
            }),
            noise_suppression: settings.noise.map(|level| apm::NoiseSuppression {
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
            render_up: resampler(RATE, APM_RATE, FRAME)?,
            down: resampler(APM_RATE, RATE, APM_FRAME)?,
            echo: settings.echo,
            ready: Default::default(),
            cpu: Duration::ZERO,
        };
        // The resamplers' delay, filled with silence once so that every later frame gives a
        // whole frame back.
        let delay = cleaner.capture_up.output_delay() / 3 + cleaner.down.output_delay();
        cleaner
            .ready
            .extend(std::iter::repeat_n(0.0, delay.min(4 * FRAME)));
        Ok(Some(cleaner))
    }

    /// Tells the echo canceller what the car plays now (16 kHz, whole [`FRAME`]s; a partial
    /// last frame is ignored). Call it before the microphone's frames of the same moment.
    pub fn render(&mut self, played: &[i16]) -> Result<(), CleanError> {
        if !self.echo {
            return Ok(());
        }
        let started = crate::hear::cpu::thread_cpu();
        for frame in played.chunks_exact(FRAME) {
            let mut up = upsample(&mut self.render_up, frame)?;
            self.apm
                .process_render_frame(&mut up)
                .map_err(|e| CleanError::Apm(format!("{e:?}")))?;
        }
        self.cpu += crate::hear::cpu::thread_cpu() - started;
        Ok(())
    }

    /// Cleans 16 kHz microphone audio in place, in whole [`FRAME`]s (a partial last frame is
    /// left as it is). The result lags the input by a few milliseconds.
    pub fn capture(&mut self, audio: &mut [i16]) -> Result<(), CleanError> {
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

    /// Cleans `mic` in place, telling the echo canceller what the car played at the same
    /// moment (`played`, as long as `mic`), frame by frame as a live microphone would.
    pub fn capture_with(&mut self, mic: &mut [i16], played: &[i16]) -> Result<(), CleanError> {
        for (frame, reference) in mic.chunks_mut(FRAME).zip(played.chunks(FRAME)) {
            self.render(reference)?;
            self.capture(frame)?;
        }
        Ok(())
    }

    /// Processor time spent cleaning so far.
    pub fn cpu(&self) -> Duration {
        self.cpu
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
    fn no_cleaning_asked_is_no_cleaner() {
        assert!(Cleaner::new(&CleanSettings::default()).unwrap().is_none());
    }

    #[test]
    fn the_echo_of_what_the_car_plays_is_taken_out() {
        let settings = CleanSettings {
            noise: None,
            echo: true,
        };
        let mut cleaner = Cleaner::new(&settings).unwrap().unwrap();
        let played = tone(RATE * 4, 440.0, 8000.0);
        let mut heard = Vec::new();
        for frame in played.chunks(FRAME) {
            cleaner.render(frame).unwrap();
            // The echo: 40 % of what was played.
            let mut mic: Vec<i16> = frame.iter().map(|&s| (f32::from(s) * 0.4) as i16).collect();
            cleaner.capture(&mut mic).unwrap();
            heard.extend(mic);
        }
        let last = &heard[heard.len() - RATE..];
        let echo = rms(&played[played.len() - RATE..]) * 0.4;
        assert!(rms(last) < echo / 4.0, "{} left of {echo}", rms(last));
    }
}
