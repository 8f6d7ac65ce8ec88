//! Fixed seeds for an ONNX model's random operators, written into the model's bytes.
//!
//! ONNX Runtime seeds a `RandomNormal(Like)`/`RandomUniform(Like)`/`Multinomial`/`Bernoulli`
//! without a `seed` attribute from the clock, and its C API has no global seed. Adding the
//! attribute is a protobuf edit: the path `ModelProto.graph → GraphProto.node` (and subgraphs
//! in node attributes) is decoded and re-encoded, every other field is copied as it was.

/// Operators that draw random numbers.
const RANDOM: &[&str] = &[
    "RandomNormal",
    "RandomNormalLike",
    "RandomUniform",
    "RandomUniformLike",
    "Multinomial",
    "Bernoulli",
];

/// `model` with a `seed` attribute on each random operator that has none: `seed`, `seed + 1`, …
/// in the order the operators appear (each operator its own stream).
pub fn seed_random_operators(model: &[u8], seed: u64) -> Result<Vec<u8>, String> {
    let mut next = seed;
    rewrite(model, &mut next, Message::Model)
        .map_err(|e| format!("not a valid ONNX model ({e}); is the file complete?"))
}

#[derive(Clone, Copy, PartialEq)]
enum Message {
    Model,
    Graph,
    Node,
    Attribute,
}

/// One protobuf field: its number, wire type and raw bytes (the payload of a length-delimited
/// field, else the encoded value).
struct Field<'a> {
    number: u64,
    wire: u8,
    raw: &'a [u8],
}

fn fields(mut buf: &[u8]) -> Result<Vec<Field<'_>>, &'static str> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let (number, wire) = (key >> 3, (key & 7) as u8);
        let raw = match wire {
            0 => {
                let start = buf;
                varint(&mut buf)?;
                &start[..start.len() - buf.len()]
            }
            1 => take(&mut buf, 8)?,
            2 => {
                let len = usize::try_from(varint(&mut buf)?).map_err(|_| "a length overflows")?;
                take(&mut buf, len)?
            }
            5 => take(&mut buf, 4)?,
            _ => return Err("an unknown wire type"),
        };
        out.push(Field { number, wire, raw });
    }
    Ok(out)
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], &'static str> {
    if buf.len() < n {
        return Err("a field runs past the end");
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

fn varint(buf: &mut &[u8]) -> Result<u64, &'static str> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first().ok_or("a varint runs past the end")?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("a varint is too long")
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_field(out: &mut Vec<u8>, number: u64, wire: u8, raw: &[u8]) {
    put_varint(out, (number << 3) | u64::from(wire));
    if wire == 2 {
        put_varint(out, raw.len() as u64);
    }
    out.extend_from_slice(raw);
}

/// `buf`, a message of kind `kind`, with the random operators under it seeded.
fn rewrite(buf: &[u8], next: &mut u64, kind: Message) -> Result<Vec<u8>, &'static str> {
    let fields = fields(buf)?;
    let mut out = Vec::with_capacity(buf.len() + 16);
    // The field numbers that hold a message on the way to a node, per message kind:
    // ModelProto.graph = 7; GraphProto.node = 1; NodeProto.attribute = 5;
    // AttributeProto.g = 6, .graphs = 11.
    let descend = |number: u64| match kind {
        Message::Model => (number == 7).then_some(Message::Graph),
        Message::Graph => (number == 1).then_some(Message::Node),
        Message::Node => (number == 5).then_some(Message::Attribute),
        Message::Attribute => matches!(number, 6 | 11).then_some(Message::Graph),
    };
    for f in &fields {
        match descend(f.number).filter(|_| f.wire == 2) {
            Some(inner) => put_field(&mut out, f.number, 2, &rewrite(f.raw, next, inner)?),
            None => put_field(&mut out, f.number, f.wire, f.raw),
        }
    }
    if kind == Message::Node {
        let op = fields.iter().find(|f| f.number == 4 && f.wire == 2);
        let is_random = op.is_some_and(|f| RANDOM.iter().any(|r| r.as_bytes() == f.raw));
        let has_seed = fields
            .iter()
            .filter(|f| f.number == 5 && f.wire == 2)
            .any(|a| {
                fields_of(a.raw)
                    .iter()
                    .any(|f| f.number == 1 && f.raw == b"seed")
            });
        if is_random && !has_seed {
            // AttributeProto { name: "seed", f: <seed>, type: FLOAT (1) }; seeds stay exact
            // as floats below 2^24.
            let mut attribute = Vec::new();
            put_field(&mut attribute, 1, 2, b"seed");
            put_field(
                &mut attribute,
                2,
                5,
                &((*next % (1 << 24)) as f32).to_le_bytes(),
            );
            put_field(&mut attribute, 20, 0, &[1]);
            put_field(&mut out, 5, 2, &attribute);
            *next += 1;
        }
    }
    Ok(out)
}

