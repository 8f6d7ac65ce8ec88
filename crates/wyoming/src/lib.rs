//! The Wyoming protocol (Home Assistant's and Rhasspy's voice services): each event is one JSON
//! header line `{"type", "data"?, "data_length"?, "payload_length"?}`, then `data_length` bytes
//! of JSON merged over `data`, then `payload_length` bytes of payload (PCM audio, usually).
//!
//! Cabin speaks it between the daemon and its ASR worker, so that an external Wyoming service
//! can stand in for the worker and Home Assistant can use Cabin's.

mod listener;
pub use listener::{next_event, serve, BindError, Halves, Listener};

use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The protocol version written in headers (that of the Python reference library's format:
/// data in its own section after the header).
pub const VERSION: &str = "1.5.4";

/// Longest header line accepted; a peer sending more is not speaking Wyoming.
const MAX_HEADER: usize = 64 * 1024;
/// Largest data section accepted: it holds an event's JSON fields, a few hundred bytes.
const MAX_DATA: usize = 1 << 20;
/// Largest payload accepted (an audio chunk is a few KiB; 16 MiB is ten minutes of 16 kHz
/// mono 16-bit audio in one chunk).
const MAX_PAYLOAD: usize = 16 << 20;
/// A section's buffer grows by at most this much ahead of the bytes that have arrived, so a
/// header that lies about its lengths costs no more memory than the bytes actually sent.
const GROWTH: usize = 64 << 10;
/// A service gives a peer that has begun an event this long to send its header, and this long
/// again, plus a second for every [`MIN_RATE`] bytes, for its data and payload; its own events
/// must be taken as fast. A Wyoming peer writes an event at once, in milliseconds; one that
/// sends a byte a second was holding a place for as long as the idle limit (30 s).
pub const EVENT_GRACE: Duration = Duration::from_secs(5);
/// The slowest a peer may send or take an event's bytes past [`EVENT_GRACE`]: the rate of 16 kHz
/// 16-bit audio, so a 16 MiB payload has 8.5 minutes.
pub const MIN_RATE: usize = 32 << 10;

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: String,
    pub data: Map<String, Value>,
    pub payload: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a Wyoming event: {0}")]
    Malformed(String),
    /// The peer sent (or took) an event too slowly ([`EVENT_GRACE`], [`MIN_RATE`]).
    #[error("too slow: {0}")]
    Slow(String),
}

/// How long an event of `bytes` (data and payload) may take past its header.
fn allowed(bytes: usize) -> Duration {
    EVENT_GRACE + Duration::from_secs_f64(bytes as f64 / MIN_RATE as f64)
}

impl Event {
    pub fn new(kind: &str, data: Value) -> Event {
        let data = match data {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        Event {
            kind: kind.into(),
            data,
            payload: Vec::new(),
        }
    }

    /// A field of `data` as a string.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.data.get(key).and_then(Value::as_str)
    }

    /// A field of `data` as an unsigned integer.
    pub fn uint(&self, key: &str) -> Option<u64> {
        self.data.get(key).and_then(Value::as_u64)
    }
}

/// The format of PCM audio in `audio-start` and `audio-chunk`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioFormat {
    pub rate: u32,
    /// Bytes per sample.
    pub width: u16,
    pub channels: u16,
}

impl AudioFormat {
    /// What Cabin's pipeline and whisper use: 16 kHz, 16-bit, mono.
    pub const SPEECH: AudioFormat = AudioFormat {
        rate: 16_000,
        width: 2,
        channels: 1,
    };

    /// Reads the format fields of an audio event.
    pub fn of(event: &Event) -> Result<AudioFormat, Error> {
        let field = |k: &str| {
            event
                .uint(k)
                .filter(|v| *v > 0 && *v <= u32::MAX as u64)
                .ok_or_else(|| Error::Malformed(format!("{} without a valid '{k}'", event.kind)))
        };
        Ok(AudioFormat {
            rate: field("rate")? as u32,
            width: field("width")?.min(u16::MAX as u64) as u16,
            channels: field("channels")?.min(u16::MAX as u64) as u16,
        })
    }

