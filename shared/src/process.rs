//! What both mains do before and after `run`, with one exit-code policy:
//! 0 after a clean stop (and for `--help`), [`EXIT_CONFIG`] (64) for a bad
//! configuration or an address that cannot be bound, 1 for anything else.
//! Every refusal is one line on stderr, prefixed with the process's name.

use std::net::SocketAddr;

use clap::Parser;
use tokio::net::TcpListener;

use crate::config::{self, Checked, ConfigError, EXIT_CONFIG};

/// An error that ends a process: configuration errors exit with
/// [`EXIT_CONFIG`], others with 1.
pub trait Fatal: std::fmt::Display {
    /// Whether the configuration (or the environment it names) is at fault.
    fn is_config(&self) -> bool;
}

/// Reads the configuration from the environment and the arguments, or
/// exits: 0 after printing `--help` or `--version`, [`EXIT_CONFIG`] with
/// one line naming the variable for a bad value. Then starts tracing and
/// warns of `RELAY_*` variables neither process reads.
pub fn config_or_exit<C: Parser + Checked>(name: &str) -> C {
    let config = match config::parse::<C, _, _>(std::env::args_os()) {
        Ok(c) => c,
        Err(ConfigError::Info(text)) => {
            print!("{text}");
            std::process::exit(0);
        }
        Err(ConfigError::Invalid(line)) => {
            eprintln!("{name}: {line}");
            std::process::exit(EXIT_CONFIG);
        }
    };
    crate::telemetry::init_tracing(config.common());
    for variable in config::unknown_variables() {
        tracing::warn!(variable = %variable, "unknown RELAY_ variable ignored (misspelt?)");
    }
    config
}

/// Binds `addr` (named by `variable`), or exits with [`EXIT_CONFIG`].
pub async fn bind_or_exit(name: &str, variable: &str, addr: SocketAddr) -> TcpListener {
    match bind(variable, addr).await {
        Ok(l) => l,
        Err(line) => {
            eprintln!("{name}: {line}");
            std::process::exit(EXIT_CONFIG);
        }
    }
}

/// Binds `addr`; the error is one line naming `variable`.
pub async fn bind(variable: &str, addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("{variable}: cannot bind {addr}: {e}"))
}

/// Ends the process as `result` says: returns after a clean stop, exits
/// with [`EXIT_CONFIG`] or 1 after an error.
pub fn exit_on_error<E: Fatal>(name: &str, result: Result<(), E>) {
    if let Err(e) = result {
        eprintln!("{name}: {e}");
        std::process::exit(if e.is_config() { EXIT_CONFIG } else { 1 });
    }
}
