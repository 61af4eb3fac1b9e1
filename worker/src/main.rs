//! `relay-worker`: runs jobs from the Redis queue (see the `relay_worker` library).

use relay_shared::config::{ConfigError, WorkerConfig, EXIT_CONFIG};

#[tokio::main]
async fn main() {
    let config = match relay_shared::config::parse::<WorkerConfig, _, _>(std::env::args_os()) {
        Ok(c) => c,
        Err(ConfigError::Info(text)) => {
            print!("{text}");
            std::process::exit(0);
        }
        Err(ConfigError::Invalid(line)) => {
            eprintln!("relay-worker: {line}");
            std::process::exit(EXIT_CONFIG);
        }
    };
    relay_shared::telemetry::init_tracing(&config.common);
    for name in relay_shared::config::unknown_variables() {
        tracing::warn!(variable = %name, "unknown RELAY_ variable ignored (misspelt?)");
    }
    let shutdown = relay_shared::shutdown::on_signal();
    if let Err(e) = relay_worker::run(config, shutdown).await {
        eprintln!("relay-worker: {e}");
        std::process::exit(if e.is_config() { EXIT_CONFIG } else { 1 });
    }
}
