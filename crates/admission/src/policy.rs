//! The declarative publish and read policy (`deploy/policy.toml`).
//!
//! A [`Policy`] is loaded from TOML and validated completely against the contract: every department code,
//! every event type token (checked against the payload fields of `hazchem.v1.Event`), every licence kind
//! (checked against `hazchem.v1.LicenceKind`) and every wildcard (it must match at least one event type).
//! Wildcards are expanded at load time, so every query is a set lookup.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use hazchem_domain::Department;
use hazchem_pki::Principal;
use hazchem_proto::v1;
use serde::Deserialize;

/// The default policy, `deploy/policy.toml`, as text (the gateway embeds it).
pub const DEFAULT_POLICY: &str = include_str!("../../../deploy/policy.toml");

/// The event types whose authorisation also depends on the licence kind ([`Policy::licence_issuers`]).
pub const LICENCE_EVENT_TYPES: [&str; 6] = [
    "licence_issued",
    "licence_renewed",
    "licence_suspended",
    "licence_revoked",
    "licence_expired",
    "application_decided",
];

/// The key of `[licence_issuers]` that lists the departments issuing any kind on behalf of others.
const ON_BEHALF: &str = "on_behalf";

/// Prefix of the `hazchem.v1.LicenceKind` value names.
const LICENCE_KIND_PREFIX: &str = "LICENCE_KIND_";

/// Every event type token of the contract, in field-number order.
static TOKENS: LazyLock<Vec<String>> = LazyLock::new(|| {
    hazchem_proto::event_types()
        .into_iter()
        .map(|t| t.token)
        .collect()
});

/// Every event type token of the contract, in field-number order.
pub fn event_type_tokens() -> &'static [String] {
    &TOKENS
}

/// Whether `token` is an event type of the contract.
pub fn is_event_type(token: &str) -> bool {
    TOKENS.iter().any(|t| t == token)
}

/// The policy name of a licence kind: the value name without `LICENCE_KIND_`, in lower case
/// (`LICENCE_KIND_SAFETY_PRODUCTION` → `safety_production`). `None` for the unspecified kind.
pub fn licence_kind_name(kind: v1::LicenceKind) -> Option<String> {
    if kind == v1::LicenceKind::Unspecified {
        return None;
    }
    kind.as_str_name()
        .strip_prefix(LICENCE_KIND_PREFIX)
        .map(str::to_ascii_lowercase)
}

