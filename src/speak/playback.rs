//! Where Cabin's voice goes, behind one small trait: a sound card (rodio on cpal/ALSA), a WAV
//! file (tests, headless machines), or a real-time null device (no sound card, but replies
//! still take as long as they would to hear, so barge-in and ducking behave as in a car).

use crate::hear::played::Played;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where audio goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A playback device by name (`default`: the system's).
    Device(String),
    /// A WAV file, rewritten for every reply.
    Wav(PathBuf),
    /// Real-time silence.
    Null,
}

/// A `--output` that names no output.
#[derive(Debug, thiserror::Error)]
#[error("'{0}' is not an output: use speaker, speaker:NAME, null, off, or a FILE.wav")]
pub struct NotAnOutput(pub String);

impl Output {
    /// `speaker` (the profile's device), `speaker:NAME`, `null`, or a `.wav` path.
    pub fn parse(s: &str, profile_device: &str) -> Result<Output, NotAnOutput> {
        match s {
            "speaker" => Ok(Output::Device(profile_device.into())),
            "null" => Ok(Output::Null),
            _ => match s.strip_prefix("speaker:") {
                Some(name) => Ok(Output::Device(name.into())),
                None if s.ends_with(".wav") => Ok(Output::Wav(s.into())),
                None => Err(NotAnOutput(s.to_string())),
            },
        }
    }

