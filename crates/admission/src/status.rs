//! Rejections as gRPC statuses with the standard error details, in one place.
//!
//! | rejection | code | details |
//! | --- | --- | --- |
//! | [`Rejection::Invalid`] | `INVALID_ARGUMENT` | `BadRequest` (field, description, reason = rule) and `ErrorInfo` `FIELD_VIOLATIONS` |
//! | [`Rejection::TooLarge`] | `INVALID_ARGUMENT` | `BadRequest` on `event`, reason `max_size`, and `ErrorInfo` `EVENT_TOO_LARGE` |
//! | [`Rejection::PermissionDenied`] | `PERMISSION_DENIED` | `ErrorInfo` `PUBLISH_NOT_PERMITTED`, `LICENCE_ISSUER_NOT_PERMITTED` or `DEPARTMENT_MISMATCH` |
//! | [`Rejection::IdReused`] | `ALREADY_EXISTS` | `BadRequest` on `id`, reason `id.reused`, and `ErrorInfo` `EVENT_ID_REUSED` |
//! | [`Rejection::SignatureDiffers`] | `ALREADY_EXISTS` | `BadRequest` on `signature`, reason `signature.differs`, and `ErrorInfo` `EVENT_SIGNATURE_DIFFERS` (metadata `event_id`, `sequence`, `change`: `added`, `removed` or `changed`) |
//!
//! Every `ErrorInfo` has the domain [`ERROR_DOMAIN`]. Status details travel in a response trailer, so at
//! most [`MAX_STATUS_VIOLATIONS`] violations are attached, each description cut to
//! [`MAX_DESCRIPTION_CHARS`] characters; `ErrorInfo.metadata` says how many there were in all.

use std::collections::{BTreeSet, HashMap};

use hazchem_proto::google::rpc;
use prost::Message as _;
use tonic::Code;
use tonic_types::{ErrorDetails, FieldViolation as PbFieldViolation, StatusExt};

use crate::admit::{Rejection, SignatureChange};

/// `ErrorInfo.domain` of every rejection.
pub const ERROR_DOMAIN: &str = "hazchem.v1";
/// Most field violations attached to one status.
pub const MAX_STATUS_VIOLATIONS: usize = 50;
/// Longest description attached to one violation, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 300;

impl From<Rejection> for tonic::Status {
    fn from(rejection: Rejection) -> Self {
        let message = rejection.to_string();
        let reason = rejection.reason();
        let mut details = ErrorDetails::new();
        let code = match &rejection {
            Rejection::Invalid(violations) => {
                let attached: Vec<PbFieldViolation> = violations
                    .iter()
                    .take(MAX_STATUS_VIOLATIONS)
                    .map(|v| field_violation(&v.field, &v.rule, &v.description))
                    .collect();
                let rules: BTreeSet<&str> = violations.iter().map(|v| v.rule.as_str()).collect();
                let mut metadata = HashMap::new();
                metadata.insert("violations".to_owned(), violations.len().to_string());
                metadata.insert("attached".to_owned(), attached.len().to_string());
                metadata.insert(
                    "rules".to_owned(),
                    rules.into_iter().collect::<Vec<_>>().join(","),
                );
                details.set_bad_request(attached);
                details.set_error_info(reason, ERROR_DOMAIN, metadata);
                Code::InvalidArgument
            }
            Rejection::TooLarge { size, limit } => {
                details.set_bad_request(vec![field_violation(
                    "event",
                    "max_size",
                    &format!("the encoded event is {size} bytes; the limit is {limit} bytes"),
                )]);
                details.set_error_info(
                    reason,
                    ERROR_DOMAIN,
                    HashMap::from([
                        ("size".to_owned(), size.to_string()),
                        ("limit".to_owned(), limit.to_string()),
                    ]),
                );
                Code::InvalidArgument
            }
            Rejection::PermissionDenied(denial) => {
                let metadata: HashMap<String, String> = denial
                    .metadata
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                details.set_error_info(reason, ERROR_DOMAIN, metadata);
                Code::PermissionDenied
            }
            Rejection::SignatureDiffers {
                id,
                sequence,
                change,
            } => {
                let description = match change {
                    SignatureChange::Added => "the stored record is unsigned; this retry is signed",
                    SignatureChange::Removed => "the stored record is signed; this retry is not",
                    SignatureChange::Changed => {
                        "the stored record carries another origin signature than this retry"
                    }
                };
                details.set_bad_request(vec![field_violation(
                    "signature",
                    "signature.differs",
                    &format!("event `{id}` at sequence {sequence}: {description}"),
                )]);
                details.set_error_info(
                    reason,
                    ERROR_DOMAIN,
                    HashMap::from([
                        ("event_id".to_owned(), id.clone()),
                        ("sequence".to_owned(), sequence.to_string()),
                        ("change".to_owned(), change.as_str().to_owned()),
                    ]),
                );
                Code::AlreadyExists
            }
            Rejection::IdReused { id, sequence } => {
                details.set_bad_request(vec![field_violation(
                    "id",
                    "id.reused",
                    &format!(
                        "event id `{id}` is already stored at sequence {sequence} with different content"
                    ),
                )]);
                details.set_error_info(
                    reason,
                    ERROR_DOMAIN,
                    HashMap::from([
                        ("event_id".to_owned(), id.clone()),
                        ("sequence".to_owned(), sequence.to_string()),
                    ]),
                );
                Code::AlreadyExists
            }
        };
        tonic::Status::with_error_details(code, message, details)
    }
}

fn field_violation(field: &str, rule: &str, description: &str) -> PbFieldViolation {
    let mut description = description.to_owned();
    if let Some((cut, _)) = description.char_indices().nth(MAX_DESCRIPTION_CHARS) {
        description.truncate(cut);
        description.push('…');
    }
    PbFieldViolation {
        field: field.to_owned(),
        description,
        reason: rule.to_owned(),
        localized_message: None,
    }
}

/// The status for an event id already stored with different content (`ALREADY_EXISTS`).
#[must_use]
pub fn id_reused(id: &str, sequence: u64) -> tonic::Status {
    Rejection::IdReused {
        id: id.to_owned(),
        sequence,
    }
    .into()
}

/// The status for a retry of stored event bytes whose origin signature differs from the stored one
/// (`ALREADY_EXISTS`, `EVENT_SIGNATURE_DIFFERS`).
#[must_use]
pub fn signature_differs(id: &str, sequence: u64, change: SignatureChange) -> tonic::Status {
    Rejection::SignatureDiffers {
        id: id.to_owned(),
        sequence,
        change,
    }
    .into()
}

/// A `tonic::Status` as a `google.rpc.Status` (for per-event results of batch and stream publishing): the
/// encoded status tonic-types put in the details, or, for a status built without details, its code and
/// message.
#[must_use]
pub fn to_rpc_status(status: &tonic::Status) -> rpc::Status {
    let code = status.code() as i32;
    if !status.details().is_empty()
        && let Ok(decoded) = rpc::Status::decode(status.details())
        && decoded.code == code
    {
        return decoded;
    }
    rpc::Status {
        code,
        message: status.message().to_owned(),
        details: Vec::new(),
    }
}

impl From<Rejection> for rpc::Status {
    fn from(rejection: Rejection) -> Self {
        to_rpc_status(&tonic::Status::from(rejection))
    }
}
