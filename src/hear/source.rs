//! Where the front end's audio comes from, behind one small trait: a recording, raw samples
//! on standard input, real-time silence, or a capture device ([`crate::hear::mic`]).

use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where audio comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A recording (WAV of any format, or raw 16 kHz mono s16le), read as fast as it goes.
    File(PathBuf),
    /// Raw 16 kHz mono s16le on standard input, as it arrives (e.g. from `arecord`).
    Stdin,
    /// Real-time silence: a machine without a sound card still runs the whole front end.
    Null,
    /// A capture device by name (`default` is the system's default microphone).
    Device(String),
}

impl Input {
    /// `-` is standard input, `null` the null device, `mic` or `mic:NAME` a capture device,
    /// anything else a file.
    pub fn parse(s: &str) -> Input {
        match s {
            "-" => Input::Stdin,
            "null" => Input::Null,
            "mic" => Input::Device("default".into()),
            _ => match s.strip_prefix("mic:") {
                Some(name) => Input::Device(name.into()),
                None => Input::File(s.into()),
            },
        }
    }
}

impl std::fmt::Display for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::File(p) => write!(f, "{}", p.display()),
            Input::Stdin => f.write_str("standard input"),
            Input::Null => f.write_str("the null device"),
            Input::Device(d) => write!(f, "capture device '{d}'"),
        }
    }
}

/// 16 kHz mono samples from somewhere. `read` blocks until it has some; 0 means the end.
pub trait AudioSource {
    fn read(&mut self, out: &mut [i16]) -> std::io::Result<usize>;
}

/// A recording held in memory.
pub struct Recording {
    samples: Vec<i16>,
    at: usize,
}

impl Recording {
    pub fn new(samples: Vec<i16>) -> Recording {
        Recording { samples, at: 0 }
    }
}

impl AudioSource for Recording {
    fn read(&mut self, out: &mut [i16]) -> std::io::Result<usize> {
        let n = out.len().min(self.samples.len() - self.at);
        out[..n].copy_from_slice(&self.samples[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Raw s16le from a byte stream.
pub struct RawStream<R> {
    reader: R,
    bytes: Vec<u8>,
}

impl<R: Read> RawStream<R> {
    pub fn new(reader: R) -> RawStream<R> {
        RawStream {
            reader,
            bytes: Vec::new(),
        }
    }
}

impl<R: Read> AudioSource for RawStream<R> {
    fn read(&mut self, out: &mut [i16]) -> std::io::Result<usize> {
        self.bytes.resize(out.len() * 2, 0);
        let mut filled = 0;
        // Whole samples only: a read may stop in the middle of one.
        while filled == 0 || filled % 2 == 1 {
            match self.reader.read(&mut self.bytes[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        let n = filled / 2;
        for (o, b) in out.iter_mut().zip(self.bytes[..n * 2].chunks_exact(2)) {
            *o = i16::from_le_bytes([b[0], b[1]]);
        }
        Ok(n)
    }
}

/// Silence at the pace of a real microphone.
pub struct NullDevice {
    started: Instant,
    given: u64,
}

impl NullDevice {
    pub fn new() -> NullDevice {
        NullDevice {
            started: Instant::now(),
            given: 0,
        }
    }
}

impl Default for NullDevice {
    fn default() -> NullDevice {
        NullDevice::new()
    }
}

impl AudioSource for NullDevice {
    fn read(&mut self, out: &mut [i16]) -> std::io::Result<usize> {
        self.given += out.len() as u64;
        let due = Duration::from_secs_f64(self.given as f64 / 16_000.0);
        if let Some(wait) = due.checked_sub(self.started.elapsed()) {
            std::thread::sleep(wait);
        }
        out.fill(0);
        Ok(out.len())
    }
}
