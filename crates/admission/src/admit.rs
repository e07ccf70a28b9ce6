//! Admission of one signed event: is it well formed, may this principal publish it, does it keep every
//! rule of the contract, and does its origin signature verify?
//!
//! # Order of the checks
//!
//! 1. **Size and decoding** (cheap, and needed to know what the event is): the event bytes are present and
//!    at most [`Limits::max_event_bytes`] ([`Rejection::TooLarge`]); they decode as `hazchem.v1.Event`; the
//!    event carries exactly one payload (the encoding may not carry two different payload fields, even
//!    though protobuf would keep the last). Failures are [`Rejection::Invalid`] with one violation.
//! 2. **Authorisation** ([`Rejection::PermissionDenied`]): `Event.department` must be the authenticated
//!    department (unspecified for the bus's own services); the policy must let the principal publish the
//!    event type; for licence events the licence kind and competent department must agree with
//!    `[licence_issuers]`. The event type is the payload's field name, which is unambiguous once step 1
//!    passed, so authorisation does not depend on the redundant `type` attribute.
//! 3. **Every rule** ([`Rejection::Invalid`], all violations together): the CloudEvents attributes agree
//!    with the payload (`spec_version`, `type`, `data_schema`, `data_content_type`), `source` lies in the
//!    publisher's own namespace ([`source_namespace`]: `/departments/<code>` or `/services/<name>`, or a
//!    path below it; rule `source.namespace`), the audience names departments, every field rule of the
//!    contract holds, and the origin signature verifies (or is present where the policy requires one).
//!
//! Authorisation comes before validation deliberately: a principal that may not publish an event type
//! learns that first and only (not the details of an event it could never publish), and the gateway does
//! not spend the walk and the signature verification on it. The licence checks read the licence kind and
//! competent department before the field rules ran; when either is missing or undefined, the licence
//! check is skipped and validation reports the field (`required`, `enum.undefined`), so an invalid event
//! is still rejected, just as invalid rather than denied. Putting the attribute checks with the field
//! rules means a publisher sees every problem of an event it may publish in one answer.
//!
//! A present but entirely empty `OriginSignature` (no key id, no bytes) counts as absent.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hazchem_domain::Department;
use hazchem_pki::{KeyRegistry, Principal, SignatureError};
use hazchem_proto::{
    DATA_CONTENT_TYPE, SPEC_VERSION, TYPE_PREFIX, department_from_i32, event_descriptor, v1,
};
use prost::Message as _;

use crate::policy::{Policy, licence_kind_name};
use crate::validate::{self, FieldViolation, IndexKeys, printable};

/// Default [`Limits::max_event_bytes`]: 256 KiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 256 * 1024;
/// Default [`Limits::max_clock_skew`]: 5 minutes.
pub const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

/// Limits the gateway enforces beyond the contract's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest encoded event accepted.
    pub max_event_bytes: usize,
    /// How far a `not_future` timestamp may be ahead of the gateway's clock.
    pub max_clock_skew: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            max_clock_skew: DEFAULT_MAX_CLOCK_SKEW,
        }
    }
}

/// Why a principal may not publish an event: the `ErrorInfo.reason` of the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenialReason {
    /// `Event.department` is not the authenticated department (or a service named one).
    DepartmentMismatch,
    /// The policy does not let the principal publish this event type.
    PublishNotPermitted,
    /// The publisher, or the competent department, does not issue this kind of licence.
    LicenceIssuerNotPermitted,
}

impl DenialReason {
    /// `DEPARTMENT_MISMATCH`, `PUBLISH_NOT_PERMITTED` or `LICENCE_ISSUER_NOT_PERMITTED`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::DepartmentMismatch => "DEPARTMENT_MISMATCH",
            Self::PublishNotPermitted => "PUBLISH_NOT_PERMITTED",
            Self::LicenceIssuerNotPermitted => "LICENCE_ISSUER_NOT_PERMITTED",
        }
    }
}

