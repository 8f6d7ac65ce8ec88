//! CTranslate2 (faster-whisper) Whisper models to whisper.cpp's ggml format.
//!
//! The whisper models on our registries exist only in CTranslate2 form. The conversion is a
//! re-layout: CT2's tensor names become whisper.cpp's, the fused q/k/v (and cross-attention
//! k/v) projections are split, matrices are written as f16 and vectors as f32, and the mel
//! filters and the byte-level vocabulary (from the openai-whisper source package) go into the
//! header. Both files are little-endian.

use half::f16;
use std::collections::HashMap;
use std::io::{Read, Write};

#[derive(Debug, thiserror::Error)]
pub enum Ct2Error {
    #[error("not a CTranslate2 model: {0}")]
    Format(String),
    #[error("the CTranslate2 model has no tensor '{0}'; is it a Whisper model?")]
    Missing(String),
    #[error("this model is int8-quantised; only float16/float32/bfloat16 CTranslate2 models convert (use the package's float model)")]
    Quantised,
    #[error("unsupported model: {0}")]
    Unsupported(String),
    #[error("whisper assets: {0}")]
    Assets(String),
    #[error("writing the ggml model: {0}")]
    Write(#[from] std::io::Error),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Dtype {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl Dtype {
    fn size(self) -> usize {
        match self {
            Dtype::I8 => 1,
            Dtype::I16 | Dtype::F16 | Dtype::Bf16 => 2,
            Dtype::F32 | Dtype::I32 => 4,
        }
    }
}

/// One tensor of the CT2 file: a view of its bytes.
#[derive(Debug, Clone, Copy)]
struct Var<'a> {
    rows: usize,
    /// Elements per row (1 for a vector); with `rows` this is the tensor's shape, flattened
    /// after the first axis.
    row_len: usize,
    shape_rank: usize,
    shape: [usize; 4],
    dtype: Dtype,
    data: &'a [u8],
}

impl<'a> Var<'a> {
    fn shape(&self) -> &[usize] {
        &self.shape[..self.shape_rank]
    }

    /// Rows `start..end` of the first axis, as CT2's fused projections are split.
    fn rows(&self, start: usize, end: usize) -> Var<'a> {
        let w = self.row_len * self.dtype.size();
        let mut v = *self;
        v.rows = end - start;
        v.shape[0] = end - start;
        v.data = &self.data[start * w..end * w];
        v
    }

    fn values(&self) -> impl Iterator<Item = f32> + '_ {
        let size = self.dtype.size();
        let dtype = self.dtype;
        self.data.chunks_exact(size).map(move |b| match dtype {
            Dtype::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            Dtype::F16 => f16::from_le_bytes([b[0], b[1]]).to_f32(),
            Dtype::Bf16 => f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16),
            Dtype::I8 => b[0] as i8 as f32,
            Dtype::I16 => i16::from_le_bytes([b[0], b[1]]) as f32,
            Dtype::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32,
        })
    }

    fn scalar(&self) -> Option<usize> {
        let v = self.values().next()?;
        (v >= 0.0 && v.fract() == 0.0).then_some(v as usize)
    }

    fn all_zero(&self) -> bool {
        self.values().all(|v| v == 0.0)
    }
}

struct Ct2<'a> {
    vars: HashMap<String, Var<'a>>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Ct2Error> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or_else(|| Ct2Error::Format(format!("truncated at byte {}", self.pos)))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, Ct2Error> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Ct2Error> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, Ct2Error> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A string: u16 length including a trailing NUL.
    fn string(&mut self) -> Result<String, Ct2Error> {
        let n = self.u16()? as usize;
        let b = self.take(n)?;
        let b = b.strip_suffix(&[0]).unwrap_or(b);
        String::from_utf8(b.to_vec()).map_err(|_| Ct2Error::Format("a name is not UTF-8".into()))
    }
}

