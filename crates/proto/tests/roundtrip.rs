//! The example events in `tests/fixtures/events/`: one per event type, each a realistic, fully valid event in
//! canonical protobuf JSON. These tests keep the fixtures and the contract in step:
//!
//! - the directory holds exactly one `<token>.json` per payload field of `hazchem.v1.Event`;
//! - every fixture parses with [`hazchem_proto::from_json`], carries the payload its file name says, and its
//!   envelope (`type`, `dataschema`, `specversion`, `datacontenttype`) agrees with the payload;
//! - prost encoding, prost decoding, re-encoding and rendering back to JSON give the same message, the same
//!   bytes and the same JSON;
//! - every field rule in the contract (`(hazchem.v1.rules)`: required, identifier, max_len, min, max,
//!   not_future) holds, and every identifier parses with `hazchem-domain` (until the gateway's validator
//!   exists, this is what guards the fixtures);
//! - the lifecycle is covered, and malformed JSON (unknown field, unknown enum name) is rejected.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use hazchem_domain::{CasNumber, ImoNumber, PlateColour, UnNumber, Uscc, VehiclePlate};
use hazchem_proto::{
    DATA_CONTENT_TYPE, EventType, SPEC_VERSION, TYPE_PREFIX, decode_event, event_types, from_json,
    pool, to_json, v1::Event,
};
use prost::Message;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, ReflectMessage, Value as PValue};
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/events");

/// The batch code the production, storage, sale, waybill, usage and waste fixtures share.
const SHARED_BATCH: &str = "BATCH-2026-NT-0001";

/// Allowed clock skew for `not_future` timestamps (the gateway's is configurable; the fixtures are far in
/// the past anyway).
const SKEW_SECONDS: i64 = 300;

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
// Identifiers, by key, with hazchem-domain.

#[derive(Default, Debug)]
struct IdentifierCounts {
    uscc: usize,
    cas: usize,
    un: usize,
    imo: usize,
    plates: usize,
}

fn check_identifiers(
    value: &Value,
    at: &str,
    counts: &mut IdentifierCounts,
    errors: &mut Vec<String>,
) {
    match value {
        Value::Object(map) => {
            if let Some(plate) = map.get("plate") {
                counts.plates += 1;
                let colour = map.get("plateColour").and_then(Value::as_u64);
                match (plate.as_str(), colour.and_then(|c| u32::try_from(c).ok())) {
                    (Some(p), Some(c)) => {
                        if let Err(e) = VehiclePlate::parse(p, c) {
                            errors.push(format!("{at}.plate: {e}"));
                        }
                    }
                    _ => errors.push(format!("{at}: plate without a numeric plateColour")),
                }
            }
            for (key, v) in map {
                let here = format!("{at}.{key}");
                let mut check = |result: Result<(), String>| {
                    if let Err(e) = result {
                        errors.push(format!("{here}: {e}"));
                    }
                };
                match (key.as_str(), v) {
                    ("uscc", Value::String(s)) => {
                        counts.uscc += 1;
                        check(Uscc::parse(s).map(drop).map_err(|e| e.to_string()));
                    }
                    ("drawnTargets", Value::Array(items)) => {
                        for item in items {
                            counts.uscc += 1;
                            check(match item.as_str() {
                                Some(s) => Uscc::parse(s).map(drop).map_err(|e| e.to_string()),
                                None => Err("not a string".to_owned()),
                            });
                        }
                    }
                    ("cas", Value::String(s)) => {
                        counts.cas += 1;
                        check(CasNumber::parse(s).map(drop).map_err(|e| e.to_string()));
                    }
                    ("unNumber", Value::String(s)) => {
                        counts.un += 1;
                        check(UnNumber::parse(s).map(drop).map_err(|e| e.to_string()));
                    }
                    ("imo", Value::String(s)) => {
                        counts.imo += 1;
                        check(ImoNumber::parse(s).map(drop).map_err(|e| e.to_string()));
                    }
                    ("uscc" | "cas" | "unNumber" | "imo", _) => {
                        check(Err("not a string".to_owned()));
                    }
                    _ => {}
                }
                check_identifiers(v, &here, counts, errors);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                check_identifiers(v, &format!("{at}[{i}]"), counts, errors);
            }
        }
        _ => {}
    }
}

#[test]
fn fixture_identifiers_are_valid() {
    let mut counts = IdentifierCounts::default();
    let mut errors = Vec::new();
    for f in fixtures() {
        check_identifiers(&f.json(), &f.stem, &mut counts, &mut errors);
    }
    assert!(
        errors.is_empty(),
        "invalid identifiers:\n{}",
        errors.join("\n")
    );
    // The walk must have found something of every kind, or it checks nothing.
    assert!(
        counts.uscc > 0 && counts.cas > 0 && counts.un > 0 && counts.imo > 0 && counts.plates > 0,
        "identifier walk found too little: {counts:?}"
    );
}