/// A refusal on authorisation grounds: the reason, a sentence naming who and what, and the same facts as
/// machine-readable metadata (`department` or `service`, `event_type`, and for licences `licence_kind`,
/// `issuers`, `on_behalf`, `competent_department`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The reason code.
    pub reason: DenialReason,
    /// A sentence naming the principal, the event type and the rule.
    pub message: String,
    /// The facts of the refusal.
    pub metadata: BTreeMap<String, String>,
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl Denial {
    fn new(reason: DenialReason, message: String, principal: &Principal, token: &str) -> Self {
        let mut metadata = BTreeMap::new();
        let key = match principal {
            Principal::Department(_) => "department",
            Principal::Service(_) => "service",
            Principal::Auditor(_) => "auditor",
        };
        metadata.insert(key.to_owned(), principal.name().to_owned());
        metadata.insert("event_type".to_owned(), token.to_owned());
        Self {
            reason,
            message,
            metadata,
        }
    }

    fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.metadata.insert(key.to_owned(), value.into());
        self
    }
}

/// Why an event was not admitted. Converted into a `tonic::Status` in one place
/// (`impl From<Rejection> for tonic::Status`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The event breaks rules: every violation found.
    #[error("{}", invalid_message(.0))]
    Invalid(Vec<FieldViolation>),
    /// The principal may not publish this event.
    #[error("{0}")]
    PermissionDenied(Denial),
    /// The encoded event is larger than the limit.
    #[error("event too large: the encoded event is {size} bytes, the limit is {limit} bytes")]
    TooLarge {
        /// Size of the encoded event in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The event bytes are already stored under this id, but the stored record's origin signature is not
    /// the one this retry carries (added, removed or changed; found after admission, by the gateway). A
    /// stored record never changes, so the retry is refused rather than answered as a duplicate.
    #[error("{}", signature_differs_message(.id, *.sequence, *.change))]
    SignatureDiffers {
        /// The event id.
        id: String,
        /// Where the original is stored.
        sequence: u64,
        /// How the retry's signature differs from the stored one.
        change: SignatureChange,
    },
    /// The event id is already stored, with different content (found after admission, by the gateway).
    #[error(
        "event id `{id}` is already stored at sequence {sequence} with different content; \
         a different event needs a new id"
    )]
    IdReused {
        /// The event id.
        id: String,
        /// Where the original is stored.
        sequence: u64,
    },
}

impl Rejection {
    /// The `ErrorInfo.reason` of the status: `FIELD_VIOLATIONS`, a [`DenialReason`], `EVENT_TOO_LARGE`,
    /// `EVENT_SIGNATURE_DIFFERS` or `EVENT_ID_REUSED` (also a good metrics label).
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "FIELD_VIOLATIONS",
            Self::PermissionDenied(denial) => denial.reason.as_str(),
            Self::TooLarge { .. } => "EVENT_TOO_LARGE",
            Self::SignatureDiffers { .. } => "EVENT_SIGNATURE_DIFFERS",
            Self::IdReused { .. } => "EVENT_ID_REUSED",
        }
    }

    /// The field violations (empty unless [`Rejection::Invalid`]).
    #[must_use]
    pub fn violations(&self) -> &[FieldViolation] {
        match self {
            Self::Invalid(v) => v,
            _ => &[],
        }
    }

    fn invalid(field: &str, rule: &str, description: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldViolation::new(field, rule, description)])
    }
}

/// How a retry's origin signature differs from the one stored with the same event bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureChange {
    /// The stored record is unsigned; the retry carries a signature.
    Added,
    /// The stored record is signed; the retry carries none.
    Removed,
    /// Both are signed, with different key ids or signature bytes.
    Changed,
}