impl<'a> Ct2<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Ct2<'a>, Ct2Error> {
        let mut r = Reader { bytes, pos: 0 };
        let version = r.u32()?;
        if !(5..=6).contains(&version) {
            return Err(Ct2Error::Format(format!(
                "binary version {version} (expected 5 or 6); is this a CTranslate2 model.bin?"
            )));
        }
        let spec = r.string()?;
        if !spec.to_lowercase().contains("whisper") {
            return Err(Ct2Error::Unsupported(format!(
                "model spec '{spec}' is not Whisper"
            )));
        }
        let _revision = r.u32()?;
        let count = r.u32()?;
        let mut vars = HashMap::new();
        for _ in 0..count {
            let name = r.string()?;
            let rank = r.u8()? as usize;
            if rank > 4 {
                return Err(Ct2Error::Format(format!("{name}: rank {rank}")));
            }
            let mut shape = [1usize; 4];
            for d in shape.iter_mut().take(rank) {
                *d = r.u32()? as usize;
            }
            let dtype = match r.u8()? {
                0 => Dtype::F32,
                1 => Dtype::I8,
                2 => Dtype::I16,
                3 => Dtype::I32,
                4 => Dtype::F16,
                5 => Dtype::Bf16,
                d => return Err(Ct2Error::Format(format!("{name}: unknown dtype {d}"))),
            };
            let nbytes = r.u32()? as usize;
            let data = r.take(nbytes)?;
            let elements: usize = shape[..rank].iter().product();
            if elements * dtype.size() != nbytes {
                return Err(Ct2Error::Format(format!(
                    "{name}: {nbytes} bytes for shape {:?}",
                    &shape[..rank]
                )));
            }
            let rows = if rank == 0 { 1 } else { shape[0] };
            vars.insert(
                name,
                Var {
                    rows,
                    row_len: elements / rows.max(1),
                    shape_rank: rank,
                    shape,
                    dtype,
                    data,
                },
            );
        }
        // Aliases (e.g. the output projection sharing the embeddings) follow, if any.
        if r.bytes.len() - r.pos >= 4 {
            for _ in 0..r.u32()? {
                let alias = r.string()?;
                let target = r.string()?;
                if let Some(v) = vars.get(&target).copied() {
                    vars.entry(alias).or_insert(v);
                }
            }
        }
        Ok(Ct2 { vars })
    }

    fn get(&self, name: &str) -> Result<Var<'a>, Ct2Error> {
        self.vars
            .get(name)
            .copied()
            .ok_or_else(|| Ct2Error::Missing(name.into()))
    }
}

/// The mel filters and tokenizer vocabulary whisper.cpp keeps in its model header.
pub struct Assets {
    /// `mel_filters.npz`
    pub mel_filters_npz: Vec<u8>,
    /// `gpt2.tiktoken` (English-only models)
    pub gpt2_tiktoken: Vec<u8>,
    /// `multilingual.tiktoken`
    pub multilingual_tiktoken: Vec<u8>,
}

impl Assets {
    /// Reads `whisper/assets/*` from the openai-whisper source package (`.tar.gz`).
    pub fn from_sdist(tar_gz: impl Read) -> Result<Assets, Ct2Error> {
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tar_gz));
        let mut found: HashMap<&str, Vec<u8>> = HashMap::new();
        let names = ["mel_filters.npz", "gpt2.tiktoken", "multilingual.tiktoken"];
        let entries = archive
            .entries()
            .map_err(|e| Ct2Error::Assets(format!("not a tar.gz: {e}")))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| Ct2Error::Assets(format!("broken tar: {e}")))?;
            let path = entry
                .path()
                .map_err(|e| Ct2Error::Assets(e.to_string()))?
                .to_string_lossy()
                .into_owned();
            for name in names {
                if path.ends_with(&format!("whisper/assets/{name}")) {
                    let mut buf = Vec::new();
                    entry.read_to_end(&mut buf)?;
                    found.insert(name, buf);
                }
            }
        }
        let mut take = |name: &str| {
            found.remove(name).ok_or_else(|| {
                Ct2Error::Assets(format!(
                    "whisper/assets/{name} is not in the package; is it openai-whisper's source?"
                ))
            })
        };
        Ok(Assets {
            mel_filters_npz: take("mel_filters.npz")?,
            gpt2_tiktoken: take("gpt2.tiktoken")?,
            multilingual_tiktoken: take("multilingual.tiktoken")?,
        })
    }
}

