use relay_shared::config::{self, ConfigError, GatewayConfig, EXIT_CONFIG};

#[tokio::main]
async fn main() {
    let config = match config::parse::<GatewayConfig, _, _>(std::env::args_os()) {
        Ok(c) => c,
        Err(ConfigError::Info(text)) => {
            print!("{text}");
            return;
        }
        Err(ConfigError::Invalid(line)) => {
            eprintln!("relay-gateway: {line}");
            std::process::exit(EXIT_CONFIG);
        }
    };
    relay_shared::telemetry::init_tracing(&config.common);
    for name in config::unknown_variables() {
        tracing::warn!(variable = %name, "unknown RELAY_ variable ignored");
    }
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "relay-gateway: RELAY_LISTEN: cannot bind {}: {e}",
                config.listen
            );
            std::process::exit(EXIT_CONFIG);
        }
    };
    let shutdown = relay_shared::shutdown::on_signal();
    match relay_gateway::run(listener, config, shutdown).await {
        Ok(()) => {}
        Err(relay_gateway::RunError::Config(line)) => {
            eprintln!("relay-gateway: {line}");
            std::process::exit(EXIT_CONFIG);
        }
        Err(e) => {
            eprintln!("relay-gateway: {e}");
            std::process::exit(1);
        }
    }
}
