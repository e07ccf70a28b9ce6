//! The departments' origin-signing keys (`signing-keys.toml`), each with a key id and a validity period:
//! the registry the gateway admits origin signatures by, and the one an auditor names to verify them again
//! (`hazchem audit verify --key-registry FILE`).
//!
//! A department signs what it publishes with its Ed25519 key; the signature (`OriginSignature`) names the
//! key by its **key id**, `<department code>+<8 hex digits>`, the C2SP signed-note key id of the key
//! under the name of the department code (`SHA-256(code ‖ "\n" ‖ 0x01 ‖ key)[..4]`, [`origin_key_id`]),
//! printed as the note format prints keys (`psb+1a2b3c4d`). The id is derived from the key, so a publisher
//! computes its own from its signing key, and an id names one key everywhere.
//!
//! A department may have several keys, each valid from `not_before` (inclusive) until `not_after`
//! (exclusive), either bound open: so that after a rotation the old key still verifies what it signed in
//! its time and is refused for anything accepted later. A signature is checked against the key its key id
//! names, and only if the record's `accepted_at` lies in that key's validity.
//!
//! ```toml
//! [[psb]]
//! id = "psb+1a2b3c4d"            # optional; if given, it must be the key's id
//! key = "Vd1q8x...="             # base64 of the 32-byte Ed25519 public key
//! not_after = 2026-07-01T00:00:00Z
//!
//! [[psb]]
//! id = "psb+9f8e7d6c"
//! key = "2d0Cq0...="
//! not_before = 2026-07-01T00:00:00Z
//! ```
//!
//! The older form, one key per department valid at any time, is still read: a top-level `psb = "<base64>"`
//! (written before any `[[…]]` table). Signatures whose key id is the bare department code (`psb`), as
//! publishers wrote them before key ids, are checked against every key of the department valid at the
//! time, and accepted if one verifies.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use hazchem_domain::Department;

use crate::error::{Error, Result};
use crate::key::PublicKey;

/// The key id of a department's origin-signing key: `<code>+<8 hex digits>`, the C2SP key id of the key
/// under the name `<code>`.
pub fn origin_key_id(department: Department, key: &PublicKey) -> String {
    format!(
        "{}+{}",
        department.code(),
        hex::encode(crate::note::key_id(department.code(), key))
    )
}

/// One registered key of a department, with its validity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginKey {
    department: Department,
    key: PublicKey,
    id: String,
    not_before: Option<DateTime<Utc>>,
    not_after: Option<DateTime<Utc>>,
}

impl OriginKey {
    /// `key` of `department`, valid at any time (bound it with [`OriginKey::not_before`] and
    /// [`OriginKey::not_after`]).
    pub fn new(department: Department, key: PublicKey) -> Self {
        OriginKey {
            id: origin_key_id(department, &key),
            department,
            key,
            not_before: None,
            not_after: None,
        }
    }

    /// Valid from `at` (inclusive).
    #[must_use]
    pub fn not_before(mut self, at: DateTime<Utc>) -> Self {
        self.not_before = Some(at);
        self
    }

    /// Valid until `at` (exclusive).
    #[must_use]
    pub fn not_after(mut self, at: DateTime<Utc>) -> Self {
        self.not_after = Some(at);
        self
    }

    /// The department it signs for.
    pub fn department(&self) -> Department {
        self.department
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }

    /// Its key id, `<code>+<8 hex digits>`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The start of its validity (inclusive), if bounded.
    pub fn valid_from(&self) -> Option<DateTime<Utc>> {
        self.not_before
    }

    /// The end of its validity (exclusive), if bounded.
    pub fn valid_until(&self) -> Option<DateTime<Utc>> {
        self.not_after
    }

    /// Whether the key is valid at `at`; the error says which bound `at` misses.
    pub fn check_valid_at(&self, at: DateTime<Utc>) -> Result<(), SignatureError> {
        if let Some(not_before) = self.not_before
            && at < not_before
        {
            return Err(SignatureError::NotYetValid {
                key_id: self.id.clone(),
                not_before,
                at,
            });
        }
        if let Some(not_after) = self.not_after
            && at >= not_after
        {
            return Err(SignatureError::Expired {
                key_id: self.id.clone(),
                not_after,
                at,
            });
        }
        Ok(())
    }

