//! Violations the simulator can inject, and the ground truth of what it injected.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A kind of violation the simulator injects on request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ViolationKind {
    /// A licence granted by one department to an enterprise another department put on the
    /// serious-dishonest list with a measure restricting licences.
    ListedLicence,
    /// A sale of a highly toxic chemical with no purchase permit (剧毒化学品购买许可证).
    ToxicSaleWithoutPermit,
    /// An electronic waybill naming a carrier that holds no road dangerous-goods transport licence.
    UnlicensedCarrierWaybill,
    /// A batch whose quantities do not balance: more sold and shipped than was produced and stored.
    UnbalancedBatch,
    /// Many sensor alarms from one enterprise within a couple of minutes.
    AlarmStorm,
}

impl ViolationKind {
    pub const ALL: [ViolationKind; 5] = [
        ViolationKind::ListedLicence,
        ViolationKind::ToxicSaleWithoutPermit,
        ViolationKind::UnlicensedCarrierWaybill,
        ViolationKind::UnbalancedBatch,
        ViolationKind::AlarmStorm,
    ];

    /// The name used on the command line and in the ground truth.
    pub fn name(self) -> &'static str {
        match self {
            ViolationKind::ListedLicence => "listed-licence",
            ViolationKind::ToxicSaleWithoutPermit => "toxic-sale-without-permit",
            ViolationKind::UnlicensedCarrierWaybill => "unlicensed-carrier-waybill",
            ViolationKind::UnbalancedBatch => "unbalanced-batch",
            ViolationKind::AlarmStorm => "alarm-storm",
        }
    }
}

impl fmt::Display for ViolationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ViolationKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        ViolationKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                Error::Config(format!(
                    "unknown violation {s:?}; one of: all, {}",
                    ViolationKind::ALL.map(ViolationKind::name).join(", ")
                ))
            })
    }
}

/// Which violations to inject, and how many of each.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Injections(pub BTreeMap<ViolationKind, usize>);

impl Injections {
    /// Parses command-line items: `all`, `<kind>` or `<kind>=<count>`; counts of one kind add up.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, Error> {
        let mut out = Injections::default();
        for item in items {
            let item = item.as_ref().trim();
            let (name, count) = match item.split_once('=') {
                Some((name, count)) => {
                    let count: usize = count.parse().map_err(|_| {
                        Error::Config(format!(
                            "--inject {item}: the count after '=' must be a whole number"
                        ))
                    })?;
                    (name, count)
                }
                None => (item, 1),
            };
            if count > 10_000 {
                return Err(Error::Config(format!(
                    "--inject {item}: at most 10000 of one kind"
                )));
            }
            if name == "all" {
                for kind in ViolationKind::ALL {
                    *out.0.entry(kind).or_default() += count;
                }
            } else {
                *out.0.entry(name.parse()?).or_default() += count;
            }
        }
        out.0.retain(|_, n| *n > 0);
        Ok(out)
    }

    /// Every kind once.
    pub fn all() -> Self {
        Injections(ViolationKind::ALL.into_iter().map(|k| (k, 1)).collect())
    }

    /// The total number of violations.
    pub fn total(&self) -> usize {
        self.0.values().sum()
    }

    /// One entry per violation to inject, kinds interleaved (round robin) so that they spread
    /// over the run.
    pub fn sequence(&self) -> Vec<ViolationKind> {
        let mut left = self.0.clone();
        let mut out = Vec::with_capacity(self.total());
        while left.values().any(|n| *n > 0) {
            for (kind, n) in left.iter_mut() {
                if *n > 0 {
                    out.push(*kind);
                    *n -= 1;
                }
            }
        }
        out
    }
}

/// An enterprise as the ground truth names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthEnterprise {
    pub uscc: String,
    pub name: String,
}

/// One injected violation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InjectedViolation {
    pub kind: ViolationKind,
    /// What was done, in a sentence.
    pub description: String,
    pub enterprise: TruthEnterprise,
    /// The events that make up the violation (the violating event last where there is one).
    pub event_ids: Vec<String>,
    /// The event that is the violation itself (the grant, the sale, the waybill, ...).
    pub violating_event_id: String,
    /// What should catch it, and how it shows.
    pub expected_detection: String,
    /// The service expected to detect it (`credit`, `lifecycle`, `warning`).
    pub detector: String,
}

/// What a simulation run generated and injected, written to the ground-truth file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    pub seed: u64,
    /// The instant the run's simulated clock ends at (event times are at or before it).
    pub epoch: DateTime<Utc>,
    /// The run's tag, the prefix of every event id.
    pub run: String,
    /// Events generated, in total and by publishing department.
    pub events: usize,
    pub events_by_department: BTreeMap<String, usize>,
    /// Events generated by type token.
    pub events_by_type: BTreeMap<String, usize>,
    pub violations: Vec<InjectedViolation>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kinds_counts_and_all() {
        let i = Injections::parse(&["all", "alarm-storm=2", "unbalanced-batch"]).unwrap();
        assert_eq!(i.0[&ViolationKind::AlarmStorm], 3);
        assert_eq!(i.0[&ViolationKind::UnbalancedBatch], 2);
        assert_eq!(i.0[&ViolationKind::ListedLicence], 1);
        assert_eq!(i.total(), 8);
        assert_eq!(i.sequence().len(), 8);
        assert!(Injections::parse(&["nonsense"]).is_err());
        assert!(Injections::parse(&["alarm-storm=x"]).is_err());
        assert!(Injections::parse(&["alarm-storm=0"]).unwrap().0.is_empty());
    }
}
