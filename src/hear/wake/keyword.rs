//! A keyword model Cabin trains itself (`cabin wake train`): a small network over a window of
//! speech embeddings, written as an ONNX file with the input and output of openWakeWord's
//! keyword models (`[1, N, 96]` embeddings → `[1, 1]` score), so it loads wherever theirs do:
//! `[models] wake`, `cabin wake eval`, openWakeWord itself.
//!
//! The network: flatten → dense (32, ReLU) → dense (1, sigmoid). The embeddings are
//! standardised for training, and the standardisation is folded into the first layer's
//! weights on export, so the file holds four operators and nothing Cabin-specific.

use super::EMBEDDING;

/// One training example: a window of embeddings (`window × 96`, oldest first) and whether the
/// phrase has just been said in it.
pub struct Example {
    pub features: Vec<f32>,
    pub positive: bool,
}

/// How to train.
#[derive(Debug, Clone)]
pub struct Training {
    pub hidden: usize,
    pub epochs: usize,
    /// Loss weight of a negative example over a positive one: false wakes cost more.
    pub negative_weight: f32,
    pub learning_rate: f32,
    /// Gaussian noise added to each standardised input while training, so that inputs unlike
    /// any example (a real voice after synthetic ones) get moderate scores, not certain ones.
    pub input_noise: f32,
    pub seed: u64,
}

impl Default for Training {
    fn default() -> Self {
        Training {
            hidden: 32,
            epochs: 20,
            negative_weight: 4.0,
            learning_rate: 1e-3,
            input_noise: 0.3,
            seed: 1,
        }
    }
}

/// Parts each training batch is split into (one thread each).
const SHARES: usize = 4;

/// A trained keyword model.
#[derive(Debug, Clone)]
pub struct KeywordModel {
    /// Embeddings per input window.
    pub window: usize,
    /// The weights, applying to raw (not standardised) embeddings.
    params: Params,
}

/// Why a model can't be trained.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("no {0} examples to train on")]
    NoExamples(&'static str),
    #[error("an example has {got} values, not the {want} of a {window}-embedding window")]
    Shape {
        got: usize,
        want: usize,
        window: usize,
    },
}

