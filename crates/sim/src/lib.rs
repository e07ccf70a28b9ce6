//! A simulated city for Hazchem Bus, and the benchmark suite that says how fast the bus really is.
//!
//! - [`city`]: [`City::generate`] makes a city from a seed (ChaCha20): enterprises with names, valid
//!   USCCs and roles (producer, storage, trader, carrier, user, waste handler, port), the licences each
//!   holds, chemicals from the catalogue ([`hazchem_domain::Catalogue::sample`]), carriers' tractors and
//!   trailers (yellow plates, trailers ending in 挂) with drivers and escorts, ships with valid IMO
//!   numbers, ports, and each department's inspectors.
//! - [`traffic`]: [`Traffic::generate`] turns a city into a deterministic sequence of events published
//!   by all nine departments, covering every lifecycle stage (registers first, then sensor batches,
//!   batch lifecycles that balance, ship calls, waste manifests, inspections and penalties, incidents,
//!   renewals, approvals, relocation orders), with [violations](violation) injected on request and
//!   the [ground truth](GroundTruth) of what was injected.
//! - [`drive`]: publishes traffic through the gateway as the department systems would: one mTLS
//!   connection per department with its own certificate, origin signatures where the policy requires
//!   them, batch or single publishes, all departments concurrently, at a target rate or as fast as
//!   possible; a [`Summary`] of what was accepted, answered as duplicate and rejected.
//! - [`nats`]: a `nats-server -js` child process on a random local port (the benchmark's, and anyone's
//!   who needs one), with the JetStream `sync_interval` stated.
//! - [`bench`]: the benchmark suite behind `hazchem bench`: raw JetStream publishing against the bus
//!   and the gateway on the same server in the same run, publish-to-subscriber latency, ledger append
//!   and verify rates where the ledger is available, and the city-scale headline.
//!
//! ```
//! use hazchem_sim::{City, CityConfig, Injections, Traffic, TrafficConfig};
//!
//! let city = City::generate(7, CityConfig::default()).unwrap();
//! let mut config = TrafficConfig::new(7, 500);
//! config.inject = Injections::all();
//! let traffic = Traffic::generate(&city, &config).unwrap();
//! assert!(traffic.events.len() >= 500);
//! assert_eq!(traffic.truth.violations.len(), 5);
//! ```

pub mod bench;
pub mod city;
pub mod drive;
mod error;
pub mod nats;
pub mod traffic;
pub mod violation;

pub use city::{City, CityConfig, Enterprise, Role};
pub use drive::{DriveOptions, Prepared, Summary, connect_departments, drive, prepare};
pub use error::{Error, Result};
pub use traffic::{SimEvent, Traffic, TrafficConfig, run_tag};
pub use violation::{GroundTruth, InjectedViolation, Injections, ViolationKind};