    /// The validity in words: `valid from … until …`, `valid at any time`.
    pub fn validity(&self) -> String {
        match (self.not_before, self.not_after) {
            (None, None) => "valid at any time".to_owned(),
            (Some(b), None) => format!("valid from {}", rfc3339(b)),
            (None, Some(a)) => format!("valid until {}", rfc3339(a)),
            (Some(b), Some(a)) => format!("valid from {} until {}", rfc3339(b), rfc3339(a)),
        }
    }
}

impl fmt::Display for OriginKey {
    /// `<key id> (<validity>)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.id, self.validity())
    }
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Why an origin signature is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The registry has no key for the department.
    #[error("no origin-signing public key is registered for department `{}`", department.code())]
    NoKeyRegistered { department: Department },

    /// The key id is not of the form `<code>+<8 hex digits>` (or a bare department code).
    #[error(
        "key id {key_id:?} is not a key id: it is `<department code>+<8 hex digits>`, the C2SP key id of the \
         department's key"
    )]
    MalformedKeyId { key_id: String },

    /// The key id names another department's key.
    #[error("key id {key_id:?} is not a key of department `{}`, the publisher", department.code())]
    ForeignKeyId {
        department: Department,
        key_id: String,
    },

    /// The department has no key with this id.
    #[error("no key {key_id} is registered for department `{}`", department.code())]
    UnknownKey {
        department: Department,
        key_id: String,
    },

    /// The key is not valid yet at the time.
    #[error(
        "key {key_id} is not valid before {}, and the event was accepted at {}",
        rfc3339(*not_before),
        rfc3339(*at)
    )]
    NotYetValid {
        key_id: String,
        not_before: DateTime<Utc>,
        at: DateTime<Utc>,
    },

    /// The key's validity ended before the time.
    #[error(
        "key {key_id} is not valid from {} on (it was rotated or retired), and the event was accepted at {}",
        rfc3339(*not_after),
        rfc3339(*at)
    )]
    Expired {
        key_id: String,
        not_after: DateTime<Utc>,
        at: DateTime<Utc>,
    },

    /// A signature under the bare department code, but none of the department's keys is valid then.
    #[error("no key of department `{}` is valid at {}", department.code(), rfc3339(*at))]
    NoKeyValidAt {
        department: Department,
        at: DateTime<Utc>,
    },

    /// The signature is not 64 bytes long.
    #[error("malformed signature: an Ed25519 signature is 64 bytes, got {length}")]
    MalformedSignature { length: usize },

    /// The signature does not verify with the key.
    #[error(
        "the signature does not verify against the registered public key {key_id} of department `{}`",
        department.code()
    )]
    BadSignature {
        department: Department,
        key_id: String,
    },
}

/// The registered origin-signing keys of the departments; see the [module documentation](self).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRegistry {
    keys: BTreeMap<Department, Vec<OriginKey>>,
}