/// The licence kinds of the contract by policy name (from the descriptor, so a new kind needs no code).
fn licence_kinds() -> BTreeMap<String, i32> {
    hazchem_proto::pool()
        .get_enum_by_name("hazchem.v1.LicenceKind")
        .map(|e| {
            e.values()
                .filter(|v| v.number() != 0)
                .filter_map(|v| {
                    v.name()
                        .strip_prefix(LICENCE_KIND_PREFIX)
                        .map(|n| (n.to_ascii_lowercase(), v.number()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What is wrong with one entry of a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyProblem {
    /// A department code that is not one of the nine.
    UnknownDepartment {
        /// The code given.
        code: String,
    },
    /// An event type token that is not a payload field of `hazchem.v1.Event`.
    UnknownEventType {
        /// The token given.
        token: String,
        /// A known token that is spelt almost the same, if any.
        suggestion: Option<String>,
    },
    /// A wildcard that matches no event type.
    WildcardMatchesNothing {
        /// The pattern given.
        pattern: String,
    },
    /// A pattern with `*` anywhere but at the end, or an empty pattern.
    MalformedPattern {
        /// The pattern given.
        pattern: String,
    },
    /// A licence kind that is not a value of `hazchem.v1.LicenceKind`.
    UnknownLicenceKind {
        /// The kind given.
        kind: String,
        /// The kinds the contract defines.
        known: Vec<String>,
    },
    /// A service name that is empty, not `[a-z0-9_-]`, or the code of a department (both name the
    /// publisher in bus subjects).
    BadServiceName {
        /// The name given.
        name: String,
    },
    /// A signature is required for an event type a service publishes; services have no origin keys.
    ServiceCannotSign {
        /// The event type.
        token: String,
        /// The service that publishes it.
        service: String,
    },
}

impl fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownDepartment { code } => write!(
                f,
                "`{code}` is not a department code (known: {})",
                Department::ALL.map(Department::code).join(", ")
            ),
            Self::UnknownEventType { token, suggestion } => {
                write!(
                    f,
                    "`{token}` is not an event type (a payload field of hazchem.v1.Event)"
                )?;
                if let Some(s) = suggestion {
                    write!(f, "; did you mean `{s}`?")?;
                }
                Ok(())
            }
            Self::WildcardMatchesNothing { pattern } => {
                write!(f, "the wildcard `{pattern}` matches no event type")
            }
            Self::MalformedPattern { pattern } => write!(
                f,
                "`{pattern}` is not an event type pattern: a token, a token prefix ending in `*`, or `*`"
            ),
            Self::UnknownLicenceKind { kind, known } => write!(
                f,
                "`{kind}` is not a licence kind (known: {}; or `{ON_BEHALF}`)",
                known.join(", ")
            ),
            Self::BadServiceName { name } => write!(
                f,
                "`{name}` is not a usable service name: 1-64 characters of a-z 0-9 _ -, and not a department code"
            ),
            Self::ServiceCannotSign { token, service } => write!(
                f,
                "`{token}` is published by service `{service}`, which has no origin-signing key; \
                 a signature cannot be required for it"
            ),
        }
    }
}

/// Loading a policy failed.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("policy {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not TOML, or not the policy's shape (unknown tables, wrong value types).
    #[error("policy{}: {source}", PathSuffix(path.as_deref()))]
    Toml {
        /// The file, when loaded from one.
        path: Option<PathBuf>,
        /// The parse error (its message names line and column).
        source: Box<toml::de::Error>,
    },
    /// An entry names something the contract does not define, or contradicts another entry.
    #[error("policy{}: [{table}] {entry}: {problem}", PathSuffix(path.as_deref()))]
    Entry {
        /// The file, when loaded from one.
        path: Option<PathBuf>,
        /// The table, e.g. `publish`.
        table: String,
        /// The entry within the table, e.g. the department code `psb`.
        entry: String,
        /// What is wrong.
        problem: Box<PolicyProblem>,
    },
}

impl PolicyError {
    fn entry(table: &str, entry: &str, problem: PolicyProblem) -> Self {
        Self::Entry {
            path: None,
            table: table.to_owned(),
            entry: entry.to_owned(),
            problem: Box::new(problem),
        }
    }

    fn with_path(mut self, file: &Path) -> Self {
        match &mut self {
            Self::Toml { path, .. } | Self::Entry { path, .. } => *path = Some(file.to_owned()),
            Self::Io { .. } => {}
        }
        self
    }
}

struct PathSuffix<'a>(Option<&'a Path>);

impl fmt::Display for PathSuffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(path) => write!(f, " {}", path.display()),
            None => Ok(()),
        }
    }
}

/// The file's shape, before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    publish: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    services: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    licence_issuers: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    read: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    signatures: RawSignatures,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignatures {
    #[serde(default)]
    required_departments: Vec<String>,
    #[serde(default)]
    required_event_types: Vec<String>,
}

/// The per-publisher NATS publish permissions derived from the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsPermissions {
    /// The publisher: a department or a service.
    pub principal: Principal,
    /// Subjects it may publish to, `hazchem.ev.<publisher>.<token>.*`, in contract order.
    pub publish: Vec<String>,
}

/// Who may publish and read what; loaded from TOML and validated against the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    publish: BTreeMap<Department, BTreeSet<String>>,
    services: BTreeMap<String, BTreeSet<String>>,
    /// Licence kind number → issuing departments.
    licence_issuers: BTreeMap<i32, Vec<Department>>,
    on_behalf: Vec<Department>,
    read: BTreeMap<Department, BTreeSet<String>>,
    signed_departments: BTreeSet<Department>,
    signed_event_types: BTreeSet<String>,
}