impl KeywordModel {
    /// Trains on `examples`, each a `window`-embedding window; `progress(epoch, loss)` after
    /// each pass.
    pub fn train(
        examples: &[Example],
        window: usize,
        t: &Training,
        mut progress: impl FnMut(usize, f32),
    ) -> Result<KeywordModel, TrainError> {
        let inputs = window * EMBEDDING;
        if let Some(e) = examples.iter().find(|e| e.features.len() != inputs) {
            return Err(TrainError::Shape {
                got: e.features.len(),
                want: inputs,
                window,
            });
        }
        for (want, what) in [(true, "positive"), (false, "negative")] {
            if !examples.iter().any(|e| e.positive == want) {
                return Err(TrainError::NoExamples(what));
            }
        }
        let (mean, scale) = standardisation(examples);
        let norm = &|x: &[f32], out: &mut Vec<f32>| {
            out.clear();
            out.extend(
                x.iter()
                    .enumerate()
                    .map(|(i, v)| (v - mean[i % EMBEDDING]) * scale[i % EMBEDDING]),
            );
        };

        let h = t.hidden;
        let mut rng = SplitMix(t.seed);
        let bound = (6.0 / (inputs + h) as f32).sqrt();
        let mut params = Params {
            w1: (0..h * inputs).map(|_| rng.uniform(bound)).collect(),
            b1: vec![0.0; h],
            w2: (0..h)
                .map(|_| rng.uniform((6.0 / (h + 1) as f32).sqrt()))
                .collect(),
            b2: vec![0.0],
        };
        let mut adam = Adam::new(&params, t.learning_rate);
        // Always the same shares of each batch, each with its own noise, summed in the same
        // order: the model is the same whatever the machine's core count.
        let threads = SHARES;
        let mut grads: Vec<Params> = (0..threads).map(|_| params.zeros()).collect();
        let mut order: Vec<usize> = (0..examples.len()).collect();
        const BATCH: usize = 128;
        for epoch in 0..t.epochs {
            rng.shuffle(&mut order);
            let mut total = 0.0f64;
            for batch in order.chunks(BATCH) {
                // Each thread sums the gradient of its share of the batch, with its own noise.
                let seeds: Vec<u64> = (0..threads).map(|_| rng.next_u64()).collect();
                let share = batch.len().div_ceil(threads);
                let p = &params;
                total += std::thread::scope(|s| {
                    let handles: Vec<_> = batch
                        .chunks(share)
                        .zip(grads.iter_mut())
                        .zip(&seeds)
                        .map(|((part, g), seed)| {
                            s.spawn(move || {
                                g.clear();
                                let mut rng = SplitMix(*seed);
                                let mut x = Vec::with_capacity(inputs);
                                let mut hidden = vec![0.0f32; h];
                                let mut loss = 0.0f64;
                                for &i in part {
                                    let e = &examples[i];
                                    norm(&e.features, &mut x);
                                    if t.input_noise > 0.0 {
                                        for v in x.iter_mut() {
                                            *v += t.input_noise * rng.gaussian();
                                        }
                                    }
                                    loss += accumulate(
                                        p,
                                        g,
                                        &x,
                                        &mut hidden,
                                        e.positive,
                                        t,
                                        batch.len(),
                                    );
                                }
                                loss
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().expect("a training thread panicked"))
                        .sum::<f64>()
                });
                let (first, rest) = grads.split_at_mut(1);
                for g in rest.iter().take(batch.len().div_ceil(share) - 1) {
                    first[0].add(g);
                }
                adam.step(&mut params, &first[0]);
            }
            progress(epoch + 1, (total / examples.len() as f64) as f32);
        }

        // Fold the standardisation into the first layer: w·((x − m)·s) = (w·s)·x − w·s·m.
        for j in 0..h {
            let row = &mut params.w1[j * inputs..(j + 1) * inputs];
            for (i, w) in row.iter_mut().enumerate() {
                *w *= scale[i % EMBEDDING];
                params.b1[j] -= *w * mean[i % EMBEDDING];
            }
        }
        Ok(KeywordModel { window, params })
    }

    /// The score (0..1) for one window of raw embeddings, as the ONNX file computes it.
    pub fn score(&self, features: &[f32]) -> f32 {
        let hidden = &mut vec![0.0; self.params.b1.len()];
        sigmoid(forward(&self.params, features, hidden))
    }

    /// The model as an ONNX file (IR 8, opset 13): input `x` `[1, window, 96]`, output `score`
    /// `[1, 1]`.
    pub fn to_onnx(&self, name: &str, doc: &str) -> Vec<u8> {
        let inputs = (self.window * EMBEDDING) as i64;
        let h = self.params.b1.len() as i64;
        let mut graph = Vec::new();
        let node = |op: &str, ins: &[&str], out: &str, trans_b: bool| {
            let mut n = Vec::new();
            for i in ins {
                pb::string(&mut n, 1, i);
            }
            pb::string(&mut n, 2, out);
            pb::string(&mut n, 3, out);
            pb::string(&mut n, 4, op);
            if trans_b {
                let mut a = Vec::new();
                pb::string(&mut a, 1, "transB");
                pb::varint_field(&mut a, 3, 1);
                pb::varint_field(&mut a, 20, 2); // AttributeType INT
                pb::message(&mut n, 5, &a);
            }
            n
        };
        for n in [
            node("Flatten", &["x"], "flat", false),
            node("Gemm", &["flat", "w1", "b1"], "hidden_in", true),
            node("Relu", &["hidden_in"], "hidden", false),
            node("Gemm", &["hidden", "w2", "b2"], "logit", true),
            node("Sigmoid", &["logit"], "score", false),
        ] {
            pb::message(&mut graph, 1, &n);
        }
        pb::string(&mut graph, 2, name);
        for (tensor_name, dims, values) in [
            ("w1", vec![h, inputs], &self.params.w1[..]),
            ("b1", vec![h], &self.params.b1[..]),
            ("w2", vec![1, h], &self.params.w2[..]),
            ("b2", vec![1], &self.params.b2[..]),
        ] {
            let mut t = Vec::new();
            for d in dims {
                pb::varint_field(&mut t, 1, d as u64);
            }
            pb::varint_field(&mut t, 2, 1); // FLOAT
            pb::string(&mut t, 8, tensor_name);
            let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            pb::bytes(&mut t, 9, &raw);
            pb::message(&mut graph, 5, &t);
        }
        pb::message(
            &mut graph,
            11,
            &value_info("x", &[1, self.window as i64, EMBEDDING as i64]),
        );
        pb::message(&mut graph, 12, &value_info("score", &[1, 1]));

        let mut model = Vec::new();
        pb::varint_field(&mut model, 1, 8); // IR version
        pb::string(&mut model, 2, "cabin wake train");
        pb::string(&mut model, 3, env!("CARGO_PKG_VERSION"));
        pb::string(&mut model, 6, doc);
        pb::message(&mut model, 7, &graph);
        let mut opset = Vec::new();
        pb::string(&mut opset, 1, "");
        pb::varint_field(&mut opset, 2, 13);
        pb::message(&mut model, 8, &opset);
        model
    }
}

/// A float tensor's name and fixed shape, as a graph input or output.
fn value_info(name: &str, dims: &[i64]) -> Vec<u8> {
    let mut shape = Vec::new();
    for d in dims {
        let mut dim = Vec::new();
        pb::varint_field(&mut dim, 1, *d as u64);
        pb::message(&mut shape, 1, &dim);
    }
    let mut tensor = Vec::new();
    pb::varint_field(&mut tensor, 1, 1); // FLOAT
    pb::message(&mut tensor, 2, &shape);
    let mut ty = Vec::new();
    pb::message(&mut ty, 1, &tensor);
    let mut v = Vec::new();
    pb::string(&mut v, 1, name);
    pb::message(&mut v, 2, &ty);
    v
}

/// The few protobuf encodings an ONNX file needs.
mod pb {
    pub fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    pub fn varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
        varint(out, u64::from(field) << 3);
        varint(out, v);
    }
    pub fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
        varint(out, (u64::from(field) << 3) | 2);
        varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }
    pub fn string(out: &mut Vec<u8>, field: u32, s: &str) {
        bytes(out, field, s.as_bytes());
    }
    pub fn message(out: &mut Vec<u8>, field: u32, m: &[u8]) {
        bytes(out, field, m);
    }
}

/// Per-dimension mean and 1/std of the embeddings (shared by every position in the window).
fn standardisation(examples: &[Example]) -> ([f32; EMBEDDING], [f32; EMBEDDING]) {
    let mut sum = [0f64; EMBEDDING];
    let mut sq = [0f64; EMBEDDING];
    let mut n = 0f64;
    for e in examples {
        for (i, v) in e.features.iter().enumerate() {
            sum[i % EMBEDDING] += f64::from(*v);
            sq[i % EMBEDDING] += f64::from(*v) * f64::from(*v);
        }
        n += (e.features.len() / EMBEDDING) as f64;
    }
    let mut mean = [0f32; EMBEDDING];
    let mut scale = [0f32; EMBEDDING];
    for i in 0..EMBEDDING {
        let m = sum[i] / n;
        let var = (sq[i] / n - m * m).max(1e-6);
        mean[i] = m as f32;
        scale[i] = (1.0 / var.sqrt()) as f32;
    }
    (mean, scale)
}

/// The network's weights: `w1` is `hidden × inputs`, row by row; `b2` has one value.
#[derive(Debug, Clone)]
struct Params {
    w1: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: Vec<f32>,
}

impl Params {
    fn zeros(&self) -> Params {
        Params {
            w1: vec![0.0; self.w1.len()],
            b1: vec![0.0; self.b1.len()],
            w2: vec![0.0; self.w2.len()],
            b2: vec![0.0; 1],
        }
    }
    fn add(&mut self, other: &Params) {
        for (a, b) in self.each_mut().into_iter().zip(other.each()) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
    }
    fn each(&self) -> [&Vec<f32>; 4] {
        [&self.w1, &self.b1, &self.w2, &self.b2]
    }
    fn clear(&mut self) {
        for p in self.each_mut() {
            p.fill(0.0);
        }
    }
    fn each_mut(&mut self) -> [&mut Vec<f32>; 4] {
        [&mut self.w1, &mut self.b1, &mut self.w2, &mut self.b2]
    }
}

/// Adds one example's gradient of the weighted cross-entropy to `g`; returns its loss.
fn accumulate(
    p: &Params,
    g: &mut Params,
    x: &[f32],
    hidden: &mut [f32],
    positive: bool,
    t: &Training,
    batch: usize,
) -> f64 {
    let inputs = x.len();
    let prob = sigmoid(forward(p, x, hidden));
    let (y, w) = if positive {
        (1.0, 1.0)
    } else {
        (0.0, t.negative_weight)
    };
    // The gradient at the logit.
    let dz = w * (prob - y) / batch as f32;
    g.b2[0] += dz;
    for (j, hj) in hidden.iter().enumerate() {
        if *hj <= 0.0 {
            continue;
        }
        g.w2[j] += dz * hj;
        let dh = dz * p.w2[j];
        g.b1[j] += dh;
        for (gw, xv) in g.w1[j * inputs..(j + 1) * inputs].iter_mut().zip(x) {
            *gw += dh * xv;
        }
    }
    f64::from(w * bce(prob, y))
}

/// The logit; `hidden` gets the hidden layer's activations.
fn forward(p: &Params, x: &[f32], hidden: &mut [f32]) -> f32 {
    let inputs = x.len();
    let mut z = p.b2[0];
    for (j, hj) in hidden.iter_mut().enumerate() {
        let row = &p.w1[j * inputs..(j + 1) * inputs];
        let a: f32 = row.iter().zip(x).map(|(w, v)| w * v).sum::<f32>() + p.b1[j];
        *hj = a.max(0.0);
        z += p.w2[j] * *hj;
    }
    z
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

fn bce(p: f32, y: f32) -> f32 {
    let p = p.clamp(1e-7, 1.0 - 1e-7);
    -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
}

/// Adam with a little weight decay on the weights.
struct Adam {
    m: Params,
    v: Params,
    t: i32,
    rate: f32,
}

impl Adam {
    fn new(p: &Params, rate: f32) -> Adam {
        Adam {
            m: p.zeros(),
            v: p.zeros(),
            t: 0,
            rate,
        }
    }
    fn step(&mut self, p: &mut Params, g: &Params) {
        const B1: f32 = 0.9;
        const B2: f32 = 0.999;
        const DECAY: f32 = 1e-4;
        self.t += 1;
        let c1 = 1.0 - B1.powi(self.t);
        let c2 = 1.0 - B2.powi(self.t);
        let grads = [&g.w1, &g.b1, &g.w2, &g.b2];
        let ms = self.m.each_mut();
        let vs = self.v.each_mut();
        for (k, ((p, g), (m, v))) in p
            .each_mut()
            .into_iter()
            .zip(grads)
            .zip(ms.into_iter().zip(vs))
            .enumerate()
        {
            let decay = if k % 2 == 0 { DECAY } else { 0.0 };
            for i in 0..p.len() {
                let gi = g[i] + decay * p[i];
                m[i] = B1 * m[i] + (1.0 - B1) * gi;
                v[i] = B2 * v[i] + (1.0 - B2) * gi * gi;
                p[i] -= self.rate * (m[i] / c1) / ((v[i] / c2).sqrt() + 1e-8);
            }
        }
    }
}

/// A small seeded generator, so a training run is the same each time.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Uniform in [-bound, bound).
    pub fn uniform(&mut self, bound: f32) -> f32 {
        (self.unit() * 2.0 - 1.0) * bound
    }
    /// Standard normal (Box–Muller).
    pub fn gaussian(&mut self) -> f32 {
        let u = self.unit().max(1e-7);
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Windows where the phrase is a bump in a few dimensions of the last embeddings.
    fn examples(n: usize, window: usize) -> Vec<Example> {
        let mut rng = SplitMix(7);
        (0..n)
            .map(|i| {
                let positive = i % 3 == 0;
                let mut features: Vec<f32> = (0..window * EMBEDDING)
                    .map(|_| rng.uniform(1.0) * 3.0 + 5.0)
                    .collect();
                if positive {
                    let last_two = (window - 2) * EMBEDDING;
                    for (k, f) in features.iter_mut().enumerate().skip(last_two) {
                        if k % 7 == 0 {
                            *f += 4.0;
                        }
                    }
                }
                Example { features, positive }
            })
            .collect()
    }

    #[test]
    fn a_trained_model_separates_what_it_was_shown_and_the_folded_weights_score_raw_input() {
        let train = examples(600, 4);
        let t = Training {
            epochs: 8,
            ..Training::default()
        };
        let mut losses = Vec::new();
        let model = KeywordModel::train(&train, 4, &t, |_, l| losses.push(l)).unwrap();
        assert_eq!(losses.len(), 8);
        assert!(losses[7] < losses[0] / 4.0, "{losses:?}");
        let test = examples(90, 4);
        let right = test
            .iter()
            .filter(|e| (model.score(&e.features) >= 0.5) == e.positive)
            .count();
        assert!(right >= 88, "{right} of 90 right");
    }

    #[test]
    fn training_refuses_windows_of_the_wrong_size_and_a_missing_class() {
        let mut train = examples(30, 4);
        assert!(matches!(
            KeywordModel::train(&train, 5, &Training::default(), |_, _| {}),
            Err(TrainError::Shape { want: 480, .. })
        ));
        train.retain(|e| !e.positive);
        let err = KeywordModel::train(&train, 4, &Training::default(), |_, _| {}).unwrap_err();
        assert_eq!(err.to_string(), "no positive examples to train on");
    }

    #[test]
    fn protobuf_varints_are_little_endian_groups_of_seven_bits() {
        let mut out = Vec::new();
        pb::varint(&mut out, 300);
        assert_eq!(out, [0xAC, 0x02]);
        out.clear();
        pb::varint_field(&mut out, 20, 2);
        assert_eq!(out, [0xA0, 0x01, 0x02]);
    }
}
