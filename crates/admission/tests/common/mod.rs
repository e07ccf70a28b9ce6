//! Test helpers: valid events of every type built from the contract's own rules, signing, and assertions
//! on rejections.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hazchem_admission::{Admission, Limits, Policy, Rejection, field_rules};
use hazchem_domain::Department;
use hazchem_pki::{KeyRegistry, Principal, SigningKey};
use hazchem_proto::{DATA_CONTENT_TYPE, SPEC_VERSION, TYPE_PREFIX, department_from_i32, v1};
use prost::Message as _;
use prost_reflect::{DynamicMessage, Kind, MessageDescriptor, Value};

pub const USCC: &str = "91350200776049653A";
pub const USCC_2: &str = "91440101MA5CJQ4N59";
pub const CAS: &str = "7664-41-7";
pub const UN: &str = "UN1005";
pub const IMO: &str = "9074729";
pub const PLATE: &str = "苏F12345";
pub const BATCH: &str = "B-2026-001";

/// A fixed "now" for deterministic tests.
pub fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T08:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

pub fn department(code: &str) -> Department {
    code.parse().unwrap()
}

pub fn dept(code: &str) -> Principal {
    Principal::Department(department(code))
}

pub fn service(name: &str) -> Principal {
    Principal::Service(name.to_owned())
}

/// A signing key per department, generated once per test process.
pub fn signing_key(d: Department) -> &'static SigningKey {
    use std::sync::LazyLock;
    static KEYS: LazyLock<Vec<SigningKey>> = LazyLock::new(|| {
        Department::ALL
            .iter()
            .map(|_| SigningKey::generate())
            .collect()
    });
    &KEYS[Department::ALL.iter().position(|x| *x == d).unwrap()]
}

/// A registry with every department's key.
pub fn registry() -> KeyRegistry {
    let mut registry = KeyRegistry::new();
    for d in Department::ALL {
        registry.insert(d, signing_key(d).public_key());
    }
    registry
}

pub fn admission() -> Admission {
    Admission::new(Policy::default_policy(), registry(), Limits::default())
}

pub fn admission_with(limits: Limits) -> Admission {
    Admission::new(Policy::default_policy(), registry(), limits)
}

/// A sample value for a field, valid by its rules.
fn sample(field: &prost_reflect::FieldDescriptor, depth: usize) -> Option<Value> {
    let rules = field_rules(field).cloned().unwrap_or_default();
    let number = {
        let (min, max) = (rules.min.unwrap_or(f64::MIN), rules.max.unwrap_or(f64::MAX));
        let v: f64 = 2.0;
        v.clamp(min, max)
    };
    Some(match field.kind() {
        Kind::String => Value::String(
            match rules.identifier {
                Some(v1::Identifier::Uscc) => USCC,
                Some(v1::Identifier::Cas) => CAS,
                Some(v1::Identifier::UnNumber) => UN,
                Some(v1::Identifier::Imo) => IMO,
                Some(v1::Identifier::VehiclePlate) => PLATE,
                Some(v1::Identifier::Token) => "tok-1",
                Some(v1::Identifier::BatchCode) => BATCH,
                _ => "x",
            }
            .to_owned(),
        ),
        Kind::Bytes => Value::Bytes(b"x".to_vec().into()),
        Kind::Bool => Value::Bool(true),
        Kind::Uint32 | Kind::Fixed32 => {
            if rules.identifier == Some(v1::Identifier::PlateColour) {
                Value::U32(2)
            } else {
                Value::U32(number as u32)
            }
        }
        Kind::Uint64 | Kind::Fixed64 => Value::U64(number as u64),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(number as i32),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(number as i64),
        Kind::Double => Value::F64(number),
        Kind::Float => Value::F32(number as f32),
        Kind::Enum(e) => Value::EnumNumber(e.values().find(|v| v.number() != 0)?.number()),
        Kind::Message(m) if m.full_name() == "google.protobuf.Timestamp" => {
            let mut t = DynamicMessage::new(m.clone());
            t.set_field_by_name("seconds", Value::I64(now().timestamp() - 3600));
            Value::Message(t)
        }
        Kind::Message(m) => {
            if depth > 8 {
                return None;
            }
            Value::Message(fill(&m, depth + 1))
        }
    })
}

/// A message with every non-oneof field set to a valid sample.
pub fn fill(descriptor: &MessageDescriptor, depth: usize) -> DynamicMessage {
    let mut message = DynamicMessage::new(descriptor.clone());
    for field in descriptor.fields() {
        if field.containing_oneof().is_some() || field.is_map() {
            continue;
        }
        let Some(value) = sample(&field, depth) else {
            continue;
        };
        let value = if field.is_list() {
            Value::List(vec![value])
        } else {
            value
        };
        message.set_field(&field, value);
    }
    message
}

