//! Where a Wyoming service listens: `tcp://HOST:PORT` or `unix://PATH` (Wyoming's URIs).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;

/// Why a service could not listen.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("'{0}' is not a Wyoming address: use tcp://HOST:PORT or unix://PATH")]
    BadAddress(String),
    #[error("cannot listen on {uri}: {source}")]
    Io { uri: String, source: std::io::Error },
}

pub enum Listener {
    Tcp(tokio::net::TcpListener),
    /// With the path this process bound (removed when it stops); none for an inherited socket.
    Unix(tokio::net::UnixListener, Option<std::path::PathBuf>),
}

/// A connection's read and write halves.
pub type Halves = (
    Box<dyn AsyncRead + Unpin + Send>,
    Box<dyn AsyncWrite + Unpin + Send>,
);

impl Listener {
    pub async fn bind(uri: &str) -> Result<Listener, BindError> {
        let io = |source| BindError::Io {
            uri: uri.into(),
            source,
        };
        if let Some(addr) = uri.strip_prefix("tcp://") {
            Ok(Listener::Tcp(
                tokio::net::TcpListener::bind(addr).await.map_err(io)?,
            ))
        } else if let Some(path) = uri.strip_prefix("unix://").filter(|p| !p.is_empty()) {
            // A socket left by a killed service would make bind fail.
            if std::fs::symlink_metadata(path).is_ok_and(|m| {
                use std::os::unix::fs::FileTypeExt;
                m.file_type().is_socket()
            }) {
                let _ = std::fs::remove_file(path);
            }
            let l = tokio::net::UnixListener::bind(path).map_err(io)?;
            Ok(Listener::Unix(l, Some(path.into())))
        } else {
            Err(BindError::BadAddress(uri.into()))
        }
    }

    /// A listening Unix socket this process was given (inherited from its parent): whoever
    /// made it chose who may connect. Must be called within a tokio runtime.
    pub fn from_unix(listener: std::os::unix::net::UnixListener) -> std::io::Result<Listener> {
        listener.set_nonblocking(true)?;
        Ok(Listener::Unix(
            tokio::net::UnixListener::from_std(listener)?,
            None,
        ))
    }

    /// The address clients connect to (the real port when bound to port 0).
    pub fn uri(&self) -> String {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("tcp://{a}"),
                Err(_) => "tcp://?".into(),
            },
            Listener::Unix(l, _) => match l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| format!("unix://{}", p.display())))
            {
                Some(uri) => uri,
                None => "unix://?".into(),
            },
        }
    }

    pub async fn accept(&self) -> std::io::Result<Halves> {
        Ok(match self {
            Listener::Tcp(l) => {
                let (s, _) = l.accept().await?;
                let _ = s.set_nodelay(true);
                let (r, w) = s.into_split();
                (Box::new(r), Box::new(w))
            }
            Listener::Unix(l, _) => {
                let (s, _) = l.accept().await?;
                let (r, w) = s.into_split();
                (Box::new(r), Box::new(w))
            }
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, Some(path)) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Accepts connections until `shutdown`, each served by `handle` on a task of its own. Past
/// `connections` open at once, a new one is told `busy` (an `error` event) and closed.
pub async fn serve<H, F>(
    listener: &Listener,
    connections: usize,
    shutdown: impl Future<Output = ()>,
    handle: H,
) where
    H: Fn(Halves) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    tokio::pin!(shutdown);
    let open = Arc::new(Semaphore::new(connections));
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            conn = listener.accept() => match conn {
                Ok((r, mut w)) => {
                    let Ok(permit) = open.clone().try_acquire_owned() else {
                        let busy = crate::error("busy", &format!(
                            "{connections} connections are open already; close one, or try again"
                        ));
                        tokio::spawn(async move {
                            let _ = tokio::time::timeout(
                                Duration::from_secs(1),
                                crate::write(&mut w, &busy),
                            )
                            .await;
                        });
                        continue;
                    };
                    let served = handle((r, w));
                    tokio::spawn(async move {
                        served.await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    // Out of descriptors, most likely: wait for some to close.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// A client's next event; None once it has hung up, broke the framing (it is told
/// `malformed-event`: the stream is out of step), sent nothing for `idle` between events (told
/// `idle`) or began an event and sent it too slowly (told `too-slow`: [`crate::read_paced`]).
pub async fn next_event<R, W>(r: &mut R, w: &mut W, idle: Duration) -> Option<crate::Event>
where
    R: tokio::io::AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    use tokio::io::AsyncBufReadExt;
    // Between events a client may be quiet for `idle`; from an event's first byte it is timed
    // by its progress.
    match tokio::time::timeout(idle, r.fill_buf()).await {
        Err(_) => {
            let idle = crate::error(
                "idle",
                &format!("no event for {} s; closing the connection", idle.as_secs()),
            );
            let _ = crate::write_paced(w, &idle).await;
            return None;
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "client gone");
            return None;
        }
        Ok(Ok([])) => return None,
        Ok(Ok(_)) => {}
    }
    match crate::read_paced(r).await {
        Ok(e) => e,
        Err(crate::Error::Io(e)) => {
            tracing::debug!(error = %e, "client gone");
            None
        }
        Err(crate::Error::Malformed(m)) => {
            let _ = crate::write_paced(w, &crate::error("malformed-event", &m)).await;
            None
        }
        Err(crate::Error::Slow(m)) => {
            tracing::debug!(why = %m, "client too slow");
            let _ = crate::write_paced(w, &crate::error("too-slow", &m)).await;
            None
        }
    }
}
