//! The `Department` enum against the reference table
//! `tests/vectors/departments.csv` (a copy of the project's domain data).

use hazchem_domain::{Department, IdentifierKind, Rule};

#[test]
fn departments_match_the_reference_table() {
    let mut reader = csv::Reader::from_reader(include_str!("vectors/departments.csv").as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 9);
    assert_eq!(rows.len(), Department::ALL.len());
    for (row, dept) in rows.iter().zip(Department::ALL) {
        assert_eq!(&row[0], dept.code());
        assert_eq!(&row[1], dept.name_zh());
        assert_eq!(&row[2], dept.name_en());
        assert_eq!(row[0].parse::<Department>().unwrap(), dept);
    }
}

#[test]
fn all_nine_round_trip_through_code_and_serde() {
    for dept in Department::ALL {
        let code = dept.code();
        assert_eq!(Department::parse(code).unwrap(), dept);
        assert_eq!(code.parse::<Department>().unwrap(), dept);
        let json = serde_json::to_value(dept).unwrap();
        assert_eq!(json, serde_json::Value::String(code.to_owned()));
        assert_eq!(serde_json::from_value::<Department>(json).unwrap(), dept);
    }
}

#[test]
fn unknown_department_is_an_identifier_error() {
    let err = "fire-rescue".parse::<Department>().unwrap_err();
    assert_eq!(err.kind, IdentifierKind::Department);
    assert_eq!(err.rule, Rule::Unknown);
    for dept in Department::ALL {
        assert!(err.expected.contains(dept.code()), "{err}");
    }
}
