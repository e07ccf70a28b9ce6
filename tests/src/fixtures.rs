//! Events for tests: the valid example of every event type in `tests/fixtures/events/`, fresh ids,
//! signing, and who publishes what.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use hazchem_domain::Department;
use hazchem_pki::{Principal, SigningKey};
use hazchem_proto::{department_from_i32, v1};
use prost::Message as _;

/// `tests/fixtures/events`: one valid event per type, named `<token>.json`.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/events")
}

/// The workspace root (where `cargo` and the README's commands run).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_path_buf()
}

/// The event type tokens that have a fixture, sorted.
pub fn fixture_tokens() -> Vec<String> {
    let mut tokens: Vec<String> = std::fs::read_dir(fixtures_dir())
        .expect("read tests/fixtures/events")
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            (path.extension()? == "json").then(|| path.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    tokens.sort();
    tokens
}

/// The fixture of event type `token` (`tests/fixtures/events/<token>.json`), decoded from canonical
/// protobuf JSON. Its id is the fixture's own (`fx-...`); use [`fresh`] for a new one.
///
/// # Panics
/// If there is no such fixture or it is not a `hazchem.v1.Event`.
pub fn fixture(token: &str) -> v1::Event {
    let path = fixtures_dir().join(format!("{token}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("no fixture {}: {e}", path.display()));
    hazchem_proto::from_json::<v1::Event>(&text)
        .unwrap_or_else(|e| panic!("fixture {} is not a hazchem.v1.Event: {e}", path.display()))
}

/// The fixture of `token` with a new, process-unique id (see [`unique_id`]).
pub fn fresh(token: &str) -> v1::Event {
    let mut event = fixture(token);
    event.id = unique_id(token);
    event
}

/// An event id no other call in this process returns: `<prefix>-<pid>-<n>`, cut to the 128
/// characters of `A-Z a-z 0-9 _ -` an id may have.
pub fn unique_id(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let prefix: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(80)
        .collect();
    format!("{prefix}-{}-{n}", std::process::id())
}

/// The event type token of an event (its payload field name), e.g. `waybill_issued`.
///
/// # Panics
/// If the event has no payload.
pub fn token_of(event: &v1::Event) -> String {
    event.type_token().expect("the event carries a payload")
}

/// The department an event names, if any.
pub fn department_of(event: &v1::Event) -> Option<Department> {
    department_from_i32(event.department).ok()
}

/// Sets the event's department; a department `source` (`/departments/<code>/<system>`) moves with it into
/// the new department's namespace (`/departments/<new code>/<system>`), where the gateway requires it to
/// be. Nothing else changes.
pub fn set_department(event: &mut v1::Event, department: Option<Department>) {
    event.department = department.map_or(0, |d| v1::Department::from(d) as i32);
    if let Some(d) = department
        && let Some(rest) = event.source.strip_prefix("/departments/")
    {
        event.source = match rest.split_once('/') {
            Some((_, system)) => format!("/departments/{}/{system}", d.code()),
            None => format!("/departments/{}", d.code()),
        };
    }
}

/// The encoded event, with an origin signature by `key` if given. The key id is the key's id for the
/// department the event names (`<code>+<8 hex digits>`, what the registry lists).
pub fn signed(event: &v1::Event, key: Option<&SigningKey>) -> v1::SignedEvent {
    let key_id =
        |k: &SigningKey| department_of(event).map_or(String::new(), |d| k.origin_key_id(d));
    let key = key.map(|k| (key_id(k), k));
    signed_bytes(
        event.encode_to_vec(),
        key.as_ref().map(|(id, k)| (id.as_str(), *k)),
    )
}

/// Exact bytes (encoded by the caller, perhaps deliberately broken), signed with `(key_id, key)` if
/// given.
pub fn signed_bytes(bytes: Vec<u8>, key: Option<(&str, &SigningKey)>) -> v1::SignedEvent {
    let signature = key.map(|(key_id, key)| v1::OriginSignature {
        key_id: key_id.to_owned(),
        signature: key.sign(&bytes).to_vec(),
    });
    v1::SignedEvent {
        event: bytes,
        signature,
    }
}

/// A department by code (`"psb"`).
///
/// # Panics
/// On an unknown code.
pub fn department(code: &str) -> Department {
    code.parse()
        .unwrap_or_else(|e| panic!("{code:?} is not a department code: {e}"))
}

/// The principal of a department (`"psb"`).
pub fn dept(code: &str) -> Principal {
    Principal::Department(department(code))
}

/// The principal of one of the bus's services (`"ledger"`).
pub fn service(name: &str) -> Principal {
    Principal::service(name).expect("a valid service name")
}

/// The development auditor (the one the development PKI issues a certificate to).
pub fn auditor() -> Principal {
    Principal::Auditor(hazchem_pki::dev::DEV_AUDITOR.to_owned())
}

/// Who may publish `event` under the default policy: the department it names, or else the service its
/// `source` names (`/services/<name>/...`) if that service's duties cover its type, or else the first
/// service (in the order of the service table, [`hazchem_pki::services::SERVICES`]) whose duties do.
///
/// # Panics
/// If no service may publish a department-less event of this type.
pub fn publisher_for(event: &v1::Event) -> Principal {
    if let Some(d) = department_of(event) {
        return Principal::Department(d);
    }
    let token = token_of(event);
    let policy = hazchem_admission::Policy::default_policy();
    let named = event
        .source
        .strip_prefix("/services/")
        .map(|rest| rest.split('/').next().unwrap_or_default());
    hazchem_pki::services::SERVICES
        .iter()
        .map(hazchem_pki::services::Service::principal)
        .filter(|p| policy.may_publish(p, &token))
        .min_by_key(|p| Some(p.name()) != named)
        .unwrap_or_else(|| panic!("no service publishes {token} under the default policy"))
}