// ---------------------------------------------------------------------------------------------------------
// The contract's own field rules, read from the descriptors.

fn now_seconds() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs();
    i64::try_from(secs).expect("seconds fit in i64")
}

/// How many fields of the contract carry a `(hazchem.v1.rules)` option in [`pool`]. Panics, with the cause,
/// when none do: then the descriptor set has lost its custom options and nothing could be checked.
fn require_rules_in_pool() {
    let with_rules = pool()
        .all_messages()
        .flat_map(|m| m.fields().collect::<Vec<_>>())
        .filter(|f| rules_of(f).is_some())
        .count();
    assert!(
        with_rules > 0,
        "no field of hazchem_proto::pool() carries a (hazchem.v1.rules) option, so neither these tests nor \
         the gateway can read the contract's rules. FILE_DESCRIPTOR_SET is written by build.rs from \
         protox::compile(..), a prost_types::FileDescriptorSet, and prost_types drops extension options \
         when it decodes; write protox::Compiler::encode_file_descriptor_set() instead"
    );
}

/// The `(hazchem.v1.rules)` option of a field, if it has one.
fn rules_of(field: &FieldDescriptor) -> Option<DynamicMessage> {
    let extension = pool()
        .get_extension_by_name("hazchem.v1.rules")
        .expect("hazchem.v1.rules is in the contract");
    let options = field.options();
    if !options.has_extension(&extension) {
        return None;
    }
    options.get_extension(&extension).as_message().cloned()
}

