//! What a reader may see: the one read filter used by Subscribe (gateway), Replay (ledger) and every
//! query service, beside the publish policy whose `[read]` entitlement it applies.
//!
//! An [`EventFilter`] is what a reader asked for, checked ([`EventFilter::from_proto`]: every bad value a
//! field violation naming it). [`EventFilter::select`] decides one stored record: delivered only if the
//! read policy lets the principal read it ([`crate::Policy::may_read`]: its event type, and for a
//! RESTRICTED event only its publisher and audience) and the filter selects it (departments, types,
//! enterprises, chemicals, batch codes, event time).

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hazchem_domain::Department;
use hazchem_pki::Principal;
use hazchem_proto::time::datetime;
use hazchem_proto::{department_from_i32, v1};

use crate::Rejection;
use crate::policy::Policy;
use crate::validate::{self, FieldViolation};

/// What a reader asked for, checked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EventFilter {
    departments: BTreeSet<Department>,
    event_types: BTreeSet<String>,
    enterprises: BTreeSet<String>,
    chemicals: BTreeSet<String>,
    batch_codes: BTreeSet<String>,
    time_from: Option<DateTime<Utc>>,
    time_until: Option<DateTime<Utc>>,
}

/// One record as a reader gets it.
#[derive(Debug, Clone, PartialEq)]
pub struct Selected {
    pub record: v1::Record,
}

impl EventFilter {
    /// Checks every value of a wire filter; `prefix` names the field in violations ("filter").
    ///
    /// # Errors
    /// [`Rejection::Invalid`] with one violation per bad value.
    pub fn from_proto(filter: &v1::EventFilter, prefix: &str) -> Result<Self, Rejection> {
        let mut violations = Vec::new();
        let mut out = EventFilter::default();
        for (i, d) in filter.departments.iter().enumerate() {
            match department_from_i32(*d) {
                Ok(d) => {
                    out.departments.insert(d);
                }
                Err(e) => violations.push(FieldViolation::new(
                    format!("{prefix}.departments[{i}]"),
                    "department.unknown",
                    e.to_string(),
                )),
            }
        }
        let known = crate::event_type_tokens();
        for (i, t) in filter.event_types.iter().enumerate() {
            if known.iter().any(|k| k == t) {
                out.event_types.insert(t.clone());
            } else {
                violations.push(FieldViolation::new(
                    format!("{prefix}.event_types[{i}]"),
                    "event_type.unknown",
                    format!(
                        "\"{t}\" is not an event type of hazchem.v1 (for example \"waybill_issued\")"
                    ),
                ));
            }
        }
        // Identifiers (enterprises, chemicals, batch codes) and list lengths are checked by the contract's
        // own field rules on EventFilter, like any event field; departments are checked above. A filter
        // is a question, not a fact: none of its times can be "in the future".
        let mut dynamic = prost_reflect::DynamicMessage::new(
            hazchem_proto::message("hazchem.v1.EventFilter")
                .expect("EventFilter is in the contract"),
        );
        dynamic
            .transcode_from(filter)
            .expect("an EventFilter transcodes to its own descriptor");
        let report = validate::validate(&dynamic, DateTime::<Utc>::MAX_UTC, Duration::ZERO);
        violations.extend(
            report
                .violations
                .into_iter()
                .filter(|v| !v.field.starts_with("departments"))
                .map(|v| {
                    FieldViolation::new(format!("{prefix}.{}", v.field), v.rule, v.description)
                }),
        );
        out.enterprises = report.keys.enterprises.into_iter().collect();
        out.chemicals = report.keys.chemicals.into_iter().collect();
        out.batch_codes = report.keys.batch_codes.into_iter().collect();
        for (field, value, into) in [
            ("time_from", &filter.time_from, &mut out.time_from),
            ("time_until", &filter.time_until, &mut out.time_until),
        ] {
            if let Some(t) = value {
                match datetime(t) {
                    Some(t) => *into = Some(t),
                    None => violations.push(FieldViolation::new(
                        format!("{prefix}.{field}"),
                        "timestamp.range",
                        "not a valid timestamp",
                    )),
                }
            }
        }
        if let (Some(from), Some(until)) = (out.time_from, out.time_until)
            && from >= until
        {
            violations.push(FieldViolation::new(
                format!("{prefix}.time_until"),
                "time_range.empty",
                format!("time_until ({until}) must be after time_from ({from})"),
            ));
        }
        if violations.is_empty() {
            Ok(out)
        } else {
            Err(Rejection::Invalid(violations))
        }
    }

    /// Whether the filter selects everything.
    pub fn is_empty(&self) -> bool {
        *self == EventFilter::default()
    }

    /// The departments selected (none: all).
    pub fn departments(&self) -> &BTreeSet<Department> {
        &self.departments
    }

    /// The event types selected (none: all).
    pub fn event_types(&self) -> &BTreeSet<String> {
        &self.event_types
    }

    /// The same filter with only these event types.
    #[must_use]
    pub fn with_event_types(&self, event_types: BTreeSet<String>) -> Self {
        EventFilter {
            event_types,
            ..self.clone()
        }
    }

    /// The stored record `bytes`, decoded, if `principal` may read it under `policy` and the filter
    /// selects it. `token` is the event's type token when the caller already knows it (from the bus
    /// subject); otherwise it is read from the event.
    ///
    /// A record that does not decode is delivered only to an auditor or a service with an empty filter
    /// (who verify the log as it is) — as `None` here, see [`EventFilter::reads_raw`].
    pub fn select(
        &self,
        policy: &Policy,
        principal: &Principal,
        token: Option<&str>,
        bytes: &[u8],
    ) -> Option<Selected> {
        let (record, event) = hazchem_proto::open_record(bytes).ok()?;
        let token = match token {
            Some(token) => token.to_owned(),
            None => event.type_token()?,
        };
        let publisher = department_from_i32(event.department).ok();
        let audience: Vec<Department> = event
            .audience
            .iter()
            .filter_map(|d| department_from_i32(*d).ok())
            .collect();
        if !policy.may_read(
            principal,
            &token,
            publisher,
            event.classification(),
            &audience,
        ) {
            return None;
        }
        if !self.departments.is_empty() && !publisher.is_some_and(|d| self.departments.contains(&d))
        {
            return None;
        }
        if !self.event_types.is_empty() && !self.event_types.contains(&token) {
            return None;
        }
        if self.time_from.is_some() || self.time_until.is_some() {
            let time = event.time.as_ref().and_then(datetime)?;
            if self.time_from.is_some_and(|from| time < from)
                || self.time_until.is_some_and(|until| time >= until)
            {
                return None;
            }
        }
        if !(self.enterprises.is_empty()
            && self.chemicals.is_empty()
            && self.batch_codes.is_empty())
        {
            let keys = validate::index_keys(&hazchem_proto::decode_event(&record.event).ok()?);
            let any = |wanted: &BTreeSet<String>, found: &[String]| {
                wanted.is_empty() || found.iter().any(|k| wanted.contains(k))
            };
            if !(any(&self.enterprises, &keys.enterprises)
                && any(&self.chemicals, &keys.chemicals)
                && any(&self.batch_codes, &keys.batch_codes))
            {
                return None;
            }
        }
        Some(Selected { record })
    }

    /// Whether `principal` gets every record as stored, readable or not: auditors and services asking
    /// for everything (they verify the log as it is).
    pub fn reads_raw(&self, principal: &Principal) -> bool {
        self.is_empty() && matches!(principal, Principal::Auditor(_) | Principal::Service(_))
    }
}