    fn json(&self) -> Value {
        json!({"rate": self.rate, "width": self.width, "channels": self.channels})
    }
}

pub fn audio_start(format: AudioFormat) -> Event {
    Event::new("audio-start", format.json())
}

pub fn audio_chunk(format: AudioFormat, pcm: Vec<u8>) -> Event {
    let mut e = Event::new("audio-chunk", format.json());
    e.payload = pcm;
    e
}

pub fn audio_stop() -> Event {
    Event::new("audio-stop", json!({}))
}

/// An `error` event: `code` for programs, `text` for people.
pub fn error(code: &str, text: &str) -> Event {
    Event::new("error", json!({"text": text, "code": code}))
}

/// Reads one event; `Ok(None)` at a clean end of stream (between events).
pub async fn read<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<Option<Event>, Error> {
    match read_header(r).await? {
        Some(header) => read_sections(r, header).await.map(Some),
        None => Ok(None),
    }
}

/// Reads one event as a service does, by the peer's progress: its header within
/// [`EVENT_GRACE`], its data and payload at [`MIN_RATE`] after another grace (an
/// [`Error::Slow`] past either). Start it when the event's first byte is there.
pub async fn read_paced<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<Option<Event>, Error> {
    let header = tokio::time::timeout(EVENT_GRACE, read_header(r))
        .await
        .map_err(|_| {
            Error::Slow(format!(
                "no whole header line within {} s",
                EVENT_GRACE.as_secs()
            ))
        })??;
    let Some(header) = header else {
        return Ok(None);
    };
    let bytes = header.data_length + header.payload_length;
    let limit = allowed(bytes);
    tokio::time::timeout(limit, read_sections(r, header))
        .await
        .map_err(|_| {
            Error::Slow(format!(
                "{bytes} bytes of data and payload not sent within {:.0} s (at least {} KiB/s)",
                limit.as_secs_f64(),
                MIN_RATE >> 10
            ))
        })?
        .map(Some)
}

/// An event's header line, parsed.
struct Header {
    kind: String,
    data: Map<String, Value>,
    data_length: usize,
    payload_length: usize,
}

/// Reads and parses a header line; `Ok(None)` at a clean end of stream.
async fn read_header<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<Option<Header>, Error> {
    let mut line = Vec::new();
    loop {
        let n = (&mut *r)
            .take((MAX_HEADER + 1 - line.len()) as u64)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 && line.is_empty() {
            return Ok(None);
        }
        if line.last() == Some(&b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                // Blank lines between events are tolerated.
                line.clear();
                continue;
            }
            break;
        }
        if n == 0 {
            return Err(Error::Malformed("stream ended inside a header".into()));
        }
        if line.len() > MAX_HEADER {
            return Err(Error::Malformed(format!(
                "header line longer than {MAX_HEADER} bytes"
            )));
        }
    }
    let header: Value = serde_json::from_slice(&line)
        .map_err(|e| Error::Malformed(format!("header is not JSON ({e})")))?;
    let Value::Object(mut header) = header else {
        return Err(Error::Malformed("header is not a JSON object".into()));
    };
    let kind = match header.remove("type") {
        Some(Value::String(t)) if !t.is_empty() => t,
        _ => return Err(Error::Malformed("header has no 'type'".into())),
    };
    let length = |h: &Map<String, Value>, key: &str, max: usize| -> Result<usize, Error> {
        match h.get(key) {
            None | Some(Value::Null) => Ok(0),
            Some(v) => v
                .as_u64()
                .map(|n| n as usize)
                .filter(|n| *n <= max)
                .ok_or_else(|| Error::Malformed(format!("'{key}' must be a length up to {max}"))),
        }
    };
    let data_length = length(&header, "data_length", MAX_DATA)?;
    let payload_length = length(&header, "payload_length", MAX_PAYLOAD)?;
    let data = match header.remove("data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(Error::Malformed("'data' is not an object".into())),
    };
    Ok(Some(Header {
        kind,
        data,
        data_length,
        payload_length,
    }))
}

