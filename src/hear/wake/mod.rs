//! The wake word: openWakeWord's three ONNX models, streamed in 80 ms chunks.
//!
//! Why openWakeWord: its keyword models are small classifiers over a shared, pretrained speech
//! embedding, so one embedding per 80 ms serves any number of wake words; they are trained on
//! thousands of synthetic voices and work for real speakers out of the box (pure-Rust template
//! matching such as rustpotter needs recordings of the actual speakers), and an OEM trains its
//! own keyword with openWakeWord's published recipe and names the `.onnx` in its profile. The
//! pretrained keywords are CC BY-NC-SA (non-commercial): the default profile's "hey jarvis" is
//! for demos, and `cabin models list` says so.
//!
//! Pipeline per chunk of 1,280 samples: a mel spectrogram of the last 1,760 samples (8 frames
//! of 32 bands), an embedding (96 values) of the last 76 frames, and the keyword classifier on
//! the last N embeddings (N from the model, 16 for the pretrained ones: 1.28 s).

pub mod keyword;

use crate::runtime::models::ModelError;
use crate::runtime::onnx::{run_error, session, OnnxError};
use ort::session::Session;
use ort::value::TensorRef;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// Samples per step (80 ms at 16 kHz).
pub const CHUNK: usize = 1280;
/// The mel model's input: the chunk and 480 samples of context (three 10 ms hops of overlap).
const MEL_INPUT: usize = 1760;
const MEL_BANDS: usize = 32;
/// Mel frames per embedding (775 ms).
const EMBEDDING_FRAMES: usize = 76;
/// Values per speech embedding.
pub const EMBEDDING: usize = 96;

/// The keyword-independent feature models (openWakeWord's, Apache-2.0).
#[derive(Debug, Clone)]
pub struct FeatureModels {
    pub melspectrogram: PathBuf,
    pub embedding: PathBuf,
}

impl FeatureModels {
    /// The installed ones (`cabin models fetch`).
    pub fn installed() -> Result<FeatureModels, ModelError> {
        let feature = |name| crate::runtime::models::installed(name, "wake word feature model");
        Ok(FeatureModels {
            melspectrogram: feature("openwakeword-melspectrogram")?,
            embedding: feature("openwakeword-embedding")?,
        })
    }
}

/// The files of one wake word.
#[derive(Debug, Clone)]
pub struct WakeModels {
    pub features: FeatureModels,
    pub keyword: PathBuf,
}

impl WakeModels {
    /// The installed feature models and `keyword`: a catalogue name (`cabin models list`) or
    /// the path of a keyword model (openWakeWord's, or one `cabin wake train` wrote).
    pub fn resolve(keyword: &str) -> Result<WakeModels, ModelError> {
        let keyword = if crate::runtime::models::is_path(keyword) {
            PathBuf::from(keyword)
        } else {
            crate::runtime::models::installed(keyword, "wake word model")?
        };
        Ok(WakeModels {
            features: FeatureModels::installed()?,
            keyword,
        })
    }
}

/// The keyword-independent half: a stream of audio in, one speech embedding per chunk out.
/// Training (`cabin wake train`) uses it alone; [`WakeWord`] puts a keyword model on top.
pub struct Features {
    mel: Session,
    embedding: Session,
    /// The last `MEL_INPUT` samples, as the mel model wants them (int16 scale).
    audio: Vec<f32>,
    /// The last `EMBEDDING_FRAMES` mel frames, flattened.
    mels: Vec<f32>,
}

impl Features {
    pub fn load(models: &FeatureModels) -> Result<Features, OnnxError> {
        let mut f = Features {
            mel: session(&models.melspectrogram, "wake word feature model")?,
            embedding: session(&models.embedding, "wake word feature model")?,
            audio: vec![0.0; MEL_INPUT],
            mels: Vec::new(),
        };
        f.reset();
        Ok(f)
    }

    /// Forgets the audio heard so far.
    pub fn reset(&mut self) {
        self.audio.fill(0.0);
        // openWakeWord starts its mel buffer at ones (the transformed value of near silence).
        self.mels = vec![1.0; EMBEDDING_FRAMES * MEL_BANDS];
    }

