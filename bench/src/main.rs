//! `relay-bench`: see the library docs and `relay-bench --help`.

use clap::{Parser, Subcommand};

use relay_bench::{connections, fanout, jobs, report, resume};

/// Load generator for Relay (public contract only).
#[derive(Debug, Parser)]
#[command(name = "relay-bench", version)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Clients over gateways on one or more topics, a publisher at a fixed rate.
    Fanout(fanout::FanoutArgs),
    /// Idle subscribed connections: gateway RSS per connection.
    Connections(connections::ConnectionsArgs),
    /// No-op jobs: submit and completion rates, submit-to-completed latency.
    Jobs(jobs::JobsArgs),
    /// Everyone disconnects, events go by, everyone resumes at once.
    Resume(resume::ResumeArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let nofile = relay_bench::raise_nofile_limit();
    eprintln!("relay-bench: open-files limit {nofile}");
    let out = match cli.scenario {
        Scenario::Fanout(a) => fanout::run(a).await?,
        Scenario::Connections(a) => connections::run(a).await?,
        Scenario::Jobs(a) => jobs::run(a).await?,
        Scenario::Resume(a) => resume::run(a).await?,
    };
    report::print(&out);
    Ok(())
}
