//! The nine departments of the joint-supervision mechanism for hazardous
//! chemicals (《危险化学品安全管理条例》 Art. 6, names as after the 2018 reform).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{IdentifierError, IdentifierKind, Rule};

/// A department taking part in the bus. Serialised as its stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Department {
    /// `miit` 工业和信息化: industry planning, siting of chemical parks.
    Miit,
    /// `psb` 公安: highly toxic and explosive-precursor chemicals, case transfers.
    Psb,
    /// `eeb` 生态环境: hazardous waste licences and transfer manifests.
    Eeb,
    /// `transport` 交通运输: road transport licences, vehicles, waybills, ports.
    Transport,
    /// `emergency` 应急管理: overall supervision, safety licences, incidents.
    Emergency,
    /// `samr` 市场监管: business registration, product licences, special equipment.
    Samr,
    /// `approval` 行政审批: centralised permitting.
    Approval,
    /// `msa` 海事: ship dangerous-goods declarations.
    Msa,
    /// `fire` 消防救援: fire inspections and rescue.
    Fire,
}

impl Department {
    /// All nine departments, in the order of the reference table.
    pub const ALL: [Self; 9] = [
        Self::Miit,
        Self::Psb,
        Self::Eeb,
        Self::Transport,
        Self::Emergency,
        Self::Samr,
        Self::Approval,
        Self::Msa,
        Self::Fire,
    ];

    /// The stable code, e.g. `"emergency"`.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::Miit => "miit",
            Self::Psb => "psb",
            Self::Eeb => "eeb",
            Self::Transport => "transport",
            Self::Emergency => "emergency",
            Self::Samr => "samr",
            Self::Approval => "approval",
            Self::Msa => "msa",
            Self::Fire => "fire",
        }
    }

    /// Chinese name, e.g. `"应急管理"`.
    #[must_use]
    pub const fn name_zh(self) -> &'static str {
        match self {
            Self::Miit => "工业和信息化",
            Self::Psb => "公安",
            Self::Eeb => "生态环境",
            Self::Transport => "交通运输",
            Self::Emergency => "应急管理",
            Self::Samr => "市场监管",
            Self::Approval => "行政审批",
            Self::Msa => "海事",
            Self::Fire => "消防救援",
        }
    }

    /// English name, e.g. `"Emergency Management"`.
    #[must_use]
    pub const fn name_en(self) -> &'static str {
        match self {
            Self::Miit => "Industry and Information Technology",
            Self::Psb => "Public Security",
            Self::Eeb => "Ecology and Environment",
            Self::Transport => "Transport",
            Self::Emergency => "Emergency Management",
            Self::Samr => "Market Regulation",
            Self::Approval => "Administrative Approval",
            Self::Msa => "Maritime Safety",
            Self::Fire => "Fire and Rescue",
        }
    }

    /// The department with this code (same as [`FromStr`]).
    ///
    /// # Errors
    /// An [`IdentifierError`] of kind [`IdentifierKind::Department`] and rule
    /// [`Rule::Unknown`] listing the valid codes.
    pub fn parse(code: &str) -> Result<Self, IdentifierError> {
        Self::ALL
            .into_iter()
            .find(|d| d.code() == code)
            .ok_or_else(|| {
                let codes: Vec<&str> = Self::ALL.iter().map(|d| d.code()).collect();
                IdentifierError::new(
                    IdentifierKind::Department,
                    code,
                    Rule::Unknown,
                    format!("one of {}", codes.join(", ")),
                )
            })
    }
}

impl fmt::Display for Department {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Department {
    type Err = IdentifierError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Department {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Department {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Self::parse(&code).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_nine_round_trip() {
        assert_eq!(Department::ALL.len(), 9);
        for d in Department::ALL {
            assert_eq!(d.code().parse::<Department>().unwrap(), d);
            assert_eq!(d.to_string(), d.code());
            let json = serde_json::to_string(&d).unwrap();
            assert_eq!(json, format!("\"{}\"", d.code()));
            assert_eq!(serde_json::from_str::<Department>(&json).unwrap(), d);
        }
        let mut codes: Vec<&str> = Department::ALL.iter().map(|d| d.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), 9);
    }

    #[test]
    fn unknown_code_lists_valid_ones() {
        let e = "police".parse::<Department>().unwrap_err();
        assert_eq!(
            (e.kind, e.rule),
            (IdentifierKind::Department, Rule::Unknown)
        );
        assert_eq!(
            e.to_string(),
            "department \"police\": unknown code: expected one of miit, psb, eeb, transport, \
             emergency, samr, approval, msa, fire"
        );
        assert!("Emergency".parse::<Department>().is_err());
        assert!(serde_json::from_str::<Department>("\"fire_dept\"").is_err());
    }
}
