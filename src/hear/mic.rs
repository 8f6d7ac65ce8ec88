//! Microphone capture with cpal (ALSA). The capture callback runs on the audio thread and
//! only copies samples into a preallocated lock-free ring (`heapless::spsc`), counting what
//! doesn't fit: no allocation, lock or log there. The reading side (the front end thread)
//! downmixes and resamples to 16 kHz with rubato.

use crate::hear::source::AudioSource;
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use heapless::spsc::{Consumer, Queue};
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::Resampler;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Ring capacity in samples: 0.68 s of 48 kHz stereo, far more than one callback delivers.
const RING: usize = 1 << 16;
/// Resampler input block, in frames.
const BLOCK: usize = 1024;
/// No samples at all for this long means the device is gone, whatever the driver says: a
/// capture device delivers every few milliseconds.
const STALL: Duration = Duration::from_secs(2);

/// Why a capture device can't be opened, each with its fix.
#[derive(Debug, thiserror::Error)]
pub enum MicError {
    #[error("no capture device found (no sound card?); use --input FILE, - or null")]
    NoDevice,
    #[error("cannot list the capture devices: {0}")]
    Devices(#[source] cpal::Error),
    #[error("no capture device named '{0}'; `arecord -L` lists them")]
    NoSuchDevice(String),
    #[error("cannot use it: {0} (no sound card? `arecord -l` lists them; --input null or off runs without one)")]
    Config(#[source] cpal::Error),
    #[error("the device captures {0} samples; Cabin takes f32 or i16 (choose another device or an ALSA plug device)")]
    Format(String),
    #[error("cannot open the capture stream: {0}")]
    Stream(#[source] cpal::Error),
    #[error("cannot resample {rate} Hz: {message}")]
    Resampler { rate: u32, message: String },
    #[error("cannot start capture: {0}")]
    Play(#[source] cpal::Error),
}

pub struct Microphone {
    // Kept alive: dropping the stream stops capture.
    _stream: cpal::Stream,
    ring: Consumer<'static, f32>,
    channels: usize,
    overruns: Arc<AtomicU64>,
    reported: u64,
    /// Set by the stream's error callback.
    failed: Arc<AtomicBool>,
    resampler: Option<rubato::Fft<f32>>,
    /// Mono samples at the device rate, waiting for a full resampler block.
    mono: Vec<f32>,
    /// 16 kHz samples not yet handed out.
    ready: Vec<f32>,
    at: usize,
}

impl Microphone {
    /// Opens capture device `name` (`default`: the system's default).
    pub fn open(name: &str) -> Result<Microphone, MicError> {
        let host = cpal::default_host();
        let device = if name == "default" {
            host.default_input_device().ok_or(MicError::NoDevice)?
        } else {
            host.input_devices()
                .map_err(MicError::Devices)?
                .find(|d| d.description().is_ok_and(|desc| desc.name() == name))
                .ok_or_else(|| MicError::NoSuchDevice(name.to_string()))?
        };
        let config = device.default_input_config().map_err(MicError::Config)?;
        let channels = usize::from(config.channels());
        let rate = config.sample_rate();
        // One ring per opened stream; a stream is opened once per daemon run.
        let queue: &'static mut Queue<f32, RING> = Box::leak(Box::new(Queue::new()));
        let (mut producer, consumer) = queue.split();
        let overruns = Arc::new(AtomicU64::new(0));
        let dropped = overruns.clone();
        let failed = Arc::new(AtomicBool::new(false));
        let error = {
            let failed = failed.clone();
            // On the audio thread: only the flag; `read` reports it.
            move |_: cpal::Error| failed.store(true, Ordering::Relaxed)
        };
        let stream = match config.sample_format() {
            cpal::SampleFormat::F32 => device.build_input_stream(
                config.config(),
                move |data: &[f32], _: &cpal::InputCallbackInfo| {
                    for &s in data {
                        if producer.enqueue(s).is_err() {
                            dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                },
                error,
                None,
            ),
            cpal::SampleFormat::I16 => device.build_input_stream(
                config.config(),
                move |data: &[i16], _: &cpal::InputCallbackInfo| {
                    for &s in data {
                        if producer.enqueue(f32::from(s) / 32768.0).is_err() {
                            dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                },
                error,
                None,
            ),
            other => return Err(MicError::Format(format!("{other:?}"))),
        }
        .map_err(MicError::Stream)?;
        stream.play().map_err(MicError::Play)?;
        let resampler = if rate == crate::hear::audio::RATE {
            None
        } else {
            Some(
                rubato::Fft::<f32>::new(
                    rate as usize,
                    crate::hear::audio::RATE as usize,
                    BLOCK,
                    1,
                    rubato::FixedSync::Input,
                )
                .map_err(|e| MicError::Resampler {
                    rate,
                    message: e.to_string(),
                })?,
            )
        };
        tracing::info!(rate, channels, "microphone open");
        Ok(Microphone {
            _stream: stream,
            ring: consumer,
            channels,
            overruns,
            reported: 0,
            failed,
            resampler,
            mono: Vec::with_capacity(BLOCK * 2),
            ready: Vec::new(),
            at: 0,
        })
    }

    /// Moves what the ring holds into `mono` (whole frames, downmixed).
    fn drain(&mut self) {
        while self.ring.len() >= self.channels {
            let mut sum = 0.0;
            for _ in 0..self.channels {
                sum += self.ring.dequeue().unwrap_or(0.0);
            }
            self.mono.push(sum / self.channels as f32);
        }
        let lost = self.overruns.load(Ordering::Relaxed);
        if lost > self.reported {
            tracing::warn!(
                samples = lost - self.reported,
                "microphone overrun: the front end fell behind"
            );
            self.reported = lost;
        }
    }

    /// Turns buffered device-rate audio into 16 kHz audio in `ready`.
    fn convert(&mut self) -> std::io::Result<()> {
        let Some(r) = &mut self.resampler else {
            self.ready.append(&mut self.mono);
            return Ok(());
        };
        let fail = |e: String| std::io::Error::other(format!("resampling: {e}"));
        while self.mono.len() >= r.input_frames_next() {
            let need = r.input_frames_next();
            let input = InterleavedSlice::new(&self.mono[..need], 1, need)
                .map_err(|e| fail(e.to_string()))?;
            let out = r.process(&input, None).map_err(|e| fail(e.to_string()))?;
            self.ready.extend_from_slice(&out.take_data());
            self.mono.drain(..need);
        }
        Ok(())
    }
}

impl AudioSource for Microphone {
    /// Fails when the stream reported an error or delivered nothing for [`STALL`].
    fn read(&mut self, out: &mut [i16]) -> std::io::Result<usize> {
        let waiting = Instant::now();
        while self.at == self.ready.len() {
            if self.failed.load(Ordering::Relaxed) {
                return Err(std::io::Error::other(
                    "the capture stream reported an error",
                ));
            }
            if waiting.elapsed() > STALL {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no audio for {} s", STALL.as_secs()),
                ));
            }
            self.ready.clear();
            self.at = 0;
            self.drain();
            self.convert()?;
            if self.ready.is_empty() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let n = out.len().min(self.ready.len() - self.at);
        for (o, s) in out.iter_mut().zip(&self.ready[self.at..self.at + n]) {
            *o = crate::hear::audio::to_i16(*s);
        }
        self.at += n;
        Ok(n)
    }
}
