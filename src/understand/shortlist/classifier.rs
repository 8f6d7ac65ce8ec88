//! The small intent model: a softmax regression over the sentence embeddings the shortlist
//! already makes, one class per intent and one for "not a command", trained on the profile's
//! own sentences, its intents' examples and its negatives. It takes a millisecond to ask, so
//! the commands it is sure of never wait for the local model.

/// Names the file format and the training below: change it when either changes, so that
/// weights cached by another training are not used.
const MAGIC: &[u8; 8] = b"CABINLR1";

/// How many passes over the training sentences; with Adam the loss has settled by then.
const EPOCHS: usize = 200;
const LEARNING_RATE: f32 = 0.05;
/// L2 penalty on the weights: keeps the probabilities of phrasings far from every training
/// sentence modest, rather than certain.
const L2: f32 = 1e-4;

/// Weights of a linear layer and softmax over `classes` classes of `dim`-long unit vectors.
#[derive(Debug, Clone)]
pub struct Classifier {
    classes: usize,
    dim: usize,
    /// The training vectors' mean, taken off every vector (then made unit again): sentence
    /// embeddings share a large common direction that says nothing about the class.
    mean: Vec<f32>,
    /// Row per class: `dim` weights, then the bias.
    weights: Vec<f32>,
}

impl Classifier {
    /// Trains on `(class, vector)` pairs, each class weighted by the inverse of its count so
    /// that an intent with many template expansions does not drown one with few.
    pub fn train(examples: &[(usize, &[f32])], classes: usize) -> Classifier {
        let dim = examples.first().map_or(0, |(_, v)| v.len());
        let row = dim + 1;
        let mut mean = vec![0f32; dim];
        for (_, x) in examples {
            mean.iter_mut().zip(x.iter()).for_each(|(m, x)| *m += x);
        }
        mean.iter_mut()
            .for_each(|m| *m /= examples.len().max(1) as f32);
        let centred: Vec<(usize, Vec<f32>)> = examples
            .iter()
            .map(|(c, x)| (*c, centre(x, &mean)))
            .collect();
        let mut counts = vec![0usize; classes];
        for (c, _) in examples {
            counts[*c] += 1;
        }
        let present = counts.iter().filter(|n| **n > 0).count().max(1) as f32;
        let total = examples.len().max(1) as f32;
        let class_weight: Vec<f32> = counts
            .iter()
            .map(|&n| {
                if n == 0 {
                    0.0
                } else {
                    total / (present * n as f32)
                }
            })
            .collect();

        let mut w = vec![0f32; classes * row];
        let (mut m, mut v) = (vec![0f32; w.len()], vec![0f32; w.len()]);
        let mut grad = vec![0f32; w.len()];
        let mut p = vec![0f32; classes];
        let (beta1, beta2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        for epoch in 1..=EPOCHS {
            grad.iter_mut().for_each(|g| *g = 0.0);
            for (c, x) in &centred {
                logits(&w, row, x, &mut p);
                softmax(&mut p);
                let cw = class_weight[*c] / total;
                for (k, pk) in p.iter().enumerate() {
                    let err = (pk - f32::from(k == *c)) * cw;
                    if err == 0.0 {
                        continue;
                    }
                    let g = &mut grad[k * row..(k + 1) * row];
                    for (gi, xi) in g[..dim].iter_mut().zip(x.iter()) {
                        *gi += err * xi;
                    }
                    g[dim] += err;
                }
            }
            let (b1t, b2t) = (
                1.0 - beta1.powi(epoch as i32),
                1.0 - beta2.powi(epoch as i32),
            );
            for i in 0..w.len() {
                let g = grad[i] + if i % row == dim { 0.0 } else { L2 * w[i] };
                m[i] = beta1 * m[i] + (1.0 - beta1) * g;
                v[i] = beta2 * v[i] + (1.0 - beta2) * g * g;
                w[i] -= LEARNING_RATE * (m[i] / b1t) / ((v[i] / b2t).sqrt() + eps);
            }
        }
        Classifier {
            classes,
            dim,
            mean,
            weights: w,
        }
    }

    /// The weights as bytes: a magic that names this training, the sizes, the mean and the
    /// weights (little-endian f32).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        bytes.extend((self.classes as u32).to_le_bytes());
        bytes.extend((self.dim as u32).to_le_bytes());
        for x in self.mean.iter().chain(&self.weights) {
            bytes.extend(x.to_le_bytes());
        }
        bytes
    }

