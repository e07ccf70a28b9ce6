//! The one place where the credit service's refusals and errors become `tonic::Status` values, with the
//! standard error details (`google.rpc.BadRequest`, `PreconditionFailure`, `ResourceInfo`, `ErrorInfo`,
//! `RetryInfo`), `ErrorInfo.domain` = `hazchem.v1` as at the gateway.
//!
//! | refusal | code | details |
//! | --- | --- | --- |
//! | fields that break a credit rule | `INVALID_ARGUMENT` | `BadRequest` (field, rule as reason, description); `ErrorInfo` `LEGAL_BASIS_REQUIRED`, `UNKNOWN_MEASURE`, `PENALTY_REQUIRED`, `CLASSIFICATION_RESTRICTED`, ... (the first violation's) |
//! | a listing or penalty that is not on the record | `NOT_FOUND` | `ResourceInfo` (`credit_listing` / `penalty_decision`, its name); `ErrorInfo` `LISTING_NOT_FOUND`, `PENALTY_NOT_FOUND` |
//! | a department without the authority | `PERMISSION_DENIED` | `ErrorInfo` `NOT_SANCTIONING_DEPARTMENT`, `NOT_LISTING_DEPARTMENT` |
//! | a state that does not allow the decision | `FAILED_PRECONDITION` | `PreconditionFailure` (type, subject `credit_listing/<id>`, description); `ErrorInfo` `REPAIR_TOO_EARLY`, `LISTING_NOT_ACTIVE`, `LISTING_NOT_REPAIRED`, `DECISION_OUT_OF_ORDER`, `LISTING_TERM_ENDED`, `PENALTY_ENTERPRISE_MISMATCH`, `LISTED_BEFORE_PENALTY` |
//! | a listing id used before | `ALREADY_EXISTS` | `BadRequest` (`credit_listing_decided.listing_id`, `listing_id.reused`); `ResourceInfo` (`credit_listing`); `ErrorInfo` `LISTING_EXISTS` |
//! | the department's event id of another decision on the record | `ALREADY_EXISTS` | `BadRequest` (`id`, `id.reused`); `ResourceInfo` (`event`, the id); `ErrorInfo` `EVENT_ID_REUSED` |
//! | the registry has not caught up with the stream in time | `UNAVAILABLE` | `RetryInfo`; `ErrorInfo` `REGISTRY_CATCHING_UP` |

use std::collections::HashMap;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, PreconditionViolation, StatusExt};

use crate::registry::{Refusal, Violation};

/// `ErrorInfo.domain`.
pub const ERROR_DOMAIN: &str = "hazchem.v1";

/// The status of a refused credit decision.
#[must_use]
pub fn refusal_status(refusal: &Refusal) -> Status {
    let message = refusal.to_string();
    let reason = refusal.reason();
    let mut details = ErrorDetails::new();
    let mut metadata = HashMap::new();
    let code = match refusal {
        Refusal::Invalid(violations) => {
            details.set_bad_request(violations.iter().map(field_violation).collect::<Vec<_>>());
            let reasons: Vec<&str> = violations.iter().map(|v| v.reason).collect();
            metadata.insert("reasons".to_owned(), reasons.join(","));
            metadata.insert("violations".to_owned(), violations.len().to_string());
            Code::InvalidArgument
        }
        Refusal::NotFound {
            resource_type,
            resource_name,
            message,
            ..
        } => {
            details.set_resource_info(*resource_type, resource_name.clone(), "", message.clone());
            metadata.insert(
                "resource".to_owned(),
                format!("{resource_type}/{resource_name}"),
            );
            Code::NotFound
        }
        Refusal::Denied { .. } => Code::PermissionDenied,
        Refusal::Precondition {
            kind,
            subject,
            message,
            ..
        } => {
            details.set_precondition_failure(vec![PreconditionViolation::new(
                *kind,
                subject.clone(),
                message.clone(),
            )]);
            metadata.insert("subject".to_owned(), subject.clone());
            Code::FailedPrecondition
        }
        Refusal::Exists {
            resource_type,
            resource_name,
            field,
            rule,
            message,
            ..
        } => {
            details.set_bad_request(vec![FieldViolation {
                field: (*field).to_owned(),
                description: message.chars().take(300).collect(),
                reason: (*rule).to_owned(),
                localized_message: None,
            }]);
            details.set_resource_info(*resource_type, resource_name.clone(), "", message.clone());
            Code::AlreadyExists
        }
    };
    details.set_error_info(reason, ERROR_DOMAIN, metadata);
    Status::with_error_details(code, message, details)
}

fn field_violation(v: &Violation) -> FieldViolation {
    FieldViolation {
        field: v.field.clone(),
        description: v.description.chars().take(300).collect(),
        reason: v.rule.clone(),
        localized_message: None,
    }
}

/// A request that breaks the contract's field rules: `INVALID_ARGUMENT` with one `BadRequest` violation,
/// as the gateway answers.
#[must_use]
pub fn invalid(field: &str, rule: &str, description: impl Into<String>) -> Status {
    invalid_all(vec![Violation {
        field: field.to_owned(),
        rule: rule.to_owned(),
        reason: "FIELD_VIOLATIONS",
        description: description.into(),
    }])
}

/// Several violations at once.
#[must_use]
pub fn invalid_all(violations: Vec<Violation>) -> Status {
    let mut violations = violations;
    for v in &mut violations {
        v.reason = "FIELD_VIOLATIONS";
    }
    refusal_status(&Refusal::Invalid(violations))
}

/// The registry did not reach the stream position a review needs in time.
#[must_use]
pub fn catching_up(position: u64, up_to: u64, waited: Duration) -> Status {
    let mut details = ErrorDetails::new();
    details.set_retry_info(Some(Duration::from_secs(1)));
    details.set_error_info(
        "REGISTRY_CATCHING_UP",
        ERROR_DOMAIN,
        HashMap::from([
            ("position".to_owned(), position.to_string()),
            ("needed".to_owned(), up_to.to_string()),
        ]),
    );
    Status::with_error_details(
        Code::Unavailable,
        format!(
            "the credit registry has applied the stream up to sequence {position}, not yet {up_to}, after \
             {} ms; retry the same event",
            waited.as_millis()
        ),
        details,
    )
}

/// A caller that may not make this call.
#[must_use]
pub fn denied(reason: &str, message: impl Into<String>) -> Status {
    let mut details = ErrorDetails::new();
    details.set_error_info(reason, ERROR_DOMAIN, HashMap::new());
    Status::with_error_details(Code::PermissionDenied, message, details)
}
