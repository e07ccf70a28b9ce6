//! The example events in `tests/fixtures/events/`: one per event type, each a realistic, fully valid event in
//! canonical protobuf JSON. These tests keep the fixtures and the contract in step:
//!
//! - the directory holds exactly one `<token>.json` per payload field of `hazchem.v1.Event`;
//! - every fixture parses with [`hazchem_proto::from_json`], carries the payload its file name says, and its
//!   envelope (`type`, `dataschema`, `specversion`, `datacontenttype`) agrees with the payload;
//! - prost encoding, prost decoding, re-encoding and rendering back to JSON give the same message, the same
//!   bytes and the same JSON;
//! - the descriptor set keeps the contract's field rules (hazchem-admission checks that every fixture
//!   satisfies them);
//! - the lifecycle is covered, and malformed JSON (unknown field, unknown enum name) is rejected.

#![allow(clippy::disallowed_methods)] // tests: fixture times are checked against wall time

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use hazchem_proto::{
    DATA_CONTENT_TYPE, EventType, SPEC_VERSION, TYPE_PREFIX, decode_event, event_types, from_json,
    to_json, v1::Event,
};
use prost::Message;
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/events");

/// The batch code the production, storage, sale, waybill, usage and waste fixtures share.
const SHARED_BATCH: &str = "BATCH-2026-NT-0001";

/// One fixture file.
struct Fixture {
    stem: String,
    path: PathBuf,
    text: String,
}

impl Fixture {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("{}: not JSON: {e}", self.path.display()))
    }

    fn event(&self) -> Event {
        from_json::<Event>(&self.text)
            .unwrap_or_else(|e| panic!("{}: from_json failed: {e}", self.path.display()))
    }
}

/// Every `*.json` file of the fixture directory, by file name.
fn fixtures() -> Vec<Fixture> {
    let mut out: Vec<Fixture> = fs::read_dir(FIXTURES)
        .unwrap_or_else(|e| panic!("{FIXTURES}: {e}"))
        .map(|entry| entry.expect("a readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| Fixture {
            stem: stem(&path),
            text: fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
            path,
        })
        .collect();
    out.sort_by(|a, b| a.stem.cmp(&b.stem));
    assert!(!out.is_empty(), "no fixtures in {FIXTURES}");
    out
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_else(|| panic!("{}: file name is not UTF-8", path.display()))
        .to_owned()
}

fn types_by_token() -> BTreeMap<String, EventType> {
    event_types()
        .into_iter()
        .map(|t| (t.token.clone(), t))
        .collect()
}

fn fixture(token: &str) -> Fixture {
    fixtures()
        .into_iter()
        .find(|f| f.stem == token)
        .unwrap_or_else(|| panic!("no fixture {token}.json"))
}

// ---------------------------------------------------------------------------------------------------------
// The directory matches the contract.

#[test]
fn one_fixture_per_event_type() {
    let tokens: BTreeSet<String> = event_types().into_iter().map(|t| t.token).collect();
    assert!(
        tokens.len() >= 40,
        "the contract defines only {} event types",
        tokens.len()
    );

    let mut stems = BTreeSet::new();
    let mut other_files = Vec::new();
    for entry in fs::read_dir(FIXTURES).unwrap_or_else(|e| panic!("{FIXTURES}: {e}")) {
        let path = entry.expect("a readable directory entry").path();
        if path.is_file() && path.extension().is_some_and(|ext| ext == "json") {
            assert!(
                stems.insert(stem(&path)),
                "{} appears twice",
                path.display()
            );
        } else {
            other_files.push(path.display().to_string());
        }
    }

    let missing: Vec<_> = tokens.difference(&stems).collect();
    let extra: Vec<_> = stems.difference(&tokens).collect();
    assert!(
        missing.is_empty() && extra.is_empty() && other_files.is_empty(),
        "fixtures out of step with hazchem.v1.Event: missing {missing:?}, extra {extra:?}, \
         not a fixture {other_files:?}"
    );
}

// ---------------------------------------------------------------------------------------------------------
// Every fixture round-trips.

