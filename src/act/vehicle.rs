//! Executes an intent's action on the vehicle bus: a method call or a property read/write,
//! with a deadline, turning every D-Bus failure into a typed [`Failure`].

use crate::act::safety::{parse_gear, DrivingState};
use crate::profile::dbus_value::{speak_variant, ArgValue};
use crate::profile::{Action, ActionKind, ArgSource, SlotValue, StateSource};
use crate::runtime::bus::BusAddress;
use crate::text::lexicon::Replies;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::Mutex;

/// An action with its arguments filled in: exactly what goes on the bus.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedAction {
    pub kind: &'static str,
    pub service: String,
    pub path: String,
    pub interface: String,
    /// The method, or the property for property actions.
    pub member: String,
    pub args: Vec<ArgValue>,
    #[serde(skip)]
    pub target: String,
}

/// Why an action failed; each maps to its own spoken reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// No connection to the vehicle bus at all.
    BusDown(String),
    /// The service is not on the bus.
    Unreachable(String),
    /// The service did not answer within the profile's timeout.
    Timeout(Duration),
    /// The service answered with a D-Bus error.
    Refused { name: String, message: String },
    /// The driving-state service's name is owned by a process of user `uid`, not of `user`,
    /// whose process owned it at the first read: its answers are not believed.
    Impostor { user: u32, uid: u32 },
}

impl Failure {
    /// A short spoken reply naming the device ("I couldn't reach the climate control.").
    pub fn reply(&self, target: &str, replies: &Replies) -> String {
        let template = match self {
            Failure::BusDown(_) | Failure::Unreachable(_) | Failure::Impostor { .. } => {
                &replies.unreachable
            }
            Failure::Timeout(_) => &replies.timeout,
            Failure::Refused { .. } => &replies.refused,
        };
        template.replace("{target}", target)
    }

    /// The detail for logs: a service's error message may name people or places, so only
    /// its error name is logged unless private logging is on.
    pub fn log_detail(&self) -> String {
        match self {
            Failure::Refused { name, message } => {
                format!("{name}: {}", crate::runtime::logging::private(message))
            }
            other => other.detail(),
        }
    }

    /// The technical detail, for `ActionExecuted` and `--json`.
    pub fn detail(&self) -> String {
        match self {
            Failure::BusDown(e) => format!("vehicle bus unavailable: {e}"),
            Failure::Unreachable(e) => format!("service not reachable: {e}"),
            Failure::Timeout(t) => format!("no answer within {} ms", t.as_millis()),
            Failure::Refused { name, message } => format!("{name}: {message}"),
            Failure::Impostor { user, uid } => format!(
                "the service is owned by a process of uid {uid}, not of uid {user} as at the first read"
            ),
        }
    }
}

/// What a successful action returned, rendered for speech ("21.5"), if anything.
pub type ActionOutput = Option<String>;

/// Why an intent's action can't be filled from the slots it has.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("slot '{0}' has no value")]
    Unfilled(String),
    #[error(transparent)]
    Value(#[from] crate::profile::dbus_value::ValueError),
}

impl ResolvedAction {
    /// Fills an action's arguments from matched slot values. Slot values have already been
    /// range-checked; this checks them against the D-Bus type too.
    pub fn resolve(
        action: &Action,
        slots: &BTreeMap<String, SlotValue>,
    ) -> Result<ResolvedAction, ResolveError> {
        let arg = |spec: &crate::profile::ArgSpec| -> Result<ArgValue, ResolveError> {
            match &spec.source {
                ArgSource::Literal(v) => Ok(v.clone()),
                ArgSource::Format(f) => Ok(ArgValue::String(fill(f, slots))),
                ArgSource::Slot(name) => match slots.get(name) {
                    None => Err(ResolveError::Unfilled(name.clone())),
                    Some(SlotValue::Number(n)) => Ok(spec.ty.number(*n)?),
                    Some(SlotValue::Enum { key, .. }) => Ok(ArgValue::String(key.clone())),
                    Some(SlotValue::Text(t)) => Ok(ArgValue::String(t.clone())),
                },
            }
        };
        let (kind, member, args) = match &action.kind {
            ActionKind::Call { method, args } => (
                "call",
                method.clone(),
                args.iter().map(arg).collect::<Result<Vec<_>, _>>()?,
            ),
            ActionKind::SetProperty { property, value } => {
                ("set_property", property.clone(), vec![arg(value)?])
            }
            ActionKind::GetProperty { property } => ("get_property", property.clone(), vec![]),
        };
        Ok(ResolvedAction {
            kind,
            service: action.service.clone(),
            path: action.path.clone(),
            interface: action.interface.clone(),
            member,
            args,
            target: action.target.clone(),
        })
    }
}

