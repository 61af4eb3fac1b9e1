//! `relay-gateway`: the stateless front of Relay (see the `relay_gateway` library).

use relay_shared::config::GatewayConfig;
use relay_shared::process;

const NAME: &str = "relay-gateway";

#[tokio::main]
async fn main() {
    let config = process::config_or_exit::<GatewayConfig>(NAME);
    let listener = process::bind_or_exit(NAME, "RELAY_LISTEN", config.listen).await;
    let shutdown = relay_shared::shutdown::on_signal();
    process::exit_on_error(NAME, relay_gateway::run(listener, config, shutdown).await);
}
