//! The rules as data (`deploy/warning-rules.toml`, embedded as [`DEFAULT_RULES`]): each rule's id, legal
//! basis, level, addressed departments, escalation path and condition; the acknowledgement deadline of
//! each level; the command centre every escalation adds.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::TimeDelta;
use hazchem_domain::Department;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// The default rules, embedded.
pub const DEFAULT_RULES: &str = include_str!("../../../deploy/warning-rules.toml");

/// A warning level (一级 red the most severe, 四级 blue the least).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Red,
    Orange,
    Yellow,
    Blue,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::Red, Level::Orange, Level::Yellow, Level::Blue];

    /// One level more severe (red stays red).
    #[must_use]
    pub fn up(self) -> Level {
        match self {
            Level::Blue => Level::Yellow,
            Level::Yellow => Level::Orange,
            Level::Orange | Level::Red => Level::Red,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Red => "red",
            Level::Orange => "orange",
            Level::Yellow => "yellow",
            Level::Blue => "blue",
        }
    }

    pub fn to_proto(self) -> hazchem_proto::v1::WarningLevel {
        use hazchem_proto::v1::WarningLevel as W;
        match self {
            Level::Red => W::Red,
            Level::Orange => W::Orange,
            Level::Yellow => W::Yellow,
            Level::Blue => W::Blue,
        }
    }

    pub fn from_proto(value: i32) -> Option<Level> {
        use hazchem_proto::v1::WarningLevel as W;
        match W::try_from(value).ok()? {
            W::Red => Some(Level::Red),
            W::Orange => Some(Level::Orange),
            W::Yellow => Some(Level::Yellow),
            W::Blue => Some(Level::Blue),
            W::Unspecified => None,
        }
    }
}

/// The legal basis of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegalBasis {
    pub instrument: String,
    #[serde(default)]
    pub article: String,
    #[serde(default)]
    pub version: String,
}

impl LegalBasis {
    pub fn to_proto(&self) -> hazchem_proto::v1::LegalBasis {
        hazchem_proto::v1::LegalBasis {
            instrument: self.instrument.clone(),
            article: self.article.clone(),
            version: self.version.clone(),
        }
    }
}

/// The sensor kinds a gas rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sensor {
    FlammableGas,
    ToxicGas,
    Oxygen,
}

impl Sensor {
    pub fn matches(self, kind: i32) -> bool {
        use hazchem_proto::v1::SensorKind as K;
        matches!(
            (self, K::try_from(kind)),
            (Sensor::FlammableGas, Ok(K::FlammableGas))
                | (Sensor::ToxicGas, Ok(K::ToxicGas))
                | (Sensor::Oxygen, Ok(K::Oxygen))
        )
    }
}

/// What a rule watches for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Condition {
    /// A sensor reading at or above `above` (or below `below`); clears past the set point by
    /// `clear_margin`.
    GasThreshold {
        sensor: Sensor,
        above: Option<f64>,
        below: Option<f64>,
        clear_margin: f64,
    },
    /// `alarms` sensor alarms at one enterprise within `window_seconds`.
    AlarmStorm { alarms: usize, window_seconds: i64 },
    /// A sale of a chemical on catalogue list `list` with no valid purchase permit for buyer×chemical.
    ToxicSaleWithoutPermit { list: String },
    /// A waybill whose carrier holds no valid road transport licence at the waybill's time.
    UnlicensedCarrier,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub id: String,
    pub level: Level,
    pub title: String,
    pub addressed_to: Vec<Department>,
    #[serde(default)]
    pub escalate_to: Vec<Department>,
    pub legal_basis: LegalBasis,
    #[serde(flatten)]
    pub condition: Condition,
}

/// Minutes to acknowledge, per level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deadlines {
    pub red: u32,
    pub orange: u32,
    pub yellow: u32,
    pub blue: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Escalation {
    pub command_centre: Vec<Department>,
}

/// Every rule, the deadlines and the escalation path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    pub version: String,
    pub deadlines: Deadlines,
    pub escalation: Escalation,
    #[serde(rename = "rule")]
    pub rules: Vec<Rule>,
}

