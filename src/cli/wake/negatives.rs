//! Audio for training and measuring a wake word, described before it is made: each [`Piece`]
//! says what is spoken (or played), by which voice, with what pause and noise, so that making
//! it is a pure function of the description. That makes the audio reproducible (every random
//! choice is drawn up front from a seed; Cabin's voice samples its prosody from a seed too), lets
//! two threads make it, and lets the speech embeddings of a whole set be cached on disk by a
//! hash of its descriptions: hours of negatives are made once per machine.

use super::{add_noise, car_noise, each_chunk, espeak, rms, say, RATE};
use anyhow::{Context, Result};
use cabin::hear::wake::keyword::SplitMix;
use cabin::hear::wake::{FeatureModels, Features, EMBEDDING};
use cabin::Profile;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// What a piece of audio is.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// eSpeak NG reading `text` in `voice` ("en-gb+m3") at `rate` words a minute and `pitch`.
    Espeak {
        voice: String,
        rate: u32,
        pitch: u32,
        text: String,
    },
    /// The profile's Piper voice (Cabin's own) reading `text` at `rate` (per mille).
    Piper { rate: u32, text: String },
    /// A recording, at 16 kHz.
    Recording(PathBuf),
    /// `seconds` of car noise at `level` (per mille of full scale), from `seed`.
    CarNoise { seconds: u32, seed: u32, level: u32 },
    /// `seconds` of music-like tones from `seed`.
    Tones { seconds: u32, seed: u64 },
}

/// One stretch of audio: its source, then `pause_ms` of silence, all of it under car noise at
/// `snr` dB (from a seed) when given.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub source: Source,
    pub pause_ms: u32,
    pub noise: Option<(u32, u32)>,
}

impl Piece {
    pub fn new(source: Source) -> Piece {
        Piece {
            source,
            pause_ms: 300,
            noise: None,
        }
    }

    /// What it is, for the report of what woke a model.
    pub fn label(&self) -> String {
        let noise = match self.noise {
            Some((snr, _)) => format!(", car noise at {snr} dB SNR"),
            None => String::new(),
        };
        match &self.source {
            Source::Espeak { voice, text, .. } => format!("\"{text}\" (eSpeak NG {voice}{noise})"),
            Source::Piper { text, .. } => format!("\"{text}\" (Cabin's voice{noise})"),
            Source::Recording(p) => format!(
                "the recording {}",
                p.file_name().unwrap_or_default().to_string_lossy()
            ),
            Source::CarNoise { .. } => "car noise".into(),
            Source::Tones { .. } => "music-like tones".into(),
        }
    }

    /// Whether the piece is speech (for the hours of speech a report gives).
    pub fn is_speech(&self) -> bool {
        matches!(
            self.source,
            Source::Espeak { .. } | Source::Piper { .. } | Source::Recording(_)
        )
    }
}

/// A random pause of 0.2 to 1 s and, three times in four, car noise at 0 to 25 dB SNR: what
/// training puts round every negative (and the positives), so that neither the end of speech
/// nor noise says "the phrase".
pub fn augmented(source: Source, rng: &mut SplitMix) -> Piece {
    let pause_ms = 200 + rng.below(800) as u32;
    let noise = (rng.unit() < 0.75).then(|| (rng.below(26) as u32, rng.next_u64() as u32));
    Piece {
        source,
        pause_ms,
        noise,
    }
}

/// Pieces per group: a group is made, embedded from a fresh start and cached as one stream
/// (about a minute of speech).
const GROUP: usize = 20;

/// The speech embeddings of a set of pieces, in groups; each group's embeddings start from
/// silence, and `stretches` says where each piece starts (an index into `embeddings`).
pub struct Embedded {
    pub groups: Vec<Group>,
}

pub struct Group {
    pub embeddings: Vec<[f32; EMBEDDING]>,
    pub stretches: Vec<Stretch>,
}

/// Where a piece starts in its group's embeddings, its label, and whether it is speech.
pub type Stretch = (usize, String, bool);

impl Embedded {
    /// Hours of audio.
    pub fn hours(&self) -> f64 {
        self.chunks() as f64 * super::CHUNK_SECONDS / 3600.0
    }

