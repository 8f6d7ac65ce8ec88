//! `cabin chat`: a typed conversation with the running daemon on one D-Bus connection.
//!
//! The daemon binds a dialog (a question it asked, the zone last named) to the connection it
//! was put to, so another program's text never answers the driver's question. `cabin say` is
//! one turn on a connection of its own; `cabin chat` keeps its connection for every line, so
//! "a bit warmer" and "the rear left one" continue what the lines before them started.

use super::print_out;
use super::say::{ask, connect, AskError};
use anyhow::{bail, Result};
use cabin::daemon::api;
use cabin::runtime::bus::BusAddress;
use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Bus of the daemon.
    #[arg(long)]
    bus: Option<BusAddress>,
    /// Print each whole outcome as one JSON object per line (as `cabin say --json` does).
    #[arg(long)]
    json: bool,
    /// The profile input (microphone or push-to-talk source) the lines come from; its seat
    /// zone is the speaker's ("open my window").
    #[arg(long, value_name = "INPUT")]
    from: Option<String>,
}

/// What a person types at a terminal is prompted for; lines piped in are not.
const PROMPT: &str = "you> ";

pub async fn exec(args: Args) -> Result<ExitCode> {
    let bus = args.bus.unwrap_or_default();
    let conn = connect(&bus).await?;
    // Told before anybody types: a line typed to nobody is a line lost.
    let dbus = zbus::fdo::DBusProxy::new(&conn).await?;
    if !dbus.name_has_owner(api::SERVICE_NAME.try_into()?).await? {
        bail!(AskError::NoDaemon(bus));
    }
    let interactive = std::io::stdin().is_terminal();
    let mut failed = false;
    loop {
        if interactive {
            print_out(PROMPT)?;
        }
        let Some(line) = next_line().await? else {
            if interactive {
                // Ctrl-D leaves the cursor after the prompt.
                print_out("\n")?;
            }
            break;
        };
        let text = match String::from_utf8(line) {
            Ok(text) => text,
            Err(_) => {
                eprintln!("error: the line is not UTF-8 text; type what the driver said");
                failed = true;
                continue;
            }
        };
        let text = text.trim();
        if text.is_empty() {
            break;
        }
        match ask(&conn, &bus, text, args.from.as_deref()).await {
            Ok(outcome) if args.json => print_out(&format!("{outcome}\n"))?,
            Ok(outcome) => print_out(&format!(
                "cabin> {}\n",
                outcome["reply"].as_str().unwrap_or_default()
            ))?,
            // With the daemon or the bus gone, no later line could be answered either.
            Err(e) if e.is_fatal() => bail!(e),
            // Only this line failed (too long, cancelled by a newer request, too slow): the
            // conversation goes on.
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The next line of standard input without its line end; None at the end of the input.
/// Read off the runtime's worker threads: a terminal blocks until the person types.
async fn next_line() -> Result<Option<Vec<u8>>> {
    tokio::task::spawn_blocking(|| {
        let mut line = Vec::new();
        match std::io::stdin().lock().read_until(b'\n', &mut line)? {
            0 => Ok(None),
            _ => Ok(Some(line)),
        }
    })
    .await?
}