/// Replaces `{slot}` placeholders with the slots' spoken values.
pub fn fill(template: &str, slots: &BTreeMap<String, SlotValue>) -> String {
    let mut out = template.to_string();
    for (name, value) in slots {
        out = out.replace(&format!("{{{name}}}"), &value.spoken());
    }
    out
}

/// The connection to the vehicle services' bus. Connects lazily and reconnects after a
/// failure, so a bus that comes up after Cabin is still used.
pub struct VehicleBus {
    bus: BusAddress,
    timeout: Duration,
    conn: Mutex<Option<zbus::Connection>>,
    /// Proxy on the driving-state interface of the service's owner, by its unique name. It
    /// caches nothing: zbus answers a cached read without a call and keeps the cache after the
    /// service is gone, so the safety policy would judge on the last state it saw. Every read
    /// asks the service (four calls on a local bus, well under a millisecond each).
    state_proxy: Mutex<Option<StateProxy>>,
    /// The user whose process owned the driving-state service when Cabin first read it: on a
    /// bus that lets anyone own any name, another user's process could take the name after
    /// the service dies and say "park". Only the pinned user's answers are believed.
    state_user: Mutex<Option<u32>>,
    /// Why the last driving-state read failed: said once as a warning, not at every turn
    /// while it lasts (a dead service, or `cabin eval` with no bus, would fill the log).
    state_failure: std::sync::Mutex<Option<String>>,
}

/// The driving-state interface at one owner of the service's name.
#[derive(Clone)]
struct StateProxy {
    owner: String,
    uid: u32,
    proxy: zbus::Proxy<'static>,
}

impl VehicleBus {
    pub fn new(bus: BusAddress, timeout: Duration) -> VehicleBus {
        VehicleBus {
            bus,
            timeout,
            conn: Mutex::new(None),
            state_proxy: Mutex::new(None),
            state_user: Mutex::new(None),
            state_failure: std::sync::Mutex::new(None),
        }
    }

    /// Uses an existing connection (the daemon shares its own when both are on one bus).
    pub fn with_connection(
        bus: BusAddress,
        timeout: Duration,
        conn: zbus::Connection,
    ) -> VehicleBus {
        VehicleBus {
            bus,
            timeout,
            conn: Mutex::new(Some(conn)),
            state_proxy: Mutex::new(None),
            state_user: Mutex::new(None),
            state_failure: std::sync::Mutex::new(None),
        }
    }