impl SignatureChange {
    /// How `offered` differs from `stored`, or `None` if they are the same. A present but entirely empty
    /// signature counts as absent, as in admission. Ed25519 signatures are deterministic, so the same key
    /// signing the same bytes again gives the same signature: a retry by the same signer is never refused.
    #[must_use]
    pub fn between(
        stored: Option<&v1::OriginSignature>,
        offered: Option<&v1::OriginSignature>,
    ) -> Option<Self> {
        fn present(s: Option<&v1::OriginSignature>) -> Option<&v1::OriginSignature> {
            s.filter(|s| !(s.key_id.is_empty() && s.signature.is_empty()))
        }
        match (present(stored), present(offered)) {
            (None, None) => None,
            (None, Some(_)) => Some(Self::Added),
            (Some(_), None) => Some(Self::Removed),
            (Some(a), Some(b)) => {
                (a.key_id != b.key_id || a.signature != b.signature).then_some(Self::Changed)
            }
        }
    }

    /// `added`, `removed` or `changed`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Removed => "removed",
            Self::Changed => "changed",
        }
    }
}

fn signature_differs_message(id: &str, sequence: u64, change: SignatureChange) -> String {
    let what = match change {
        SignatureChange::Added => {
            "unsigned, and this retry adds an origin signature; a stored record never changes, so the \
             signature cannot be added to it: publish the signed event under a new id"
        }
        SignatureChange::Removed => {
            "with an origin signature, and this retry carries none: retry with the stored signature"
        }
        SignatureChange::Changed => {
            "with another origin signature than this retry's; a stored record never changes: retry with \
             the stored signature, or publish under a new id"
        }
    };
    format!(
        "event id `{id}` is already stored at sequence {sequence} with the same bytes but {what}"
    )
}

/// How many violations the message text of [`Rejection::Invalid`] names (the details carry more).
pub(crate) const VIOLATIONS_IN_MESSAGE: usize = 5;

fn invalid_message(violations: &[FieldViolation]) -> String {
    let mut message = match violations.len() {
        0 => return "invalid event".to_owned(),
        1 => "invalid event: ".to_owned(),
        n => format!("invalid event, {n} violations: "),
    };
    let named: Vec<String> = violations
        .iter()
        .take(VIOLATIONS_IN_MESSAGE)
        .map(ToString::to_string)
        .collect();
    message.push_str(&named.join("; "));
    if violations.len() > VIOLATIONS_IN_MESSAGE {
        message.push_str(&format!(
            "; and {} more (see the BadRequest details)",
            violations.len() - VIOLATIONS_IN_MESSAGE
        ));
    }
    message
}

/// An admitted event: what the gateway established, and the typed event.
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    /// CloudEvents `id`.
    pub id: String,
    /// Event type token, e.g. `waybill_issued`.
    pub token: String,
    /// Full name of the payload message, e.g. `hazchem.v1.WaybillIssued`.
    pub schema: String,
    /// The publishing department (`None` for a service).
    pub department: Option<Department>,
    /// The publishing service (`None` for a department).
    pub service: Option<String>,
    /// The data classification.
    pub classification: v1::DataClassification,
    /// The departments named in `audience`, deduplicated, in [`Department`] order.
    pub audience: Vec<Department>,
    /// CloudEvents `time`.
    pub time: DateTime<Utc>,
    /// Enterprises, chemicals and batch codes named in the event.
    pub keys: IndexKeys,
    /// Whether a verified origin signature accompanies the event.
    pub signed: bool,
    /// The event, decoded.
    pub event: v1::Event,
}

/// Decides whether events are admitted. Pure: no I/O, no clock (the caller passes `now`).
#[derive(Debug, Clone)]
pub struct Admission {
    policy: Policy,
    keys: KeyRegistry,
    limits: Limits,
}

/// The payload oneof's field numbers → (token, payload full name).
static PAYLOADS: LazyLock<BTreeMap<u32, (String, String)>> = LazyLock::new(|| {
    let descriptor = event_descriptor();
    descriptor
        .oneofs()
        .filter(|o| o.name() == "payload")
        .flat_map(|o| o.fields().collect::<Vec<_>>())
        .map(|f| {
            let schema = f
                .kind()
                .as_message()
                .map(|m| m.full_name().to_owned())
                .unwrap_or_default();
            (f.number(), (f.name().to_owned(), schema))
        })
        .collect()
});

