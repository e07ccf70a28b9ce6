//! Origin signatures verified again, as an auditor does: each record's signature (a department's Ed25519
//! signature over the exact event bytes) against the department's key in a key registry **the auditor
//! names**, valid at the record's `accepted_at`; and every record of a type the signature rules require to
//! be signed must carry one.
//!
//! For each record ([`OriginCheck::check`]):
//!
//! 1. the record is read ([`crate::record`]); unreadable bytes fail;
//! 2. if it carries a signature, its publisher must be a department; the key its key id names must be one
//!    of that department's in the trusted registry, valid at `accepted_at`, and the signature must verify
//!    (`verify_strict`) over the event bytes. A key the registry does not list fails, even if the bundle
//!    being checked carries it: a bundle's keys are for reference and are never trusted;
//! 3. if it carries none, it fails if the rules require its type (its payload's type, read from the
//!    payload itself) of its publisher, or of every publisher for that type when the publisher is not a
//!    department (a service has no origin key, so it cannot publish such an event); otherwise it is
//!    counted as unsigned.
//!
//! The rules are the publish policy's `[signatures]` section (`deploy/policy.toml`), which the auditor
//! takes from the policy it trusts; they are today's rules, applied to the whole record.

use std::collections::{BTreeMap, BTreeSet};

use hazchem_domain::Department;

use crate::record::{self, Publisher};
use crate::registry::{KeyRegistry, SignatureError};

/// Which events must carry their department's origin signature.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignatureRules {
    departments: BTreeSet<Department>,
    event_types: BTreeSet<String>,
}

impl SignatureRules {
    /// All events of `departments`, and events of `event_types` whoever publishes them. An event type
    /// that is not one of the contract's is refused, naming it.
    pub fn new(
        departments: impl IntoIterator<Item = Department>,
        event_types: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Self, String> {
        let event_types: BTreeSet<String> = event_types.into_iter().map(Into::into).collect();
        if let Some(unknown) = event_types.iter().find(|t| !record::is_event_type(t)) {
            return Err(format!(
                "{unknown:?} is not an event type of hazchem.v1.Event"
            ));
        }
        Ok(SignatureRules {
            departments: departments.into_iter().collect(),
            event_types,
        })
    }

    /// Whether an event of type `token` published by `department` must be signed.
    pub fn requires(&self, department: Department, token: &str) -> bool {
        self.departments.contains(&department) || self.event_types.contains(token)
    }

    /// The event types every publisher must sign.
    pub fn event_types(&self) -> impl Iterator<Item = &str> {
        self.event_types.iter().map(String::as_str)
    }
}

/// What an auditor trusts to check origin signatures: the departments' keys (a registry file the auditor
/// names) and the rules of which events must be signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginCheck {
    registry: KeyRegistry,
    rules: SignatureRules,
    /// The keys a bundle being checked carries (its `signing-keys.toml`): never trusted, only named when a
    /// record's key is among them but not in the registry.
    offered: KeyRegistry,
}

/// What one record's origin check found, when it passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginOutcome {
    /// Signed, and the signature verifies with the key of this id.
    Verified(String),
    /// Unsigned, and no rule requires a signature.
    Unsigned,
}

impl OriginCheck {
    /// Checks signatures with the keys of `registry` (the auditor's) by `rules`.
    pub fn new(registry: KeyRegistry, rules: SignatureRules) -> Self {
        OriginCheck {
            registry,
            rules,
            offered: KeyRegistry::new(),
        }
    }

    /// The keys the bundle being checked carries (not trusted; see [`OriginCheck`]).
    #[must_use]
    pub fn offered(mut self, keys: KeyRegistry) -> Self {
        self.offered = keys;
        self
    }

    /// The trusted registry.
    pub fn registry(&self) -> &KeyRegistry {
        &self.registry
    }

