//! What every voice shares: the [`Voice`] trait, its errors, the pieces reply text is cut
//! into, and eSpeak NG as the phonemiser (run as Debian's `espeak-ng` program, not linked: it
//! is GPL-3, and a separate process keeps Cabin's licence the OEM's choice).

use crate::runtime::onnx::OnnxError;
use crate::speak::speakable::{speakable, unmarked};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum TtsError {
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    #[error(transparent)]
    NotInstalled(#[from] crate::runtime::models::ModelError),
    #[error("cannot read the voice's config {path}: {message} (fix: run `cabin models fetch`; a Piper voice needs its .onnx.json beside the .onnx)")]
    Config { path: PathBuf, message: String },
    #[error("cannot run espeak-ng: {0} (fix: `apt-get install espeak-ng`, or run scripts/setup)")]
    Espeak(String),
}

/// The most phonemes one run of a Piper voice is given (at its own pace; fewer when the
/// profile slows it down). A VITS voice's memory grows with the length of what it synthesises
/// at once (its decoder holds every frame) and ONNX Runtime's arena keeps the largest run's
/// memory: measured with the default voice (`cargo run --release --example voice-memory`,
/// docs/speech.md), one run takes 78 MiB over the loaded voice at 100 phonemes, 136 MiB at
/// 150, 345 MiB at 400 and 2.7 GiB at 2,400; 9,600 phonemes in runs of at most 100 peak at
/// 304 MiB for the whole process (380 in runs of 120, 425 in runs of 150). 100 phonemes are
/// about 5 s of speech: longer text is synthesised in runs, cut at a clause or a word.
pub const MAX_PHONEMES: usize = 100;

/// The most characters of speakable text a voice is given at once by [`pieces`]: about 90
/// phonemes of English (eSpeak NG makes 1.1 a character), so the cut falls at a clause or a
/// word of the text before [`MAX_PHONEMES`] has to cut the phonemes.
pub const MAX_PIECE: usize = 80;

/// What a voice is given for `text` (reply text as written): its speakable words
/// ([`speakable`], or only [`unmarked`] for a voice that reads the language's numbers,
/// [`Voice::spells_numbers`]) in pieces of at most [`MAX_PIECE`] characters, cut at clauses or
/// words. Everything Cabin says goes through here, so what one synthesis takes (its memory and
/// its audio) does not grow with the length of the text.
pub fn pieces(text: &str, spelled: bool) -> Vec<String> {
    let text = if spelled {
        speakable(text)
    } else {
        unmarked(text)
    };
    crate::text::pieces(&text, MAX_PIECE)
        .into_iter()
        .map(str::to_string)
        .collect()
}

/// A voice: text in, mono samples in -1..1 at [`Voice::sample_rate`] out. Synthesis blocks
/// (tens to hundreds of milliseconds a sentence): call it from a thread of its own.
pub trait Voice: Send {
    fn sample_rate(&self) -> u32;
    /// Speaks one piece of text (one of [`pieces`]). Longer text is spoken too, with the
    /// model's memory still bounded ([`MAX_PHONEMES`] a run), but its audio is returned whole:
    /// give it [`pieces`].
    fn synthesize(&mut self, sentence: &str) -> Result<Vec<f32>, TtsError>;
    /// What it is, for logs and `cabin say --json`.
    fn name(&self) -> String;
    /// Whether it is given numbers, units and abbreviations in English words ([`pieces`]):
    /// the voices of other languages read their digits themselves.
    fn spells_numbers(&self) -> bool {
        true
    }
}

/// Scales to `volume` of full scale at the peak, as Piper does, so every sentence is as loud.
pub(crate) fn normalise(audio: &[f32], volume: f32) -> Vec<f32> {
    let peak = audio.iter().fold(0.01f32, |m, s| m.max(s.abs()));
    audio.iter().map(|s| s / peak * volume).collect()
}

/// eSpeak NG's IPA for `sentence`, with the clause punctuation Piper's voices were trained
/// with put back (espeak-ng prints one clause a line and drops it).
pub fn phonemes(sentence: &str, voice: &str) -> Result<String, TtsError> {
    let lines = run_espeak(&["-q", "--ipa", "-v", voice, "--stdin"], sentence)?;
    let lines = String::from_utf8_lossy(&lines);
    let clauses: Vec<&str> = lines
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    // The punctuation that ends each clause of the text, in order.
    let marks: Vec<char> = sentence
        .chars()
        .filter(|c| matches!(c, ',' | ';' | ':' | '.' | '!' | '?'))
        .collect();
    let mut out = String::new();
    for (i, clause) in clauses.iter().enumerate() {
        out.push_str(clause);
        // When espeak split differently from the punctuation, pause with commas.
        let mark = if marks.len() == clauses.len() {
            marks[i]
        } else if i + 1 == clauses.len() {
            marks.last().copied().unwrap_or('.')
        } else {
            ','
        };
        out.push(mark);
        if i + 1 < clauses.len() {
            out.push(' ');
        }
    }
    Ok(out)
}

/// Runs espeak-ng with `text` on its standard input; its standard output.
pub(crate) fn run_espeak(args: &[&str], text: &str) -> Result<Vec<u8>, TtsError> {
    let mut child = Command::new("espeak-ng")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| TtsError::Espeak(e.to_string()))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    // The text is small; the pipe takes it whole before espeak-ng reads.
    let written = stdin.write_all(text.as_bytes());
    drop(stdin);
    let output = child
        .wait_with_output()
        .map_err(|e| TtsError::Espeak(e.to_string()))?;
    written.map_err(|e| TtsError::Espeak(e.to_string()))?;
    if !output.status.success() {
        return Err(TtsError::Espeak(format!(
            "{} ({})",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(output.stdout)
}
