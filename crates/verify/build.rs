//! The payload types of `hazchem.v1.Event` (the `oneof payload` of `proto/hazchem/v1/event.proto`), as a
//! table of field number and type token, so that the verifier can tell an event's type from its payload
//! itself without the protobuf code (`tests/record_wire.rs` checks the table against the descriptor).

use std::fmt::Write as _;

fn main() {
    let proto =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto/hazchem/v1/event.proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    let text = std::fs::read_to_string(&proto).expect("proto/hazchem/v1/event.proto is readable");
    let mut inside = false;
    let mut table = String::from(
        "/// Every payload field of `hazchem.v1.Event`: (field number, type token), generated from event.proto.\n\
         pub(crate) const PAYLOAD_TYPES: &[(u32, &str)] = &[\n",
    );
    let mut count = 0;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("oneof payload") {
            inside = true;
            continue;
        }
        if !inside || line.is_empty() || line.starts_with("//") {
            continue;
        }
        if line.starts_with('}') {
            break;
        }
        // `<Type> <name> = <number>;`, perhaps with options before the `;`.
        let (declaration, _) = line
            .split_once(';')
            .expect("a payload field line ends in ';'");
        let (left, number) = declaration
            .split_once('=')
            .expect("a payload field has a number");
        let name = left
            .split_whitespace()
            .nth(1)
            .expect("a payload field has a name");
        let number: u32 = number
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a payload field number");
        writeln!(table, "    ({number}, {name:?}),").unwrap();
        count += 1;
    }
    assert!(
        count > 0,
        "no `oneof payload` fields found in {}",
        proto.display()
    );
    table.push_str("];\n");
    let out = std::path::Path::new(&std::env::var("OUT_DIR").unwrap()).join("payload_types.rs");
    std::fs::write(out, table).unwrap();
}
