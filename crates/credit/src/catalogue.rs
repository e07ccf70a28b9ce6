//! The measure catalogue: every measure a listing may impose, what it means, and which grants it forbids.
//!
//! A listing names its measures by code (`licence_restriction`, `stricter_inspection`, ...). The catalogue
//! is configuration (TOML, default [`DEFAULT_CATALOGUE`] = `deploy/credit-measures.toml`), so a city can
//! add measures without a new build; a listing naming a code the catalogue does not hold is refused.
//!
//! ```toml
//! [measures.licence_restriction]
//! name = "限制新增行政许可"
//! description = "New licences and approvals are refused or strictly reviewed."
//! forbids = ["*"]                      # every licence kind
//!
//! [measures.transport_licence_ban]
//! name = "限制道路运输许可"
//! forbids = ["road_transport", "vehicle_certificate"]
//!
//! [measures.stricter_inspection]
//! name = "提高检查频次"
//! forbids = []                         # reported by Check, forbids no grant
//! ```
//!
//! `forbids` lists licence kinds (the policy's names: `safety_production`, `road_transport`, ...) or `"*"`
//! for all of them; a grant (licence issued or renewed, application approved) of a forbidden kind, by a
//! department the measure applies to, is a credit conflict.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The default catalogue, `deploy/credit-measures.toml`, embedded in the binary.
pub const DEFAULT_CATALOGUE: &str = include_str!("../../../deploy/credit-measures.toml");

/// A kind of licence or permit, named as in the publish policy's `[licence_issuers]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LicenceKind {
    /// 安全生产许可证.
    SafetyProduction,
    /// 安全使用许可证.
    SafeUse,
    /// 危险化学品经营许可证.
    Operation,
    /// 危险废物经营许可证.
    HazardousWaste,
    /// 道路危险货物运输许可证.
    RoadTransport,
    /// 港口经营许可.
    PortOperation,
    /// 工业产品生产许可证.
    IndustrialProduct,
    /// 营业执照.
    Business,
    /// 道路运输证.
    VehicleCertificate,
    /// 从业资格证.
    PractitionerQualification,
}

impl LicenceKind {
    /// Every kind.
    pub const ALL: [LicenceKind; 10] = [
        Self::SafetyProduction,
        Self::SafeUse,
        Self::Operation,
        Self::HazardousWaste,
        Self::RoadTransport,
        Self::PortOperation,
        Self::IndustrialProduct,
        Self::Business,
        Self::VehicleCertificate,
        Self::PractitionerQualification,
    ];

    /// The policy's name, e.g. `"road_transport"`.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::SafetyProduction => "safety_production",
            Self::SafeUse => "safe_use",
            Self::Operation => "operation",
            Self::HazardousWaste => "hazardous_waste",
            Self::RoadTransport => "road_transport",
            Self::PortOperation => "port_operation",
            Self::IndustrialProduct => "industrial_product",
            Self::Business => "business",
            Self::VehicleCertificate => "vehicle_certificate",
            Self::PractitionerQualification => "practitioner_qualification",
        }
    }
}

impl fmt::Display for LicenceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for LicenceKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.code() == s)
            .ok_or_else(|| {
                let codes: Vec<&str> = Self::ALL.iter().map(|k| k.code()).collect();
                format!(
                    "unknown licence kind {s:?}: expected \"*\" or one of {}",
                    codes.join(", ")
                )
            })
    }
}

/// Which grants a measure forbids.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Forbids {
    /// None: the measure is reported (stricter inspection, procurement ban, ...) but no grant conflicts.
    #[default]
    Nothing,
    /// Every licence kind.
    AllGrants,
    /// These kinds.
    Kinds(BTreeSet<LicenceKind>),
}

impl Forbids {
    /// Whether a grant of `kind` is forbidden.
    #[must_use]
    pub fn forbids(&self, kind: LicenceKind) -> bool {
        match self {
            Forbids::Nothing => false,
            Forbids::AllGrants => true,
            Forbids::Kinds(kinds) => kinds.contains(&kind),
        }
    }
}

/// One measure of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasureSpec {
    pub code: String,
    /// A short name, e.g. 限制新增行政许可.
    pub name: String,
    pub description: String,
    pub forbids: Forbids,
}