/// What a conversion produced.
#[derive(Debug)]
pub struct Summary {
    pub hparams: HParams,
    pub tensors: usize,
    pub vocab: usize,
}

#[derive(Debug, Clone, Copy)]
pub struct HParams {
    pub n_vocab: usize,
    pub n_audio_ctx: usize,
    pub n_audio_state: usize,
    pub n_audio_head: usize,
    pub n_audio_layer: usize,
    pub n_text_ctx: usize,
    pub n_text_state: usize,
    pub n_text_head: usize,
    pub n_text_layer: usize,
    pub n_mels: usize,
}

/// Converts a CT2 `model.bin` (its bytes) to a whisper.cpp ggml model written to `out`.
pub fn convert(model_bin: &[u8], assets: &Assets, out: impl Write) -> Result<Summary, Ct2Error> {
    let m = Ct2::parse(model_bin)?;
    if m.vars.keys().any(|k| k.ends_with("weight_scale")) {
        return Err(Ct2Error::Quantised);
    }
    let layers = |side: &str| {
        let prefix = format!("{side}/layer_");
        m.vars
            .keys()
            .filter_map(|k| {
                k.strip_prefix(&prefix)?
                    .split('/')
                    .next()?
                    .parse::<usize>()
                    .ok()
            })
            .collect::<std::collections::HashSet<_>>()
            .len()
    };
    let emb = m.get("decoder/embeddings/weight")?;
    let conv1 = m.get("encoder/conv1/weight")?;
    if conv1.shape_rank != 3 || emb.shape_rank != 2 {
        return Err(Ct2Error::Unsupported(
            "unexpected conv1/embedding shapes".into(),
        ));
    }
    let n_audio_state = conv1.shape()[0];
    // whisper's attention heads are 64 wide in every size; CT2 may store the count.
    let heads = |side: &str, state: usize| {
        m.get(&format!("{side}/num_heads"))
            .ok()
            .and_then(|v| v.scalar())
            .unwrap_or(state / 64)
    };
    let hp = HParams {
        n_vocab: emb.shape()[0],
        n_audio_ctx: m.get("encoder/position_encodings/encodings")?.rows,
        n_audio_state,
        n_audio_head: heads("encoder", n_audio_state),
        n_audio_layer: layers("encoder"),
        n_text_ctx: m.get("decoder/position_encodings/encodings")?.rows,
        n_text_state: emb.shape()[1],
        n_text_head: heads("decoder", emb.shape()[1]),
        n_text_layer: layers("decoder"),
        n_mels: conv1.shape()[1],
    };
    let filters = mel_filters(&assets.mel_filters_npz, hp.n_mels)?;
    let multilingual = hp.n_vocab >= 51865;
    let tokens = tiktoken(if multilingual {
        &assets.multilingual_tiktoken
    } else {
        &assets.gpt2_tiktoken
    })?;

    let mut w = std::io::BufWriter::new(out);
    w.write_all(&0x67676d6cu32.to_le_bytes())?;
    for v in [
        hp.n_vocab,
        hp.n_audio_ctx,
        hp.n_audio_state,
        hp.n_audio_head,
        hp.n_audio_layer,
        hp.n_text_ctx,
        hp.n_text_state,
        hp.n_text_head,
        hp.n_text_layer,
        hp.n_mels,
        1, // f16 weights
    ] {
        w.write_all(&(v as i32).to_le_bytes())?;
    }
    w.write_all(&(filters.rows as i32).to_le_bytes())?;
    w.write_all(&(filters.cols as i32).to_le_bytes())?;
    for v in &filters.values {
        w.write_all(&v.to_le_bytes())?;
    }
    w.write_all(&(tokens.len() as i32).to_le_bytes())?;
    for t in &tokens {
        w.write_all(&(t.len() as i32).to_le_bytes())?;
        w.write_all(t)?;
    }

    let mut t = Tensors {
        w: &mut w,
        count: 0,
    };
    t.put(
        "encoder.positional_embedding",
        m.get("encoder/position_encodings/encodings")?,
        true,
    )?;
    t.put("encoder.conv1.weight", conv1, false)?;
    t.put(
        "encoder.conv1.bias",
        column(m.get("encoder/conv1/bias")?),
        true,
    )?;
    t.put(
        "encoder.conv2.weight",
        m.get("encoder/conv2/weight")?,
        false,
    )?;
    t.put(
        "encoder.conv2.bias",
        column(m.get("encoder/conv2/bias")?),
        true,
    )?;
    for i in 0..hp.n_audio_layer {
        let (p, s) = (format!("encoder.blocks.{i}"), format!("encoder/layer_{i}"));
        t.self_attention(&m, &p, &s, hp.n_audio_state)?;
        t.mlp(&m, &p, &s)?;
    }
    t.layer_norm(&m, "encoder.ln_post", "encoder/layer_norm")?;
    t.put(
        "decoder.positional_embedding",
        m.get("decoder/position_encodings/encodings")?,
        true,
    )?;
    t.put("decoder.token_embedding.weight", emb, false)?;
    let d = hp.n_text_state;
    for i in 0..hp.n_text_layer {
        let (p, s) = (format!("decoder.blocks.{i}"), format!("decoder/layer_{i}"));
        t.self_attention(&m, &p, &s, d)?;
        // Cross attention: linear_0 is q, linear_1 the fused k/v, linear_2 the output.
        t.linear(
            &m,
            &format!("{p}.cross_attn.query"),
            &format!("{s}/attention/linear_0"),
        )?;
        let kv = m.get(&format!("{s}/attention/linear_1/weight"))?;
        let kv_bias = m.get(&format!("{s}/attention/linear_1/bias"))?;
        check_rows(&kv, 2 * d, &format!("{s}/attention/linear_1/weight"))?;
        if !kv_bias.rows(0, d).all_zero() {
            return Err(Ct2Error::Unsupported(format!(
                "{s}: non-zero cross-attention key bias"
            )));
        }
        t.put(&format!("{p}.cross_attn.key.weight"), kv.rows(0, d), false)?;
        t.put(
            &format!("{p}.cross_attn.value.weight"),
            kv.rows(d, 2 * d),
            false,
        )?;
        t.put(
            &format!("{p}.cross_attn.value.bias"),
            kv_bias.rows(d, 2 * d),
            true,
        )?;
        t.linear(
            &m,
            &format!("{p}.cross_attn.out"),
            &format!("{s}/attention/linear_2"),
        )?;
        t.layer_norm(
            &m,
            &format!("{p}.cross_attn_ln"),
            &format!("{s}/attention/layer_norm"),
        )?;
        t.mlp(&m, &p, &s)?;
    }
    t.layer_norm(&m, "decoder.ln", "decoder/layer_norm")?;
    let tensors = t.count;
    w.flush()?;
    Ok(Summary {
        hparams: hp,
        tensors,
        vocab: tokens.len(),
    })
}

