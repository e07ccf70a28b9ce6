//! The registers a draw draws from (检查对象名录库 and 执法检查人员名录库), and the weight rule.
//!
//! Registers are configuration: a TOML file (default `deploy/enforcement-registers.toml`, embedded in the
//! binary) listing the enterprises subject to inspection, with flags for facts the bus may not hold, and each
//! department's enforcement officers:
//!
//! ```toml
//! [[enterprises]]
//! uscc = "91320602MA04MJFYQC"
//! name = "南通示例化工有限公司"
//! credit_listed = false            # optional, default false
//! major_hazard_grade = 2           # optional, 1-4
//! recent_alarm_or_incident = false # optional, default false
//!
//! [inspectors]
//! emergency = [{ certificate_number = "32060001", name = "张伟" }, ...]
//! ```
//!
//! # The weight rule (`hazchem-draw-v1`)
//!
//! 双随机一公开 asks for more checks on high-risk and dishonest subjects. A candidate's weight is
//!
//! | factor | weight | when |
//! | --- | --- | --- |
//! | base | 1 | always |
//! | `credit_listed` | +2 | an active credit listing of any type (严重失信, 重点监管, 公开曝光, 联合惩戒) on the record, or `credit_listed` in the register |
//! | `major_hazard_grade_1_2` | +2 | a major hazard source of grade 1 or 2 (GB 18218) on the record or in the register |
//! | `major_hazard_grade_3_4` | +1 | otherwise, a major hazard source of grade 3 or 4 |
//! | `recent_alarm_or_incident` | +1 | a sensor alarm raised or an incident reported for it within [`RECENT_DAYS`] days before the draw, or the register's flag |
//!
//! so weights run from 1 to 6. The weights used, and the factors behind them, are recorded in the draw, so
//! a re-run never depends on the registers or the record as they are later.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, Utc};
use hazchem_domain::{Department, Uscc};
use serde::{Deserialize, Serialize};

use crate::draw::{Candidate, Inspector};
use crate::error::{Error, Result};

/// The default registers (sample Nantong enterprises and inspectors), `deploy/enforcement-registers.toml`.
pub const DEFAULT_REGISTERS: &str = include_str!("../../../deploy/enforcement-registers.toml");

/// How far back an alarm or incident counts as recent, in days.
pub const RECENT_DAYS: i64 = 180;

/// An enterprise subject to inspection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisteredEnterprise {
    pub uscc: Uscc,
    #[serde(default)]
    pub name: String,
    /// Listed as dishonest or for key supervision by a source outside the bus.
    #[serde(default)]
    pub credit_listed: bool,
    /// Grade (1-4) of its most dangerous major hazard source, if known outside the bus.
    #[serde(default)]
    pub major_hazard_grade: Option<u8>,
    /// A recent alarm or incident known outside the bus.
    #[serde(default)]
    pub recent_alarm_or_incident: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistersFile {
    #[serde(default)]
    enterprises: Vec<RegisteredEnterprise>,
    #[serde(default)]
    inspectors: BTreeMap<String, Vec<Inspector>>,
}

/// The candidate enterprises and each department's inspectors.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Registers {
    pub enterprises: Vec<RegisteredEnterprise>,
    pub inspectors: BTreeMap<Department, Vec<Inspector>>,
}

impl Registers {
    /// The embedded default registers.
    pub fn default_registers() -> Registers {
        Registers::parse(DEFAULT_REGISTERS, "deploy/enforcement-registers.toml")
            .expect("the embedded registers are valid")
    }

    /// Reads and checks a registers file.
    pub fn load(path: &Path) -> Result<Registers> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Registers::parse(&text, &path.display().to_string())
    }

    /// Parses and checks registers; `origin` names the source in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Registers> {
        let bad = |what: String| Error::Registers(format!("{origin}: {what}"));
        let file: RegistersFile = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut seen = BTreeSet::new();
        for e in &file.enterprises {
            if !seen.insert(e.uscc.clone()) {
                return Err(bad(format!("enterprise {} is listed twice", e.uscc)));
            }
            if let Some(grade) = e.major_hazard_grade
                && !(1..=4).contains(&grade)
            {
                return Err(bad(format!(
                    "enterprise {}: major_hazard_grade is 1 to 4, not {grade}",
                    e.uscc
                )));
            }
        }
        let mut inspectors = BTreeMap::new();
        for (code, register) in file.inspectors {
            let department: Department =
                code.parse().map_err(|e| bad(format!("[inspectors] {e}")))?;
            let mut numbers = BTreeSet::new();
            for i in &register {
                if i.certificate_number.is_empty() || i.name.is_empty() {
                    return Err(bad(format!(
                        "inspectors of {code}: every inspector needs a name and a certificate number"
                    )));
                }
                if !numbers.insert(i.certificate_number.clone()) {
                    return Err(bad(format!(
                        "inspectors of {code}: certificate number {} is listed twice",
                        i.certificate_number
                    )));
                }
            }
            inspectors.insert(department, register);
        }
        Ok(Registers {
            enterprises: file.enterprises,
            inspectors,
        })
    }

    /// The register of a department (empty if it has none).
    pub fn inspectors_of(&self, department: Department) -> &[Inspector] {
        self.inspectors
            .get(&department)
            .map_or(&[][..], Vec::as_slice)
    }

    /// Every registered enterprise as a weighted candidate, by the weight rule, at `now`.
    pub fn candidates(
        &self,
        facts: &BTreeMap<String, RiskFacts>,
        now: DateTime<Utc>,
    ) -> Vec<Candidate> {
        self.enterprises
            .iter()
            .map(|e| weigh(e, facts.get(e.uscc.as_str()), now))
            .collect()
    }
}