impl Admission {
    /// An admission with this policy, these origin-signing keys and limits.
    #[must_use]
    pub fn new(policy: Policy, keys: KeyRegistry, limits: Limits) -> Self {
        Self {
            policy,
            keys,
            limits,
        }
    }

    /// The policy.
    #[must_use]
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The origin-signing keys.
    #[must_use]
    pub fn keys(&self) -> &KeyRegistry {
        &self.keys
    }

    /// The limits.
    #[must_use]
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The index keys of stored event bytes (for subscription filters).
    ///
    /// # Errors
    /// The bytes are not a `hazchem.v1.Event`.
    pub fn index_keys(&self, event: &[u8]) -> Result<IndexKeys, prost::DecodeError> {
        Ok(validate::index_keys(&hazchem_proto::decode_event(event)?))
    }

    /// Decides whether `principal` may publish `signed` at `now`; see the module documentation for the
    /// order of the checks.
    ///
    /// # Errors
    /// A [`Rejection`] saying why not.
    pub fn admit(
        &self,
        principal: &Principal,
        signed: &v1::SignedEvent,
        now: DateTime<Utc>,
    ) -> Result<Admitted, Rejection> {
        // 1. Size, decoding, exactly one payload.
        let bytes = signed.event.as_slice();
        if bytes.is_empty() {
            return Err(Rejection::invalid(
                "event",
                "required",
                "required: the encoded hazchem.v1.Event must not be empty",
            ));
        }
        if bytes.len() > self.limits.max_event_bytes {
            return Err(Rejection::TooLarge {
                size: bytes.len(),
                limit: self.limits.max_event_bytes,
            });
        }
        let decoded = hazchem_proto::decode_event(bytes)
            .and_then(|dynamic| v1::Event::decode(bytes).map(|event| (dynamic, event)));
        let (dynamic, event) = decoded.map_err(|e| {
            Rejection::invalid(
                "event",
                "decode",
                format!("the bytes are not an encoded hazchem.v1.Event: {e}"),
            )
        })?;
        let (token, schema) = payload(bytes)?;

        // 2. Who may publish it.
        self.authorise(principal, &event, &token)
            .map_err(Rejection::PermissionDenied)?;

        // 3. Every rule: attributes, audience, field rules, origin signature.
        let mut violations = envelope(&event, &token, &schema);
        violations.extend(source_violation(principal, &event.source));
        let report = validate::validate(&dynamic, now, self.limits.max_clock_skew);
        violations.extend(report.violations);
        let signature = self.signature(principal, signed, &token, now);
        let verified = matches!(signature, Ok(true));
        if let Err(violation) = signature {
            violations.push(violation);
        }
        if !violations.is_empty() {
            return Err(Rejection::Invalid(violations));
        }

        let time = event
            .time
            .as_ref()
            .and_then(hazchem_proto::time::datetime)
            .ok_or_else(|| Rejection::invalid("time", "required", "required: must be set"))?;
        let audience: BTreeSet<Department> = event
            .audience
            .iter()
            .filter_map(|d| department_from_i32(*d).ok())
            .collect();
        Ok(Admitted {
            id: event.id.clone(),
            token,
            schema,
            department: principal.department(),
            service: match principal {
                Principal::Service(name) => Some(name.clone()),
                _ => None,
            },
            classification: event.classification(),
            audience: audience.into_iter().collect(),
            time,
            keys: report.keys,
            signed: verified,
            event,
        })
    }

