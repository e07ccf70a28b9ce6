//! The shared JSON fixtures (`tests/fixtures/events/<token>.json`, one per event type) are admitted for
//! their own publisher under the default policy.

#![allow(clippy::disallowed_methods)] // tests: fixtures are admitted at wall time

mod common;

use chrono::Utc;
use common::{admission, fixtures, publisher, signing_key};
use hazchem_admission::Policy;
use hazchem_proto::v1;
use prost::Message as _;

#[test]
fn every_fixture_is_admitted_for_its_own_publisher() {
    let files = fixtures();
    if files.is_empty() {
        eprintln!("no fixtures in tests/fixtures/events yet; nothing to check");
        return;
    }
    let admission = admission();
    let policy = Policy::default_policy();
    let mut failures = Vec::new();
    for path in &files {
        let token = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let json = std::fs::read_to_string(path).unwrap();
        let event: v1::Event = match hazchem_proto::from_json(&json) {
            Ok(e) => e,
            Err(e) => {
                failures.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let principal = publisher(&policy, &event, &token);
        let bytes = event.encode_to_vec();
        let signature = principal.department().map(|d| v1::OriginSignature {
            key_id: d.code().to_owned(),
            signature: signing_key(d).sign(&bytes).to_vec(),
        });
        let signed = v1::SignedEvent {
            event: bytes,
            signature,
        };
        match admission.admit(&principal, &signed, Utc::now()) {
            Ok(admitted) => assert_eq!(admitted.token, token, "{}", path.display()),
            Err(rejection) => failures.push(format!(
                "{} ({}): {rejection}",
                path.display(),
                principal.uri()
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "fixtures not admitted:\n{}",
        failures.join("\n")
    );
}

#[test]
fn there_is_a_fixture_for_every_event_type() {
    let files = fixtures();
    if files.is_empty() {
        return;
    }
    let have: Vec<String> = files
        .iter()
        .map(|p| p.file_stem().unwrap().to_str().unwrap().to_owned())
        .collect();
    let missing: Vec<String> = common::tokens()
        .into_iter()
        .filter(|t| !have.contains(t))
        .collect();
    assert!(missing.is_empty(), "no fixture for: {}", missing.join(", "));
}
