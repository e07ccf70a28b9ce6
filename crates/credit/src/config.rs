//! The credit service's configuration (the `[credit]` table of the service configuration).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hazchem_kit::{ConfigError, ServerTlsFiles, seconds};
use serde::{Deserialize, Serialize};

use crate::registry::{Authority, ListType, TermRule, default_terms};

/// The term and repair waiting period of each list type, in calendar months.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Terms {
    /// 严重失信主体名单: 36 months, repair after 12 (应急管理部令第11号).
    pub serious_dishonest: TermRule,
    /// 重点监管名单: 12 months, repair after 6 (project default).
    pub key_supervision: TermRule,
    /// 公开曝光: 12 months, repair after 3 (project default).
    pub public_exposure: TermRule,
    /// 联合惩戒: 36 months, repair after 12 (follows the serious-dishonest list).
    pub joint_punishment: TermRule,
}

impl Default for Terms {
    fn default() -> Self {
        let d = default_terms();
        Terms {
            serious_dishonest: d[&ListType::SeriousDishonest],
            key_supervision: d[&ListType::KeySupervision],
            public_exposure: d[&ListType::PublicExposure],
            joint_punishment: d[&ListType::JointPunishment],
        }
    }
}

impl Terms {
    /// By list type.
    #[must_use]
    pub fn by_type(&self) -> BTreeMap<ListType, TermRule> {
        BTreeMap::from([
            (ListType::SeriousDishonest, self.serious_dishonest),
            (ListType::KeySupervision, self.key_supervision),
            (ListType::PublicExposure, self.public_exposure),
            (ListType::JointPunishment, self.joint_punishment),
        ])
    }
}

/// How a gateway in another process reaches the credit service to review credit decisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteGuardConfig {
    /// The credit service, e.g. `https://credit.hazchem.internal:7445`.
    pub endpoint: String,
    /// CA of the credit service's server certificate (PEM).
    pub ca: PathBuf,
    /// The gateway's client certificate (URI SAN `hazchem://service/gateway`) and key (PEM).
    pub cert: PathBuf,
    pub key: PathBuf,
    /// How long one review may take (whole seconds).
    #[serde(with = "seconds", default = "default_review_timeout")]
    pub timeout: Duration,
}

fn default_review_timeout() -> Duration {
    Duration::from_secs(10)
}

/// Configuration of the credit service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CreditConfig {
    /// Where the credit service answers queries (gRPC over mTLS).
    pub listen: SocketAddr,
    /// TLS files; required to serve.
    pub tls: Option<ServerTlsFiles>,
    /// The local store (sled): derived state, rebuilt from the stream if lost.
    pub state: PathBuf,
    /// The measure catalogue (TOML); unset means the built-in `deploy/credit-measures.toml`.
    pub measures: Option<PathBuf>,
    /// How the authority to list is established: `penalty_on_record` (the listing names a penalty the
    /// listing department published against the same enterprise) or `sanctioning_department` (the listing
    /// department is one the policy lets publish penalties).
    pub authority: Authority,
    /// Term and repair waiting period per list type.
    pub terms: Terms,
    /// Services (client certificate `hazchem://service/<name>`) that may call `ReviewDecision`.
    pub reviewers: Vec<String>,
    /// How long a review waits for the registry to catch up with the stream (whole seconds).
    #[serde(with = "seconds")]
    pub review_timeout: Duration,
    /// A credit-conflict warning is to be acknowledged within this many hours.
    pub conflict_acknowledge_hours: u32,
    /// How often, at most, the service looks for listings whose term ended (whole seconds).
    #[serde(with = "seconds")]
    pub expiry_interval: Duration,
    /// For a gateway running without the credit service in its process: where to send credit decisions
    /// for review. Unset there means credit decisions are not reviewed.
    pub remote: Option<RemoteGuardConfig>,
}