    fn authorise(
        &self,
        principal: &Principal,
        event: &v1::Event,
        token: &str,
    ) -> Result<(), Denial> {
        let named = department_name(event.department);
        let code = department_from_i32(event.department).map_or_else(
            |_| {
                if event.department == 0 {
                    "unspecified".to_owned()
                } else {
                    event.department.to_string()
                }
            },
            |d| d.code().to_owned(),
        );
        match principal {
            Principal::Department(d) => {
                if event.department != v1::Department::from(*d) as i32 {
                    return Err(Denial::new(
                        DenialReason::DepartmentMismatch,
                        format!(
                            "authenticated as department `{}`, but the event's department is {named}: \
                             a department publishes only in its own name",
                            d.code()
                        ),
                        principal,
                        token,
                    )
                    .with("event_department", code));
                }
            }
            Principal::Service(name) => {
                if event.department != 0 {
                    return Err(Denial::new(
                        DenialReason::DepartmentMismatch,
                        format!(
                            "service `{name}` publishes events without a department, but the event's \
                             department is {named}"
                        ),
                        principal,
                        token,
                    )
                    .with("event_department", code));
                }
            }
            Principal::Auditor(name) => {
                return Err(Denial::new(
                    DenialReason::PublishNotPermitted,
                    format!("auditor `{name}` may not publish events: auditors read the record"),
                    principal,
                    token,
                ));
            }
        }
        if !self.policy.may_publish(principal, token) {
            let allowed = self.policy.publishable_tokens(principal);
            return Err(Denial::new(
                DenialReason::PublishNotPermitted,
                format!(
                    "{} `{}` may not publish {token} events (its duties cover: {})",
                    principal.kind(),
                    principal.name(),
                    if allowed.is_empty() {
                        "none".to_owned()
                    } else {
                        allowed.join(", ")
                    }
                ),
                principal,
                token,
            ));
        }
        self.authorise_licence(principal, event, token)
    }

    fn authorise_licence(
        &self,
        principal: &Principal,
        event: &v1::Event,
        token: &str,
    ) -> Result<(), Denial> {
        let Some((kind, competent)) = licence_terms(event) else {
            return Ok(());
        };
        // Missing or undefined kinds are reported by validation.
        let Ok(kind) = v1::LicenceKind::try_from(kind) else {
            return Ok(());
        };
        let Some(kind_name) = licence_kind_name(kind) else {
            return Ok(());
        };
        let issuers = self.policy.licence_issuers(kind);
        let on_behalf = self.policy.on_behalf();
        let list = |ds: &[Department]| {
            if ds.is_empty() {
                "none".to_owned()
            } else {
                ds.iter().map(|d| d.code()).collect::<Vec<_>>().join(", ")
            }
        };
        let denial = |message: String| {
            Denial::new(
                DenialReason::LicenceIssuerNotPermitted,
                message,
                principal,
                token,
            )
            .with("licence_kind", kind_name.clone())
            .with("issuers", list(issuers))
            .with("on_behalf", list(on_behalf))
        };
        let publisher = principal.department();
        let acts_on_behalf = publisher.is_some_and(|d| on_behalf.contains(&d));
        if let Some(d) = publisher
            && !acts_on_behalf
            && !issuers.contains(&d)
        {
            return Err(denial(format!(
                "department `{}` may not publish {token} for licence kind `{kind_name}`: it is issued by {}, \
                 or on their behalf by {}",
                d.code(),
                list(issuers),
                list(on_behalf)
            )));
        }
        let Some(Ok(competent)) = competent.filter(|c| *c != 0).map(department_from_i32) else {
            return Ok(());
        };
        if !issuers.contains(&competent) {
            return Err(denial(format!(
                "competent_department `{}` does not issue licence kind `{kind_name}` (issued by {})",
                competent.code(),
                list(issuers)
            ))
            .with("competent_department", competent.code()));
        }
        if let Some(d) = publisher
            && !acts_on_behalf
            && d != competent
        {
            return Err(denial(format!(
                "department `{}` may publish {token} for licence kind `{kind_name}` only in its own name, \
                 but competent_department is `{}`; only {} issue on behalf of another department",
                d.code(),
                competent.code(),
                list(on_behalf)
            ))
            .with("competent_department", competent.code()));
        }
        Ok(())
    }

