//! `bare-broadcast`: the bare tokio-tungstenite broadcast server (see
//! `relay_bench::bare`). Prints `listening on ADDR` once bound.

use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};

use relay_bench::bare::{self, BareConfig};

/// A bare WebSocket broadcast server: the fan-out ceiling Relay is measured against.
#[derive(Debug, Parser)]
#[command(name = "bare-broadcast", version)]
struct Cli {
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// Frames a topic's ring holds (a subscriber further behind loses the oldest).
    #[arg(long, default_value_t = BareConfig::default().queue)]
    queue: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    relay_bench::raise_nofile_limit();
    let listener = tokio::net::TcpListener::bind(cli.listen).await?;
    println!("listening on {}", listener.local_addr()?);
    let mut term = signal(SignalKind::terminate())?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    bare::run(listener, BareConfig { queue: cli.queue }, shutdown).await?;
    Ok(())
}