/// The catalogue: measure code → what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasureCatalogue {
    measures: BTreeMap<String, MeasureSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueFile {
    measures: BTreeMap<String, MeasureFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MeasureFile {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    forbids: Vec<String>,
}

/// Whether `code` is a measure code: `[a-z][a-z0-9_]{0,63}`.
#[must_use]
pub fn is_measure_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 64
        && code.as_bytes()[0].is_ascii_lowercase()
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl MeasureCatalogue {
    /// Parses a catalogue; the error names the measure and the problem.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let file: CatalogueFile =
            toml::from_str(text).map_err(|e| Error::Catalogue(e.to_string()))?;
        let mut measures = BTreeMap::new();
        for (code, m) in file.measures {
            if !is_measure_code(&code) {
                return Err(Error::Catalogue(format!(
                    "measures.{code}: a measure code is [a-z][a-z0-9_]{{0,63}}"
                )));
            }
            if m.name.trim().is_empty() {
                return Err(Error::Catalogue(format!("measures.{code}.name: required")));
            }
            let forbids = if m.forbids.is_empty() {
                Forbids::Nothing
            } else if m.forbids.iter().any(|k| k == "*") {
                if m.forbids.len() > 1 {
                    return Err(Error::Catalogue(format!(
                        "measures.{code}.forbids: \"*\" (every licence kind) stands alone"
                    )));
                }
                Forbids::AllGrants
            } else {
                let kinds = m
                    .forbids
                    .iter()
                    .map(|k| k.parse::<LicenceKind>())
                    .collect::<std::result::Result<BTreeSet<_>, _>>()
                    .map_err(|e| Error::Catalogue(format!("measures.{code}.forbids: {e}")))?;
                Forbids::Kinds(kinds)
            };
            measures.insert(
                code.clone(),
                MeasureSpec {
                    code,
                    name: m.name,
                    description: m.description,
                    forbids,
                },
            );
        }
        if measures.is_empty() {
            return Err(Error::Catalogue("the catalogue defines no measure".into()));
        }
        Ok(MeasureCatalogue { measures })
    }

    /// Reads a catalogue file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml_str(&text).map_err(|e| Error::Catalogue(format!("{}: {e}", path.display())))
    }

    /// The embedded default, [`DEFAULT_CATALOGUE`].
    #[must_use]
    pub fn default_catalogue() -> Self {
        Self::from_toml_str(DEFAULT_CATALOGUE)
            .expect("deploy/credit-measures.toml is a valid catalogue")
    }

    /// The measure with this code.
    #[must_use]
    pub fn get(&self, code: &str) -> Option<&MeasureSpec> {
        self.measures.get(code)
    }

    /// Every code, sorted.
    pub fn codes(&self) -> impl Iterator<Item = &str> {
        self.measures.keys().map(String::as_str)
    }

    /// Every measure, by code.
    pub fn measures(&self) -> impl Iterator<Item = &MeasureSpec> {
        self.measures.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_catalogue_loads_and_knows_the_usual_measures() {
        let c = MeasureCatalogue::default_catalogue();
        for code in [
            "stricter_inspection",
            "licence_restriction",
            "procurement_ban",
            "subsidy_ban",
            "financing_restriction",
            "honours_ban",
        ] {
            assert!(c.get(code).is_some(), "{code}");
        }
        let lr = c.get("licence_restriction").unwrap();
        assert_eq!(lr.forbids, Forbids::AllGrants);
        assert!(
            !c.get("stricter_inspection")
                .unwrap()
                .forbids
                .forbids(LicenceKind::Business)
        );
    }

    #[test]
    fn bad_catalogues_are_refused_with_the_measure_named() {
        let e =
            MeasureCatalogue::from_toml_str("[measures.x]\nname = \"x\"\nforbids = [\"flying\"]\n")
                .unwrap_err();
        assert!(e.to_string().contains("measures.x.forbids"), "{e}");
        let e = MeasureCatalogue::from_toml_str("[measures.Bad]\nname = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("measures.Bad"), "{e}");
        let e = MeasureCatalogue::from_toml_str(
            "[measures.x]\nname = \"x\"\nforbids = [\"*\", \"business\"]\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("stands alone"), "{e}");
        let c = MeasureCatalogue::from_toml_str(
            "[measures.road]\nname = \"r\"\nforbids = [\"road_transport\"]\n",
        )
        .unwrap();
        let f = &c.get("road").unwrap().forbids;
        assert!(f.forbids(LicenceKind::RoadTransport));
        assert!(!f.forbids(LicenceKind::SafetyProduction));
    }
}