/// A valid event of type `token` in the name of `department` (`None`: a service's event).
pub fn dynamic_event(token: &str, department: Option<Department>) -> DynamicMessage {
    let descriptor = hazchem_proto::event_descriptor();
    let field = descriptor
        .get_field_by_name(token)
        .expect("a payload field");
    let payload = field.kind().as_message().unwrap().clone();
    let mut event = DynamicMessage::new(descriptor.clone());
    let set = |e: &mut DynamicMessage, name: &str, v: Value| e.set_field_by_name(name, v);
    set(
        &mut event,
        "spec_version",
        Value::String(SPEC_VERSION.into()),
    );
    set(&mut event, "id", Value::String(format!("ev-{token}")));
    let source = match department {
        Some(d) => format!("/departments/{}/system", d.code()),
        None => "/services/bus".to_owned(),
    };
    set(&mut event, "source", Value::String(source));
    set(
        &mut event,
        "type",
        Value::String(format!("{TYPE_PREFIX}{token}")),
    );
    set(&mut event, "subject", Value::String(USCC.into()));
    let mut time =
        DynamicMessage::new(hazchem_proto::message("google.protobuf.Timestamp").unwrap());
    time.set_field_by_name("seconds", Value::I64(now().timestamp() - 60));
    set(&mut event, "time", Value::Message(time));
    set(
        &mut event,
        "data_content_type",
        Value::String(DATA_CONTENT_TYPE.into()),
    );
    set(
        &mut event,
        "data_schema",
        Value::String(payload.full_name().into()),
    );
    if let Some(d) = department {
        set(
            &mut event,
            "department",
            Value::EnumNumber(v1::Department::from(d) as i32),
        );
    }
    set(
        &mut event,
        "classification",
        Value::EnumNumber(v1::DataClassification::Shared as i32),
    );
    event.set_field(&field, Value::Message(fill(&payload, 0)));
    event
}

/// A valid typed event of type `token` by service `name` (its `source` in `/services/<name>`).
pub fn service_event(token: &str, name: &str) -> v1::Event {
    let mut event = make_event(token, None);
    event.source = format!("/services/{name}");
    event
}

/// A valid typed event; for licence events, of a kind the department issues in its own name (approval:
/// on behalf of emergency).
pub fn make_event(token: &str, department: Option<Department>) -> v1::Event {
    let mut event: v1::Event = dynamic_event(token, department).transcode_to().unwrap();
    if let Some(d) = department {
        let (kind, competent) = licence_for(d);
        set_licence(&mut event, kind, competent);
    }
    event
}

/// A licence kind `d` may publish licence events for, and the competent department to name.
pub fn licence_for(d: Department) -> (v1::LicenceKind, Department) {
    match d {
        Department::Eeb => (v1::LicenceKind::HazardousWaste, d),
        Department::Transport => (v1::LicenceKind::RoadTransport, d),
        Department::Samr => (v1::LicenceKind::IndustrialProduct, d),
        Department::Approval => (v1::LicenceKind::SafetyProduction, Department::Emergency),
        _ => (v1::LicenceKind::SafetyProduction, Department::Emergency),
    }
}

/// Sets the licence kind and (where the payload has one) the competent department.
pub fn set_licence(event: &mut v1::Event, kind: v1::LicenceKind, competent: Department) {
    use v1::event::Payload;
    let competent = v1::Department::from(competent) as i32;
    match event.payload.as_mut() {
        Some(Payload::LicenceIssued(p)) => {
            let l = p.licence.as_mut().unwrap();
            l.kind = kind as i32;
            l.competent_department = competent;
        }
        Some(Payload::LicenceRenewed(p)) => {
            let l = p.licence.as_mut().unwrap();
            l.kind = kind as i32;
            l.competent_department = competent;
        }
        Some(Payload::LicenceSuspended(p)) => p.kind = kind as i32,
        Some(Payload::LicenceRevoked(p)) => p.kind = kind as i32,
        Some(Payload::LicenceExpired(p)) => p.kind = kind as i32,
        Some(Payload::ApplicationDecided(p)) => {
            p.kind = kind as i32;
            p.competent_department = competent;
        }
        _ => {}
    }
}

/// The event, unsigned.
pub fn unsigned(event: &v1::Event) -> v1::SignedEvent {
    v1::SignedEvent {
        event: event.encode_to_vec(),
        signature: None,
    }
}

/// The event signed by `d`'s key, with that key's id (`<code>+<8 hex digits>`).
pub fn signed_by(event: &v1::Event, d: Department) -> v1::SignedEvent {
    signed_with(event, signing_key(d), &signing_key(d).origin_key_id(d))
}

/// The event signed by `key`, the signature carrying `key_id`.
pub fn signed_with(event: &v1::Event, key: &SigningKey, key_id: &str) -> v1::SignedEvent {
    let bytes = event.encode_to_vec();
    v1::SignedEvent {
        signature: Some(v1::OriginSignature {
            key_id: key_id.to_owned(),
            signature: key.sign(&bytes).to_vec(),
        }),
        event: bytes,
    }
}

/// `(field, rule)` of every violation of an Invalid rejection.
pub fn violations(rejection: &Rejection) -> Vec<(String, String)> {
    match rejection {
        Rejection::Invalid(v) => v
            .iter()
            .map(|v| (v.field.clone(), v.rule.clone()))
            .collect(),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

pub fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(f, r)| ((*f).to_owned(), (*r).to_owned()))
        .collect()
}

pub fn skew() -> Duration {
    Duration::from_secs(300)
}

/// Every event type token of the contract.
pub fn tokens() -> Vec<String> {
    hazchem_proto::event_types()
        .into_iter()
        .map(|t| t.token)
        .collect()
}

/// The shared JSON fixtures (`tests/fixtures/events/<token>.json`, one per event type), in name order.
pub fn fixtures() -> Vec<PathBuf> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/events"
    ));
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

/// The department named in the event, or the service the policy lets publish its type.
pub fn publisher(policy: &Policy, event: &v1::Event, token: &str) -> Principal {
    if let Ok(d) = department_from_i32(event.department) {
        return Principal::Department(d);
    }
    // The service the event's source names, if it may publish the type; else the first that may.
    let named = event
        .source
        .strip_prefix("/services/")
        .map(|rest| rest.split('/').next().unwrap_or_default());
    ["ledger", "credit", "enforcement", "warning"]
        .into_iter()
        .map(|s| Principal::Service(s.to_owned()))
        .filter(|p| policy.may_publish(p, token))
        .min_by_key(|p| Some(p.name()) != named)
        .unwrap_or_else(|| panic!("no service publishes {token}"))
}
