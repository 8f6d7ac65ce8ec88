use super::*;

/// A CT2 file writer for synthetic models.
struct Ct2Builder {
    vars: Vec<(String, Vec<usize>, u8, Vec<u8>)>,
}

impl Ct2Builder {
    fn f32(&mut self, name: &str, shape: &[usize], f: impl Fn(usize) -> f32) {
        let n: usize = shape.iter().product();
        let data = (0..n).flat_map(|i| f(i).to_le_bytes()).collect();
        self.vars.push((name.into(), shape.to_vec(), 0, data));
    }

    fn f16(&mut self, name: &str, shape: &[usize], f: impl Fn(usize) -> f32) {
        let n: usize = shape.iter().product();
        let data = (0..n)
            .flat_map(|i| f16::from_f32(f(i)).to_le_bytes())
            .collect();
        self.vars.push((name.into(), shape.to_vec(), 4, data));
    }

    fn bytes(&self, version: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let string = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        };
        out.extend_from_slice(&version.to_le_bytes());
        string(&mut out, "WhisperSpec");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(self.vars.len() as u32).to_le_bytes());
        for (name, shape, dtype, data) in &self.vars {
            string(&mut out, name);
            out.push(shape.len() as u8);
            for d in shape {
                out.extend_from_slice(&(*d as u32).to_le_bytes());
            }
            out.push(*dtype);
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(data);
        }
        out.extend_from_slice(&0u32.to_le_bytes());
        out
    }
}

const D: usize = 64;

/// A one-layer Whisper of width 64 (one head): q rows hold 1.0, k rows 2.0, v rows 3.0.
fn tiny_whisper() -> Ct2Builder {
    let mut b = Ct2Builder { vars: Vec::new() };
    let qkv = |i: usize| ((i / D) / D + 1) as f32;
    b.f32("encoder/position_encodings/encodings", &[8, D], |i| {
        i as f32
    });
    b.f16("encoder/conv1/weight", &[D, 2, 3], |_| 0.5);
    b.f32("encoder/conv1/bias", &[D], |_| 0.25);
    b.f16("encoder/conv2/weight", &[D, D, 3], |_| 0.5);
    b.f32("encoder/conv2/bias", &[D], |_| 0.25);
    for side in ["encoder", "decoder"] {
        let s = format!("{side}/layer_0");
        b.f16(
            &format!("{s}/self_attention/linear_0/weight"),
            &[3 * D, D],
            qkv,
        );
        b.f32(
            &format!("{s}/self_attention/linear_0/bias"),
            &[3 * D],
            |i| {
                if (D..2 * D).contains(&i) {
                    0.0
                } else {
                    (i / D + 1) as f32
                }
            },
        );
        for (l, rows) in [("self_attention/linear_1", D), ("ffn/linear_0", 4 * D)] {
            b.f16(&format!("{s}/{l}/weight"), &[rows, D], |_| 1.0);
            b.f32(&format!("{s}/{l}/bias"), &[rows], |_| 1.0);
        }
        b.f16(&format!("{s}/ffn/linear_1/weight"), &[D, 4 * D], |_| 1.0);
        b.f32(&format!("{s}/ffn/linear_1/bias"), &[D], |_| 1.0);
        for ln in ["self_attention/layer_norm", "ffn/layer_norm"] {
            b.f32(&format!("{s}/{ln}/gamma"), &[D], |_| 1.0);
            b.f32(&format!("{s}/{ln}/beta"), &[D], |_| 0.0);
        }
    }
    let s = "decoder/layer_0/attention";
    b.f16(&format!("{s}/linear_0/weight"), &[D, D], |_| 1.0);
    b.f32(&format!("{s}/linear_0/bias"), &[D], |_| 1.0);
    b.f16(&format!("{s}/linear_1/weight"), &[2 * D, D], |i| {
        ((i / D) / D + 2) as f32
    });
    b.f32(&format!("{s}/linear_1/bias"), &[2 * D], |i| {
        if i < D {
            0.0
        } else {
            3.0
        }
    });
    b.f16(&format!("{s}/linear_2/weight"), &[D, D], |_| 1.0);
    b.f32(&format!("{s}/linear_2/bias"), &[D], |_| 1.0);
    b.f32(&format!("{s}/layer_norm/gamma"), &[D], |_| 1.0);
    b.f32(&format!("{s}/layer_norm/beta"), &[D], |_| 0.0);
    for ln in ["encoder/layer_norm", "decoder/layer_norm"] {
        b.f32(&format!("{ln}/gamma"), &[D], |_| 1.0);
        b.f32(&format!("{ln}/beta"), &[D], |_| 0.0);
    }
    b.f32("decoder/position_encodings/encodings", &[4, D], |_| 0.0);
    b.f32("decoder/embeddings/weight", &[3, D], |i| i as f32);
    b
}

