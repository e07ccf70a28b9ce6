//! Every identifier test vector in `tests/vectors/identifiers.json` (a copy
//! of the project's domain reference vectors): each valid one parses, each
//! invalid one fails for the expected rule.

use hazchem_domain::{
    CasNumber, IdentifierError, IdentifierKind, ImoNumber, Rule, UnNumber, Uscc, VehiclePlate,
};
use serde_json::Value;

fn vectors() -> Value {
    let text = include_str!("vectors/identifiers.json");
    serde_json::from_str(text).expect("identifiers.json is valid JSON")
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|s| s.as_str().expect("a string"))
        .collect()
}

/// `(value, why)` of a kind's invalid vectors.
fn invalid(section: &Value) -> Vec<(&Value, &str)> {
    section["invalid"]
        .as_array()
        .expect("invalid is an array")
        .iter()
        .map(|e| (&e["value"], e["why"].as_str().expect("why is a string")))
        .collect()
}

/// Checks a failure against the expectation table; a vector missing from
/// the table fails the test so that new vectors get an explicit expectation.
fn check_failure(
    kind: IdentifierKind,
    value: &str,
    why: &str,
    result: Result<(), IdentifierError>,
    expectations: &[(&str, Rule)],
) -> IdentifierError {
    let err = match result {
        Ok(()) => panic!("{kind:?} {value:?} ({why}) was accepted"),
        Err(e) => e,
    };
    let Some(&(_, rule)) = expectations.iter().find(|(v, _)| *v == value) else {
        panic!("no expected rule for invalid {kind:?} vector {value:?} ({why}); got {err}");
    };
    assert_eq!(err.kind, kind, "{value:?}: {err}");
    assert_eq!(err.rule, rule, "{value:?} ({why}): {err}");
    assert_eq!(err.value, value);
    assert!(!err.expected.is_empty());
    err
}

#[test]
fn uscc_vectors() {
    let v = vectors();
    let section = &v["uscc"];
    let valid = strings(&section["valid"]);
    assert!(!valid.is_empty());
    for code in valid {
        let parsed = Uscc::parse(code).unwrap_or_else(|e| panic!("{code}: {e}"));
        assert_eq!(parsed.as_str(), code);
        assert_eq!(Uscc::with_check(&code[..17]).unwrap(), parsed);
    }
    let expectations = [
        ("91350100M000100Y4Z", Rule::CheckCharacter),
        ("91320600MA3N2K3P9E", Rule::CheckCharacter),
        ("91320600M1AN2K3P9E", Rule::CheckCharacter),
        ("91320600MA1NOK3P9E", Rule::Charset),
        ("91320600ma1n2k3p9e", Rule::Charset),
        ("91320600MA1N2K3P9", Rule::Length),
    ];
    let cases = invalid(section);
    assert_eq!(cases.len(), expectations.len());
    for (value, why) in cases {
        let value = value.as_str().unwrap();
        let result = Uscc::parse(value).map(drop);
        let err = check_failure(IdentifierKind::Uscc, value, why, result, &expectations);
        if value == "91350100M000100Y4Z" {
            assert_eq!(err.expected, "'3'");
            assert_eq!(err.found.as_deref(), Some("'Z'"));
            assert_eq!(
                err.to_string(),
                "USCC \"91350100M000100Y4Z\": wrong check character: expected '3', found 'Z'"
            );
        }
    }
}

#[test]
fn cas_vectors() {
    let v = vectors();
    let section = &v["cas"];
    for cas in strings(&section["valid"]) {
        assert_eq!(
            CasNumber::parse(cas)
                .unwrap_or_else(|e| panic!("{e}"))
                .as_str(),
            cas
        );
    }
    let expectations = [
        ("7664-41-8", Rule::CheckCharacter),
        ("50-00-1", Rule::CheckCharacter),
        ("7664418", Rule::Format),
        ("1-00-0", Rule::Format),
    ];
    let cases = invalid(section);
    assert_eq!(cases.len(), expectations.len());
    for (value, why) in cases {
        let value = value.as_str().unwrap();
        let result = CasNumber::parse(value).map(drop);
        let err = check_failure(IdentifierKind::Cas, value, why, result, &expectations);
        if value == "7664418" {
            assert_eq!(
                err.to_string(),
                "CAS number \"7664418\": format: expected digits-digits-digit like 7732-18-5"
            );
        }
    }
}