/// The data and payload sections that `header` announces.
async fn read_sections<R: AsyncBufRead + Unpin>(r: &mut R, header: Header) -> Result<Event, Error> {
    let Header {
        kind,
        mut data,
        data_length,
        payload_length,
    } = header;
    if data_length > 0 {
        let buf = section(r, data_length).await?;
        match serde_json::from_slice(&buf) {
            Ok(Value::Object(extra)) => data.extend(extra),
            _ => return Err(Error::Malformed("data section is not a JSON object".into())),
        }
    }
    let payload = section(r, payload_length).await?;
    Ok(Event {
        kind,
        data,
        payload,
    })
}

/// The next `length` bytes, in a buffer grown as they arrive (at most [`GROWTH`] ahead).
async fn section<R: AsyncBufRead + Unpin>(r: &mut R, length: usize) -> Result<Vec<u8>, Error> {
    let mut buf = Vec::new();
    while buf.len() < length {
        buf.reserve_exact((length - buf.len()).min(GROWTH));
        let room = (buf.capacity() - buf.len()).min(length - buf.len()) as u64;
        if (&mut *r).take(room).read_buf(&mut buf).await? == 0 {
            return Err(Error::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
    }
    Ok(buf)
}

/// Writes one event as a service does, to a peer that must take it at [`MIN_RATE`] after
/// [`EVENT_GRACE`] (an [`Error::Slow`] otherwise): a client that stops reading does not hold
/// the service's place for ever.
pub async fn write_paced<W: AsyncWrite + Unpin>(w: &mut W, event: &Event) -> Result<(), Error> {
    let limit = allowed(event.payload.len());
    tokio::time::timeout(limit, write(w, event))
        .await
        .map_err(|_| {
            Error::Slow(format!(
                "the peer took less than {} KiB/s of a {}-byte event",
                MIN_RATE >> 10,
                event.payload.len()
            ))
        })?
}

/// Writes one event (data in its own section, as the reference library does) and flushes.
pub async fn write<W: AsyncWrite + Unpin>(w: &mut W, event: &Event) -> Result<(), Error> {
    let data = if event.data.is_empty() {
        Vec::new()
    } else {
        serde_json::to_vec(&event.data).expect("a JSON map serialises")
    };
    let mut header = Map::new();
    header.insert("type".into(), event.kind.clone().into());
    header.insert("version".into(), VERSION.into());
    if !data.is_empty() {
        header.insert("data_length".into(), data.len().into());
    }
    if !event.payload.is_empty() {
        header.insert("payload_length".into(), event.payload.len().into());
    }
    let mut out = serde_json::to_vec(&header).expect("a JSON map serialises");
    out.push(b'\n');
    out.extend_from_slice(&data);
    out.extend_from_slice(&event.payload);
    w.write_all(&out).await?;
    w.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> Result<Option<Event>, Error> {
        read(&mut &bytes[..]).await
    }

    #[tokio::test]
    async fn round_trip_with_data_and_payload() {
        let e = audio_chunk(AudioFormat::SPEECH, vec![1, 2, 3, 4]);
        let mut buf = Vec::new();
        write(&mut buf, &e).await.unwrap();
        let mut r = &buf[..];
        assert_eq!(read(&mut r).await.unwrap(), Some(e));
        assert_eq!(read(&mut r).await.unwrap(), None);
    }

    #[tokio::test]
    async fn data_section_merges_over_header_data() {
        let bytes = b"{\"type\":\"transcribe\",\"data\":{\"language\":\"de\",\"name\":\"x\"},\"data_length\":17}\n{\"language\":\"en\"}";
        let e = parse(bytes).await.unwrap().unwrap();
        assert_eq!(e.kind, "transcribe");
        assert_eq!(e.str("language"), Some("en"));
        assert_eq!(e.str("name"), Some("x"));
    }

    #[tokio::test]
    async fn old_style_inline_data_and_blank_lines() {
        let bytes =
            b"\n{\"type\":\"describe\"}\n{\"type\":\"audio-stop\",\"data\":{\"timestamp\":5}}\n";
        let mut r = &bytes[..];
        assert_eq!(read(&mut r).await.unwrap().unwrap().kind, "describe");
        assert_eq!(
            read(&mut r).await.unwrap().unwrap().uint("timestamp"),
            Some(5)
        );
    }

    #[tokio::test]
    async fn rejects_garbage_with_a_reason() {
        for (bytes, why) in [
            (&b"hello\n"[..], "not JSON"),
            (b"[1]\n", "not a JSON object"),
            (b"{\"data\":{}}\n", "no 'type'"),
            (
                b"{\"type\":\"x\",\"payload_length\":-1}\n",
                "payload_length",
            ),
            (
                b"{\"type\":\"x\",\"payload_length\":99999999999}\n",
                "payload_length",
            ),
            (b"{\"type\":\"x\",\"data_length\":2}\n[]", "data section"),
            (b"{\"type\":\"x\"", "inside a header"),
        ] {
            let err = parse(bytes).await.unwrap_err().to_string();
            assert!(err.contains(why), "{err} should say {why}");
        }
        let long = vec![b'{'; MAX_HEADER + 10];
        let err = parse(&long).await.unwrap_err().to_string();
        assert!(err.contains("longer than"), "{err}");
    }

    #[tokio::test]
    async fn truncated_payload_is_an_io_error() {
        let err = parse(b"{\"type\":\"audio-chunk\",\"payload_length\":10}\nabc")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Io(_)), "{err}");
    }

    /// Issue 37: a peer that sent a byte a second held a service's place until the idle limit.
    #[tokio::test(start_paused = true)]
    async fn an_event_sent_too_slowly_is_refused_by_its_progress() {
        use tokio::io::AsyncWriteExt;
        // A header a byte a second: past the grace.
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let trickle = tokio::spawn(async move {
            for byte in b"{\"type\":\"describe\"}\n" {
                let _ = client.write_all(&[*byte]).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let mut r = tokio::io::BufReader::new(server);
        let err = read_paced(&mut r).await.unwrap_err();
        assert!(matches!(err, Error::Slow(_)), "{err}");
        trickle.abort();
        // A payload of 1 MiB at 16 KiB/s: over the 37 s its size allows.
        let (mut client, server) = tokio::io::duplex(1 << 16);
        tokio::spawn(async move {
            let _ = client
                .write_all(b"{\"type\":\"audio-chunk\",\"payload_length\":1048576}\n")
                .await;
            for _ in 0..64 {
                let _ = client.write_all(&[0; 16 << 10]).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let mut r = tokio::io::BufReader::new(server);
        let err = read_paced(&mut r).await.unwrap_err();
        assert!(err.to_string().contains("1048576 bytes"), "{err}");
        // At once: read.
        let mut bytes = Vec::new();
        write(
            &mut bytes,
            &audio_chunk(AudioFormat::SPEECH, vec![0; 1 << 20]),
        )
        .await
        .unwrap();
        let e = read_paced(&mut &bytes[..]).await.unwrap().unwrap();
        assert_eq!(e.payload.len(), 1 << 20);
    }

    /// A peer that takes nothing: the service's write gives up instead of waiting for ever.
    #[tokio::test(start_paused = true)]
    async fn an_event_not_taken_is_given_up() {
        let (_client, mut server) = tokio::io::duplex(1024);
        let err = write_paced(
            &mut server,
            &audio_chunk(AudioFormat::SPEECH, vec![0; 4096]),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, Error::Slow(_)), "{err}");
    }

    #[test]
    fn audio_format_fields_are_checked() {
        let ok = audio_start(AudioFormat::SPEECH);
        assert_eq!(AudioFormat::of(&ok).unwrap(), AudioFormat::SPEECH);
        let bad = Event::new(
            "audio-start",
            json!({"rate": 16000, "width": 0, "channels": 1}),
        );
        assert!(AudioFormat::of(&bad)
            .unwrap_err()
            .to_string()
            .contains("width"));
    }
}