fn rule_bool(rules: &DynamicMessage, name: &str) -> bool {
    rules
        .get_field_by_name(name)
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

fn rule_f64(rules: &DynamicMessage, name: &str) -> Option<f64> {
    let field = rules.descriptor().get_field_by_name(name)?;
    rules
        .has_field(&field)
        .then(|| rules.get_field(&field).as_f64())
        .flatten()
}

fn identifier_rule(rules: &DynamicMessage) -> Option<String> {
    let number = rules.get_field_by_name("identifier")?.as_enum_number()?;
    if number == 0 {
        return None;
    }
    let identifier = pool()
        .get_enum_by_name("hazchem.v1.Identifier")
        .expect("hazchem.v1.Identifier is in the contract");
    Some(
        identifier
            .get_value(number)
            .map_or_else(|| number.to_string(), |v| v.name().to_owned()),
    )
}

fn is_token(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn check_identifier(kind: &str, value: &PValue, message: &DynamicMessage) -> Result<(), String> {
    let text = || {
        value
            .as_str()
            .ok_or_else(|| format!("{kind} on a non-string"))
    };
    match kind {
        "IDENTIFIER_USCC" => Uscc::parse(text()?).map(drop).map_err(|e| e.to_string()),
        "IDENTIFIER_CAS" => CasNumber::parse(text()?)
            .map(drop)
            .map_err(|e| e.to_string()),
        "IDENTIFIER_UN_NUMBER" => UnNumber::parse(text()?)
            .map(drop)
            .map_err(|e| e.to_string()),
        "IDENTIFIER_IMO" => ImoNumber::parse(text()?)
            .map(drop)
            .map_err(|e| e.to_string()),
        "IDENTIFIER_VEHICLE_PLATE" => {
            let colour = message
                .get_field_by_name("plate_colour")
                .and_then(|v| v.as_u32())
                .ok_or("a plate without a sibling plate_colour")?;
            VehiclePlate::parse(text()?, colour)
                .map(drop)
                .map_err(|e| e.to_string())
        }
        "IDENTIFIER_PLATE_COLOUR" => {
            let code = value
                .as_u32()
                .ok_or("a plate colour that is not a uint32")?;
            PlateColour::from_code(code)
                .map(drop)
                .map_err(|e| e.to_string())
        }
        "IDENTIFIER_TOKEN" => is_token(text()?, 128)
            .then_some(())
            .ok_or_else(|| "not 1-128 characters of A-Z a-z 0-9 _ -".to_owned()),
        "IDENTIFIER_BATCH_CODE" => is_token(text()?, 64)
            .then_some(())
            .ok_or_else(|| "not 1-64 characters of A-Z a-z 0-9 _ -".to_owned()),
        other => Err(format!("no check for {other}")),
    }
}

fn as_number(value: &PValue) -> Option<f64> {
    match value {
        PValue::F64(v) => Some(*v),
        PValue::F32(v) => Some(f64::from(*v)),
        PValue::I32(v) => Some(f64::from(*v)),
        PValue::U32(v) => Some(f64::from(*v)),
        // Bounds in the contract are small; the precision lost above 2^53 does not matter for them.
        #[allow(clippy::cast_precision_loss)]
        PValue::I64(v) => Some(*v as f64),
        #[allow(clippy::cast_precision_loss)]
        PValue::U64(v) => Some(*v as f64),
        _ => None,
    }
}

/// Checks one message against the rules of its fields, and recurses into every sub-message.
fn check_rules(message: &DynamicMessage, at: &str, now: i64, errors: &mut Vec<String>) {
    for field in message.descriptor().fields() {
        let here = format!("{at}.{}", field.json_name());
        let set = message.has_field(&field);
        let value = message.get_field(&field);
        let items: Vec<&PValue> = match value.as_ref() {
            PValue::List(list) => list.iter().collect(),
            single if set => vec![single],
            _ => Vec::new(),
        };

        if let Some(rules) = rules_of(&field) {
            // `has_field` is presence for messages and oneof members, non-default for proto3 scalars,
            // non-empty for repeated fields: exactly what `required` asks.
            if rule_bool(&rules, "required") && !set {
                errors.push(format!("{here}: required but not set"));
            }
            if let Some(kind) = identifier_rule(&rules) {
                for item in &items {
                    let empty_optional = item.as_str().is_some_and(str::is_empty);
                    if !empty_optional && let Err(e) = check_identifier(&kind, item, message) {
                        errors.push(format!("{here}: {kind}: {e}"));
                    }
                }
            }
            let max_len = rules
                .get_field_by_name("max_len")
                .and_then(|v| v.as_u32())
                .unwrap_or(0);
            if max_len > 0 {
                let max_len = max_len as usize;
                if field.is_list() {
                    if items.len() > max_len {
                        errors.push(format!("{here}: {} items, at most {max_len}", items.len()));
                    }
                } else if let Some(s) = value.as_str() {
                    let chars = s.chars().count();
                    if chars > max_len {
                        errors.push(format!("{here}: {chars} characters, at most {max_len}"));
                    }
                }
            }
            let (min, max) = (rule_f64(&rules, "min"), rule_f64(&rules, "max"));
            for item in &items {
                if let Some(n) = as_number(item)
                    && (min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m))
                {
                    errors.push(format!("{here}: {n} outside [{min:?}, {max:?}]"));
                }
            }
            if rule_bool(&rules, "not_future") {
                for item in &items {
                    let seconds = item
                        .as_message()
                        .and_then(|m| m.get_field_by_name("seconds"))
                        .and_then(|s| s.as_i64());
                    match seconds {
                        Some(s) if s <= now + SKEW_SECONDS => {}
                        Some(_) => errors.push(format!("{here}: in the future")),
                        None => errors.push(format!("{here}: not_future on a non-timestamp")),
                    }
                }
            }
        }

        if matches!(field.kind(), Kind::Message(_)) {
            for (i, item) in items.iter().enumerate() {
                if let Some(sub) = item.as_message() {
                    let sub_at = if field.is_list() {
                        format!("{here}[{i}]")
                    } else {
                        here.clone()
                    };
                    check_rules(sub, &sub_at, now, errors);
                }
            }
        }
    }
}

#[test]
fn fixtures_satisfy_the_contract_rules() {
    require_rules_in_pool();
    let now = now_seconds();
    let mut errors = Vec::new();
    for f in fixtures() {
        let bytes = f.event().encode_to_vec();
        let dynamic = decode_event(&bytes).expect("a fixture's own encoding decodes");
        check_rules(&dynamic, &f.stem, now, &mut errors);
    }
    assert!(errors.is_empty(), "rule violations:\n{}", errors.join("\n"));
}

#[test]
fn the_rule_checker_catches_violations() {
    // Guard the guard: a fixture with a missing required field, a bad USCC, a bad plate and an over-long
    // batch code must fail the rules above.
    require_rules_in_pool();
    let mut json = fixture("waybill_issued").json();
    let waybill = &mut json["waybillIssued"];
    waybill.as_object_mut().expect("an object").remove("escort");
    waybill["carrier"]["uscc"] = Value::from("91320613MA1WQ5TB3A");
    waybill["tractor"]["plate"] = Value::from("XF12345");
    waybill["goods"][0]["batchCode"] = Value::from("B".repeat(65));
    let event = from_json::<Event>(&json.to_string()).expect("still well-formed JSON");
    let dynamic = decode_event(&event.encode_to_vec()).expect("decodes");
    let mut errors = Vec::new();
    check_rules(&dynamic, "waybill_issued", now_seconds(), &mut errors);
    let all = errors.join("\n");
    for expected in [
        "waybillIssued.escort: required",
        "waybillIssued.carrier.uscc: IDENTIFIER_USCC",
        "waybillIssued.tractor.plate: IDENTIFIER_VEHICLE_PLATE",
        "waybillIssued.goods[0].batchCode: IDENTIFIER_BATCH_CODE",
    ] {
        assert!(all.contains(expected), "missed {expected:?} in:\n{all}");
    }
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
