//! The contract's field rules are each on a field they can apply to, so none is silently ignored.

use hazchem_admission::validate::all_field_rules;
use hazchem_proto::v1;
use prost_reflect::Kind;

fn field(full_name: &str) -> prost_reflect::FieldDescriptor {
    let (message, name) = full_name.rsplit_once('.').unwrap();
    hazchem_proto::message(message)
        .unwrap_or_else(|| panic!("{message}"))
        .get_field_by_name(name)
        .unwrap()
}

fn is_number(kind: &Kind) -> bool {
    !matches!(
        kind,
        Kind::String | Kind::Bytes | Kind::Bool | Kind::Enum(_) | Kind::Message(_)
    )
}

#[test]
fn every_rule_applies_to_its_field() {
    let mut problems = Vec::new();
    let mut names: Vec<&String> = all_field_rules().keys().collect();
    names.sort();
    for name in names {
        let rules = &all_field_rules()[name];
        let f = field(name);
        let kind = f.kind();
        let list = f.is_list();
        if let Some(identifier) = rules.identifier {
            let ok = match identifier {
                v1::Identifier::PlateColour => matches!(kind, Kind::Uint32),
                _ => matches!(kind, Kind::String),
            };
            if !ok {
                problems.push(format!("{name}: identifier {identifier:?} on {kind:?}"));
            }
            if identifier == v1::Identifier::VehiclePlate
                && f.parent_message()
                    .get_field_by_name("plate_colour")
                    .is_none()
            {
                problems.push(format!("{name}: a plate without a sibling plate_colour"));
            }
        }
        if (rules.min.is_some() || rules.max.is_some()) && (list || !is_number(&kind)) {
            problems.push(format!("{name}: min/max on {kind:?}"));
        }
        if rules.not_future
            && !matches!(&kind, Kind::Message(m) if m.full_name() == "google.protobuf.Timestamp")
        {
            problems.push(format!("{name}: not_future on {kind:?}"));
        }
        if rules.max_len.is_some() && !list && !matches!(kind, Kind::String | Kind::Bytes) {
            problems.push(format!("{name}: max_len on {kind:?}"));
        }
        if rules.required && matches!(kind, Kind::Bool) {
            problems.push(format!("{name}: required on a bool"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_rules_cover_the_event_envelope() {
    let rules = all_field_rules();
    for name in [
        "id",
        "source",
        "type",
        "time",
        "spec_version",
        "classification",
    ] {
        assert!(
            rules[&format!("hazchem.v1.Event.{name}")].required,
            "{name}"
        );
    }
}