/// prost-reflect renders every `double` with serde's `f64` (`20.0`), while a fixture, like any protobuf
/// JSON printer, may write an integral double as `20`; serde_json keeps those as different `Number`s.
/// Both are the same protobuf value, so numbers are compared as `f64`. (64-bit integers are strings in
/// canonical JSON and are not affected; 32-bit integers convert to `f64` exactly.) Nothing else is
/// normalised: default values must be left out of the fixtures, as the canonical mapping leaves them out.
fn normalise_numbers(value: &Value) -> Value {
    match value {
        Value::Number(n) => {
            let f = n.as_f64().expect("every JSON number converts to f64");
            Value::Number(serde_json::Number::from_f64(f).expect("a finite number"))
        }
        Value::Array(items) => Value::Array(items.iter().map(normalise_numbers).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), normalise_numbers(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[test]
fn every_fixture_round_trips() {
    let types = types_by_token();
    for f in fixtures() {
        let name = f.path.display().to_string();
        let input = f.json();
        let event = f.event();

        // The payload is the one the file is named after, and the envelope agrees with it.
        let token = event
            .type_token()
            .unwrap_or_else(|| panic!("{name}: no payload"));
        assert_eq!(token, f.stem, "{name}: carries a {token} payload");
        let ty = types
            .get(&token)
            .unwrap_or_else(|| panic!("{name}: {token} is not an event type"));
        assert_eq!(event.r#type, ty.cloudevents_type(), "{name}: type");
        assert!(event.r#type.starts_with(TYPE_PREFIX), "{name}: type prefix");
        assert_eq!(event.data_schema, ty.schema, "{name}: dataSchema");
        assert_eq!(event.spec_version, SPEC_VERSION, "{name}: specVersion");
        assert_eq!(
            event.data_content_type, DATA_CONTENT_TYPE,
            "{name}: dataContentType"
        );

        // Binary: encode, decode, re-encode.
        let bytes = event.encode_to_vec();
        let decoded = Event::decode(bytes.as_slice())
            .unwrap_or_else(|e| panic!("{name}: prost cannot decode its own encoding: {e}"));
        assert_eq!(decoded, event, "{name}: decoded message differs");
        assert_eq!(
            decoded.encode_to_vec(),
            bytes,
            "{name}: re-encoding changed the bytes"
        );

        // The gateway reads the same bytes reflectively; it must see the same message. (Only the message, not
        // the bytes: prost-build 0.14 generates `packed = "false"` for proto3 repeated enums that carry a field
        // option, here `(rules)` on `audience`, `applies_to`, `participants` and `addressed_to`
        // (tokio-rs/prost#976), while prost-reflect packs them, so the two encoders disagree on those
        // fields. Both forms decode to the same message, and stored events keep the publisher's bytes.)
        let dynamic =
            decode_event(&bytes).unwrap_or_else(|e| panic!("{name}: decode_event failed: {e}"));
        let transcoded: Event = dynamic
            .transcode_to()
            .unwrap_or_else(|e| panic!("{name}: reflective transcoding failed: {e}"));
        assert_eq!(transcoded, event, "{name}: the reflective decoding differs");

        // Back to canonical JSON.
        let rendered = to_json(&decoded).unwrap_or_else(|e| panic!("{name}: to_json failed: {e}"));
        assert_eq!(
            normalise_numbers(&rendered),
            normalise_numbers(&input),
            "{name}: the canonical JSON rendering differs from the fixture\nrendered: {}",
            serde_json::to_string_pretty(&rendered).unwrap_or_default()
        );
    }
}

// ---------------------------------------------------------------------------------------------------------
// Envelopes follow the conventions.

/// "DEPARTMENT_EMERGENCY" → "emergency", the code used in sources, subjects and policy.
fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64
}

fn department_code(department: i32) -> Option<String> {
    let d = hazchem_proto::v1::Department::try_from(department).ok()?;
    d.as_str_name()
        .strip_prefix("DEPARTMENT_")
        .filter(|code| *code != "UNSPECIFIED")
        .map(str::to_ascii_lowercase)
}

#[test]
fn fixture_envelopes_follow_the_conventions() {
    let now = now_seconds();
    let mut ids = BTreeSet::new();
    for f in fixtures() {
        let name = f.path.display().to_string();
        let event = f.event();
        assert!(
            ids.insert(event.id.clone()),
            "{name}: id {} reused",
            event.id
        );
        assert_eq!(
            event.classification,
            hazchem_proto::v1::DataClassification::Shared as i32,
            "{name}: classification"
        );
        let time = event
            .time
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: no time"));
        assert!(time.seconds <= now, "{name}: time is in the future");

        // Departments publish from "/departments/<code>/...", the bus's services from "/services/<name>"
        // with no department.
        match department_code(event.department) {
            Some(code) => assert!(
                event.source.starts_with(&format!("/departments/{code}/")),
                "{name}: source {} is not under /departments/{code}/",
                event.source
            ),
            None => {
                assert_eq!(event.department, 0, "{name}: unknown department");
                assert!(
                    event.source.starts_with("/services/"),
                    "{name}: no department, yet source {} is not a service",
                    event.source
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// The lifecycle is covered, and one lot can be followed through it.

#[test]
fn every_lifecycle_stage_has_fixtures() {
    let stages: &[(&str, &[&str])] = &[
        ("production", &["production_recorded"]),
        (
            "storage",
            &["storage_recorded", "major_hazard_source_registered"],
        ),
        (
            "sale and purchase",
            &[
                "sale_recorded",
                "highly_toxic_purchase_permit_issued",
                "explosive_precursor_filed",
                "theft_or_loss_reported",
            ],
        ),
        (
            "road transport",
            &[
                "waybill_issued",
                "trip_started",
                "trip_completed",
                "road_pass_issued",
            ],
        ),
        (
            "waterway transport",
            &["ship_declaration_submitted", "ship_declaration_decided"],
        ),
        ("use", &["usage_recorded"]),
        (
            "disposal",
            &["waste_manifest_created", "waste_manifest_received"],
        ),
        (
            "licences",
            &[
                "licence_issued",
                "licence_renewed",
                "licence_suspended",
                "licence_revoked",
                "licence_expired",
                "application_decided",
                "relocation_ordered",
            ],
        ),
        (
            "sensors",
            &[
                "sensor_readings_recorded",
                "sensor_alarm_raised",
                "sensor_alarm_cleared",
            ],
        ),
        (
            "incidents",
            &[
                "incident_reported",
                "inspection_recorded",
                "penalty_decided",
            ],
        ),
    ];
    let types = types_by_token();
    let present: BTreeSet<String> = fixtures().into_iter().map(|f| f.stem).collect();
    for (stage, tokens) in stages {
        for token in *tokens {
            assert!(
                types.contains_key(*token),
                "{stage}: {token} is not an event type"
            );
            assert!(present.contains(*token), "{stage}: no {token}.json");
        }
    }
}

fn batch_codes(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "batchCode"
                    && let Some(s) = v.as_str()
                {
                    out.push(s.to_owned());
                }
                batch_codes(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| batch_codes(v, out)),
        _ => {}
    }
}

#[test]
fn one_batch_is_followed_from_production_to_disposal() {
    for token in [
        "production_recorded",
        "storage_recorded",
        "sale_recorded",
        "waybill_issued",
        "usage_recorded",
        "waste_manifest_created",
    ] {
        let mut codes = Vec::new();
        batch_codes(&fixture(token).json(), &mut codes);
        assert!(
            codes.iter().any(|c| c == SHARED_BATCH),
            "{token}.json does not carry batch {SHARED_BATCH} (has {codes:?})"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------
// The descriptor set keeps the contract's field rules (validation reads them at run time; whether every
// fixture satisfies them is tested by hazchem-admission, which admits each fixture).

#[test]
fn the_descriptor_set_keeps_the_field_rules() {
    let pool = hazchem_proto::pool();
    let rules = pool
        .get_extension_by_name("hazchem.v1.rules")
        .expect("the rules extension is in the pool");
    let uscc = pool
        .get_message_by_name("hazchem.v1.EnterpriseRef")
        .and_then(|m| m.get_field_by_name("uscc"))
        .expect("EnterpriseRef.uscc");
    assert!(
        uscc.options().has_extension(&rules),
        "EnterpriseRef.uscc lost its (hazchem.v1.rules) option: the descriptor set must be encoded by protox, not through prost_types"
    );
}

// ---------------------------------------------------------------------------------------------------------
// Malformed JSON is rejected.

fn waybill_json() -> Value {
    fixture("waybill_issued").json()
}

#[test]
fn an_unknown_field_is_rejected_naming_the_field() {
    // At the top level: CloudEvents' own spelling of an attribute is not the protobuf JSON name.
    let mut json = waybill_json();
    json["dataschema"] = Value::from("hazchem.v1.WaybillIssued");
    let err = from_json::<Event>(&json.to_string()).expect_err("an unknown field is rejected");
    assert!(err.to_string().contains("'dataschema'"), "{err}");

    // Nested in the payload: American spelling of plateColour.
    let mut json = waybill_json();
    json["waybillIssued"]["tractor"]["plateColor"] = Value::from(2);
    let err = from_json::<Event>(&json.to_string()).expect_err("an unknown field is rejected");
    assert!(err.to_string().contains("'plateColor'"), "{err}");
}

#[test]
fn a_wrong_enum_name_is_rejected() {
    // prost-reflect's error names the unrecognised value (and, via serde_json, its line and column) but not
    // the field holding it; the assertions check what the message does carry.
    let cases = [
        (&["department"][..], "DEPARTMENT_TRANSPORTATION"),
        (
            &["waybillIssued", "goods", "0", "packingGroup"][..],
            "PG_II",
        ),
        (&["classification"][..], "SHARED"),
    ];
    for (path, bad) in cases {
        let mut json = waybill_json();
        let mut slot = &mut json;
        for key in path {
            slot = match key.parse::<usize>() {
                Ok(i) => &mut slot[i],
                Err(_) => &mut slot[*key],
            };
        }
        assert!(slot.is_string(), "{path:?} is an enum in the fixture");
        *slot = Value::from(bad);
        let err =
            from_json::<Event>(&json.to_string()).expect_err("an unknown enum name is rejected");
        let message = err.to_string();
        assert!(
            message.contains(&format!("'{bad}'")),
            "{path:?}: the error does not name the value: {message}"
        );
        assert!(
            message.contains("line 1 column"),
            "{path:?}: no position: {message}"
        );
    }
}