    async fn connection(&self) -> Result<zbus::Connection, Failure> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let c = tokio::time::timeout(self.timeout, self.bus.connect())
            .await
            .map_err(|_| Failure::BusDown(format!("connecting to the {} timed out", self.bus)))?
            .map_err(|e| Failure::BusDown(format!("{}: {e}", self.bus)))?;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// Runs the action within the profile's timeout.
    pub async fn execute(&self, action: &ResolvedAction) -> Result<ActionOutput, Failure> {
        let conn = self.connection().await?;
        let call = async {
            match action.kind {
                "call" => {
                    let reply = if action.args.is_empty() {
                        conn.call_method(
                            Some(action.service.as_str()),
                            action.path.as_str(),
                            Some(action.interface.as_str()),
                            action.member.as_str(),
                            &(),
                        )
                        .await
                    } else {
                        let body = action
                            .args
                            .iter()
                            .fold(zbus::Structure::builder(), |b, a| {
                                b.append_field(a.to_variant())
                            })
                            .build()?;
                        conn.call_method(
                            Some(action.service.as_str()),
                            action.path.as_str(),
                            Some(action.interface.as_str()),
                            action.member.as_str(),
                            &body,
                        )
                        .await
                    }?;
                    let body = reply.body();
                    if body.signature().to_string().is_empty() {
                        return Ok(None);
                    }
                    let fields: zbus::Structure<'_> = body.deserialize()?;
                    Ok(fields.fields().first().map(speak_variant))
                }
                "set_property" => {
                    let value = action.args[0].to_variant();
                    conn.call_method(
                        Some(action.service.as_str()),
                        action.path.as_str(),
                        Some("org.freedesktop.DBus.Properties"),
                        "Set",
                        &(action.interface.as_str(), action.member.as_str(), value),
                    )
                    .await?;
                    Ok(None)
                }
                _ => {
                    let reply = conn
                        .call_method(
                            Some(action.service.as_str()),
                            action.path.as_str(),
                            Some("org.freedesktop.DBus.Properties"),
                            "Get",
                            &(action.interface.as_str(), action.member.as_str()),
                        )
                        .await?;
                    let value: zbus::OwnedVariant = reply.body().deserialize()?;
                    Ok(Some(speak_variant(&value)))
                }
            }
        };
        match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err(Failure::Timeout(self.timeout)),
            Ok(Ok(out)) => Ok(out),
            Ok(Err(e)) => Err(self.classify(e).await),
        }
    }

    /// The driving state as the vehicle reports it; unknown fields where it can't be read, or
    /// where the service's name is owned by a process of another user than the one that
    /// owned it at the first read.
    pub async fn driving_state(&self, source: &StateSource) -> DrivingState {
        let read = async {
            let StateProxy { uid, proxy, .. } = self.state_proxy(source).await?;
            let mut pinned = self.state_user.lock().await;
            match *pinned {
                None => {
                    tracing::info!(
                        uid,
                        "driving state: {} is trusted as this user's",
                        source.service
                    );
                    *pinned = Some(uid);
                }
                Some(user) if user != uid => {
                    return Err(Failure::Impostor { user, uid });
                }
                Some(_) => {}
            }
            drop(pinned);
            let speed = proxy.get_property::<f64>(&source.speed).await;
            let gear = proxy.get_property::<String>(&source.gear).await;
            let brake = proxy.get_property::<bool>(&source.parking_brake).await;
            Ok::<_, Failure>(DrivingState {
                speed_kmh: speed.ok(),
                gear: gear.ok().and_then(|g| parse_gear(&g)),
                parking_brake: brake.ok(),
            })
        };
        let failure = match tokio::time::timeout(self.timeout, read).await {
            Ok(Ok(state)) => {
                if self.failed_state(None).is_some() {
                    tracing::info!("driving state available again");
                }
                return state;
            }
            Ok(Err(e)) => format!("driving state unavailable: {}", e.detail()),
            Err(_) => {
                *self.state_proxy.lock().await = None;
                format!(
                    "driving state: no answer within {} ms",
                    self.timeout.as_millis()
                )
            }
        };
        if self.failed_state(Some(failure.clone())).as_ref() == Some(&failure) {
            tracing::debug!("{failure}");
        } else {
            tracing::warn!("{failure}");
        }
        DrivingState::default()
    }

    /// Records why the driving state could not be read (None: it was), returning the reason
    /// recorded before.
    fn failed_state(&self, why: Option<String>) -> Option<String> {
        let mut last = self
            .state_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::mem::replace(&mut *last, why)
    }

    /// The state interface at the service's owner now, and that owner's user. The reads go to
    /// the owner's unique name, so the answers come from the process whose user was checked,
    /// even if the name changes hands between the check and the reads.
    async fn state_proxy(&self, source: &StateSource) -> Result<StateProxy, Failure> {
        let conn = self.connection().await?;
        let bus = zbus::fdo::DBusProxy::builder(&conn)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .map_err(|e| Failure::BusDown(e.to_string()))?;
        let name = zbus::names::BusName::try_from(source.service.as_str())
            .map_err(|e| Failure::Unreachable(e.to_string()))?;
        let owner = bus
            .get_name_owner(name)
            .await
            .map_err(|e| Failure::Unreachable(e.to_string()))?
            .to_string();
        let mut cached = self.state_proxy.lock().await;
        if let Some(p) = cached.as_ref().filter(|p| p.owner == owner) {
            return Ok(p.clone());
        }
        let unique = zbus::names::BusName::try_from(owner.as_str())
            .map_err(|e| Failure::Unreachable(e.to_string()))?;
        let uid = bus
            .get_connection_unix_user(unique)
            .await
            .map_err(|e| Failure::Unreachable(e.to_string()))?;
        let proxy = zbus::proxy::Builder::<zbus::Proxy<'static>>::new(&conn)
            .destination(owner.clone())
            .path(source.path.clone())
            .interface(source.interface.clone())
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .map_err(|e| Failure::Unreachable(e.to_string()))?;
        let found = StateProxy { owner, uid, proxy };
        *cached = Some(found.clone());
        Ok(found)
    }

    async fn classify(&self, e: zbus::Error) -> Failure {
        let (name, message) = match &e {
            zbus::Error::MethodError(name, msg, _) => {
                (name.to_string(), msg.clone().unwrap_or_default())
            }
            zbus::Error::FDO(f) => {
                use zbus::DBusError;
                (
                    f.name().to_string(),
                    f.description().unwrap_or_default().to_string(),
                )
            }
            zbus::Error::InputOutput(_) => {
                // The bus connection itself broke: drop it so the next action reconnects.
                *self.conn.lock().await = None;
                return Failure::BusDown(e.to_string());
            }
            other => (String::new(), other.to_string()),
        };
        match name.as_str() {
            "org.freedesktop.DBus.Error.ServiceUnknown"
            | "org.freedesktop.DBus.Error.NameHasNoOwner" => Failure::Unreachable(message),
            _ => Failure::Refused { name, message },
        }
    }
}