/// A bias vector as the (n, 1) matrix whisper.cpp's convolutions expect.
fn column(v: Var<'_>) -> Var<'_> {
    let mut c = v;
    c.shape_rank = 2;
    c.shape = [v.rows, 1, 1, 1];
    c
}

fn check_rows(v: &Var<'_>, rows: usize, name: &str) -> Result<(), Ct2Error> {
    if v.rows != rows {
        return Err(Ct2Error::Unsupported(format!(
            "{name} has {} rows, expected {rows}",
            v.rows
        )));
    }
    Ok(())
}

struct Tensors<'w, W: Write> {
    w: &'w mut W,
    count: usize,
}

impl<W: Write> Tensors<'_, W> {
    /// Writes one tensor: rank, name length, type (0 f32, 1 f16), dims innermost first, name,
    /// data. Vectors (and the few matrices whisper.cpp reads as f32) are f32.
    fn put(&mut self, name: &str, v: Var<'_>, force_f32: bool) -> Result<(), Ct2Error> {
        let f32_out = force_f32 || v.shape_rank < 2;
        let w = &mut *self.w;
        w.write_all(&(v.shape_rank as i32).to_le_bytes())?;
        w.write_all(&(name.len() as i32).to_le_bytes())?;
        w.write_all(&(if f32_out { 0i32 } else { 1 }).to_le_bytes())?;
        for d in v.shape().iter().rev() {
            w.write_all(&(*d as i32).to_le_bytes())?;
        }
        w.write_all(name.as_bytes())?;
        match (f32_out, v.dtype) {
            (true, Dtype::F32) | (false, Dtype::F16) => w.write_all(v.data)?,
            (true, _) => {
                for x in v.values() {
                    w.write_all(&x.to_le_bytes())?;
                }
            }
            (false, _) => {
                for x in v.values() {
                    w.write_all(&f16::from_f32(x).to_le_bytes())?;
                }
            }
        }
        self.count += 1;
        Ok(())
    }

    fn linear(&mut self, m: &Ct2<'_>, dst: &str, src: &str) -> Result<(), Ct2Error> {
        self.put(
            &format!("{dst}.weight"),
            m.get(&format!("{src}/weight"))?,
            false,
        )?;
        self.put(
            &format!("{dst}.bias"),
            m.get(&format!("{src}/bias"))?,
            false,
        )
    }

    fn layer_norm(&mut self, m: &Ct2<'_>, dst: &str, src: &str) -> Result<(), Ct2Error> {
        self.put(
            &format!("{dst}.weight"),
            m.get(&format!("{src}/gamma"))?,
            false,
        )?;
        self.put(
            &format!("{dst}.bias"),
            m.get(&format!("{src}/beta"))?,
            false,
        )
    }

    /// Self-attention with CT2's fused q/k/v split into whisper's query, key and value.
    fn self_attention(&mut self, m: &Ct2<'_>, p: &str, s: &str, d: usize) -> Result<(), Ct2Error> {
        let src = format!("{s}/self_attention/linear_0");
        let qkv = m.get(&format!("{src}/weight"))?;
        let bias = m.get(&format!("{src}/bias"))?;
        check_rows(&qkv, 3 * d, &src)?;
        if !bias.rows(d, 2 * d).all_zero() {
            return Err(Ct2Error::Unsupported(format!("{src}: non-zero key bias")));
        }
        self.put(&format!("{p}.attn.query.weight"), qkv.rows(0, d), false)?;
        self.put(&format!("{p}.attn.query.bias"), bias.rows(0, d), false)?;
        self.put(&format!("{p}.attn.key.weight"), qkv.rows(d, 2 * d), false)?;
        self.put(
            &format!("{p}.attn.value.weight"),
            qkv.rows(2 * d, 3 * d),
            false,
        )?;
        self.put(
            &format!("{p}.attn.value.bias"),
            bias.rows(2 * d, 3 * d),
            false,
        )?;
        self.linear(
            m,
            &format!("{p}.attn.out"),
            &format!("{s}/self_attention/linear_1"),
        )?;
        self.layer_norm(
            m,
            &format!("{p}.attn_ln"),
            &format!("{s}/self_attention/layer_norm"),
        )
    }

    fn mlp(&mut self, m: &Ct2<'_>, p: &str, s: &str) -> Result<(), Ct2Error> {
        self.linear(m, &format!("{p}.mlp.0"), &format!("{s}/ffn/linear_0"))?;
        self.linear(m, &format!("{p}.mlp.2"), &format!("{s}/ffn/linear_1"))?;
        self.layer_norm(m, &format!("{p}.mlp_ln"), &format!("{s}/ffn/layer_norm"))
    }
}