    /// `Ok(true)`: verified; `Ok(false)`: absent and not required. `now` is the event's `accepted_at`: the
    /// key the signature's key id names must be valid then.
    fn signature(
        &self,
        principal: &Principal,
        signed: &v1::SignedEvent,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, FieldViolation> {
        let signature = signed
            .signature
            .as_ref()
            .filter(|s| !(s.key_id.is_empty() && s.signature.is_empty()));
        let department = principal.department();
        let Some(signature) = signature else {
            return match department {
                Some(d) if self.policy.signature_required(d, token) => Err(FieldViolation::new(
                    "signature",
                    "signature.required",
                    format!(
                        "required: department `{}` must sign {token} events: an Ed25519 signature over \
                         the exact event bytes, with the key id of its registered key (`{}+<8 hex \
                         digits>`)",
                        d.code(),
                        d.code()
                    ),
                )),
                _ => Ok(false),
            };
        };
        let Some(department) = department else {
            return Err(FieldViolation::new(
                "signature.key_id",
                "signature.unknown_key",
                format!(
                    "{} `{}` has no origin-signing key; send the event unsigned",
                    principal.kind(),
                    principal.name()
                ),
            ));
        };
        match self.keys.verify(
            department,
            &signature.key_id,
            &signed.event,
            &signature.signature,
            now,
        ) {
            Ok(_) => Ok(true),
            Err(error) => {
                let (field, rule) = match error {
                    SignatureError::MalformedKeyId { .. } | SignatureError::ForeignKeyId { .. } => {
                        ("signature.key_id", "signature.key_id")
                    }
                    SignatureError::NoKeyRegistered { .. } | SignatureError::UnknownKey { .. } => {
                        ("signature.key_id", "signature.unknown_key")
                    }
                    SignatureError::NotYetValid { .. }
                    | SignatureError::Expired { .. }
                    | SignatureError::NoKeyValidAt { .. } => {
                        ("signature.key_id", "signature.key_not_valid")
                    }
                    SignatureError::MalformedSignature { .. } => {
                        ("signature.signature", "signature.malformed")
                    }
                    SignatureError::BadSignature { .. } => {
                        ("signature.signature", "signature.invalid")
                    }
                };
                Err(FieldViolation::new(
                    field,
                    rule,
                    printable(&error.to_string().chars().take(300).collect::<String>()),
                ))
            }
        }
    }
}

/// `"`emergency`"`, `"unspecified"` or `"the unknown number 42"`.
fn department_name(number: i32) -> String {
    match department_from_i32(number) {
        Ok(d) => format!("`{}`", d.code()),
        Err(_) if number == 0 => "unspecified".to_owned(),
        Err(_) => format!("the unknown number {number}"),
    }
}

/// The licence kind and, where the event names one, the competent department of a licence event.
fn licence_terms(event: &v1::Event) -> Option<(i32, Option<i32>)> {
    use v1::event::Payload;
    match event.payload.as_ref()? {
        Payload::LicenceIssued(v1::LicenceIssued { licence })
        | Payload::LicenceRenewed(v1::LicenceRenewed { licence }) => licence
            .as_ref()
            .map(|l| (l.kind, Some(l.competent_department))),
        Payload::LicenceSuspended(p) => Some((p.kind, None)),
        Payload::LicenceRevoked(p) => Some((p.kind, None)),
        Payload::LicenceExpired(p) => Some((p.kind, None)),
        Payload::ApplicationDecided(p) => Some((p.kind, Some(p.competent_department))),
        _ => None,
    }
}

/// The event type of the single payload.
fn payload(bytes: &[u8]) -> Result<(String, String), Rejection> {
    let present = payload_numbers(bytes);
    if present.len() > 1 {
        let names: Vec<&str> = present
            .iter()
            .filter_map(|n| PAYLOADS.get(n).map(|(t, _)| t.as_str()))
            .collect();
        return Err(Rejection::invalid(
            "payload",
            "payload.multiple",
            format!(
                "an event carries exactly one payload; the encoding carries {}",
                names.join(", ")
            ),
        ));
    }
    match present.first().and_then(|n| PAYLOADS.get(n)) {
        Some((token, schema)) => Ok((token.clone(), schema.clone())),
        None => Err(Rejection::invalid(
            "payload",
            "required",
            "required: an event carries exactly one payload (production_recorded, waybill_issued, ...); \
             it carries none this version of the contract knows",
        )),
    }
}

/// The payload field numbers present at the top level of the encoding.
fn payload_numbers(bytes: &[u8]) -> BTreeSet<u32> {
    let mut found = BTreeSet::new();
    let mut buf = bytes;
    while !buf.is_empty() {
        let Some(key) = varint(&mut buf) else { break };
        let number = u32::try_from(key >> 3).unwrap_or(0);
        if !skip(&mut buf, key & 7, number, 0) {
            break;
        }
        if PAYLOADS.contains_key(&number) {
            found.insert(number);
        }
    }
    found
}

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first()?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Skips one field's value; `false` if the encoding is broken (the decoder already accepted it, so this
/// only guards the scan).
fn skip(buf: &mut &[u8], wire_type: u64, number: u32, depth: u32) -> bool {
    let take = |buf: &mut &[u8], n: usize| {
        if buf.len() < n {
            false
        } else {
            *buf = &buf[n..];
            true
        }
    };
    match wire_type {
        0 => varint(buf).is_some(),
        1 => take(buf, 8),
        2 => varint(buf)
            .and_then(|n| usize::try_from(n).ok())
            .is_some_and(|n| take(buf, n)),
        5 => take(buf, 4),
        3 if depth < 100 => loop {
            let Some(key) = varint(buf) else { return false };
            if key & 7 == 4 {
                return key >> 3 == u64::from(number);
            }
            if !skip(
                buf,
                key & 7,
                u32::try_from(key >> 3).unwrap_or(0),
                depth + 1,
            ) {
                return false;
            }
        },
        _ => false,
    }
}

/// The CloudEvents `source` namespace of a principal's events: `/departments/<code>` for a department,
/// `/services/<name>` for one of the bus's services (`None` for an auditor, who publishes nothing). An
/// event's `source` is the namespace itself or a path below it (`/departments/emergency/hazard-platform`):
/// one or more `/`-separated segments of `A-Z a-z 0-9 - . _ ~`, none empty, `.` or `..`.
#[must_use]
pub fn source_namespace(principal: &Principal) -> Option<String> {
    match principal {
        Principal::Department(d) => Some(format!("/departments/{}", d.code())),
        Principal::Service(name) => Some(format!("/services/{name}")),
        Principal::Auditor(_) => None,
    }
}

/// Whether `source` lies in `namespace` (see [`source_namespace`]).
fn in_namespace(source: &str, namespace: &str) -> bool {
    let segment = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
    };
    match source.strip_prefix(namespace) {
        Some("") => true,
        Some(rest) => rest
            .strip_prefix('/')
            .is_some_and(|path| path.split('/').all(segment)),
        None => false,
    }
}

