//! `hazchem simulate`: a simulated city's nine departments publishing through the gateway, each with its
//! own client certificate from the development PKI, with violations injected on request and their ground
//! truth written to a file.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use clap::Args;
use hazchem_admission::Policy;
use hazchem_pki::DevPki;
use hazchem_sim::drive::{DriveOptions, connect_departments, dev_signing_keys, drive, prepare};
use hazchem_sim::{City, CityConfig, Injections, Summary, Traffic, TrafficConfig};

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The gateway's address.
    #[arg(
        long,
        env = "HAZCHEM_ENDPOINT",
        default_value_t = hazchem_pki::services::default_endpoint(hazchem_gateway::SERVICE_NAME)
    )]
    pub endpoint: String,
    /// The development data directory: each department connects with its certificate from <DIR>/pki.
    #[arg(long, env = "HAZCHEM_DATA_DIR", default_value = ".hazchem")]
    pub data_dir: PathBuf,
    /// The seed: the same seed (and --epoch) gives the same city and the same events.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How many events to generate (default 10000; with --duration, rate × duration or 100000).
    #[arg(long)]
    pub events: Option<usize>,
    /// Stop after this long (e.g. 60s, 5m, 1h) even if events are left.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Events per second over all departments (default: as fast as the gateway answers).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Events per call (PublishBatch); 1 publishes each event with its own Publish call.
    #[arg(long, default_value_t = 200)]
    pub batch: usize,
    /// Enterprises in the city (at least 12).
    #[arg(long, default_value_t = 40)]
    pub enterprises: usize,
    /// Tractor-trailer combinations per carrier.
    #[arg(long, default_value_t = 3)]
    pub vehicles_per_carrier: usize,
    /// Ships calling at the city's ports.
    #[arg(long, default_value_t = 6)]
    pub ships: usize,
    /// Inspectors per department.
    #[arg(long, default_value_t = 6)]
    pub inspectors: usize,
    /// Sensors per monitored site.
    #[arg(long, default_value_t = 12)]
    pub sensors_per_site: usize,
    /// Inject violations: all, listed-licence, toxic-sale-without-permit, unlicensed-carrier-waybill,
    /// unbalanced-batch, alarm-storm; `<kind>=<count>` for more than one. Repeatable.
    #[arg(long = "inject", value_name = "KIND[=COUNT]")]
    pub inject: Vec<String>,
    /// Where to write the ground truth (JSON): every injected violation with the ids of its events.
    #[arg(long, default_value = "simulate-truth.json")]
    pub truth: PathBuf,
    /// The simulated clock ends here (RFC 3339; default now): no event time is later.
    #[arg(long)]
    pub epoch: Option<DateTime<Utc>>,
    /// The simulated time the traffic spans, ending at the epoch (e.g. 30d, 12h).
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    pub window: Duration,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Print the summary as JSON on standard output.
    #[arg(long)]
    pub json: bool,
}

/// "90", "90s", "5m", "2h", "30d".
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?}: a number and a unit (s, m, h, d), e.g. 60s"))?;
    let seconds = match unit {
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86_400.0,
        _ => return Err(format!("{text:?}: the unit is one of s, m, h, d")),
    };
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(format!("{text:?}: must be positive"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

pub async fn simulate(args: SimulateArgs) -> Result<()> {
    let inject = Injections::parse(&args.inject)?;
    let events = args
        .events
        .unwrap_or_else(|| match (args.duration, args.rate) {
            (Some(d), Some(r)) => (d.as_secs_f64() * r).ceil() as usize,
            (Some(_), None) => 100_000,
            _ => 10_000,
        });
    let city = City::generate(
        args.seed,
        CityConfig {
            enterprises: args.enterprises,
            vehicles_per_carrier: args.vehicles_per_carrier,
            ships: args.ships,
            inspectors_per_department: args.inspectors,
            sensors_per_site: args.sensors_per_site,
        },
    )?;
    let mut config = TrafficConfig::new(args.seed, events);
    if let Some(epoch) = args.epoch {
        config.epoch = epoch;
    }
    config.window = chrono::Duration::from_std(args.window).context("--window is too long")?;
    config.inject = inject;
    let traffic = Traffic::generate(&city, &config)?;
    let truth = serde_json::to_string_pretty(&traffic.truth)?;
    std::fs::write(&args.truth, truth + "\n")
        .with_context(|| format!("writing the ground truth to {}", args.truth.display()))?;
    eprintln!(
        "city of seed {}: {} enterprises, {} vehicles, {} ships; {} events (run {}, epoch {}), {} violation(s) injected; ground truth in {}",
        args.seed,
        city.enterprises.len(),
        city.vehicles.len(),
        city.ships.len(),
        traffic.events.len(),
        traffic.run,
        config.epoch.to_rfc3339(),
        traffic.truth.violations.len(),
        args.truth.display()
    );

    let pki_dir = args.data_dir.join("pki");
    let pki = DevPki::load(&pki_dir).with_context(|| {
        format!(
            "no development PKI in {}: start `hazchem dev` first (each department connects with its certificate from there)",
            pki_dir.display()
        )
    })?;
    let keys = dev_signing_keys(&pki)?;
    let prepared = prepare(&traffic.events, &keys, &Policy::default_policy(), false);
    let channels = connect_departments(&args.endpoint, &pki).await?;

    let total = prepared.len() as u64;
    let bar = if args.no_progress {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} events {per_sec} eta {eta}",
            )
            .expect("a valid template"),
        );
        bar
    };
    let progress = bar.clone();
    let summary = drive(
        prepared,
        &channels,
        DriveOptions {
            rate: args.rate,
            batch: args.batch,
            duration: args.duration,
        },
        move |n| progress.inc(n),
    )
    .await?;
    bar.finish_and_clear();

    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary);
    }
    if summary.rejected > 0 {
        bail!(
            "{} event(s) rejected: the simulator should produce only admissible events against the default policy",
            summary.rejected
        );
    }
    Ok(())
}

fn print_summary(summary: &Summary) {
    println!(
        "{:<10} {:>9} {:>9} {:>10} {:>9}",
        "department", "published", "accepted", "duplicate", "rejected"
    );
    for (department, s) in &summary.departments {
        println!(
            "{department:<10} {:>9} {:>9} {:>10} {:>9}",
            s.published, s.accepted, s.duplicates, s.rejected
        );
    }
    println!(
        "{:<10} {:>9} {:>9} {:>10} {:>9}",
        "total", summary.published, summary.accepted, summary.duplicates, summary.rejected
    );
    println!(
        "{:.1} s, {:.0} events/s{}",
        summary.elapsed_seconds,
        summary.events_per_second,
        if summary.stopped_early {
            " (stopped by --duration)"
        } else {
            ""
        }
    );
    for (reason, n) in &summary.rejections_by_reason {
        println!("rejected {n}×: {reason}");
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("0s").is_err());
    }
}