    /// Feeds one chunk; returns the embedding of the last 775 ms.
    pub fn push(&mut self, chunk: &[i16; CHUNK]) -> Result<[f32; EMBEDDING], OnnxError> {
        self.audio.copy_within(CHUNK.., 0);
        for (a, s) in self.audio[MEL_INPUT - CHUNK..].iter_mut().zip(chunk) {
            *a = f32::from(*s);
        }
        let outputs = self
            .mel
            .run(ort::inputs![
                "input" => TensorRef::from_array_view(([1usize, MEL_INPUT], &self.audio[..]))
                    .map_err(run_error("wake word mel spectrogram"))?
            ])
            .map_err(run_error("wake word mel spectrogram"))?;
        let (_, mel) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(run_error("wake word mel spectrogram"))?;
        let new = mel.len().min(self.mels.len());
        self.mels.copy_within(new.., 0);
        let at = self.mels.len() - new;
        for (m, v) in self.mels[at..].iter_mut().zip(&mel[mel.len() - new..]) {
            *m = v / 10.0 + 2.0;
        }
        drop(outputs);

        let outputs = self
            .embedding
            .run(ort::inputs![
                "input_1" => TensorRef::from_array_view(
                    ([1usize, EMBEDDING_FRAMES, MEL_BANDS, 1], &self.mels[..])
                )
                .map_err(run_error("wake word embedding"))?
            ])
            .map_err(run_error("wake word embedding"))?;
        let (_, e) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(run_error("wake word embedding"))?;
        if e.len() != EMBEDDING {
            return Err(OnnxError::Run {
                what: "wake word embedding",
                message: format!("{} values instead of {EMBEDDING}", e.len()),
            });
        }
        let mut embedding = [0.0; EMBEDDING];
        embedding.copy_from_slice(e);
        Ok(embedding)
    }
}

/// A keyword model on its own: a window of speech embeddings in, a score out. [`WakeWord`]
/// streams audio through it; `cabin wake eval` scores stored embeddings with it.
pub struct Keyword {
    session: Session,
    /// Embeddings per window.
    window: usize,
}

impl Keyword {
    pub fn load(path: &Path) -> Result<Keyword, OnnxError> {
        let session = session(path, "wake word model")?;
        let window = keyword_window(&session).ok_or_else(|| OnnxError::Model {
            what: "wake word model".into(),
            path: path.to_path_buf(),
            message: format!(
                "its input is not [1, N, {EMBEDDING}] embeddings; is it an openWakeWord keyword model?"
            ),
        })?;
        Ok(Keyword { session, window })
    }

    /// Embeddings per window.
    pub fn window(&self) -> usize {
        self.window
    }

    /// The score (0..1) of one window of `window × 96` embeddings, oldest first.
    pub fn score(&mut self, flat: &[f32]) -> Result<f32, OnnxError> {
        let outputs = self
            .session
            .run(ort::inputs![TensorRef::from_array_view((
                [1usize, self.window, EMBEDDING],
                flat
            ))
            .map_err(run_error("wake word model"))?])
            .map_err(run_error("wake word model"))?;
        let (_, score) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(run_error("wake word model"))?;
        score.first().copied().ok_or(OnnxError::Run {
            what: "wake word model",
            message: "no score".into(),
        })
    }
}

/// What `cabin wake train` measured of a model it accepted, written beside it
/// (`MODEL.onnx` → `MODEL.json`): the threshold it chose and the figures at that threshold.
/// A profile without `[listen] wake_threshold` wakes at this threshold.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Calibration {
    pub phrase: String,
    pub threshold: f32,
    pub false_reject_rate: f64,
    pub positives: usize,
    pub false_accepts_per_hour: f64,
    pub negative_hours: f64,
    /// sha256 of the `.onnx`, so that figures never describe another model.
    pub sha256: String,
    pub seed: u64,
    /// Training rounds it took (each round after the first mines its own false accepts).
    pub rounds: usize,
}

/// The threshold of a model without a calibration (openWakeWord's own default).
pub const UNCALIBRATED_THRESHOLD: f32 = 0.5;

impl Calibration {
    /// Where the calibration of `model` lives.
    pub fn path_for(model: &Path) -> PathBuf {
        model.with_extension("json")
    }

    /// The calibration beside `model`, if there is one that describes this very file.
    pub fn of(model: &Path) -> Option<Calibration> {
        let text = std::fs::read_to_string(Calibration::path_for(model)).ok()?;
        let c: Calibration = serde_json::from_str(&text).ok()?;
        let sha256 = crate::runtime::models::sha256_file(model).ok()?;
        (c.sha256 == sha256).then_some(c)
    }
}