/// `source` outside the publisher's namespace (an empty one is reported by its `required` rule).
fn source_violation(principal: &Principal, source: &str) -> Option<FieldViolation> {
    let namespace = source_namespace(principal)?;
    if source.is_empty() || in_namespace(source, &namespace) {
        return None;
    }
    Some(FieldViolation::new(
        "source",
        "source.namespace",
        printable(&format!(
            "source must be \"{namespace}\" or a path below it (segments of A-Z a-z 0-9 - . _ ~): {} `{}` \
             publishes only from its own namespace, found \"{}\"",
            principal.kind(),
            principal.name(),
            source.chars().take(140).collect::<String>()
        )),
    ))
}

/// The CloudEvents attributes against the payload, and the audience.
fn envelope(event: &v1::Event, token: &str, schema: &str) -> Vec<FieldViolation> {
    let mut out = Vec::new();
    let mut attribute = |field: &str, found: &str, expected: &str, why: &str| {
        // An empty attribute is reported by its `required` rule.
        if !found.is_empty() && found != expected {
            out.push(FieldViolation::new(
                field,
                format!("envelope.{field}"),
                printable(&format!(
                    "{field} must be \"{expected}\"{why}, found \"{}\"",
                    found.chars().take(140).collect::<String>()
                )),
            ));
        }
    };
    attribute("spec_version", &event.spec_version, SPEC_VERSION, "");
    attribute(
        "type",
        &event.r#type,
        &format!("{TYPE_PREFIX}{token}"),
        &format!(" for a {token} payload"),
    );
    attribute(
        "data_schema",
        &event.data_schema,
        schema,
        &format!(" for a {token} payload"),
    );
    attribute(
        "data_content_type",
        &event.data_content_type,
        DATA_CONTENT_TYPE,
        "",
    );
    for (i, d) in event.audience.iter().enumerate() {
        if *d == 0 {
            out.push(FieldViolation::new(
                format!("audience[{i}]"),
                "envelope.audience",
                "audience entries name departments; DEPARTMENT_UNSPECIFIED names none",
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(number: u32, wire_type: u8) -> u8 {
        u8::try_from(number << 3).unwrap() | wire_type
    }

    #[test]
    fn the_scan_finds_payload_fields_only_at_the_top_level() {
        // field 2 (id) = "a"; field 100 (production_recorded) = {}; field 101 (storage_recorded) = {}.
        let mut bytes = vec![key(2, 2), 1, b'a'];
        bytes.extend([0xa2, 0x06, 0]); // 100 << 3 | 2 = 802 = 0xa2 0x06
        assert_eq!(payload_numbers(&bytes), BTreeSet::from([100]));
        bytes.extend([0xaa, 0x06, 0]); // 101 << 3 | 2 = 810 = 0xaa 0x06
        assert_eq!(payload_numbers(&bytes), BTreeSet::from([100, 101]));
        // Broken encodings end the scan without panicking.
        assert!(payload_numbers(&[0xff]).is_empty());
        assert!(payload_numbers(&[key(2, 2), 9, b'a']).is_empty());
    }

    #[test]
    fn groups_are_skipped() {
        // field 1 group start, inner field 2 varint 5, field 1 group end, then field 100 = {}.
        let bytes = [key(1, 3), key(2, 0), 5, key(1, 4), 0xa2, 0x06, 0];
        assert_eq!(payload_numbers(&bytes), BTreeSet::from([100]));
    }

    #[test]
    fn a_source_lies_in_its_publishers_namespace() {
        let ns = "/departments/emergency";
        for ok in [
            "/departments/emergency",
            "/departments/emergency/hazard-platform",
            "/departments/emergency/credit/v1.2_x~y",
        ] {
            assert!(in_namespace(ok, ns), "{ok}");
        }
        for bad in [
            "/departments/psb/forged",
            "/departments/emergencyx",
            "/departments/emergency/",
            "/departments/emergency//x",
            "/departments/emergency/../psb",
            "/departments/emergency/./x",
            "/departments/emergency/%2e%2e/psb",
            "/departments/emergency/x?y",
            "/departments/emergency/x#y",
            "/departments/emergency/平台",
            "https://example.org/departments/emergency",
            "departments/emergency",
            "/Departments/emergency",
        ] {
            assert!(!in_namespace(bad, ns), "{bad}");
        }
        let service = Principal::Service("ledger".into());
        assert_eq!(
            source_namespace(&service).as_deref(),
            Some("/services/ledger")
        );
        assert!(source_violation(&service, "/services/ledger").is_none());
        let v = source_violation(&service, "/services/warning").unwrap();
        assert_eq!(
            (v.field.as_str(), v.rule.as_str()),
            ("source", "source.namespace")
        );
        assert!(
            v.description.contains("service `ledger`"),
            "{}",
            v.description
        );
        assert!(
            source_violation(&service, "").is_none(),
            "reported as required"
        );
        assert!(source_namespace(&Principal::Auditor("court".into())).is_none());
    }

    #[test]
    fn the_message_names_the_first_violations() {
        let violations: Vec<FieldViolation> = (0..7)
            .map(|i| FieldViolation::new(format!("f{i}"), "required", "required: must be set"))
            .collect();
        let message = invalid_message(&violations);
        assert!(
            message.starts_with(
                "invalid event, 7 violations: f0 (required): required: must be set; f1"
            )
        );
        assert!(message.ends_with("and 2 more (see the BadRequest details)"));
    }
}