impl Policy {
    /// Parses and validates a policy.
    ///
    /// # Errors
    /// [`PolicyError::Toml`] for a syntax or shape error (including unknown tables and keys);
    /// [`PolicyError::Entry`] naming the table and entry for an unknown department, event type, licence
    /// kind, a wildcard matching nothing, or a signature required for an event type a service publishes.
    pub fn from_toml_str(text: &str) -> Result<Self, PolicyError> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| PolicyError::Toml {
            path: None,
            source: Box::new(e),
        })?;

        let publish = department_table("publish", &raw.publish)?;
        let read = department_table("read", &raw.read)?;

        let mut services = BTreeMap::new();
        for (name, patterns) in &raw.services {
            if !is_service_name(name) {
                return Err(PolicyError::entry(
                    "services",
                    name,
                    PolicyProblem::BadServiceName { name: name.clone() },
                ));
            }
            services.insert(name.clone(), expand("services", name, patterns)?);
        }

        let kinds = licence_kinds();
        let mut licence_issuers = BTreeMap::new();
        let mut on_behalf = Vec::new();
        for (kind, codes) in &raw.licence_issuers {
            let departments = departments("licence_issuers", kind, codes)?;
            if kind == ON_BEHALF {
                on_behalf = departments;
                continue;
            }
            let Some(&number) = kinds.get(kind) else {
                return Err(PolicyError::entry(
                    "licence_issuers",
                    kind,
                    PolicyProblem::UnknownLicenceKind {
                        kind: kind.clone(),
                        known: kinds.keys().cloned().collect(),
                    },
                ));
            };
            licence_issuers.insert(number, departments);
        }

        let signed_departments = departments(
            "signatures",
            "required_departments",
            &raw.signatures.required_departments,
        )?
        .into_iter()
        .collect();
        let signed_event_types = expand(
            "signatures",
            "required_event_types",
            &raw.signatures.required_event_types,
        )?;
        for token in &signed_event_types {
            if let Some((service, _)) = services.iter().find(|(_, t)| t.contains(token)) {
                return Err(PolicyError::entry(
                    "signatures",
                    "required_event_types",
                    PolicyProblem::ServiceCannotSign {
                        token: token.clone(),
                        service: service.clone(),
                    },
                ));
            }
        }

        Ok(Self {
            publish,
            services,
            licence_issuers,
            on_behalf,
            read,
            signed_departments,
            signed_event_types,
        })
    }

    /// Reads and validates a policy file.
    ///
    /// # Errors
    /// [`PolicyError::Io`] if the file cannot be read; otherwise as [`Policy::from_toml_str`], with the
    /// path in the error.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, PolicyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text).map_err(|e| e.with_path(path))
    }

    /// The default policy, [`DEFAULT_POLICY`].
    ///
    /// # Panics
    /// Never for a built crate: the default policy is validated by this crate's tests.
    #[must_use]
    pub fn default_policy() -> Self {
        Self::from_toml_str(DEFAULT_POLICY).expect("deploy/policy.toml is a valid policy")
    }

    /// Whether `principal` may publish events of type `token` at all. For licence event types
    /// ([`LICENCE_EVENT_TYPES`]) the licence kind is checked as well, by [`Policy::may_issue_licence`]
    /// and [`Policy::licence_issuers`]. Auditors publish nothing.
    #[must_use]
    pub fn may_publish(&self, principal: &Principal, token: &str) -> bool {
        self.publishable(principal)
            .is_some_and(|tokens| tokens.contains(token))
    }

    /// The event types `principal` may publish, in contract order.
    #[must_use]
    pub fn publishable_tokens(&self, principal: &Principal) -> Vec<String> {
        match self.publishable(principal) {
            Some(set) => in_contract_order(set),
            None => Vec::new(),
        }
    }

    fn publishable(&self, principal: &Principal) -> Option<&BTreeSet<String>> {
        match principal {
            Principal::Department(d) => self.publish.get(d),
            Principal::Service(name) => self.services.get(name),
            Principal::Auditor(_) => None,
        }
    }

    /// The departments that issue licences of `kind` in their own name (empty for an unspecified kind or
    /// a kind the policy lists no issuer for).
    #[must_use]
    pub fn licence_issuers(&self, kind: v1::LicenceKind) -> &[Department] {
        self.licence_issuers
            .get(&(kind as i32))
            .map_or(&[], Vec::as_slice)
    }

    /// The departments that may issue any kind of licence on behalf of the competent department.
    #[must_use]
    pub fn on_behalf(&self) -> &[Department] {
        &self.on_behalf
    }

    /// Whether `department` may publish licence events of `kind`: it issues that kind, or issues on behalf
    /// of others.
    #[must_use]
    pub fn may_issue_licence(&self, department: Department, kind: v1::LicenceKind) -> bool {
        self.on_behalf.contains(&department) || self.licence_issuers(kind).contains(&department)
    }

    /// Whether `principal` may read an event of type `token` published by `publisher` (`None` for the bus's
    /// own services) with the given classification and audience.
    ///
    /// Auditors and services read everything. A department reads what `[read]` grants it; a RESTRICTED
    /// event only if it published it or is in its audience. An unspecified or unknown classification is
    /// treated as RESTRICTED (fail closed).
    #[must_use]
    pub fn may_read(
        &self,
        principal: &Principal,
        token: &str,
        publisher: Option<Department>,
        classification: v1::DataClassification,
        audience: &[Department],
    ) -> bool {
        let department = match principal {
            Principal::Auditor(_) | Principal::Service(_) => return true,
            Principal::Department(d) => *d,
        };
        if !self
            .read
            .get(&department)
            .is_some_and(|t| t.contains(token))
        {
            return false;
        }
        match classification {
            v1::DataClassification::Public | v1::DataClassification::Shared => true,
            v1::DataClassification::Restricted | v1::DataClassification::Unspecified => {
                publisher == Some(department) || audience.contains(&department)
            }
        }
    }

    /// The event types `principal` may read (before the per-event classification rule), in contract
    /// order: the token list for subject filters.
    #[must_use]
    pub fn readable_tokens(&self, principal: &Principal) -> Vec<String> {
        match principal {
            Principal::Auditor(_) | Principal::Service(_) => TOKENS.clone(),
            Principal::Department(d) => self.read.get(d).map(in_contract_order).unwrap_or_default(),
        }
    }

    /// Whether events of type `token` published by `department` must carry its origin signature.
    #[must_use]
    pub fn signature_required(&self, department: Department, token: &str) -> bool {
        self.signed_departments.contains(&department) || self.signed_event_types.contains(token)
    }

    /// The `[signatures]` rules as an auditor re-checks them (`hazchem_verify::origin`): which events must
    /// carry their department's origin signature.
    #[must_use]
    pub fn signature_rules(&self) -> hazchem_verify::origin::SignatureRules {
        hazchem_verify::origin::SignatureRules::new(
            self.signed_departments.iter().copied(),
            self.signed_event_types.iter().cloned(),
        )
        .expect("the policy's event types are the contract's (checked when it was loaded)")
    }

    /// The NATS publish permissions of every department (in [`Department::ALL`] order) and every service
    /// (by name): the subjects `hazchem.ev.<publisher>.<token>.*` of the event types it may publish.
    #[must_use]
    pub fn nats_permissions(&self) -> Vec<NatsPermissions> {
        let subjects = |publisher: &str, tokens: &BTreeSet<String>| {
            in_contract_order(tokens)
                .into_iter()
                .map(|t| format!("hazchem.ev.{publisher}.{t}.*"))
                .collect()
        };
        let departments = Department::ALL.into_iter().map(|d| NatsPermissions {
            principal: Principal::Department(d),
            publish: self
                .publish
                .get(&d)
                .map(|t| subjects(d.code(), t))
                .unwrap_or_default(),
        });
        let services = self.services.iter().map(|(name, tokens)| NatsPermissions {
            principal: Principal::Service(name.clone()),
            publish: subjects(name, tokens),
        });
        departments.chain(services).collect()
    }
}