pub struct WakeWord {
    features: Features,
    keyword: Keyword,
    /// What training measured, when the model has it.
    calibration: Option<Calibration>,
    /// Embeddings the keyword model looks at.
    window: usize,
    embeddings: VecDeque<[f32; EMBEDDING]>,
    /// The keyword model's score of the chunk before.
    last: f32,
    /// The embedding of silence: a reset fills the window with it, so that the detector
    /// scores from the first chunk, as openWakeWord's does (a command right after a start
    /// would otherwise lose its first 1.28 s).
    silence: [f32; EMBEDDING],
    flat: Vec<f32>,
}

/// Why a wake word can't be loaded.
#[derive(Debug, thiserror::Error)]
pub enum WakeError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Onnx(#[from] OnnxError),
}

impl WakeWord {
    /// The wake word `keyword` names (see [`WakeModels::resolve`]), loaded.
    pub fn for_keyword(keyword: &str) -> Result<WakeWord, WakeError> {
        Ok(WakeWord::load(&WakeModels::resolve(keyword)?)?)
    }

    pub fn load(models: &WakeModels) -> Result<WakeWord, OnnxError> {
        let keyword = Keyword::load(&models.keyword)?;
        let window = keyword.window;
        let mut features = Features::load(&models.features)?;
        let silence = features.push(&[0; CHUNK])?;
        let mut w = WakeWord {
            features,
            keyword,
            calibration: Calibration::of(&models.keyword),
            window,
            embeddings: VecDeque::with_capacity(window + 1),
            last: 0.0,
            silence,
            flat: Vec::with_capacity(window * EMBEDDING),
        };
        w.reset();
        Ok(w)
    }

    /// Forgets the audio heard so far: as if there had been silence before.
    pub fn reset(&mut self) {
        self.features.reset();
        self.embeddings.clear();
        self.embeddings
            .extend(std::iter::repeat_n(self.silence, self.window - 1));
        self.last = 0.0;
    }

    /// Feeds one chunk; returns the score (0..1) a detection is judged on ([`sustained`]).
    pub fn push(&mut self, chunk: &[i16; CHUNK]) -> Result<f32, OnnxError> {
        let embedding = self.features.push(chunk)?;
        if self.embeddings.len() == self.window {
            self.embeddings.pop_front();
        }
        self.embeddings.push_back(embedding);

        self.flat.clear();
        self.flat.extend(self.embeddings.iter().flatten());
        let score = self.keyword.score(&self.flat)?;
        Ok(sustained(std::mem::replace(&mut self.last, score), score))
    }

    /// What training measured of this model, if it was trained by Cabin and is unchanged.
    pub fn calibration(&self) -> Option<&Calibration> {
        self.calibration.as_ref()
    }

    /// The threshold to wake at: the profile's `setting` when it has one, else the one
    /// training calibrated, else openWakeWord's default.
    pub fn threshold(&self, setting: Option<f32>) -> f32 {
        setting
            .or(self.calibration.as_ref().map(|c| c.threshold))
            .unwrap_or(UNCALIBRATED_THRESHOLD)
    }
}

/// The score a detection is judged on: the lower of two chunks' in a row. The phrase keeps a
/// keyword model's score up for several chunks after its end, where a spike of one 80 ms chunk
/// on other speech is a false wake (openWakeWord's "patience"); it costs 80 ms of latency.
pub fn sustained(before: f32, now: f32) -> f32 {
    before.min(now)
}

/// [`WakeWord::threshold`] for the keyword model at `keyword`, without loading it.
pub fn threshold_for(setting: Option<f32>, keyword: &Path) -> f32 {
    setting
        .or_else(|| Calibration::of(keyword).map(|c| c.threshold))
        .unwrap_or(UNCALIBRATED_THRESHOLD)
}

/// N of a keyword model's `[1, N, 96]` input.
fn keyword_window(s: &Session) -> Option<usize> {
    let shape = s.inputs().first()?.dtype().tensor_shape()?;
    match shape[..] {
        [_, n, e] if n > 0 && e == EMBEDDING as i64 => Some(n as usize),
        _ => None,
    }
}