    /// Checks one stored record; the error is one sentence saying what is wrong (without the leaf).
    pub fn check(&self, bytes: &[u8]) -> Result<OriginOutcome, String> {
        let stored = record::read_record(bytes)
            .map_err(|e| format!("the record cannot be read as a hazchem.v1.Record: {e}"))?;
        let types = record::payload_types(stored.event)
            .map_err(|e| format!("the event cannot be read as a hazchem.v1.Event: {e}"))?;
        let tokens: Vec<&str> = types.iter().filter_map(|(_, t)| *t).collect();
        let Some(signature) = stored.signature else {
            let required = tokens.iter().find(|token| match stored.publisher {
                Publisher::Department(d) => self.rules.requires(d, token),
                _ => self.rules.event_types.contains(**token),
            });
            return match required {
                Some(token) => Err(format!(
                    "a {token} event of {} carries no origin signature, but the signature rules require \
                     one",
                    publisher_name(stored.publisher)
                )),
                None => Ok(OriginOutcome::Unsigned),
            };
        };
        let Publisher::Department(department) = stored.publisher else {
            return Err(format!(
                "the record carries an origin signature (key id {:?}), but its publisher is {}, which has \
                 no origin-signing key",
                printable(signature.key_id),
                publisher_name(stored.publisher)
            ));
        };
        let accepted_at = stored.accepted_at.ok_or_else(|| {
            "the record is signed but has no accepted_at, so no key can be chosen by its validity"
                .to_owned()
        })?;
        match self.registry.verify(
            department,
            signature.key_id,
            stored.event,
            signature.signature,
            accepted_at,
        ) {
            Ok(key) => Ok(OriginOutcome::Verified(key.id().to_owned())),
            Err(SignatureError::UnknownKey { .. } | SignatureError::NoKeyRegistered { .. })
                if self.offered.key(signature.key_id).is_some() =>
            {
                Err(format!(
                    "signed with key {} of `{}`, which the bundle carries but the trusted key registry does \
                     not list (a bundle's keys are never trusted for being in it)",
                    printable(signature.key_id),
                    department.code()
                ))
            }
            Err(
                error
                @ (SignatureError::UnknownKey { .. } | SignatureError::NoKeyRegistered { .. }),
            ) => Err(format!(
                "signed with key {}, which the trusted key registry does not list ({error})",
                printable(signature.key_id)
            )),
            Err(error) => Err(format!("the origin signature is not good: {error}")),
        }
    }
}

fn publisher_name(publisher: Publisher<'_>) -> String {
    match publisher {
        Publisher::Department(d) => format!("department `{}`", d.code()),
        Publisher::Service(name) => format!("service `{}`", printable(name)),
        Publisher::UnknownDepartment(n) => format!("the unknown department number {n}"),
        Publisher::None => "no recorded publisher".to_owned(),
    }
}

/// At most 64 characters, control characters escaped.
fn printable(text: &str) -> String {
    text.chars().take(64).flat_map(char::escape_debug).collect()
}

/// What origin checking found over a whole verification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginReport {
    /// Good signatures, by key id.
    pub verified: BTreeMap<String, u64>,
    /// Records without a signature that no rule requires.
    pub unsigned: u64,
}

impl OriginReport {
    pub(crate) fn add(&mut self, outcome: OriginOutcome) {
        match outcome {
            OriginOutcome::Verified(id) => *self.verified.entry(id).or_default() += 1,
            OriginOutcome::Unsigned => self.unsigned += 1,
        }
    }

    /// How many signatures verified.
    pub fn signed(&self) -> u64 {
        self.verified.values().sum()
    }
}

impl std::fmt::Display for OriginReport {
    /// `origin signatures: 12 good (psb+1a2b3c4d: 5, …); 1036 records unsigned (none of a type that must be signed)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "origin signatures: {} good", self.signed())?;
        if !self.verified.is_empty() {
            let by_key: Vec<String> = self
                .verified
                .iter()
                .map(|(id, n)| format!("{id}: {n}"))
                .collect();
            write!(f, " ({})", by_key.join(", "))?;
        }
        write!(
            f,
            "; {} records unsigned (none of a type that must be signed)",
            self.unsigned
        )
    }
}
