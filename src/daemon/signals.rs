//! The event loop's notifications out to the world: D-Bus signals (and `PropertiesChanged`
//! for `State`) and systemd watchdog pings.

use crate::daemon::api::{AssistantApi, OBJECT_PATH};
use crate::daemon::events::Notification;
use crate::runtime::systemd::Notifier;
use std::sync::Arc;
use tokio::sync::mpsc;
use zbus::object_server::SignalEmitter;

/// Emits notifications as D-Bus signals (and `PropertiesChanged` for `State`), and
/// heartbeats as systemd watchdog pings.
pub async fn forward(
    conn: zbus::Connection,
    mut notifications: mpsc::Receiver<Notification>,
    systemd: Option<Arc<Notifier>>,
) {
    let emitter =
        SignalEmitter::new(&conn, OBJECT_PATH).expect("OBJECT_PATH is a valid object path");
    while let Some(n) = notifications.recv().await {
        let sent = match &n {
            Notification::State(state) => {
                let changed = match conn
                    .object_server()
                    .interface::<_, AssistantApi>(OBJECT_PATH)
                    .await
                {
                    Ok(iface) => iface.get().await.state_changed(&emitter).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = changed {
                    tracing::warn!("cannot emit PropertiesChanged: {e}");
                }
                AssistantApi::emit_state_changed(&emitter, state.as_str()).await
            }
            Notification::Transcript(text) => AssistantApi::transcript(&emitter, text).await,
            Notification::Reply(text) => AssistantApi::reply(&emitter, text).await,
            Notification::ActionExecuted {
                intent,
                success,
                detail,
            } => AssistantApi::action_executed(&emitter, intent, *success, detail).await,
            Notification::Microphone { available, detail } => {
                AssistantApi::microphone_changed(&emitter, *available, detail).await
            }
            Notification::Heartbeat => {
                if let Some(n) = &systemd {
                    n.notify("WATCHDOG=1");
                }
                Ok(())
            }
        };
        if let Err(e) = sent {
            let what = match &n {
                Notification::State(s) => format!("StateChanged({})", s.as_str()),
                Notification::Transcript(_) => "Transcript".into(),
                Notification::Reply(_) => "Reply".into(),
                Notification::ActionExecuted { intent, .. } => format!("ActionExecuted({intent})"),
                Notification::Microphone { .. } => "MicrophoneChanged".into(),
                Notification::Heartbeat => "watchdog ping".into(),
            };
            tracing::warn!("cannot emit {what}: {e}");
        }
    }
}
