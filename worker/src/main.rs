//! `relay-worker`: runs jobs from the Redis queue (see the `relay_worker` library).

use relay_shared::config::WorkerConfig;
use relay_shared::process;

const NAME: &str = "relay-worker";

#[tokio::main]
async fn main() {
    let config = process::config_or_exit::<WorkerConfig>(NAME);
    let listener = process::bind_or_exit(NAME, "RELAY_METRICS_LISTEN", config.metrics_listen).await;
    let shutdown = relay_shared::shutdown::on_signal();
    process::exit_on_error(NAME, relay_worker::run(listener, config, shutdown).await);
}
