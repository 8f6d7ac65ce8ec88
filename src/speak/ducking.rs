//! Media ducking: the media goes quieter while Cabin speaks and comes back after, through
//! the vehicle call the profile's `[speech.ducking]` names.

use crate::act::vehicle::{ResolvedAction, VehicleBus};
use crate::profile::dbus_value::ArgValue;
use crate::profile::Ducking;
use tokio::sync::mpsc;

/// The task that ducks and restores the media, in the order asked, skipping repeats. It
/// restores once at start-up: a daemon that crashed mid-reply leaves the media ducked.
pub fn start(ducking: Ducking, vehicle: VehicleBus) -> mpsc::UnboundedSender<bool> {
    let (tx, mut rx) = mpsc::unbounded_channel::<bool>();
    tokio::spawn(async move {
        let call = |down: bool| ResolvedAction {
            kind: "call",
            service: ducking.service.clone(),
            path: ducking.path.clone(),
            interface: ducking.interface.clone(),
            member: if down {
                ducking.duck.clone()
            } else {
                ducking.restore.clone()
            },
            args: if down {
                vec![ArgValue::Uint32(ducking.level)]
            } else {
                vec![]
            },
            target: "the media".into(),
        };
        let mut ducked = None;
        let mut startup = Some(false);
        loop {
            let down = match startup.take() {
                Some(down) => down,
                None => match rx.recv().await {
                    Some(down) => down,
                    None => break,
                },
            };
            if ducked == Some(down) {
                continue;
            }
            match vehicle.execute(&call(down)).await {
                Ok(_) => ducked = Some(down),
                Err(e) => {
                    tracing::warn!(
                        "cannot {} the media: {}",
                        if down { "duck" } else { "restore" },
                        e.log_detail()
                    );
                    // Unknown now: the next request is sent whatever it is.
                    ducked = None;
                }
            }
        }
    });
    tx
}
