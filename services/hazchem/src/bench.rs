//! `hazchem bench`: the benchmark suite (see `hazchem_sim::bench` for what is measured and how), a table
//! on the terminal and the full report as JSON.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use hazchem_sim::bench::{BenchConfig, Profile, render, run};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// quick (about a minute on 2 cores), full (more samples, and the ingest again with
    /// `sync_interval: always`) or smoke (tiny, checks the code path only).
    #[arg(long, default_value = "quick", value_parser = parse_profile)]
    pub profile: Profile,
    /// Where to write the report (JSON).
    #[arg(long, default_value = "bench.json")]
    pub out: PathBuf,
    /// Seed of the simulated traffic the payloads come from.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Skip the ledger measurements.
    #[arg(long)]
    pub no_ledger: bool,
}

fn parse_profile(text: &str) -> std::result::Result<Profile, String> {
    text.parse().map_err(|e: hazchem_sim::Error| e.to_string())
}

pub async fn bench(args: BenchArgs) -> Result<()> {
    let mut config = BenchConfig::new(args.profile);
    config.seed = args.seed;
    config.ledger = !args.no_ledger;
    if cfg!(debug_assertions) && args.profile != Profile::Smoke {
        eprintln!(
            "warning: this is a debug build; its figures mean little (cargo run --release -p hazchem -- bench)"
        );
    }
    let report = run(&config, &|step| eprintln!("bench: {step}")).await?;
    print!("{}", render(&report));
    let json = serde_json::to_string_pretty(&report)?;
    std::fs::write(&args.out, json + "\n")
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!("report: {}", args.out.display());
    Ok(())
}
