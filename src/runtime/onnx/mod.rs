//! ONNX Runtime for the front end's small models (wake word, voice activity). The library is
//! loaded at run time from the file `cabin models fetch` installs (or `$ORT_DYLIB_PATH`), so
//! nothing is downloaded at build time and the daemon links no C++ of its own.

use ort::environment::Environment;
use ort::session::Session;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

mod seed;

#[derive(Debug, Clone, thiserror::Error)]
pub enum OnnxError {
    #[error("ONNX Runtime is unavailable: {0}")]
    Runtime(String),
    #[error("cannot load the {what} {path}: {message} (fix: run `cabin models fetch`; `cabin models list --verify` finds a corrupt file)")]
    Model {
        what: String,
        path: PathBuf,
        message: String,
    },
    #[error("the {what} failed: {message}")]
    Run { what: &'static str, message: String },
}

/// The process's ONNX Runtime environment, loaded once.
fn environment() -> Result<&'static Environment, OnnxError> {
    static ENV: OnceLock<Result<Environment, OnnxError>> = OnceLock::new();
    ENV.get_or_init(|| {
        let library = match std::env::var_os("ORT_DYLIB_PATH") {
            Some(p) => PathBuf::from(p),
            None => crate::runtime::models::installed("onnxruntime", "ONNX Runtime library")
                // Cached for every later caller, so kept as its message.
                .map_err(|e| OnnxError::Runtime(e.to_string()))?,
        };
        ort::init_from(&library)
            .map_err(|e| OnnxError::Runtime(format!("{}: {e}", library.display())))?
            .with_name("cabin")
            .build()
            .map_err(|e| OnnxError::Runtime(e.to_string()))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Loads a model for single-threaded use: these models are small, and the front end must
/// never compete with speech recognition or the LLM for cores.
pub fn session(path: &Path, what: &str) -> Result<Session, OnnxError> {
    session_with_threads(path, what, 1)
}

/// Loads a model that may use `threads` threads within an operator (synthesis).
pub fn session_with_threads(path: &Path, what: &str, threads: usize) -> Result<Session, OnnxError> {
    let env = environment()?;
    let fail = |message: String| OnnxError::Model {
        what: what.into(),
        path: path.into(),
        message,
    };
    if !path.is_file() {
        return Err(fail("no such file".into()));
    }
    Session::builder(env)
        .and_then(|b| b.with_intra_threads(threads).map_err(Into::into))
        .and_then(|b| b.with_inter_threads(1).map_err(Into::into))
        .and_then(|mut b| b.commit_from_file(path))
        .map_err(|e| fail(e.to_string()))
}

/// Loads a model whose random operators (a Piper voice samples its prosody with
/// `RandomNormalLike`) draw from fixed seeds: the same inputs in the same order give the same
/// output on every run, where ONNX Runtime would otherwise seed them from the clock. Used where
/// audio must be reproducible (`cabin wake train`), never for the car's own voice.
pub fn seeded_session(
    path: &Path,
    what: &str,
    threads: usize,
    seed: u64,
) -> Result<Session, OnnxError> {
    let env = environment()?;
    let fail = |message: String| OnnxError::Model {
        what: what.into(),
        path: path.into(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let seeded = seed::seed_random_operators(&bytes, seed).map_err(fail)?;
    Session::builder(env)
        .and_then(|b| b.with_intra_threads(threads).map_err(Into::into))
        .and_then(|b| b.with_inter_threads(1).map_err(Into::into))
        .and_then(|mut b| b.commit_from_memory(&seeded))
        .map_err(|e| fail(e.to_string()))
}

/// Maps an ort error from running a model.
pub fn run_error(what: &'static str) -> impl FnOnce(ort::Error) -> OnnxError {
    move |e| OnnxError::Run {
        what,
        message: e.to_string(),
    }
}
