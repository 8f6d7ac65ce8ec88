//! The evaluated prompt kept between starts. Evaluating Cabin's persona and tool list (3,700
//! tokens) takes a minute on two cores; its KV cache, saved once, is read back in a fraction of
//! a second at the next start, and the first request reuses it as if it had just been evaluated.
//!
//! One file per model in the prompt-state directory, `<model file name>.kv`:
//!
//! | bytes | what |
//! |---|---|
//! | 8 | `CABINKV1` |
//! | 4 + n | the identity the state belongs to (UTF-8): model file, its size and time, this build, the context length |
//! | 4 + 4 × n | the tokens, as llama.cpp numbers them |
//! | 8 + n | llama.cpp's state of sequence 0 (`llama_state_seq_get_data`) |
//! | 4 | CRC-32 of everything before |
//!
//! Numbers are little-endian lengths. A file of another identity (a new model, a rebuilt
//! worker, another context length), cut short, or whose checksum fails is never loaded: it is
//! named in the log and replaced by the next save.

use llama_cpp_2::context::session::LlamaStateSeqFlags;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::token::LlamaToken;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"CABINKV1";

/// A prompt at least this long, evaluated afresh, is saved: Cabin's persona and tools, not one
/// more turn of a conversation.
pub const SAVE_AFTER_TOKENS: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read it: {0}")]
    Read(std::io::Error),
    #[error("cannot write it: {0}")]
    Write(std::io::Error),
    #[error("it is not a prompt state of this worker (no CABINKV1 header)")]
    Magic,
    #[error("it is cut short")]
    Truncated,
    #[error("its checksum does not match (the file is corrupt)")]
    Checksum,
    #[error("it belongs to {0}, not to this model, build and context")]
    Stale(String),
    #[error("it holds {tokens} tokens, more than the context's {context}")]
    TooLong { tokens: usize, context: u32 },
    #[error("llama.cpp did not accept it")]
    Rejected,
    #[error("llama.cpp could not copy out the state")]
    Copy,
}

/// Where the prompt state of one model lives, and what it must belong to.
#[derive(Debug, Clone)]
pub struct PromptState {
    pub file: PathBuf,
    identity: String,
}

impl PromptState {
    /// The state file in `dir` of the model at `model` served with a context of `context`
    /// tokens by this build of the worker.
    pub fn new(dir: &Path, model: &Path, context: u32) -> PromptState {
        let name = model
            .file_name()
            .map_or("model".into(), |n| n.to_string_lossy().into_owned());
        let stamp = |p: &Path| {
            std::fs::metadata(p).map_or("?".to_string(), |m| {
                let time = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                format!("{} bytes, {time}", m.len())
            })
        };
        let exe = std::env::current_exe().map_or("?".into(), |e| stamp(&e));
        PromptState {
            file: dir.join(format!("{name}.kv")),
            identity: format!(
                "model {} ({}); cabin-llm {} ({exe}); context {context}",
                model.display(),
                stamp(model),
                env!("CARGO_PKG_VERSION"),
            ),
        }
    }

    /// Puts the saved state into `ctx`'s sequence 0: the tokens it holds, or why not (the
    /// cache is then empty).
    pub fn restore(&self, ctx: &mut LlamaContext) -> Result<Vec<LlamaToken>, StateError> {
        let bytes = std::fs::read(&self.file).map_err(StateError::Read)?;
        let (tokens, state) = decode(&bytes, &self.identity)?;
        if tokens.len() >= ctx.n_ctx() as usize {
            return Err(StateError::TooLong {
                tokens: tokens.len(),
                context: ctx.n_ctx(),
            });
        }
        // SAFETY: `state` is what `save` copied out of llama.cpp for this model, build and
        // context (the identity says so), byte for byte (the checksum says so); llama.cpp
        // checks its shapes again as it reads it.
        let accepted = unsafe { ctx.state_seq_set_data_ext(state, 0, LlamaStateSeqFlags::empty()) };
        if !accepted {
            ctx.clear_kv_cache();
            return Err(StateError::Rejected);
        }
        Ok(tokens.into_iter().map(LlamaToken).collect())
    }