fn fields_of(buf: &[u8]) -> Vec<Field<'_>> {
    fields(buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(op: &str, attributes: &[Vec<u8>]) -> Vec<u8> {
        let mut n = Vec::new();
        put_field(&mut n, 1, 2, b"in");
        put_field(&mut n, 2, 2, b"out");
        put_field(&mut n, 4, 2, op.as_bytes());
        for a in attributes {
            put_field(&mut n, 5, 2, a);
        }
        n
    }

    fn model(nodes: &[Vec<u8>]) -> Vec<u8> {
        let mut g = Vec::new();
        for n in nodes {
            put_field(&mut g, 1, 2, n);
        }
        put_field(&mut g, 2, 2, b"graph");
        let mut m = Vec::new();
        put_field(&mut m, 1, 0, &[8]);
        put_field(&mut m, 7, 2, &g);
        m
    }

    /// (op, seed) of each node of a model.
    fn seeds(m: &[u8]) -> Vec<(String, Option<f32>)> {
        let graph = fields_of(m).into_iter().find(|f| f.number == 7).unwrap();
        fields_of(graph.raw)
            .into_iter()
            .filter(|f| f.number == 1)
            .map(|n| {
                let nf = fields_of(n.raw);
                let op = nf.iter().find(|f| f.number == 4).unwrap();
                let seed = nf.iter().filter(|f| f.number == 5).find_map(|a| {
                    let af = fields_of(a.raw);
                    af.iter()
                        .any(|f| f.number == 1 && f.raw == b"seed")
                        .then(|| {
                            let v = af.iter().find(|f| f.number == 2).unwrap();
                            f32::from_le_bytes(v.raw.try_into().unwrap())
                        })
                });
                (String::from_utf8(op.raw.to_vec()).unwrap(), seed)
            })
            .collect()
    }

    #[test]
    fn each_random_operator_gets_its_own_seed_and_the_rest_is_kept() {
        let mut own = Vec::new();
        put_field(&mut own, 1, 2, b"seed");
        put_field(&mut own, 2, 5, &5.0f32.to_le_bytes());
        let m = model(&[
            node("Conv", &[]),
            node("RandomNormalLike", &[]),
            node("RandomUniform", &[own]),
            node("RandomNormalLike", &[]),
        ]);
        let seeded = seed_random_operators(&m, 40).unwrap();
        assert_eq!(
            seeds(&seeded),
            vec![
                ("Conv".into(), None),
                ("RandomNormalLike".into(), Some(40.0)),
                ("RandomUniform".into(), Some(5.0)),
                ("RandomNormalLike".into(), Some(41.0)),
            ]
        );
        // A model without random operators comes back byte for byte.
        let plain = model(&[node("Conv", &[]), node("Relu", &[])]);
        assert_eq!(seed_random_operators(&plain, 1).unwrap(), plain);
    }

    #[test]
    fn a_truncated_model_is_refused_with_a_reason() {
        let m = model(&[node("RandomNormalLike", &[])]);
        let e = seed_random_operators(&m[..m.len() - 3], 1).unwrap_err();
        assert!(e.contains("not a valid ONNX model"), "{e}");
    }
}