impl KeyRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `key` as the department's only key, valid at any time (the registry's older form),
    /// replacing any it had.
    pub fn insert(&mut self, department: Department, key: impl Into<PublicKey>) {
        self.keys
            .insert(department, vec![OriginKey::new(department, key.into())]);
    }

    /// Adds a key to its department's keys; refused if the department already has a key with its id.
    pub fn add(&mut self, key: OriginKey) -> Result<()> {
        let keys = self.keys.entry(key.department).or_default();
        if keys.iter().any(|k| k.id == key.id) {
            return Err(Error::registry(format!(
                "key {} of `{}` is registered twice",
                key.id,
                key.department.code()
            )));
        }
        keys.push(key);
        Ok(())
    }

    /// The department's keys, in the registry's order.
    pub fn keys(&self, department: Department) -> &[OriginKey] {
        self.keys.get(&department).map_or(&[], Vec::as_slice)
    }

    /// The key with this id, whichever department it is of.
    pub fn key(&self, key_id: &str) -> Option<&OriginKey> {
        self.keys.values().flatten().find(|k| k.id == key_id)
    }

    /// Every key, by department in [`Department::ALL`] order.
    pub fn all(&self) -> impl Iterator<Item = &OriginKey> {
        self.keys.values().flatten()
    }

    /// The departments with a registered key.
    pub fn departments(&self) -> impl Iterator<Item = Department> + '_ {
        self.keys
            .iter()
            .filter(|(_, keys)| !keys.is_empty())
            .map(|(d, _)| *d)
    }

    /// Number of registered keys.
    pub fn len(&self) -> usize {
        self.keys.values().map(Vec::len).sum()
    }

    /// Whether no key is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Parses the TOML form (both forms; see the [module documentation](self)). Unknown department
    /// codes, malformed or weak keys, a stated id that is not the key's, an empty validity and a key
    /// registered twice are refused, naming the entry.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| Error::registry(e.message().to_owned()))?;
        let mut registry = Self::new();
        for (code, value) in &table {
            let department: Department = code.parse().map_err(|_| {
                Error::registry(format!(
                    "`{code}` is not a department code; known: {}",
                    Department::ALL
                        .iter()
                        .map(|d| d.code())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            match value {
                toml::Value::String(text) => {
                    let key = parse_key(code, text)?;
                    registry.add(OriginKey::new(department, key))?;
                }
                toml::Value::Array(entries) => {
                    for (n, entry) in entries.iter().enumerate() {
                        let what = format!("`{code}` key {}", n + 1);
                        let entry = entry.as_table().ok_or_else(|| {
                            Error::registry(format!("{what} must be a table (`[[{code}]]`)"))
                        })?;
                        registry.add(parse_entry(department, &what, entry)?)?;
                    }
                }
                other => {
                    return Err(Error::registry(format!(
                        "the key of `{code}` must be a base64 string or `[[{code}]]` tables, found a {}",
                        other.type_str()
                    )));
                }
            }
        }
        Ok(registry)
    }

    /// Reads a registry file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml_str(&text).map_err(|e| match e {
            Error::Registry { reason, .. } => Error::Registry {
                path: Some(path.display().to_string()),
                reason,
            },
            other => other,
        })
    }

    /// The TOML form, every key a `[[<code>]]` table with its id and validity, departments in
    /// [`Department::ALL`] order, under a header comment.
    pub fn to_toml_string(&self) -> String {
        let mut out = String::from(
            "# Hazchem Bus: the departments' registered origin-signing public keys.\n\
             # One [[<department code>]] table per key: id (<code>+<C2SP key id>, derived from the key),\n\
             # key (base64 of the 32-byte Ed25519 public key), and optionally not_before (inclusive) and\n\
             # not_after (exclusive): a signature is accepted only by the key its key id names, and only if\n\
             # the event was accepted within that key's validity. To rotate, give the old key a not_after\n\
             # and add the new one with the same instant as its not_before.\n",
        );
        for key in self.all() {
            out.push_str(&format!(
                "\n[[{}]]\nid = \"{}\"\nkey = \"{}\"\n",
                key.department.code(),
                key.id,
                key.key.to_base64()
            ));
            if let Some(at) = key.not_before {
                out.push_str(&format!("not_before = {}\n", rfc3339(at)));
            }
            if let Some(at) = key.not_after {
                out.push_str(&format!("not_after = {}\n", rfc3339(at)));
            }
        }
        out
    }

    /// The key that must have made a signature with `key_id` by `department` on an event accepted at
    /// `at`: the key the id names, if it is the department's and valid then. A bare department code
    /// (the older form) names every key of the department valid at `at`.
    pub fn resolve(
        &self,
        department: Department,
        key_id: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<&OriginKey>, SignatureError> {
        let keys = self.keys(department);
        if keys.is_empty() {
            return Err(SignatureError::NoKeyRegistered { department });
        }
        if key_id == department.code() {
            let valid: Vec<&OriginKey> = keys
                .iter()
                .filter(|k| k.check_valid_at(at).is_ok())
                .collect();
            if valid.is_empty() {
                return Err(SignatureError::NoKeyValidAt { department, at });
            }
            return Ok(valid);
        }
        let (code, hex_id) = match key_id.split_once('+') {
            Some((code, hex_id))
                if hex_id.len() == 8 && hex_id.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                (code, hex_id)
            }
            _ if Department::ALL.iter().any(|d| d.code() == key_id) => {
                return Err(SignatureError::ForeignKeyId {
                    department,
                    key_id: key_id.to_owned(),
                });
            }
            _ => {
                return Err(SignatureError::MalformedKeyId {
                    key_id: key_id.to_owned(),
                });
            }
        };
        if code != department.code() {
            return Err(SignatureError::ForeignKeyId {
                department,
                key_id: key_id.to_owned(),
            });
        }
        let wanted = format!("{code}+{}", hex_id.to_ascii_lowercase());
        let key =
            keys.iter()
                .find(|k| k.id == wanted)
                .ok_or_else(|| SignatureError::UnknownKey {
                    department,
                    key_id: key_id.to_owned(),
                })?;
        key.check_valid_at(at)?;
        Ok(vec![key])
    }

    /// Verifies `department`'s origin signature over `message`, made with the key `key_id` names, on an
    /// event accepted at `at` ([`KeyRegistry::resolve`]); returns the key that verified it. Signatures
    /// are checked with `verify_strict`.
    pub fn verify(
        &self,
        department: Department,
        key_id: &str,
        message: &[u8],
        signature: &[u8],
        at: DateTime<Utc>,
    ) -> Result<&OriginKey, SignatureError> {
        if signature.len() != crate::key::SIGNATURE_LENGTH {
            return Err(SignatureError::MalformedSignature {
                length: signature.len(),
            });
        }
        let candidates = self.resolve(department, key_id, at)?;
        candidates
            .iter()
            .find(|k| k.key.verify(message, signature).is_ok())
            .copied()
            .ok_or_else(|| SignatureError::BadSignature {
                department,
                key_id: match candidates[..] {
                    [only] => only.id.clone(),
                    _ => key_id.to_owned(),
                },
            })
    }
}