    /// Saves sequence 0 of `ctx`, which holds `tokens` and nothing after them. Written beside
    /// and renamed into place, so that a crash never leaves half a file under the name.
    pub fn save(&self, ctx: &LlamaContext, tokens: &[LlamaToken]) -> Result<u64, StateError> {
        let flags = LlamaStateSeqFlags::empty();
        let size = ctx.state_seq_get_size_ext(0, flags);
        let mut state = vec![0u8; size];
        // SAFETY: `state` has the size llama.cpp asked for.
        let copied = unsafe { ctx.state_seq_get_data_ext(state.as_mut_ptr(), 0, flags) };
        if copied != size {
            return Err(StateError::Copy);
        }
        let tokens: Vec<i32> = tokens.iter().map(|t| t.0).collect();
        let bytes = encode(&self.identity, &tokens, &state);
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir).map_err(StateError::Write)?;
        }
        let partial = self.file.with_extension("kv.partial");
        std::fs::write(&partial, &bytes)
            .and_then(|()| std::fs::rename(&partial, &self.file))
            .map_err(|e| {
                let _ = std::fs::remove_file(&partial);
                StateError::Write(e)
            })?;
        Ok(bytes.len() as u64)
    }

    /// Removes a state that could not be used, so that it is not read again at every start.
    pub fn discard(&self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

fn encode(identity: &str, tokens: &[i32], state: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + identity.len() + 4 * tokens.len() + state.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(identity.len() as u32).to_le_bytes());
    out.extend_from_slice(identity.as_bytes());
    out.extend_from_slice(&(tokens.len() as u32).to_le_bytes());
    for t in tokens {
        out.extend_from_slice(&t.to_le_bytes());
    }
    out.extend_from_slice(&(state.len() as u64).to_le_bytes());
    out.extend_from_slice(state);
    let sum = crc32fast::hash(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// The tokens and llama.cpp's state in `bytes`, if they are whole and belong to `identity`.
fn decode<'b>(bytes: &'b [u8], identity: &str) -> Result<(Vec<i32>, &'b [u8]), StateError> {
    let body = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or(StateError::Magic)?;
    let (body, sum) = body.split_last_chunk::<4>().ok_or(StateError::Truncated)?;
    if crc32fast::hash(&bytes[..bytes.len() - 4]) != u32::from_le_bytes(*sum) {
        return Err(StateError::Checksum);
    }
    let mut rest = body;
    let mut take = |n: usize| -> Result<&'b [u8], StateError> {
        if rest.len() < n {
            return Err(StateError::Truncated);
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let len = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize;
    let n = len(take(4)?);
    let saved_for = String::from_utf8_lossy(take(n)?);
    if saved_for != identity {
        return Err(StateError::Stale(saved_for.into_owned()));
    }
    let n = len(take(4)?);
    let tokens = take(n.checked_mul(4).ok_or(StateError::Truncated)?)?
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    let n = u64::from_le_bytes(take(8)?.try_into().expect("8 bytes"));
    let state = take(usize::try_from(n).map_err(|_| StateError::Truncated)?)?;
    if !rest.is_empty() {
        return Err(StateError::Truncated);
    }
    Ok((tokens, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "model a.gguf (1 bytes, 2); cabin-llm 0.1.0 (3 bytes, 4); context 6144";

    fn file() -> Vec<u8> {
        encode(ME, &[1, 2, 151_643], &[7u8; 300])
    }

    #[test]
    fn a_saved_state_reads_back_as_it_was_written() {
        let bytes = file();
        let (tokens, state) = decode(&bytes, ME).unwrap();
        assert_eq!(tokens, [1, 2, 151_643]);
        assert_eq!(state, [7u8; 300]);
    }

    #[test]
    fn any_byte_changed_or_cut_is_caught_before_llama_cpp_reads_it() {
        let bytes = file();
        for i in 0..bytes.len() {
            for flip in [0x01, 0x80] {
                let mut bad = bytes.clone();
                bad[i] ^= flip;
                assert!(
                    decode(&bad, ME).is_err(),
                    "byte {i} ^ {flip:#x} went unnoticed"
                );
            }
        }
        for n in 0..bytes.len() {
            assert!(
                decode(&bytes[..n], ME).is_err(),
                "cut at {n} went unnoticed"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer, ME).is_err());
    }

    #[test]
    fn a_state_of_another_model_build_or_context_is_stale() {
        let bytes = file();
        let other = ME.replace("6144", "4096");
        match decode(&bytes, &other) {
            Err(StateError::Stale(was)) => assert_eq!(was, ME),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_identity_names_the_model_its_size_and_the_context() {
        let dir = std::env::temp_dir();
        let model = dir.join("cabin-prompt-state-test.gguf");
        std::fs::write(&model, b"12345").unwrap();
        let a = PromptState::new(&dir, &model, 6144);
        assert_eq!(a.file, dir.join("cabin-prompt-state-test.gguf.kv"));
        assert!(a.identity.contains("(5 bytes"), "{}", a.identity);
        assert_ne!(a.identity, PromptState::new(&dir, &model, 4096).identity);
        std::fs::write(&model, b"123456").unwrap();
        assert_ne!(a.identity, PromptState::new(&dir, &model, 6144).identity);
        let _ = std::fs::remove_file(&model);
    }
}