    /// Hours of it that are speech.
    pub fn speech_hours(&self) -> f64 {
        let mut n = 0;
        for g in &self.groups {
            for (i, (start, _, speech)) in g.stretches.iter().enumerate() {
                let end = g.stretches.get(i + 1).map_or(g.embeddings.len(), |s| s.0);
                if *speech {
                    n += end - start;
                }
            }
        }
        n as f64 * super::CHUNK_SECONDS / 3600.0
    }

    pub fn chunks(&self) -> usize {
        self.groups.iter().map(|g| g.embeddings.len()).sum()
    }

    /// The label of the piece that chunk `at` of group `g` belongs to.
    pub fn label(&self, g: usize, at: usize) -> &str {
        let s = &self.groups[g].stretches;
        let i = s.partition_point(|(start, _, _)| *start <= at);
        &s[i.saturating_sub(1)].1
    }
}

/// What making pieces needs: the profile (for Cabin's voice), a seed for that voice, and a
/// folder for eSpeak's files.
pub struct Maker<'a> {
    pub profile: &'a Profile,
    pub models: &'a FeatureModels,
    pub seed: u64,
    pub dir: &'a Path,
}

impl Maker<'_> {
    /// The embeddings of `pieces`, from the cache when a run on this machine made them before;
    /// `what` names them in progress lines.
    pub fn embed(&self, what: &str, pieces: &[Piece]) -> Result<Embedded> {
        let key = self.key(pieces)?;
        let cache = cache_dir().map(|d| d.join(format!("{key}.emb")));
        if let Some(hit) = cache.as_deref().and_then(|p| read_cache(p).ok()) {
            eprintln!("{what}: {:.1} h of audio, from the cache", hit.hours());
            return Ok(hit);
        }
        let groups: Vec<&[Piece]> = pieces.chunks(GROUP).collect();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 4));
        let started = std::time::Instant::now();
        let done = std::sync::atomic::AtomicUsize::new(0);
        let made: Vec<Result<Vec<(usize, Group)>>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let groups = &groups;
                    let done = &done;
                    s.spawn(move || -> Result<Vec<(usize, Group)>> {
                        let mut features = Features::load(self.models)?;
                        let dir = self.dir.join(format!("t{t}"));
                        std::fs::create_dir_all(&dir)?;
                        let mut out = Vec::new();
                        for (g, pieces) in groups.iter().enumerate().skip(t).step_by(threads) {
                            out.push((g, self.group(&mut features, g, pieces, &dir)?));
                            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                            if n.is_multiple_of(50) {
                                eprintln!(
                                    "{what}: {n} of {} groups in {:.0} s",
                                    groups.len(),
                                    started.elapsed().as_secs_f64()
                                );
                            }
                        }
                        Ok(out)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("an audio thread panicked"))
                .collect()
        });
        let mut all = Vec::new();
        for part in made {
            all.extend(part?);
        }
        all.sort_by_key(|(g, _)| *g);
        let embedded = Embedded {
            groups: all.into_iter().map(|(_, g)| g).collect(),
        };
        eprintln!(
            "{what}: {:.1} h of audio made and embedded in {:.0} s",
            embedded.hours(),
            started.elapsed().as_secs_f64()
        );
        if let Some(path) = &cache {
            if let Err(e) = write_cache(path, &embedded) {
                eprintln!("(not cached: {e:#})");
            }
        }
        Ok(embedded)
    }

    /// One group: its pieces made in order (Cabin's voice seeded by the group's place, so
    /// that the group sounds the same whichever thread makes it), then embedded.
    fn group(
        &self,
        features: &mut Features,
        index: usize,
        pieces: &[Piece],
        dir: &Path,
    ) -> Result<Group> {
        let mut piper: Option<(u32, cabin::speak::voice::Piper)> = None;
        let mut audio: Vec<i16> = Vec::new();
        let mut starts = Vec::new();
        for piece in pieces {
            starts.push((audio.len(), piece.label(), piece.is_speech()));
            let mut clip = match &piece.source {
                Source::Espeak {
                    voice,
                    rate,
                    pitch,
                    text,
                } => espeak(voice, *rate, *pitch, text, dir)?,
                Source::Piper { rate, text } => {
                    if piper.as_ref().is_none_or(|(r, _)| r != rate) {
                        let seed = self.seed ^ ((index as u64) << 20) ^ u64::from(*rate);
                        let voice = super::piper_voice(self.profile, *rate as f32 / 1000.0, seed)?
                            .context("Cabin's voice is not a Piper voice")?;
                        piper = Some((*rate, voice));
                    }
                    let (_, voice) = piper.as_mut().expect("loaded above");
                    say(voice, text)?
                }
                Source::Recording(path) => cabin::hear::audio::read(path)
                    .with_context(|| format!("reading {}", path.display()))?,
                Source::CarNoise {
                    seconds,
                    seed,
                    level,
                } => car_noise(
                    (*seconds as f64 * RATE) as usize,
                    *seed,
                    *level as f64 / 1000.0,
                ),
                Source::Tones { seconds, seed } => {
                    super::tones((*seconds as f64 * RATE) as usize, &mut SplitMix(*seed))
                }
            };
            clip.extend(std::iter::repeat_n(
                0i16,
                (piece.pause_ms as f64 / 1000.0 * RATE) as usize,
            ));
            if let Some((snr, seed)) = piece.noise {
                let level = rms(&clip);
                add_noise(&mut clip, level, f64::from(snr), seed);
            }
            audio.extend(clip);
        }
        features.reset();
        let embeddings = each_chunk(&audio, |c| Ok(features.push(c)?))?;
        let chunk = super::CHUNK_SECONDS * RATE;
        Ok(Group {
            embeddings,
            stretches: starts
                .into_iter()
                .map(|(s, l, sp)| ((s as f64 / chunk) as usize, l, sp))
                .collect(),
        })
    }

    /// The cache key: the pieces, the feature models' bytes and the voice's seed.
    fn key(&self, pieces: &[Piece]) -> Result<String> {
        let mut h = Sha256::new();
        h.update(b"cabin wake audio r1\n");
        h.update(self.seed.to_le_bytes());
        for m in [&self.models.melspectrogram, &self.models.embedding] {
            h.update(std::fs::read(m).with_context(|| format!("reading {}", m.display()))?);
        }
        h.update(format!("{:?}", self.profile.models.tts).as_bytes());
        for p in pieces {
            h.update(format!("{p:?}\n").as_bytes());
            if let Source::Recording(path) = &p.source {
                h.update(std::fs::read(path).unwrap_or_default());
            }
        }
        Ok(h.finalize()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect())
    }
}

