//! Cabin without the daemon: an assistant built in this process, for `say --profile`,
//! `listen` and `eval`.

use cabin::act::VehicleBus;
use cabin::runtime::bus::BusAddress;
use cabin::runtime::worker::WorkerState;
use cabin::understand::brain::{self, LlmChoice};
use cabin::{Assistant, Profile};
use std::sync::Arc;
use std::time::Duration;

/// An assistant on `bus` (else the profile's vehicle bus) with the model routes `llm` asks
/// for, waiting (at most `settle`) for a worker it starts, and for its intent shortlist.
pub async fn assistant(
    profile: Arc<Profile>,
    bus: Option<BusAddress>,
    llm: &LlmChoice,
    settle: Duration,
) -> Assistant {
    let bus = bus.unwrap_or_else(|| profile.vehicle.bus.clone());
    let vehicle = VehicleBus::new(bus, profile.vehicle.timeout);
    let assistant = Assistant::new(profile.clone(), vehicle);
    let Some(brain) = brain::start(&profile, llm) else {
        return assistant;
    };
    brain.shortlist_built().await;
    if let WorkerState::Down(why) = brain.worker().settled(settle).await {
        eprintln!("warning: no local model: {why}");
    } else if let LlmChoice::Url(url) = llm {
        if let Err(e) = brain.warm_up().await {
            eprintln!("warning: the model endpoint {url} failed: {e}");
        }
    }
    assistant.with_brain(Arc::new(brain))
}
