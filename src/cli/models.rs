//! `cabin models`: install, find, convert and list model files.

use super::print_out;
use anyhow::{Context, Result};
use cabin::hear::wake::Calibration;
use cabin::runtime::ct2;
use cabin::runtime::models::{self, Arch, Installed};
use cabin::Profile;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum Command {
    /// Install the models a profile needs (sha256-checked; a second run does nothing).
    Fetch {
        /// Profile whose models to install; the embedded default profile when omitted.
        #[arg(long)]
        profile: Option<PathBuf>,
        /// Install this model (see `cabin models list`) instead of the profile's.
        #[arg(long, value_name = "NAME")]
        model: Vec<String>,
        /// Models directory (default: $CABIN_MODELS_DIR, else ~/.local/share/cabin/models).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Install for a head unit of this architecture (aarch64 or arm64, x86_64 or amd64)
        /// rather than this machine: its build of the native libraries (ONNX Runtime). Use
        /// with --dir, a directory to copy into the head unit's image.
        #[arg(long, value_name = "ARCH")]
        arch: Option<Arch>,
    },
    /// Print where the profile's language model is (installed or not).
    Path {
        #[arg(long)]
        profile: Option<PathBuf>,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Convert a CTranslate2 (faster-whisper) Whisper model to whisper.cpp's ggml format (what
    /// `fetch` does for the models it knows; this is for other whisper models).
    ImportCt2 {
        /// The CTranslate2 model directory, or its model.bin
        model: PathBuf,
        /// The openai-whisper source package (.tar.gz), for the mel filters and vocabulary:
        /// `pip download --no-deps --no-binary=:all: openai-whisper==20250625`
        #[arg(long)]
        assets: PathBuf,
        /// Where to write the ggml model
        #[arg(long)]
        out: PathBuf,
    },
    /// Show the models Cabin knows, whether each is installed, its size and checksum.
    List {
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Hash installed files and compare with the expected sha256 (slow on big models).
        #[arg(long)]
        verify: bool,
        /// The models of a head unit of this architecture (as for `fetch --arch`).
        #[arg(long, value_name = "ARCH")]
        arch: Option<Arch>,
    },
}

pub async fn exec(command: Command) -> Result<ExitCode> {
    match command {
        Command::Fetch {
            profile,
            model,
            dir,
            arch,
        } => fetch(profile, model, dir, arch.or_else(Arch::host)).await?,
        Command::Path { profile, dir } => {
            let profile = Profile::load_or_default(profile.as_deref())?;
            let name = profile
                .models
                .llm
                .as_deref()
                .context("the profile names no language model ([models] llm)")?;
            let dir = dir.unwrap_or_else(models::default_dir);
            print_out(&format!(
                "{}\n",
                dir.join(models::find(name)?.file).display()
            ))?;
        }
        Command::ImportCt2 { model, assets, out } => {
            let bin = if model.is_dir() {
                model.join("model.bin")
            } else {
                model
            };
            let summary =
                tokio::task::spawn_blocking(move || import_ct2(bin, assets, out)).await??;
            print_out(&summary)?;
        }
        Command::List { dir, verify, arch } => {
            print_out(&list(dir, verify, arch.or_else(Arch::host)))?
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn fetch(
    profile: Option<PathBuf>,
    model: Vec<String>,
    dir: Option<PathBuf>,
    arch: Option<Arch>,
) -> Result<()> {
    let dir = dir.unwrap_or_else(models::default_dir);
    let names = if model.is_empty() {
        let profile = Profile::load_or_default(profile.as_deref())?;
        let mut names: Vec<String> = Vec::new();
        for (_, name) in profile.models.needed() {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    } else {
        model
    };
    // A model trained here needs the others (its voices and feature models) first.
    let mut found = names
        .iter()
        .map(|n| models::find_for(n, arch))
        .collect::<Result<Vec<_>, _>>()?;
    found.sort_by_key(|m| m.trained_phrase().is_some());
    for model in found {
        if let Some(phrase) = model.trained_phrase() {
            train(model, phrase, &dir).await?;
            continue;
        }
        let target = dir.clone();
        tokio::task::spawn_blocking(move || {
            models::fetch(&target, model, &mut |line| eprintln!("{line}"))
        })
        .await??;
        print_out(&format!(
            "{}: {}\n",
            model.name,
            dir.join(model.file).display()
        ))?;
    }
    Ok(())
}

/// Trains a catalogue wake word unless it is there (a few minutes on two cores). It is trained
/// in this machine's models directory, with the voices and feature models there, and copied
/// to another `dir` (a head unit's models: the ONNX file is the same on every architecture).
async fn train(
    model: &'static models::Model,
    phrase: &'static str,
    dir: &std::path::Path,
) -> Result<()> {
    let path = dir.join(model.file);
    let home = models::default_dir();
    let trained = home.join(model.file);
    let present = matches!(models::status(dir, model), Installed::Ok);
    if present {
        eprintln!("{}: installed (trained here)", model.name);
    } else if matches!(models::status(&home, model), Installed::Ok) {
        eprintln!(
            "{}: copying the model trained in {}",
            model.name,
            home.display()
        );
    } else {
        eprintln!(
            "{}: training \"{phrase}\" on this machine (`cabin wake train`, a few minutes)…",
            model.name
        );
        let out = trained.clone();
        tokio::task::spawn_blocking(move || super::wake::train_catalogue_word(phrase, &out))
            .await?
            .with_context(|| {
                format!(
                    "{} is trained with this machine's models in {}: run `cabin models fetch` there first",
                    model.name,
                    home.display()
                )
            })?;
    }
    if !present && path != trained {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        // The calibration beside it too: the threshold the head unit wakes at.
        for (from, to) in [
            (
                Calibration::path_for(&trained),
                Calibration::path_for(&path),
            ),
            (trained.clone(), path.clone()),
        ] {
            std::fs::copy(&from, &to)
                .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
        }
    }
    print_out(&format!("{}: {}\n", model.name, path.display()))
}

/// Converts a CTranslate2 model (blocking: reads and writes hundreds of MB).
fn import_ct2(bin: PathBuf, assets: PathBuf, out: PathBuf) -> Result<String> {
    let bytes = std::fs::read(&bin).with_context(|| format!("cannot read {}", bin.display()))?;
    let sdist = std::fs::File::open(&assets)
        .with_context(|| format!("cannot read {}", assets.display()))?;
    let assets = ct2::Assets::from_sdist(std::io::BufReader::new(sdist))?;
    let partial = out.with_extension("partial");
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    let summary = ct2::convert(&bytes, &assets, file)
        .with_context(|| format!("cannot convert {}", bin.display()))?;
    std::fs::rename(&partial, &out)?;
    let sha = models::sha256_file(&out)?;
    Ok(format!(
        "{}: {} tensors, {} vocabulary tokens, {:?}\nsha256 {sha}\n",
        out.display(),
        summary.tensors,
        summary.vocab,
        summary.hparams
    ))
}

fn list(dir: Option<PathBuf>, verify: bool, arch: Option<Arch>) -> String {
    let dir = dir.unwrap_or_else(models::default_dir);
    let mut out = format!("models in {}\n", dir.display());
    if let Some(target) = arch.filter(|a| Some(*a) != Arch::host()) {
        out.push_str(&format!("(for {} head units)\n", target.name()));
    }
    for m in models::catalogue(arch) {
        let state = match models::status(&dir, m) {
            Installed::Missing => "not installed (run `cabin models fetch`)".to_string(),
            Installed::WrongSize(n) => format!("WRONG SIZE {n} bytes (run `cabin models fetch`)"),
            Installed::Ok if m.trained_phrase().is_some() => {
                "installed (trained here; `cabin doctor` checks it loads)".into()
            }
            Installed::Ok if verify => match models::sha256_file(&dir.join(m.file)) {
                Ok(h) if h == m.sha256 => "installed, sha256 OK".into(),
                Ok(h) => format!("CORRUPT: sha256 {h} (run `cabin models fetch`)"),
                Err(e) => format!("unreadable: {e}"),
            },
            Installed::Ok => "installed".into(),
        };
        let made = match m.trained_phrase() {
            Some(phrase) => format!("trained here for \"{phrase}\""),
            None => format!("{} MB, sha256 {}", m.size / 1_000_000, &m.sha256[..16]),
        };
        out.push_str(&format!(
            "  {} [{}] {made}: {state}\n    licence: {}\n",
            m.name, m.kind, m.licence
        ));
    }
    out
}