#[test]
fn un_vectors() {
    let v = vectors();
    let section = &v["un_number"];
    for un in strings(&section["valid"]) {
        assert_eq!(
            UnNumber::parse(un)
                .unwrap_or_else(|e| panic!("{e}"))
                .as_str(),
            un
        );
    }
    let expectations = [("UN105", Rule::Format), ("1005", Rule::Format)];
    let cases = invalid(section);
    assert_eq!(cases.len(), expectations.len());
    for (value, why) in cases {
        let value = value.as_str().unwrap();
        let result = UnNumber::parse(value).map(drop);
        check_failure(IdentifierKind::Un, value, why, result, &expectations);
    }
}

#[test]
fn imo_vectors() {
    let v = vectors();
    let section = &v["imo"];
    for imo in strings(&section["valid"]) {
        assert_eq!(
            ImoNumber::parse(imo)
                .unwrap_or_else(|e| panic!("{e}"))
                .as_str(),
            imo
        );
    }
    let expectations = [
        ("8814274", Rule::CheckCharacter),
        ("9074728", Rule::CheckCharacter),
    ];
    let cases = invalid(section);
    assert_eq!(cases.len(), expectations.len());
    for (value, why) in cases {
        let value = value.as_str().unwrap();
        let result = ImoNumber::parse(value).map(drop);
        let err = check_failure(IdentifierKind::Imo, value, why, result, &expectations);
        if value == "8814274" {
            assert_eq!(err.expected, "'5'");
        }
    }
}

fn plate_pair(v: &Value) -> (&str, u32) {
    let pair = v.as_array().expect("a [plate, colour] pair");
    assert_eq!(pair.len(), 2);
    let plate = pair[0].as_str().expect("plate is a string");
    let colour = u32::try_from(pair[1].as_u64().expect("colour is a number")).unwrap();
    (plate, colour)
}

#[test]
fn vehicle_plate_vectors() {
    let v = vectors();
    let section = &v["vehicle_plate"];
    let valid = section["valid"].as_array().unwrap();
    assert!(!valid.is_empty());
    for pair in valid {
        let (plate, colour) = plate_pair(pair);
        let parsed = VehiclePlate::parse(plate, colour).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.plate(), plate);
        assert_eq!(parsed.colour().code(), colour);
        assert_eq!(parsed.is_trailer(), plate.ends_with('挂'));
    }
    let expectations = [("XF12345", Rule::Charset), ("苏F1234", Rule::Length)];
    let cases = invalid(section);
    assert_eq!(cases.len(), expectations.len());
    for (value, why) in cases {
        let (plate, colour) = plate_pair(value);
        let result = VehiclePlate::parse(plate, colour).map(drop);
        check_failure(
            IdentifierKind::VehiclePlate,
            plate,
            why,
            result,
            &expectations,
        );
    }
}

#[test]
fn every_section_is_covered() {
    let v = vectors();
    let mut sections: Vec<&str> = v
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .filter(|k| !k.starts_with('_'))
        .collect();
    sections.sort_unstable();
    assert_eq!(
        sections,
        ["cas", "imo", "un_number", "uscc", "vehicle_plate"]
    );
}

#[test]
fn rule_and_kind_machine_names_are_stable() {
    let rules = [
        (Rule::Length, "length"),
        (Rule::Charset, "charset"),
        (Rule::Format, "format"),
        (Rule::CheckCharacter, "check_character"),
        (Rule::Unknown, "unknown"),
    ];
    for (rule, name) in rules {
        assert_eq!(rule.as_str(), name);
        assert_eq!(rule.to_string(), name);
    }
    let kinds = [
        (IdentifierKind::Uscc, "uscc"),
        (IdentifierKind::Cas, "cas"),
        (IdentifierKind::Un, "un"),
        (IdentifierKind::Imo, "imo"),
        (IdentifierKind::VehiclePlate, "vehicle_plate"),
        (IdentifierKind::PlateColour, "plate_colour"),
        (IdentifierKind::Department, "department"),
    ];
    for (kind, name) in kinds {
        assert_eq!(kind.as_str(), name);
    }
}