impl Default for CreditConfig {
    fn default() -> Self {
        CreditConfig {
            listen: hazchem_pki::services::default_listen(crate::SERVICE_NAME),
            tls: None,
            state: PathBuf::from(".hazchem/credit"),
            measures: None,
            authority: Authority::PenaltyOnRecord,
            terms: Terms::default(),
            reviewers: vec!["gateway".to_owned()],
            review_timeout: Duration::from_secs(10),
            conflict_acknowledge_hours: 24,
            expiry_interval: Duration::from_secs(60),
            remote: None,
        }
    }
}

impl CreditConfig {
    /// Checks what serde cannot; the message names the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (list_type, rule) in self.terms.by_type() {
            if rule.term_months == 0 || rule.term_months > 1200 {
                return Err(ConfigError::new(
                    format!("credit.terms.{list_type}.term_months"),
                    format!("between 1 and 1200, got {}", rule.term_months),
                ));
            }
            if rule.repair_after_months >= rule.term_months {
                return Err(ConfigError::new(
                    format!("credit.terms.{list_type}.repair_after_months"),
                    format!(
                        "must be less than term_months ({}), got {}",
                        rule.term_months, rule.repair_after_months
                    ),
                ));
            }
        }
        if self.review_timeout < Duration::from_secs(1)
            || self.review_timeout > Duration::from_secs(300)
        {
            return Err(ConfigError::new(
                "credit.review_timeout",
                "between 1 and 300 seconds",
            ));
        }
        if self.expiry_interval < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "credit.expiry_interval",
                "at least 1 second",
            ));
        }
        if self.conflict_acknowledge_hours == 0 || self.conflict_acknowledge_hours > 24 * 90 {
            return Err(ConfigError::new(
                "credit.conflict_acknowledge_hours",
                "between 1 and 2160",
            ));
        }
        for name in &self.reviewers {
            hazchem_pki::Principal::service(name)
                .map_err(|e| ConfigError::new("credit.reviewers", format!("{name:?}: {e}")))?;
        }
        Ok(())
    }

    /// The server TLS configuration of the files `tls` names.
    pub fn server_tls(&self) -> crate::Result<hazchem_pki::ServerTls> {
        let files = self
            .tls
            .as_ref()
            .ok_or_else(|| crate::Error::Config(ConfigError::new("credit.tls", "required")))?;
        Ok(files.load()?)
    }

    /// Also requires what serving needs (TLS).
    pub fn validate_for_serving(&self) -> Result<(), ConfigError> {
        self.validate()?;
        if self.tls.is_none() {
            return Err(ConfigError::new(
                "credit.tls",
                "cert, key and client_ca are required (callers authenticate with mTLS)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_terms_are_named() {
        CreditConfig::default().validate().unwrap();
        let mut c = CreditConfig::default();
        c.terms.public_exposure.repair_after_months = 12;
        let e = c.validate().unwrap_err();
        assert!(
            e.to_string()
                .starts_with("credit.terms.public_exposure.repair_after_months"),
            "{e}"
        );
        let c = CreditConfig::default();
        assert!(
            c.validate_for_serving()
                .unwrap_err()
                .to_string()
                .starts_with("credit.tls")
        );
    }

    #[test]
    fn the_example_deployment_configuration_is_valid() {
        let file: toml::Table =
            toml::from_str(include_str!("../../../deploy/credit.toml")).unwrap();
        let credit: CreditConfig = file["credit"].clone().try_into().unwrap();
        credit.validate_for_serving().unwrap();
        assert_eq!(credit.terms, Terms::default());
        assert_eq!(credit.listen.port(), 7445);
    }

    #[test]
    fn the_configuration_reads_from_toml() {
        let c: CreditConfig = toml::from_str(
            "listen = \"0.0.0.0:7445\"\nauthority = \"sanctioning_department\"\n\
             [terms.key_supervision]\nterm_months = 24\nrepair_after_months = 6\n",
        )
        .unwrap();
        assert_eq!(c.authority, Authority::SanctioningDepartment);
        assert_eq!(c.terms.key_supervision.term_months, 24);
        assert_eq!(c.terms.serious_dishonest.term_months, 36);
    }
}