struct Matrix {
    rows: usize,
    cols: usize,
    values: Vec<f32>,
}

/// `mel_{n_mels}` from numpy's `.npz` (a zip of `.npy` files).
fn mel_filters(npz: &[u8], n_mels: usize) -> Result<Matrix, Ct2Error> {
    let bad = |why: String| Ct2Error::Assets(format!("mel_filters.npz: {why}"));
    let mut zip =
        zip::ZipArchive::new(std::io::Cursor::new(npz)).map_err(|e| bad(e.to_string()))?;
    let mut npy = Vec::new();
    zip.by_name(&format!("mel_{n_mels}.npy"))
        .map_err(|_| bad(format!("no filters for {n_mels} mel bands")))?
        .read_to_end(&mut npy)?;
    // .npy: magic, version, header length (u16 in v1, u32 in v2+), a Python dict literal.
    if !npy.starts_with(b"\x93NUMPY") || npy.len() < 10 {
        return Err(bad("not a .npy array".into()));
    }
    let (len, start) = if npy[6] == 1 {
        (u16::from_le_bytes([npy[8], npy[9]]) as usize, 10)
    } else {
        let b = npy.get(8..12).ok_or_else(|| bad("truncated".into()))?;
        (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12)
    };
    let header = npy
        .get(start..start + len)
        .map(String::from_utf8_lossy)
        .ok_or_else(|| bad("truncated header".into()))?;
    if header.contains("'fortran_order': True") {
        return Err(bad("Fortran-ordered array".into()));
    }
    let size = if header.contains("'<f4'") {
        4
    } else if header.contains("'<f8'") {
        8
    } else {
        return Err(bad(format!("unsupported dtype in {header}")));
    };
    let shape: Vec<usize> = header
        .split_once("'shape': (")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(dims, _)| {
            dims.split(',')
                .filter_map(|d| d.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let [rows, cols] = shape[..] else {
        return Err(bad(format!("expected a matrix, header {header}")));
    };
    let data = &npy[start + len..];
    if data.len() != rows * cols * size {
        return Err(bad("data size does not match its shape".into()));
    }
    let values = data
        .chunks_exact(size)
        .map(|b| match size {
            4 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            _ => f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32,
        })
        .collect();
    Ok(Matrix { rows, cols, values })
}

/// A `.tiktoken` file (`base64-token rank` per line) as token bytes in rank order.
fn tiktoken(text: &[u8]) -> Result<Vec<Vec<u8>>, Ct2Error> {
    use base64::Engine;
    let mut ranked = Vec::new();
    for (i, line) in text.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let bad = || Ct2Error::Assets(format!("tiktoken line {}: not 'token rank'", i + 1));
        let line = std::str::from_utf8(line).map_err(|_| bad())?;
        let (token, rank) = line.trim().split_once(' ').ok_or_else(bad)?;
        let rank: usize = rank.parse().map_err(|_| bad())?;
        // Python's decoder, which wrote these, takes "=" as the empty token (multilingual's
        // rank 50256); strip padding and decode leniently as it does.
        let token = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        )
        .decode(token.trim_end_matches('='))
        .map_err(|_| bad())?;
        ranked.push((rank, token));
    }
    ranked.sort_by_key(|(r, _)| *r);
    Ok(ranked.into_iter().map(|(_, t)| t).collect())
}

#[cfg(test)]
mod tests;
