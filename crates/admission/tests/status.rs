//! Rejections as gRPC statuses with standard error details, and as `google.rpc.Status`.

mod common;

use common::*;
use hazchem_admission::{
    FieldViolation, Rejection, SignatureChange, id_reused, signature_differs, to_rpc_status,
};
use hazchem_domain::Department;
use hazchem_proto::v1;
use prost::{Message as _, Name as _};
use tonic::Code;
use tonic_types::StatusExt;

fn rejection_of(change: impl FnOnce(&mut v1::Event)) -> Rejection {
    let mut event = make_event("waybill_issued", Some(Department::Transport));
    change(&mut event);
    admission()
        .admit(&dept("transport"), &unsigned(&event), now())
        .unwrap_err()
}

#[test]
fn invalid_is_invalid_argument_with_bad_request_and_error_info() {
    let rejection = rejection_of(|e| {
        e.id = "ev 1".into();
        // In the publisher's namespace, but too long.
        e.source = format!("/departments/transport/{}", "s".repeat(300 - 23));
    });
    let status = tonic::Status::from(rejection);
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("id (token.charset)"),
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("source (max_len)"),
        "{}",
        status.message()
    );

    let details = status.get_error_details();
    let bad_request = details.bad_request().expect("BadRequest");
    let got: Vec<(&str, &str)> = bad_request
        .field_violations
        .iter()
        .map(|v| (v.field.as_str(), v.reason.as_str()))
        .collect();
    assert_eq!(got, [("id", "token.charset"), ("source", "max_len")]);
    assert_eq!(
        bad_request.field_violations[1].description,
        "at most 256 characters, found 300"
    );
    let info = details.error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "FIELD_VIOLATIONS");
    assert_eq!(info.domain, "hazchem.v1");
    assert_eq!(info.metadata["violations"], "2");
    assert_eq!(info.metadata["rules"], "max_len,token.charset");
}

#[test]
fn permission_denied_carries_the_reason_and_the_facts() {
    let event = make_event("waybill_issued", Some(Department::Psb));
    let rejection = admission()
        .admit(&dept("psb"), &unsigned(&event), now())
        .unwrap_err();
    assert_eq!(rejection.reason(), "PUBLISH_NOT_PERMITTED");
    let status = tonic::Status::from(rejection);
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status
            .message()
            .contains("department `psb` may not publish waybill_issued events")
    );
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "PUBLISH_NOT_PERMITTED");
    assert_eq!(info.domain, "hazchem.v1");
    assert_eq!(info.metadata["department"], "psb");
    assert_eq!(info.metadata["event_type"], "waybill_issued");

    let mismatch = make_event("waybill_issued", Some(Department::Emergency));
    let status = tonic::Status::from(
        admission()
            .admit(&dept("transport"), &unsigned(&mismatch), now())
            .unwrap_err(),
    );
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "DEPARTMENT_MISMATCH"
    );

    let mut licence = make_event("licence_issued", Some(Department::Eeb));
    set_licence(
        &mut licence,
        v1::LicenceKind::SafetyProduction,
        Department::Emergency,
    );
    let status = tonic::Status::from(
        admission()
            .admit(&dept("eeb"), &unsigned(&licence), now())
            .unwrap_err(),
    );
    let info = status.get_details_error_info().unwrap();
    assert_eq!(info.reason, "LICENCE_ISSUER_NOT_PERMITTED");
    assert_eq!(info.metadata["licence_kind"], "safety_production");
    assert_eq!(info.metadata["issuers"], "emergency");
}

#[test]
fn too_large_names_size_and_limit() {
    let status = tonic::Status::from(Rejection::TooLarge {
        size: 300_000,
        limit: 262_144,
    });
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("300000 bytes") && status.message().contains("262144"));
    let details = status.get_error_details();
    let v = &details.bad_request().unwrap().field_violations[0];
    assert_eq!((v.field.as_str(), v.reason.as_str()), ("event", "max_size"));
    assert_eq!(
        v.description,
        "the encoded event is 300000 bytes; the limit is 262144 bytes"
    );
    let info = details.error_info().unwrap();
    assert_eq!(info.reason, "EVENT_TOO_LARGE");
    assert_eq!(info.metadata["limit"], "262144");
}

#[test]
fn a_reused_id_already_exists() {
    let status = id_reused("ev-1", 42);
    assert_eq!(status.code(), Code::AlreadyExists);
    let details = status.get_error_details();
    assert_eq!(details.error_info().unwrap().reason, "EVENT_ID_REUSED");
    assert_eq!(details.error_info().unwrap().metadata["sequence"], "42");
    assert_eq!(
        details.bad_request().unwrap().field_violations[0].field,
        "id"
    );
}