    /// Weights written by [`Classifier::to_bytes`] for `classes` classes of `dim`-long
    /// vectors; None for anything else (another training, a truncated file, a NaN).
    pub fn from_bytes(bytes: &[u8], classes: usize, dim: usize) -> Option<Classifier> {
        let body = bytes.strip_prefix(MAGIC)?;
        let (header, floats) = body.split_at_checked(8)?;
        let n = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
        let d = u32::from_le_bytes(header[4..].try_into().ok()?) as usize;
        if n != classes || d != dim || floats.len() != (dim + classes * (dim + 1)) * 4 {
            return None;
        }
        let values: Vec<f32> = floats
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if !values.iter().all(|x| x.is_finite()) {
            return None;
        }
        let (mean, weights) = values.split_at(dim);
        Some(Classifier {
            classes,
            dim,
            mean: mean.to_vec(),
            weights: weights.to_vec(),
        })
    }

    /// The probability of each class for unit vector `x`.
    pub fn probabilities(&self, x: &[f32]) -> Vec<f32> {
        let mut p = vec![0f32; self.classes];
        if x.len() == self.dim {
            logits(&self.weights, self.dim + 1, &centre(x, &self.mean), &mut p);
            softmax(&mut p);
        }
        p
    }
}

/// `x` less `mean`, as a unit vector.
fn centre(x: &[f32], mean: &[f32]) -> Vec<f32> {
    let v: Vec<f32> = x.iter().zip(mean).map(|(x, m)| x - m).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.into_iter().map(|x| x / norm).collect()
}

fn logits(w: &[f32], row: usize, x: &[f32], out: &mut [f32]) {
    let dim = row - 1;
    for (k, o) in out.iter_mut().enumerate() {
        let r = &w[k * row..(k + 1) * row];
        *o = r[..dim].iter().zip(x).map(|(a, b)| a * b).sum::<f32>() + r[dim];
    }
}

fn softmax(p: &mut [f32]) {
    let max = p.iter().copied().fold(f32::MIN, f32::max);
    let mut sum = 0.0;
    for x in p.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    p.iter_mut().for_each(|x| *x /= sum);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: [f32; 3]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn it_learns_classes_apart_and_is_unsure_between_them() {
        let data = [
            (0, unit([1.0, 0.1, 0.0])),
            (0, unit([0.9, 0.0, 0.1])),
            (1, unit([0.0, 1.0, 0.1])),
            (1, unit([0.1, 0.9, 0.0])),
            (2, unit([0.0, 0.1, 1.0])),
        ];
        let examples: Vec<(usize, &[f32])> = data.iter().map(|(c, v)| (*c, v.as_slice())).collect();
        let model = Classifier::train(&examples, 3);
        for (c, v) in &data {
            let p = model.probabilities(v);
            assert!(p[*c] > 0.6, "class {c}: {p:?}");
        }
        // Halfway between two classes, neither is likely.
        let p = model.probabilities(&unit([1.0, 1.0, 0.0]));
        assert!(p[0] < 0.6 && p[1] < 0.6, "{p:?}");
        // A vector of the wrong length has no class.
        assert!(model.probabilities(&[1.0]).iter().all(|p| *p == 0.0));

        // Written and read back, it is the same model; anything else is not read.
        let bytes = model.to_bytes();
        let again = Classifier::from_bytes(&bytes, 3, 3).unwrap();
        assert_eq!(
            again.probabilities(&data[0].1),
            model.probabilities(&data[0].1)
        );
        assert!(Classifier::from_bytes(&bytes, 4, 3).is_none());
        assert!(Classifier::from_bytes(&bytes[..bytes.len() - 1], 3, 3).is_none());
        let mut nan = bytes.clone();
        nan[16..20].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(Classifier::from_bytes(&nan, 3, 3).is_none());
    }
}
