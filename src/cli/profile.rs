//! `cabin profile`: check a profile and list what it holds, or print its system-bus policy.

use super::print_out;
use anyhow::Result;
use cabin::profile::{ActionKind, Profile};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum Command {
    /// Validate a profile and list its intents and how many sentences each expands to.
    Check {
        file: PathBuf,
        /// Also print every sentence template.
        #[arg(long)]
        sentences: bool,
    },
    /// Print the system-bus policy for a profile (for /usr/share/dbus-1/system.d/).
    DbusPolicy {
        file: PathBuf,
        /// The user the daemon runs as.
        #[arg(long, default_value = "cabin")]
        user: String,
        /// The group whose members (the HMI) may call the assistant.
        #[arg(long, default_value = "cabin-hmi")]
        hmi_group: String,
    },
}

pub fn exec(command: Command) -> Result<ExitCode> {
    match command {
        Command::Check { file, sentences } => {
            let profile = Profile::load(&file)?;
            print_out(&profile_listing(&profile, sentences))?;
        }
        Command::DbusPolicy {
            file,
            user,
            hmi_group,
        } => {
            let profile = Profile::load(&file)?;
            print_out(&cabin::daemon::policy::dbus_policy(
                &profile, &user, &hmi_group,
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The listing `cabin profile check` prints.
fn profile_listing(p: &Profile, sentences: bool) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let total: usize = p.intents.iter().map(|i| i.sentence_count).sum();
    let _ = writeln!(
        out,
        "{}: OK: \"{}\" ({}), {} intents, {} sentences, vehicle on the {} (timeout {} ms)",
        p.file,
        p.name,
        p.language,
        p.intents.len(),
        total,
        p.vehicle.bus,
        p.vehicle.timeout.as_millis()
    );
    let width = p.intents.iter().map(|i| i.name.len()).max().unwrap_or(0);
    for i in &p.intents {
        let a = &i.action;
        let target = match &a.kind {
            ActionKind::Call { method, args } => {
                let sig: String = args.iter().map(|s| s.ty.as_char()).collect();
                format!("call {}.{method}({sig})", a.interface)
            }
            ActionKind::SetProperty { property, value } => {
                format!("set {}.{property} ({})", a.interface, value.ty.as_char())
            }
            ActionKind::GetProperty { property } => format!("get {}.{property}", a.interface),
        };
        let mut notes = Vec::new();
        if i.confirm.is_some() {
            notes.push("confirm");
        }
        if i.when.is_some() {
            notes.push("constrained");
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!(" [{}]", notes.join(", "))
        };
        let _ = writeln!(
            out,
            "  {:width$}  {:5} sentences  {} {}{}",
            i.name, i.sentence_count, a.service, target, notes
        );
        if sentences {
            for t in &i.sentences {
                let _ = writeln!(out, "      {}", t.source);
            }
        }
    }
    if !p.small_talk.is_empty() {
        let names: Vec<&str> = p.small_talk.iter().map(|t| t.name.as_str()).collect();
        let _ = writeln!(out, "  small talk: {}", names.join(", "));
    }
    if !p.lacks.is_empty() {
        let names: Vec<&str> = p.lacks.iter().map(|l| l.name.as_str()).collect();
        let _ = writeln!(out, "  lacks: {}", names.join(", "));
    }
    if !p.inputs.is_empty() {
        let inputs: Vec<String> = p
            .inputs
            .iter()
            .map(|i| format!("{} ({})", i.name, i.zone))
            .collect();
        let _ = writeln!(out, "  inputs: {}", inputs.join(", "));
    }
    out
}
