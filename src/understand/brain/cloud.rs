//! The cloud route: an OpenAI-compatible endpoint, used only where the profile allows it,
//! probed in the background so a turn never waits to learn it is unreachable.

use crate::profile::{CloudPolicy, CloudSettings};
use crate::runtime::llm::ChatClient;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub(super) struct Cloud {
    pub(super) client: ChatClient,
    pub(super) budget: Duration,
    pub(super) redact: bool,
    /// Last known reachability, kept by a background probe and by request outcomes; read
    /// without waiting.
    pub(super) reachable: Arc<AtomicBool>,
    pub(super) probe: tokio::task::JoinHandle<()>,
}

impl Drop for Cloud {
    fn drop(&mut self) {
        self.probe.abort();
    }
}

pub(super) fn cloud_client(c: &CloudSettings) -> Option<ChatClient> {
    match c.policy {
        CloudPolicy::Off => return None,
        CloudPolicy::OptIn => {
            // The driver's consent is not asked for yet, so opt-in stays off.
            tracing::info!("cloud policy is opt_in and no consent has been given: cloud off");
            return None;
        }
        CloudPolicy::On => {}
    }
    let key = match (&c.api_key_env, &c.api_key_file) {
        (Some(var), _) => match std::env::var(var) {
            Ok(k) => Some(k),
            Err(_) => {
                tracing::warn!("cloud API key variable {var} is not set; sending no key");
                None
            }
        },
        (None, Some(path)) => match read_key_file(path) {
            Ok(k) => Some(k),
            Err(e) => {
                tracing::error!("cloud off: {e}");
                return None;
            }
        },
        (None, None) => None,
    };
    Some(ChatClient::new(&c.base_url, &c.model, key))
}

/// Reads a key file that only its owner can read.
pub(super) fn read_key_file(path: &std::path::Path) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot read the API key file {}: {e}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "the API key file {} is readable by others; run `chmod 600 {}`",
            path.display(),
            path.display()
        ));
    }
    std::fs::read_to_string(path)
        .map(|k| k.trim().to_string())
        .map_err(|e| format!("cannot read the API key file {}: {e}", path.display()))
}

/// Keeps `reachable` current with a TCP connect to the endpoint every 30 s (5 s while down).
pub(super) async fn probe(base: String, reachable: Arc<AtomicBool>) {
    let Some(addr) = host_port(&base) else {
        reachable.store(false, Ordering::Relaxed);
        return;
    };
    loop {
        let ok = matches!(
            tokio::time::timeout(
                Duration::from_secs(2),
                tokio::net::TcpStream::connect(&addr)
            )
            .await,
            Ok(Ok(_))
        );
        if ok != reachable.swap(ok, Ordering::Relaxed) {
            tracing::info!(reachable = ok, "cloud endpoint {base}");
        }
        tokio::time::sleep(Duration::from_secs(if ok { 30 } else { 5 })).await;
    }
}

/// `host:port` of an http(s) URL.
pub(super) fn host_port(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?.rsplit('@').next()?;
    if authority.contains(':') && !authority.ends_with(']') {
        return Some(authority.to_string());
    }
    let port = if scheme == "https" { 443 } else { 80 };
    Some(format!("{authority}:{port}"))
}

/// Replaces what could name a person or a place (capitalised words after the first, digits)
/// before text leaves the vehicle.
pub fn redact(text: &str) -> String {
    text.split_whitespace()
        .enumerate()
        .map(|(i, w)| {
            if w.chars().any(|c| c.is_ascii_digit()) {
                "[number]".to_string()
            } else if i > 0 && w.chars().next().is_some_and(char::is_uppercase) && w != "I" {
                "[name]".to_string()
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