/// `$XDG_CACHE_HOME/cabin/wake`, else `~/.cache/cabin/wake`.
pub fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("cabin/wake"))
}

/// The cache file: a JSON line of the groups' stretches and lengths, then every embedding as
/// little-endian f16 (half the size; a score moves by under 0.001).
fn write_cache(path: &Path, e: &Embedded) -> Result<()> {
    std::fs::create_dir_all(path.parent().expect("a file in a folder"))?;
    let header: Vec<(usize, &Vec<Stretch>)> = e
        .groups
        .iter()
        .map(|g| (g.embeddings.len(), &g.stretches))
        .collect();
    let partial = path.with_extension("partial");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&partial)?);
    writeln!(f, "{}", serde_json::to_string(&header)?)?;
    for g in &e.groups {
        for emb in &g.embeddings {
            for v in emb {
                f.write_all(&half::f16::from_f32(*v).to_le_bytes())?;
            }
        }
    }
    f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&partial, path)?;
    Ok(())
}

fn read_cache(path: &Path) -> Result<Embedded> {
    let mut f = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut f, &mut line)?;
    let header: Vec<(usize, Vec<Stretch>)> = serde_json::from_str(&line)?;
    let mut groups = Vec::with_capacity(header.len());
    let mut buf = [0u8; 2 * EMBEDDING];
    for (n, stretches) in header {
        let mut embeddings = Vec::with_capacity(n);
        for _ in 0..n {
            f.read_exact(&mut buf)?;
            let mut e = [0f32; EMBEDDING];
            for (i, v) in e.iter_mut().enumerate() {
                *v = half::f16::from_le_bytes([buf[2 * i], buf[2 * i + 1]]).to_f32();
            }
            embeddings.push(e);
        }
        groups.push(Group {
            embeddings,
            stretches,
        });
    }
    if f.read(&mut buf)? != 0 {
        anyhow::bail!("trailing bytes");
    }
    Ok(Embedded { groups })
}