#[test]
fn many_violations_are_capped_in_the_details_but_counted() {
    let violations: Vec<FieldViolation> = (0..200)
        .map(|i| FieldViolation::new(format!("f{i}"), "required", "x".repeat(1000)))
        .collect();
    let status = tonic::Status::from(Rejection::Invalid(violations));
    assert!(status.message().contains("and 195 more"));
    let details = status.get_error_details();
    let bad_request = details.bad_request().unwrap();
    assert_eq!(bad_request.field_violations.len(), 50);
    assert!(bad_request.field_violations[0].description.chars().count() <= 301);
    assert_eq!(details.error_info().unwrap().metadata["violations"], "200");
    assert_eq!(details.error_info().unwrap().metadata["attached"], "50");
}

#[test]
fn statuses_become_google_rpc_statuses_for_batch_results() {
    let status = tonic::Status::from(rejection_of(|e| e.id.clear()));
    let rpc = to_rpc_status(&status);
    assert_eq!(rpc.code, Code::InvalidArgument as i32);
    assert_eq!(rpc.message, status.message());
    let types: Vec<&str> = rpc.details.iter().map(|a| a.type_url.as_str()).collect();
    assert!(
        types.contains(&"type.googleapis.com/google.rpc.BadRequest"),
        "{types:?}"
    );
    assert!(
        types.contains(&"type.googleapis.com/google.rpc.ErrorInfo"),
        "{types:?}"
    );
    // The same bytes a client would decode.
    let bad_request = rpc
        .details
        .iter()
        .find(|a| a.type_url.ends_with("BadRequest"))
        .unwrap();
    let decoded = tonic_types::pb::BadRequest::decode(bad_request.value.as_slice()).unwrap();
    assert_eq!(decoded.field_violations[0].field, "id");
    assert_eq!(decoded.field_violations[0].reason, "required");

    // A status without details keeps its code and message.
    let plain = to_rpc_status(&tonic::Status::unavailable("bus down"));
    assert_eq!(plain.code, Code::Unavailable as i32);
    assert_eq!(plain.message, "bus down");
    assert!(plain.details.is_empty());

    // Straight from a rejection.
    let rpc = hazchem_proto::google::rpc::Status::from(Rejection::TooLarge { size: 2, limit: 1 });
    assert_eq!(rpc.code, Code::InvalidArgument as i32);
    assert_eq!(
        hazchem_proto::google::rpc::Status::full_name(),
        "google.rpc.Status"
    );
}

#[test]
fn a_retry_with_another_signature_already_exists_naming_the_signature() {
    for (change, word, needle) in [
        (SignatureChange::Added, "added", "adds an origin signature"),
        (SignatureChange::Removed, "removed", "carries none"),
        (
            SignatureChange::Changed,
            "changed",
            "another origin signature",
        ),
    ] {
        let status = signature_differs("ev-1", 42, change);
        assert_eq!(status.code(), Code::AlreadyExists);
        assert!(
            status.message().contains("ev-1") && status.message().contains("sequence 42"),
            "{}",
            status.message()
        );
        assert!(status.message().contains(needle), "{}", status.message());
        let details = status.get_error_details();
        let info = details.error_info().unwrap();
        assert_eq!(info.reason, "EVENT_SIGNATURE_DIFFERS");
        assert_eq!(info.domain, "hazchem.v1");
        assert_eq!(info.metadata["event_id"], "ev-1");
        assert_eq!(info.metadata["sequence"], "42");
        assert_eq!(info.metadata["change"], word);
        let v = &details.bad_request().unwrap().field_violations[0];
        assert_eq!(
            (v.field.as_str(), v.reason.as_str()),
            ("signature", "signature.differs")
        );
    }
}

#[test]
fn signature_changes_are_told_apart() {
    let sig = |key_id: &str, byte: u8| v1::OriginSignature {
        key_id: key_id.into(),
        signature: vec![byte; 64],
    };
    let empty = v1::OriginSignature::default();
    let a = sig("psb", 1);
    assert_eq!(SignatureChange::between(None, None), None);
    assert_eq!(SignatureChange::between(Some(&a), Some(&a.clone())), None);
    // An empty signature counts as absent, as in admission.
    assert_eq!(SignatureChange::between(Some(&empty), None), None);
    assert_eq!(SignatureChange::between(None, Some(&empty)), None);
    assert_eq!(
        SignatureChange::between(None, Some(&a)),
        Some(SignatureChange::Added)
    );
    assert_eq!(
        SignatureChange::between(Some(&empty), Some(&a)),
        Some(SignatureChange::Added)
    );
    assert_eq!(
        SignatureChange::between(Some(&a), None),
        Some(SignatureChange::Removed)
    );
    assert_eq!(
        SignatureChange::between(Some(&a), Some(&sig("psb", 2))),
        Some(SignatureChange::Changed)
    );
    assert_eq!(
        SignatureChange::between(Some(&a), Some(&sig("fire", 1))),
        Some(SignatureChange::Changed)
    );
}