impl RuleSet {
    /// Parses and checks rules; the message names the rule and the setting.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<RuleSet> {
        let set: RuleSet =
            toml::from_str(text).map_err(|e| Error::Rules(format!("{origin}: {e}")))?;
        set.validate()
            .map_err(|e| Error::Rules(format!("{origin}: {e}")))?;
        Ok(set)
    }

    /// The embedded default (`deploy/warning-rules.toml`).
    pub fn default_rules() -> RuleSet {
        RuleSet::from_toml_str(DEFAULT_RULES, "deploy/warning-rules.toml")
            .expect("the embedded rules are valid")
    }

    /// Loads rules from a file.
    pub fn load(path: &Path) -> Result<RuleSet> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        RuleSet::from_toml_str(&text, &path.display().to_string())
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let mut seen = BTreeMap::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let at = format!("rule[{i}] ({})", rule.id);
            if rule.id.is_empty() || rule.id.len() > 100 || rule.id == "credit.conflict" {
                return Err(format!(
                    "{at}.id: 1 to 100 characters, and not \"credit.conflict\" (the credit service's)"
                ));
            }
            if seen.insert(rule.id.clone(), i).is_some() {
                return Err(format!("{at}.id: used by another rule"));
            }
            if rule.addressed_to.is_empty() {
                return Err(format!("{at}.addressed_to: at least one department"));
            }
            if rule.title.is_empty() || rule.title.chars().count() > 200 {
                return Err(format!("{at}.title: 1 to 200 characters"));
            }
            if rule.legal_basis.instrument.is_empty() {
                return Err(format!("{at}.legal_basis.instrument: required"));
            }
            match &rule.condition {
                Condition::GasThreshold {
                    above,
                    below,
                    clear_margin,
                    ..
                } => {
                    if above.is_some() == below.is_some() {
                        return Err(format!("{at}: exactly one of `above` and `below`"));
                    }
                    if !(clear_margin.is_finite() && *clear_margin >= 0.0) {
                        return Err(format!("{at}.clear_margin: a number at least 0"));
                    }
                }
                Condition::AlarmStorm {
                    alarms,
                    window_seconds,
                } => {
                    if *alarms < 2 || *window_seconds < 1 {
                        return Err(format!(
                            "{at}: alarms at least 2 and window_seconds at least 1"
                        ));
                    }
                }
                Condition::ToxicSaleWithoutPermit { list } => {
                    if list.is_empty() {
                        return Err(format!("{at}.list: the catalogue list to watch"));
                    }
                }
                Condition::UnlicensedCarrier => {}
            }
        }
        let d = &self.deadlines;
        if [d.red, d.orange, d.yellow, d.blue].contains(&0) {
            return Err("deadlines: every level at least 1 minute".into());
        }
        Ok(())
    }

    /// Time to acknowledge a warning of `level`.
    pub fn deadline(&self, level: Level) -> TimeDelta {
        let d = &self.deadlines;
        let minutes = match level {
            Level::Red => d.red,
            Level::Orange => d.orange,
            Level::Yellow => d.yellow,
            Level::Blue => d.blue,
        };
        TimeDelta::minutes(i64::from(minutes))
    }

    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// A fingerprint of everything that shapes what the rules derive.
    pub fn fingerprint(&self) -> String {
        let text = serde_json::to_string(self).expect("rules serialise");
        hex::encode(&Sha256::digest(text.as_bytes())[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_rules_load_and_bad_rules_are_named() {
        let rules = RuleSet::default_rules();
        assert!(rules.rule("alarm.storm").is_some());
        assert_eq!(rules.deadline(Level::Red), TimeDelta::minutes(30));
        let bad = DEFAULT_RULES.replace("above = 25.0", "above = 25.0\nbelow = 1.0");
        let error = RuleSet::from_toml_str(&bad, "x").unwrap_err().to_string();
        assert!(error.contains("gas.flammable.level1"), "{error}");
        assert_eq!(Level::Blue.up(), Level::Yellow);
        assert_eq!(Level::Red.up(), Level::Red);
    }
}
