//! Starting the model routes: the local worker (or a given endpoint), the shortlist and its
//! embedding worker, as the profile and `--llm` say.

use crate::profile::Profile;
use crate::runtime::llm::ChatClient;
use crate::runtime::models::ModelError;
use crate::runtime::worker::{LlmWorker, Worker, WorkerSpec};
use crate::understand::brain::decide::Brain;
use crate::understand::brain::prompt::{system_prompt, tools};
use crate::understand::shortlist::{Embedder, EmbeddingModel, IndexCache, Runs, Shortlist};
use std::sync::Arc;

/// Where the local model route comes from (`cabin run --llm`, `$CABIN_LLM`).
#[derive(Debug, Clone, PartialEq)]
pub enum LlmChoice {
    /// Start and supervise `cabin-llm` with the profile's model.
    Auto,
    /// No model routes: what the fast path does not understand is declined.
    Off,
    /// A running OpenAI-compatible endpoint (base URL up to `/v1`).
    Url(String),
}

impl std::str::FromStr for LlmChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(LlmChoice::Auto),
            "off" => Ok(LlmChoice::Off),
            u if u.starts_with("http://") || u.starts_with("https://") => {
                Ok(LlmChoice::Url(u.to_string()))
            }
            other => Err(format!(
                "'{other}' is not auto, off or an http(s) URL of an OpenAI-compatible endpoint"
            )),
        }
    }
}

/// The brain for `profile`, or none when there are no model routes.
pub fn start(profile: &Profile, choice: &LlmChoice) -> Option<Brain> {
    let worker = match choice {
        LlmChoice::Off => return None,
        LlmChoice::Url(url) => LlmWorker::remote(ChatClient::new(
            url,
            profile.models.llm.as_deref().unwrap_or("default"),
            None,
        )),
        LlmChoice::Auto => match local_worker(profile)? {
            Ok(spec) => LlmWorker::supervise(spec),
            Err(why) => LlmWorker::down(why.to_string()),
        },
    };
    Some(Brain::new(profile, worker, shortlist(profile)))
}

/// How to run the profile's `cabin-llm` (none without `[models] llm`), or why it can't run.
pub fn local_worker(profile: &Profile) -> Option<Result<WorkerSpec<ChatClient>, ModelError>> {
    let name = profile.models.llm.as_ref()?;
    Some(
        crate::runtime::models::installed(name, "model")
            .map(|path| worker_spec(profile, name, path)),
    )
}

/// The profile's intent shortlist, its index building in the background; none (with a warning
/// that names the fix) when its model is not installed.
pub(super) fn shortlist(profile: &Profile) -> Option<Shortlist> {
    let name = profile.models.shortlist.as_ref()?;
    let started = EmbeddingModel::named(name).and_then(|model| {
        let path = crate::runtime::models::installed(name, "intent shortlist model")?;
        let cache = crate::runtime::models::find(name).ok().and_then(|m| {
            let dir = crate::runtime::models::cache_dir()?;
            Some(IndexCache::new(
                &dir,
                m.sha256,
                model.prefix,
                &crate::understand::shortlist::intent_texts(profile),
            ))
        });
        Ok(match model.runs {
            Runs::Onnx => {
                let tokenizer = crate::runtime::models::installed(
                    &format!("{name}-tokenizer"),
                    "intent shortlist tokenizer",
                )?;
                Shortlist::local(
                    profile,
                    move || Embedder::load(&path, &tokenizer),
                    model,
                    cache,
                )
            }
            Runs::E5 => {
                let sha256 = crate::runtime::models::find(name)?.sha256;
                Shortlist::local(profile, move || Embedder::e5(&path, sha256), model, cache)
            }
            Runs::Worker => Shortlist::remote(
                profile,
                Worker::supervise(worker_spec_embedding(profile, name, path)),
                model,
                cache,
            ),
        })
    });
    match started {
        Ok(shortlist) => Some(shortlist),
        Err(why) => {
            tracing::warn!("{why}; until then the local model chooses among every intent");
            None
        }
    }
}

/// How to run the profile's embedding worker (none unless its shortlist model runs in one), or
/// why it can't run.
pub fn embedding_worker(profile: &Profile) -> Option<Result<WorkerSpec<ChatClient>, ModelError>> {
    profile.models.llm.as_ref()?;
    let name = profile.models.shortlist.as_ref()?;
    let model = EmbeddingModel::named(name).ok()?;
    (model.runs == Runs::Worker).then(|| {
        crate::runtime::models::installed(name, "intent shortlist model")
            .map(|path| worker_spec_embedding(profile, name, path))
    })
}

/// `cabin-llm serve --embedding` with the model at `model`.
pub(super) fn worker_spec_embedding(
    p: &Profile,
    name: &str,
    model: std::path::PathBuf,
) -> WorkerSpec<ChatClient> {
    let mut args: Vec<std::ffi::OsString> = vec![
        "serve".into(),
        "--embedding".into(),
        "--model".into(),
        model.into(),
        "--name".into(),
        name.into(),
    ];
    if let Some(t) = p.llm.threads {
        args.push("--threads".into());
        args.push(t.to_string().into());
    }
    let name = name.to_string();
    WorkerSpec {
        program: crate::runtime::worker::program("cabin-llm", "CABIN_LLM_WORKER"),
        args,
        what: "the embedding worker",
        program_env: "CABIN_LLM_WORKER",
        connect: Arc::new(move |url: String| {
            let client = ChatClient::new(&url, &name, None);
            Box::pin(async move { client })
        }),
        // On a turn's path like the language model, and as ready to give way.
        yields: crate::runtime::worker::Yields {
            nice: 10,
            oom_score_adj: 500,
        },
        checks: crate::runtime::worker::Checks::DEFAULT,
    }
}

pub(super) fn worker_spec(
    p: &Profile,
    name: &str,
    model: std::path::PathBuf,
) -> WorkerSpec<ChatClient> {
    let s = &p.llm;
    let mut args: Vec<std::ffi::OsString> = vec!["serve".into(), "--model".into(), model.into()];
    for (flag, value) in [
        ("--context", s.context.to_string()),
        ("--batch", s.batch.to_string()),
        ("--max-tokens", s.max_tokens.to_string()),
        ("--name", name.to_string()),
    ] {
        args.push(flag.into());
        args.push(value.into());
    }
    if let Some(t) = s.threads {
        args.push("--threads".into());
        args.push(t.to_string().into());
    }
    // The persona and tools, evaluated once, are read back at the next start in a second.
    if let Some(dir) = crate::runtime::models::prompt_state_dir() {
        args.push("--prompt-state".into());
        args.push(dir.into());
    }
    WorkerSpec {
        program: crate::runtime::worker::program("cabin-llm", "CABIN_LLM_WORKER"),
        args,
        what: "the language model worker",
        program_env: "CABIN_LLM_WORKER",
        connect: crate::runtime::worker::llm_connect(
            name.to_string(),
            system_prompt(p),
            tools(p).0,
        ),
        // The largest process by far, and the least urgent: the first to give way.
        yields: crate::runtime::worker::Yields {
            nice: 10,
            oom_score_adj: 500,
        },
        checks: crate::runtime::worker::Checks::DEFAULT,
    }
}
