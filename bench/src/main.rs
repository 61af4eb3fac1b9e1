//! `relay-bench`: see the library docs and `relay-bench --help`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use relay_bench::{connections, fanout, jobs, report, resume, summary, topics};

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
    /// Many topics: a topic per client, events to random topics at a fixed rate.
    Topics(topics::TopicsArgs),
    /// Idle subscribed connections: gateway RSS per connection.
    Connections(connections::ConnectionsArgs),
    /// No-op jobs: closed loop, open loop (`--rate`) or a rate sweep (`--find-rate`).
    Jobs(jobs::JobsArgs),
    /// Everyone disconnects, events go by, everyone resumes at once.
    Resume(resume::ResumeArgs),
    /// Prints a table of the JSON reports in a directory (a sitting's results).
    Summary {
        /// Directory of `*.json` reports.
        dir: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Scenario::Summary { dir } = &cli.scenario {
        print!("{}", summary::of_dir(dir)?);
        return Ok(());
    }
    let nofile = relay_bench::raise_nofile_limit();
    eprintln!("relay-bench: open-files limit {nofile}");
    let out = match cli.scenario {
        Scenario::Fanout(a) => fanout::run(a).await?,
        Scenario::Topics(a) => topics::run(a).await?,
        Scenario::Connections(a) => connections::run(a).await?,
        Scenario::Jobs(a) => jobs::run(a).await?,
        Scenario::Resume(a) => resume::run(a).await?,
        Scenario::Summary { .. } => unreachable!("handled above"),
    };
    report::print(&out);
    Ok(())
}