/// What the record says about an enterprise's risk (derived from the stream).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskFacts {
    /// Ids of its active credit listings.
    pub active_listings: BTreeSet<String>,
    /// The best (most dangerous, lowest number) grade of its registered major hazard sources.
    pub major_hazard_grade: Option<u8>,
    /// When its last sensor alarm was raised or incident occurred.
    pub last_alarm_or_incident: Option<DateTime<Utc>>,
}

/// The weight rule (see the module documentation).
pub fn weigh(
    enterprise: &RegisteredEnterprise,
    facts: Option<&RiskFacts>,
    now: DateTime<Utc>,
) -> Candidate {
    let default = RiskFacts::default();
    let facts = facts.unwrap_or(&default);
    let mut weight = 1;
    let mut factors = Vec::new();
    if enterprise.credit_listed || !facts.active_listings.is_empty() {
        weight += 2;
        factors.push("credit_listed".to_owned());
    }
    let grade = match (enterprise.major_hazard_grade, facts.major_hazard_grade) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    match grade {
        Some(1 | 2) => {
            weight += 2;
            factors.push("major_hazard_grade_1_2".to_owned());
        }
        Some(_) => {
            weight += 1;
            factors.push("major_hazard_grade_3_4".to_owned());
        }
        None => {}
    }
    let recent = facts
        .last_alarm_or_incident
        .is_some_and(|t| t <= now && now - t <= chrono::Duration::days(RECENT_DAYS));
    if enterprise.recent_alarm_or_incident || recent {
        weight += 1;
        factors.push("recent_alarm_or_incident".to_owned());
    }
    Candidate {
        uscc: enterprise.uscc.clone(),
        weight,
        factors,
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests: the weight rule holds at any instant
mod tests {
    use super::*;

    #[test]
    fn the_default_registers_load() {
        let r = Registers::default_registers();
        assert!(r.enterprises.len() >= 12);
        for d in Department::ALL {
            assert!(
                r.inspectors_of(d).len() >= 3,
                "{d} needs a register of at least three inspectors"
            );
        }
    }

    #[test]
    fn bad_registers_are_refused_with_the_reason() {
        let dup = r#"
            [[enterprises]]
            uscc = "91320602MA04MJFYQC"
            [[enterprises]]
            uscc = "91320602MA04MJFYQC"
        "#;
        let e = Registers::parse(dup, "test").unwrap_err().to_string();
        assert!(e.contains("listed twice"), "{e}");
        let bad_uscc = "[[enterprises]]\nuscc = \"91320602MA04MJFYQD\"\n";
        assert!(Registers::parse(bad_uscc, "test").is_err());
        let bad_dept = "[inspectors]\npolice = []\n";
        let e = Registers::parse(bad_dept, "test").unwrap_err().to_string();
        assert!(e.contains("police"), "{e}");
        let dup_cert = "[inspectors]\nfire = [{certificate_number = \"1\", name = \"a\"}, {certificate_number = \"1\", name = \"b\"}]\n";
        assert!(Registers::parse(dup_cert, "test").is_err());
    }

    #[test]
    fn the_weight_rule() {
        let now = Utc::now();
        let plain = RegisteredEnterprise {
            uscc: Uscc::parse("91320602MA04MJFYQC").unwrap(),
            name: String::new(),
            credit_listed: false,
            major_hazard_grade: None,
            recent_alarm_or_incident: false,
        };
        assert_eq!(weigh(&plain, None, now).weight, 1);
        let facts = RiskFacts {
            active_listings: ["L1".to_owned()].into(),
            major_hazard_grade: Some(3),
            last_alarm_or_incident: Some(now - chrono::Duration::days(10)),
        };
        let c = weigh(&plain, Some(&facts), now);
        assert_eq!(c.weight, 1 + 2 + 1 + 1);
        assert_eq!(
            c.factors,
            [
                "credit_listed",
                "major_hazard_grade_3_4",
                "recent_alarm_or_incident"
            ]
        );
        let risky = RegisteredEnterprise {
            major_hazard_grade: Some(1),
            ..plain.clone()
        };
        assert_eq!(weigh(&risky, Some(&facts), now).weight, 6);
        let old = RiskFacts {
            last_alarm_or_incident: Some(now - chrono::Duration::days(RECENT_DAYS + 1)),
            ..RiskFacts::default()
        };
        assert_eq!(weigh(&plain, Some(&old), now).weight, 1);
    }
}