fn parse_key(what: &str, text: &str) -> Result<PublicKey> {
    PublicKey::from_base64(text).map_err(|e| Error::registry(format!("the key of `{what}`: {e}")))
}

fn parse_time(what: &str, field: &str, value: &toml::Value) -> Result<DateTime<Utc>> {
    let text = match value {
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::String(s) => s.clone(),
        other => {
            return Err(Error::registry(format!(
                "{what}: {field} must be a date-time, found a {}",
                other.type_str()
            )));
        }
    };
    DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            Error::registry(format!(
                "{what}: {field} {text:?} is not an RFC 3339 date-time with an offset: {e}"
            ))
        })
}

fn parse_entry(department: Department, what: &str, entry: &toml::Table) -> Result<OriginKey> {
    if let Some(unknown) = entry
        .keys()
        .find(|k| !["id", "key", "not_before", "not_after"].contains(&k.as_str()))
    {
        return Err(Error::registry(format!(
            "{what}: unknown field `{unknown}` (known: id, key, not_before, not_after)"
        )));
    }
    let text = entry
        .get("key")
        .ok_or_else(|| Error::registry(format!("{what}: `key` is required")))?
        .as_str()
        .ok_or_else(|| Error::registry(format!("{what}: `key` must be a base64 string")))?;
    let mut key = OriginKey::new(
        department,
        PublicKey::from_base64(text).map_err(|e| Error::registry(format!("{what}: {e}")))?,
    );
    if let Some(id) = entry.get("id") {
        let id = id
            .as_str()
            .ok_or_else(|| Error::registry(format!("{what}: `id` must be a string")))?;
        if id != key.id {
            return Err(Error::registry(format!(
                "{what}: id {id:?} is not the key's id, {}",
                key.id
            )));
        }
    }
    if let Some(value) = entry.get("not_before") {
        key = key.not_before(parse_time(what, "not_before", value)?);
    }
    if let Some(value) = entry.get("not_after") {
        key = key.not_after(parse_time(what, "not_after", value)?);
    }
    if let (Some(b), Some(a)) = (key.not_before, key.not_after)
        && a <= b
    {
        return Err(Error::registry(format!(
            "{what}: not_after {} is not after not_before {}",
            rfc3339(a),
            rfc3339(b)
        )));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::Signer as _;

    use super::*;

    fn signing(seed: u8) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
    }

    fn public(seed: u8) -> PublicKey {
        PublicKey::from(&signing(seed))
    }

    fn t(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn the_key_id_is_the_c2sp_key_id_under_the_department_code() {
        let key = public(1);
        let id = origin_key_id(Department::Psb, &key);
        let note_key = crate::note::VerifierKey::new("psb", key).unwrap();
        assert_eq!(id, note_key.to_string());
        assert!(
            id.starts_with("psb+") && id.len() == "psb+".len() + 8,
            "{id}"
        );
        assert_ne!(id, origin_key_id(Department::Eeb, &key));
    }

    #[test]
    fn both_forms_are_read_and_the_new_one_round_trips() {
        let old = format!("psb = \"{}\"\nmiit = \"{}\"\n", public(1), public(2));
        let registry = KeyRegistry::from_toml_str(&old).unwrap();
        assert_eq!(registry.len(), 2);
        assert_eq!(registry.keys(Department::Psb)[0].valid_from(), None);
        assert_eq!(
            KeyRegistry::from_toml_str(&registry.to_toml_string()).unwrap(),
            registry
        );

        let mut rotated = KeyRegistry::new();
        rotated
            .add(OriginKey::new(Department::Psb, public(1)).not_after(t("2026-07-01T00:00:00Z")))
            .unwrap();
        rotated
            .add(OriginKey::new(Department::Psb, public(3)).not_before(t("2026-07-01T00:00:00Z")))
            .unwrap();
        rotated
            .add(
                OriginKey::new(Department::Fire, public(4))
                    .not_before(t("2026-01-01T00:00:00Z"))
                    .not_after(t("2027-01-01T00:00:00+08:00")),
            )
            .unwrap();
        let text = rotated.to_toml_string();
        assert!(text.contains("[[psb]]") && text.contains("not_after = 2026-07-01T00:00:00Z"));
        assert_eq!(KeyRegistry::from_toml_str(&text).unwrap(), rotated);
        // The old form before the new tables, quoted times, in one file.
        let mixed = format!(
            "miit = \"{}\"\n[[psb]]\nkey = \"{}\"\nnot_before = \"2026-07-01T00:00:00Z\"\n",
            public(2),
            public(3)
        );
        let mixed = KeyRegistry::from_toml_str(&mixed).unwrap();
        assert_eq!(mixed.len(), 2);
        assert_eq!(
            mixed.keys(Department::Psb)[0].valid_from(),
            Some(t("2026-07-01T00:00:00Z"))
        );
    }

    #[test]
    fn malformed_registries_are_refused_naming_the_entry() {
        let key = public(1).to_base64();
        let refused = |text: &str, needle: &str| {
            let err = KeyRegistry::from_toml_str(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{needle:?} not in {err}");
        };
        refused(
            &format!("mof = \"{key}\""),
            "`mof` is not a department code",
        );
        refused("miit = \"AAAA\"", "`miit`");
        refused("miit = 3", "base64 string or `[[miit]]` tables");
        refused("[[psb]]\nid = \"psb+00000000\"", "`key` is required");
        refused(
            &format!("[[psb]]\nid = \"psb+00000000\"\nkey = \"{key}\""),
            "is not the key's id",
        );
        refused(
            &format!("[[psb]]\nkey = \"{key}\"\nnot_before = 5"),
            "not_before must be a date-time",
        );
        refused(
            &format!("[[psb]]\nkey = \"{key}\"\nnot_before = 2026-01-01"),
            "not an RFC 3339 date-time with an offset",
        );
        refused(
            &format!(
                "[[psb]]\nkey = \"{key}\"\nnot_before = 2026-01-01T00:00:00Z\nnot_after = 2026-01-01T00:00:00Z"
            ),
            "is not after not_before",
        );
        refused(
            &format!("[[psb]]\nkey = \"{key}\"\n[[psb]]\nkey = \"{key}\""),
            "registered twice",
        );
        refused(
            &format!("[[psb]]\nkey = \"{key}\"\nexpires = 1"),
            "unknown field `expires`",
        );
    }

    #[test]
    fn a_rotated_key_verifies_in_its_time_only() {
        let rotation = t("2026-07-01T00:00:00Z");
        let (old, new) = (signing(1), signing(2));
        let mut registry = KeyRegistry::new();
        registry
            .add(OriginKey::new(Department::Psb, PublicKey::from(&old)).not_after(rotation))
            .unwrap();
        registry
            .add(OriginKey::new(Department::Psb, PublicKey::from(&new)).not_before(rotation))
            .unwrap();
        let old_id = origin_key_id(Department::Psb, &PublicKey::from(&old));
        let new_id = origin_key_id(Department::Psb, &PublicKey::from(&new));
        let message = b"credit listing decided";
        let (by_old, by_new) = (old.sign(message).to_bytes(), new.sign(message).to_bytes());
        let before = t("2026-06-30T23:59:59Z");
        // Old key, before its not_after: good; at and after it: refused.
        let key = registry
            .verify(Department::Psb, &old_id, message, &by_old, before)
            .unwrap();
        assert_eq!(key.id(), old_id);
        let err = registry
            .verify(Department::Psb, &old_id, message, &by_old, rotation)
            .unwrap_err();
        assert!(matches!(err, SignatureError::Expired { .. }), "{err}");
        assert!(err.to_string().contains("rotated or retired"), "{err}");
        // New key before its not_before: refused; from it on: good.
        let err = registry
            .verify(Department::Psb, &new_id, message, &by_new, before)
            .unwrap_err();
        assert!(matches!(err, SignatureError::NotYetValid { .. }), "{err}");
        registry
            .verify(Department::Psb, &new_id, message, &by_new, rotation)
            .unwrap();
        // The bare code picks the key valid at the time.
        registry
            .verify(Department::Psb, "psb", message, &by_old, before)
            .unwrap();
        assert!(matches!(
            registry.verify(Department::Psb, "psb", message, &by_old, rotation),
            Err(SignatureError::BadSignature { .. })
        ));
        // One key's id with the other's signature.
        assert!(matches!(
            registry.verify(Department::Psb, &new_id, message, &by_old, rotation),
            Err(SignatureError::BadSignature { .. })
        ));
    }

    #[test]
    fn key_ids_are_resolved_strictly() {
        let key = signing(1);
        let mut registry = KeyRegistry::new();
        registry.insert(Department::Psb, PublicKey::from(&key));
        let at = t("2026-01-01T00:00:00Z");
        let signature = key.sign(b"m").to_bytes();
        let id = origin_key_id(Department::Psb, &PublicKey::from(&key));
        let upper_hex = format!("psb+{}", id["psb+".len()..].to_ascii_uppercase());
        registry
            .verify(Department::Psb, &upper_hex, b"m", &signature, at)
            .unwrap();
        let refusal = |department, key_id: &str| {
            registry
                .verify(department, key_id, b"m", &signature, at)
                .unwrap_err()
        };
        assert!(matches!(
            refusal(Department::Psb, "eeb"),
            SignatureError::ForeignKeyId { .. }
        ));
        assert!(matches!(
            refusal(Department::Psb, &id.replace("psb", "eeb")),
            SignatureError::ForeignKeyId { .. }
        ));
        assert!(matches!(
            refusal(Department::Psb, "psb+0000000"),
            SignatureError::MalformedKeyId { .. }
        ));
        assert!(matches!(
            refusal(Department::Psb, "key-1"),
            SignatureError::MalformedKeyId { .. }
        ));
        assert!(matches!(
            refusal(Department::Psb, "psb+00000000"),
            SignatureError::UnknownKey { .. }
        ));
        assert!(matches!(
            refusal(Department::Fire, "fire"),
            SignatureError::NoKeyRegistered { .. }
        ));
        assert_eq!(
            registry.verify(Department::Psb, &id, b"m", &signature[..63], at),
            Err(SignatureError::MalformedSignature { length: 63 })
        );
    }
}
