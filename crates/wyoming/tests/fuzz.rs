//! Fuzzing the Wyoming reader (`PROPTEST_CASES=100000 cargo test --release -p wyoming fuzz_`
//! for a long run): any bytes are read as events or refused with a reason, never a panic or a
//! hang; any event written reads back as itself.

use proptest::prelude::*;
use serde_json::{Map, Value};

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

/// Reads events until the end or an error; how many were read.
fn read_all(bytes: &[u8]) -> usize {
    block_on(async {
        let mut r = bytes;
        let mut n = 0;
        // Each event consumes at least a byte, so this ends.
        while let Ok(Some(_)) = wyoming::read(&mut r).await {
            n += 1;
        }
        n
    })
}

/// A header line with these fields, the rest of the bytes after it.
fn header(kind: &str, data: &Map<String, Value>, lengths: (Value, Value), rest: &[u8]) -> Vec<u8> {
    let mut h = serde_json::json!({"type": kind, "data": data});
    h["data_length"] = lengths.0;
    h["payload_length"] = lengths.1;
    let mut out = serde_json::to_vec(&h).unwrap();
    out.push(b'\n');
    out.extend_from_slice(rest);
    out
}

fn length() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0u64..64).prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        Just(Value::Null),
        any::<String>().prop_map(Value::from),
    ]
}

fn data() -> impl Strategy<Value = Map<String, Value>> {
    proptest::collection::btree_map(any::<String>(), any::<String>(), 0..4)
        .prop_map(|m| m.into_iter().map(|(k, v)| (k, Value::from(v))).collect())
}

proptest! {
    #[test]
    fn fuzz_any_bytes_are_read_or_refused(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        read_all(&bytes);
    }

    #[test]
    fn fuzz_headers_with_any_lengths_are_read_or_refused(
        kind in "[a-z-]{0,12}",
        data in data(),
        lengths in (length(), length()),
        rest in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        read_all(&header(&kind, &data, lengths, &rest));
    }

    #[test]
    fn fuzz_events_read_back_as_written(
        kind in "[a-z][a-z-]{0,15}",
        data in data(),
        payload in proptest::collection::vec(any::<u8>(), 0..1024),
    ) {
        let event = wyoming::Event { kind, data, payload };
        let mut bytes = Vec::new();
        block_on(wyoming::write(&mut bytes, &event)).unwrap();
        let read = block_on(async { wyoming::read(&mut &bytes[..]).await }).unwrap();
        prop_assert_eq!(read, Some(event));
    }
}
