//! Actions on the vehicle: the D-Bus calls that intents name, and the driving-safety policy
//! that every one of them passes first.

pub mod safety;
pub mod vehicle;

pub use vehicle::{Failure, ResolvedAction, VehicleBus};