fn npz(n_mels: usize, cols: usize) -> Vec<u8> {
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({n_mels}, {cols}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    npy.extend_from_slice(&(header.len() as u16).to_le_bytes());
    npy.extend_from_slice(header.as_bytes());
    for i in 0..n_mels * cols {
        npy.extend_from_slice(&(i as f32).to_le_bytes());
    }
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file(
        format!("mel_{n_mels}.npy"),
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    zip.write_all(&npy).unwrap();
    zip.finish().unwrap().into_inner()
}

fn assets() -> Assets {
    Assets {
        mel_filters_npz: npz(2, 5),
        gpt2_tiktoken: b"Ig== 1\nIQ== 0\nIw== 2\n= 3\n".to_vec(),
        multilingual_tiktoken: Vec::new(),
    }
}

/// What a ggml whisper file holds, read back.
struct Ggml {
    hparams: Vec<i32>,
    filters: (i32, i32),
    tokens: Vec<Vec<u8>>,
    tensors: Vec<(String, Vec<i32>, i32, Vec<u8>)>,
}

fn read_ggml(b: &[u8]) -> Ggml {
    let mut r = std::io::Cursor::new(b);
    let read = |r: &mut std::io::Cursor<&[u8]>, n: usize| {
        let mut v = vec![0; n];
        r.read_exact(&mut v).unwrap();
        v
    };
    let int = |r: &mut std::io::Cursor<&[u8]>| i32::from_le_bytes(read(r, 4).try_into().unwrap());
    assert_eq!(int(&mut r) as u32, 0x67676d6c);
    let hparams: Vec<i32> = (0..11).map(|_| int(&mut r)).collect();
    let filters = (int(&mut r), int(&mut r));
    read(&mut r, (filters.0 * filters.1) as usize * 4);
    let n = int(&mut r);
    let tokens = (0..n)
        .map(|_| {
            let len = int(&mut r) as usize;
            read(&mut r, len)
        })
        .collect();
    let mut tensors = Vec::new();
    while (r.position() as usize) < b.len() {
        let (rank, name_len, ftype) = (int(&mut r), int(&mut r), int(&mut r));
        let dims: Vec<i32> = (0..rank).map(|_| int(&mut r)).collect();
        let name = String::from_utf8(read(&mut r, name_len as usize)).unwrap();
        let elements: i32 = dims.iter().product();
        let data = read(&mut r, elements as usize * if ftype == 0 { 4 } else { 2 });
        tensors.push((name, dims, ftype, data));
    }
    Ggml {
        hparams,
        filters,
        tokens,
        tensors,
    }
}

#[test]
fn converts_a_synthetic_whisper() {
    let mut out = Vec::new();
    let summary = convert(&tiny_whisper().bytes(6), &assets(), &mut out).unwrap();
    assert_eq!(summary.tensors, 50);
    let g = read_ggml(&out);
    // n_vocab, audio ctx/state/head/layer, text ctx/state/head/layer, mels, f16.
    assert_eq!(g.hparams, vec![3, 8, 64, 1, 1, 4, 64, 1, 1, 2, 1]);
    assert_eq!(g.filters, (2, 5));
    // "=" is the empty token, as Python's lenient decoder reads it (multilingual has one).
    assert_eq!(
        g.tokens,
        vec![b"!".to_vec(), b"\"".to_vec(), b"#".to_vec(), Vec::new()]
    );
    assert_eq!(g.tensors.len(), 50);
    let find = |n: &str| {
        g.tensors
            .iter()
            .find(|t| t.0 == n)
            .unwrap_or_else(|| panic!("{n}"))
    };
    let halves = |d: &[u8]| -> Vec<f32> {
        d.chunks(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect()
    };
    let floats = |d: &[u8]| -> Vec<f32> {
        d.chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    // The fused projection is split by rows; matrices are f16 with dims innermost first.
    for (name, value) in [("query", 1.0), ("key", 2.0), ("value", 3.0)] {
        let t = find(&format!("encoder.blocks.0.attn.{name}.weight"));
        assert_eq!((t.1.clone(), t.2), (vec![64, 64], 1));
        assert!(halves(&t.3).iter().all(|v| *v == value), "{name}");
    }
    assert!(floats(&find("decoder.blocks.0.attn.value.bias").3)
        .iter()
        .all(|v| *v == 3.0));
    assert!(halves(&find("decoder.blocks.0.cross_attn.key.weight").3)
        .iter()
        .all(|v| *v == 2.0));
    assert!(halves(&find("decoder.blocks.0.cross_attn.value.weight").3)
        .iter()
        .all(|v| *v == 3.0));
    assert!(floats(&find("decoder.blocks.0.cross_attn.value.bias").3)
        .iter()
        .all(|v| *v == 3.0));
    // Biases and positional embeddings stay f32; conv biases become (n, 1).
    let bias = find("encoder.conv1.bias");
    assert_eq!((bias.1.clone(), bias.2), (vec![1, 64], 0));
    let pos = find("encoder.positional_embedding");
    assert_eq!((pos.1.clone(), pos.2), (vec![64, 8], 0));
    assert_eq!(floats(&pos.3)[..3], [0.0, 1.0, 2.0]);
    // An f32 source matrix is written as f16.
    let emb = find("decoder.token_embedding.weight");
    assert_eq!((emb.1.clone(), emb.2), (vec![64, 3], 1));
    assert_eq!(halves(&emb.3)[..3], [0.0, 1.0, 2.0]);
    assert!(g.tensors.iter().any(|t| t.0 == "decoder.ln.bias"));
}

#[test]
fn broken_inputs_say_what_is_wrong() {
    let good = tiny_whisper().bytes(6);
    let err =
        |bytes: &[u8], assets: &Assets| convert(bytes, assets, Vec::new()).unwrap_err().to_string();
    assert!(err(&good[..good.len() / 2], &assets()).contains("truncated"));
    assert!(err(&tiny_whisper().bytes(2), &assets()).contains("binary version 2"));
    assert!(err(b"hello", &assets()).contains("not a CTranslate2 model"));
    let mut quantised = tiny_whisper();
    quantised.f32("encoder/layer_0/ffn/linear_0/weight_scale", &[1], |_| 1.0);
    assert!(err(&quantised.bytes(6), &assets()).contains("int8"));
    let mut no_filters = assets();
    no_filters.mel_filters_npz = npz(80, 5);
    assert!(err(&good, &no_filters).contains("no filters for 2 mel bands"));
    let mut bad_vocab = assets();
    bad_vocab.gpt2_tiktoken = b"IQ== zero\n".to_vec();
    assert!(err(&good, &bad_vocab).contains("tiktoken line 1"));
    let mut missing = tiny_whisper();
    missing.vars.retain(|v| v.0 != "decoder/layer_norm/gamma");
    assert!(err(&missing.bytes(6), &assets()).contains("decoder/layer_norm/gamma"));
    assert!(Assets::from_sdist(&b"not a tarball"[..]).is_err());
}
