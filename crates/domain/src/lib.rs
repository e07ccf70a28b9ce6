//! Domain types of the Hazchem Bus, the inter-agency event bus through which
//! nine city departments share events about hazardous chemicals.
//!
//! This crate holds what every other crate agrees on and nothing that does
//! I/O beyond reading a catalogue file:
//!
//! - [`identifiers`]: validated newtypes for the identifiers that appear in
//!   events — [`Uscc`] (统一社会信用代码, GB 32100-2015), [`CasNumber`],
//!   [`UnNumber`], [`ImoNumber`], [`VehiclePlate`] with [`PlateColour`]. They
//!   can only be built through validation, and serde validates on
//!   deserialize.
//! - [`Department`]: the nine departments and their stable codes.
//! - [`Catalogue`]: the hazardous-chemicals catalogue and the regulatory
//!   lists its chemicals are on, loaded from a versioned TOML file; no list
//!   is hard-coded. [`Catalogue::sample`] is a 40-chemical sample for tests and
//!   the simulator.
//! - [`IdentifierError`] says which identifier, which [`Rule`] and what was
//!   expected; [`Rule::as_str`] gives stable machine names for gRPC
//!   field-violation details. [`CatalogueError`] names the entry and line.

pub mod catalogue;
pub mod department;
pub mod error;
pub mod identifiers;

pub use catalogue::{Catalogue, Chemical, SAMPLE_CATALOGUE_TOML};
pub use department::Department;
pub use error::{CatalogueError, EntryLocation, IdentifierError, IdentifierKind, Rule};
pub use identifiers::{CasNumber, ImoNumber, PlateColour, UnNumber, Uscc, VehiclePlate};