fn in_contract_order(set: &BTreeSet<String>) -> Vec<String> {
    TOKENS
        .iter()
        .filter(|t| set.contains(*t))
        .cloned()
        .collect()
}

fn is_service_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && name.parse::<Department>().is_err()
}

/// A table keyed by department code whose values are event type patterns.
fn department_table(
    table: &str,
    raw: &BTreeMap<String, Vec<String>>,
) -> Result<BTreeMap<Department, BTreeSet<String>>, PolicyError> {
    raw.iter()
        .map(|(code, patterns)| {
            let department = parse_department(table, code, code)?;
            Ok((department, expand(table, code, patterns)?))
        })
        .collect()
}

fn parse_department(table: &str, entry: &str, code: &str) -> Result<Department, PolicyError> {
    code.parse().map_err(|_| {
        PolicyError::entry(
            table,
            entry,
            PolicyProblem::UnknownDepartment {
                code: code.to_owned(),
            },
        )
    })
}

fn departments(table: &str, entry: &str, codes: &[String]) -> Result<Vec<Department>, PolicyError> {
    let mut out = Vec::new();
    for code in codes {
        let d = parse_department(table, entry, code)?;
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Ok(out)
}

/// Expands event type patterns into the tokens they match.
fn expand(table: &str, entry: &str, patterns: &[String]) -> Result<BTreeSet<String>, PolicyError> {
    let mut out = BTreeSet::new();
    for pattern in patterns {
        let err = |problem| PolicyError::entry(table, entry, problem);
        match pattern.strip_suffix('*') {
            Some(prefix) if !prefix.contains('*') => {
                let matched: Vec<&String> =
                    TOKENS.iter().filter(|t| t.starts_with(prefix)).collect();
                if matched.is_empty() {
                    return Err(err(PolicyProblem::WildcardMatchesNothing {
                        pattern: pattern.clone(),
                    }));
                }
                out.extend(matched.into_iter().cloned());
            }
            Some(_) => {
                return Err(err(PolicyProblem::MalformedPattern {
                    pattern: pattern.clone(),
                }));
            }
            None if pattern.is_empty() || pattern.contains('*') => {
                return Err(err(PolicyProblem::MalformedPattern {
                    pattern: pattern.clone(),
                }));
            }
            None if is_event_type(pattern) => {
                out.insert(pattern.clone());
            }
            None => {
                return Err(err(PolicyProblem::UnknownEventType {
                    token: pattern.clone(),
                    suggestion: suggest(pattern),
                }));
            }
        }
    }
    Ok(out)
}

/// The known token closest to `token` by edit distance, if it is close (at most 3 edits).
fn suggest(token: &str) -> Option<String> {
    TOKENS
        .iter()
        .map(|t| (edit_distance(token, t), t))
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, t)| t.clone())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dept(code: &str) -> Principal {
        Principal::Department(code.parse().unwrap())
    }

    fn entry_error(text: &str) -> (String, String, PolicyProblem) {
        match Policy::from_toml_str(text).unwrap_err() {
            PolicyError::Entry {
                table,
                entry,
                problem,
                ..
            } => (table, entry, *problem),
            other => panic!("expected an entry error, got {other}"),
        }
    }

    #[test]
    fn the_default_policy_loads() {
        let policy = Policy::default_policy();
        assert!(policy.may_publish(&dept("transport"), "waybill_issued"));
        assert_eq!(policy.on_behalf(), [Department::Approval]);
    }

    #[test]
    fn wildcards_expand_to_every_matching_token() {
        let policy = Policy::from_toml_str(
            "[services]\nenforcement = [\"task_*\"]\n[read]\nfire = [\"*\"]\n",
        )
        .unwrap();
        let tasks = policy.publishable_tokens(&Principal::Service("enforcement".into()));
        assert_eq!(tasks.len(), 11);
        assert!(tasks.iter().all(|t| t.starts_with("task_")));
        assert_eq!(policy.readable_tokens(&dept("fire")), TOKENS.clone());
        assert!(policy.readable_tokens(&dept("psb")).is_empty());
    }

    #[test]
    fn misspelt_tokens_get_a_suggestion() {
        let (table, entry, problem) = entry_error("[publish]\ntransport = [\"waybill_isued\"]\n");
        assert_eq!((table.as_str(), entry.as_str()), ("publish", "transport"));
        assert_eq!(
            problem,
            PolicyProblem::UnknownEventType {
                token: "waybill_isued".into(),
                suggestion: Some("waybill_issued".into())
            }
        );
        assert!(
            problem
                .to_string()
                .contains("did you mean `waybill_issued`")
        );
    }

    #[test]
    fn malformed_patterns_are_rejected() {
        for pattern in ["", "task_*_x", "**", "*task"] {
            let (_, _, problem) = entry_error(&format!("[read]\nfire = [\"{pattern}\"]\n"));
            assert_eq!(
                problem,
                PolicyProblem::MalformedPattern {
                    pattern: pattern.into()
                },
                "{pattern}"
            );
        }
    }

    #[test]
    fn licence_kind_names_come_from_the_contract() {
        assert_eq!(
            licence_kind_name(v1::LicenceKind::PractitionerQualification).as_deref(),
            Some("practitioner_qualification")
        );
        assert_eq!(licence_kind_name(v1::LicenceKind::Unspecified), None);
        let kinds = licence_kinds();
        assert_eq!(kinds.len(), 10);
        assert_eq!(kinds["safety_production"], 1);
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_substitutions() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", "abc"), 0);
    }
}