    /// Opens it. Call on the thread that will use the sink (a sound card's stream stays on
    /// the thread that opened it).
    pub fn open(&self) -> Result<Box<dyn Sink>, PlaybackError> {
        match self {
            Output::Device(name) => Ok(Box::new(DeviceSink::open(name)?)),
            Output::Wav(path) => Ok(Box::new(WavSink::new(path.clone()))),
            Output::Null => Ok(Box::new(NullSink::default())),
        }
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::Device(d) => write!(f, "playback device '{d}'"),
            Output::Wav(p) => write!(f, "{}", p.display()),
            Output::Null => f.write_str("the null device"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlaybackError {
    #[error("cannot open the playback device '{device}': {message} (fix: name a device from `aplay -L` in the profile's [audio] output, or run with --output null or --output FILE.wav)")]
    Device { device: String, message: String },
    #[error("cannot write {path}: {message}")]
    Wav { path: PathBuf, message: String },
}

/// A place to play mono audio. `append` queues and returns at once; `stop` silences now.
pub trait Sink {
    fn append(&mut self, samples: &[f32], sample_rate: u32) -> Result<(), PlaybackError>;
    /// Whether queued audio is still playing.
    fn playing(&self) -> bool;
    /// Drops what is queued and falls silent.
    fn stop(&mut self);
    /// The reply is complete (a file is closed).
    fn finish(&mut self) -> Result<(), PlaybackError>;
}

/// A sink that also tells the echo canceller what it plays ([`Played`]): each piece at
/// 16 kHz as it is queued, and nothing more once it is stopped.
pub struct Echoed {
    sink: Box<dyn Sink>,
    played: Played,
}

impl Echoed {
    pub fn new(sink: Box<dyn Sink>, played: Played) -> Echoed {
        Echoed { sink, played }
    }
}

impl Sink for Echoed {
    fn append(&mut self, samples: &[f32], sample_rate: u32) -> Result<(), PlaybackError> {
        self.sink.append(samples, sample_rate)?;
        match crate::hear::audio::resample(samples, sample_rate) {
            Ok(at16k) => {
                let pcm: Vec<i16> = at16k
                    .iter()
                    .map(|&s| crate::hear::audio::to_i16(s))
                    .collect();
                self.played.queue(&pcm);
            }
            Err(e) => tracing::warn!("Cabin's voice can't be cancelled from the microphone: {e}"),
        }
        Ok(())
    }

    fn playing(&self) -> bool {
        self.sink.playing()
    }

    fn stop(&mut self) {
        self.sink.stop();
        self.played.silence();
    }

    fn finish(&mut self) -> Result<(), PlaybackError> {
        self.sink.finish()
    }
}

/// Real-time silence: audio "plays" for as long as it lasts.
#[derive(Default)]
pub struct NullSink {
    until: Option<Instant>,
}

impl Sink for NullSink {
    fn append(&mut self, samples: &[f32], sample_rate: u32) -> Result<(), PlaybackError> {
        let now = Instant::now();
        let from = self.until.filter(|u| *u > now).unwrap_or(now);
        self.until =
            Some(from + Duration::from_secs_f64(samples.len() as f64 / sample_rate as f64));
        Ok(())
    }

    fn playing(&self) -> bool {
        self.until.is_some_and(|u| u > Instant::now())
    }

    fn stop(&mut self) {
        self.until = None;
    }

    fn finish(&mut self) -> Result<(), PlaybackError> {
        Ok(())
    }
}

/// One reply per file, 16-bit PCM at the voice's rate.
pub struct WavSink {
    path: PathBuf,
    writer: Option<hound::WavWriter<std::io::BufWriter<std::fs::File>>>,
}

impl WavSink {
    pub fn new(path: PathBuf) -> WavSink {
        WavSink { path, writer: None }
    }

    fn fail(&self, e: impl std::fmt::Display) -> PlaybackError {
        PlaybackError::Wav {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }
}

impl Sink for WavSink {
    fn append(&mut self, samples: &[f32], sample_rate: u32) -> Result<(), PlaybackError> {
        if self.writer.is_none() {
            let spec = hound::WavSpec {
                channels: 1,
                sample_rate,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            self.writer =
                Some(hound::WavWriter::create(&self.path, spec).map_err(|e| self.fail(e))?);
        }
        let writer = self.writer.as_mut().expect("created above");
        let mut result = Ok(());
        for s in samples {
            if let Err(e) = writer.write_sample((s * 32767.0).clamp(-32768.0, 32767.0) as i16) {
                result = Err(e);
                break;
            }
        }
        result.map_err(|e| self.fail(e))
    }

    fn playing(&self) -> bool {
        false
    }

    fn stop(&mut self) {
        // What was written stays: it is what a listener would have heard.
        let _ = self.finish();
    }

    fn finish(&mut self) -> Result<(), PlaybackError> {
        match self.writer.take() {
            Some(w) => w.finalize().map_err(|e| self.fail(e)),
            None => Ok(()),
        }
    }
}

/// A sound card through rodio.
pub struct DeviceSink {
    // Kept alive: dropping it closes the device.
    _device: rodio::MixerDeviceSink,
    player: rodio::Player,
}

impl DeviceSink {
    pub fn open(name: &str) -> Result<DeviceSink, PlaybackError> {
        use cpal::traits::{DeviceTrait, HostTrait};
        let fail = |message: String| PlaybackError::Device {
            device: name.into(),
            message,
        };
        let builder = if name == "default" {
            rodio::DeviceSinkBuilder::from_default_device()
        } else {
            let host = cpal::default_host();
            let device = host
                .output_devices()
                .map_err(|e| fail(e.to_string()))?
                .find(|d| d.description().is_ok_and(|n| n.name() == name))
                .ok_or_else(|| fail("no such device".into()))?;
            rodio::DeviceSinkBuilder::from_device(device)
        }
        .map_err(|e| fail(e.to_string()))?;
        let mut device = builder.open_stream().map_err(|e| fail(e.to_string()))?;
        device.log_on_drop(false);
        let player = rodio::Player::connect_new(device.mixer());
        Ok(DeviceSink {
            _device: device,
            player,
        })
    }
}

impl Sink for DeviceSink {
    fn append(&mut self, samples: &[f32], sample_rate: u32) -> Result<(), PlaybackError> {
        let (Some(channels), Some(rate)) = (
            std::num::NonZero::new(1u16),
            std::num::NonZero::new(sample_rate),
        ) else {
            return Ok(());
        };
        self.player.append(rodio::buffer::SamplesBuffer::new(
            channels,
            rate,
            samples.to_vec(),
        ));
        self.player.play();
        Ok(())
    }

    fn playing(&self) -> bool {
        !self.player.empty()
    }

    fn stop(&mut self) {
        self.player.clear();
    }

    fn finish(&mut self) -> Result<(), PlaybackError> {
        Ok(())
    }
}
