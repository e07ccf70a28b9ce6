//! The few fields of a stored `hazchem.v1.Record` (and of its event) that re-verifying an origin signature
//! needs, read with a small protobuf wire reader, so that this crate needs no protobuf code.
//!
//! ```text
//! message Record { bytes event = 1; OriginSignature signature = 2; Publisher publisher = 3;
//!                  google.protobuf.Timestamp accepted_at = 4; }
//! message OriginSignature { string key_id = 1; bytes signature = 2; }
//! message Publisher { oneof principal { Department department = 1; string service = 2; } }
//! message Timestamp { int64 seconds = 1; int32 nanos = 2; }
//! ```
//!
//! The reader is stricter than protobuf: a field the gateway writes once (every field above) that appears
//! twice, a wire type other than the field's, a group, or a truncated field makes the record unreadable,
//! never "the last one wins". Unknown fields are skipped. Of the event, only the payload's field numbers are
//! read ([`payload_types`]): the type of an event is its payload's, not what its `type` attribute says.

use chrono::{DateTime, Utc};
use hazchem_domain::Department;

include!(concat!(env!("OUT_DIR"), "/payload_types.rs"));

/// The type token of the payload field `number` of `hazchem.v1.Event`, if the contract has one.
pub fn payload_token(number: u32) -> Option<&'static str> {
    PAYLOAD_TYPES
        .iter()
        .find(|(n, _)| *n == number)
        .map(|(_, token)| *token)
}

/// Whether `token` is an event type of the contract.
pub fn is_event_type(token: &str) -> bool {
    PAYLOAD_TYPES.iter().any(|(_, t)| *t == token)
}

/// Why bytes are not readable as a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(String);

fn err(message: impl Into<String>) -> WireError {
    WireError(message.into())
}

/// Who the gateway authenticated as the publisher of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publisher<'a> {
    /// A department.
    Department(Department),
    /// One of the bus's services.
    Service(&'a str),
    /// A department number this build does not know.
    UnknownDepartment(i64),
    /// No publisher recorded.
    None,
}

/// An origin signature as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature<'a> {
    pub key_id: &'a str,
    pub signature: &'a [u8],
}

/// The fields of a stored record that origin signatures concern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredRecord<'a> {
    /// The publisher's exact event bytes.
    pub event: &'a [u8],
    /// The origin signature; an entirely empty one (no key id, no bytes) counts as none, as in admission.
    pub signature: Option<Signature<'a>>,
    pub publisher: Publisher<'a>,
    /// When the gateway accepted the event.
    pub accepted_at: Option<DateTime<Utc>>,
}

/// The department of wire number `number` (`hazchem.v1.Department`: the nine in [`Department::ALL`]
/// order, from 1).
pub fn department_of_number(number: i64) -> Option<Department> {
    usize::try_from(number)
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| Department::ALL.get(i).copied())
}

/// Reads a stored record.
pub fn read_record(bytes: &[u8]) -> Result<StoredRecord<'_>, WireError> {
    let mut event = None;
    let mut signature = None;
    let mut publisher = None;
    let mut accepted_at = None;
    for field in Fields::new(bytes) {
        let (number, value) = field?;
        match number {
            1 => once(&mut event, "event", value.bytes("event")?)?,
            2 => once(
                &mut signature,
                "signature",
                read_signature(value.bytes("signature")?)?,
            )?,
            3 => once(
                &mut publisher,
                "publisher",
                read_publisher(value.bytes("publisher")?)?,
            )?,
            4 => once(
                &mut accepted_at,
                "accepted_at",
                read_timestamp(value.bytes("accepted_at")?)?,
            )?,
            _ => {}
        }
    }
    Ok(StoredRecord {
        event: event.unwrap_or_default(),
        signature: signature.flatten(),
        publisher: publisher.unwrap_or(Publisher::None),
        accepted_at,
    })
}

/// The payload field numbers present at the top level of encoded event bytes, in order (one, for an
/// event the gateway admitted), with their type tokens where the contract has them.
pub fn payload_types(event: &[u8]) -> Result<Vec<(u32, Option<&'static str>)>, WireError> {
    let mut found = Vec::new();
    for field in Fields::new(event) {
        let (number, _) = field?;
        if let Some(token) = payload_token(number) {
            found.push((number, Some(token)));
        } else if (100..=499).contains(&number) {
            // The payload range: a type this build does not know.
            found.push((number, None));
        }
    }
    Ok(found)
}

fn once<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), WireError> {
    if slot.replace(value).is_some() {
        return Err(err(format!("field `{name}` appears twice")));
    }
    Ok(())
}

fn read_signature(bytes: &[u8]) -> Result<Option<Signature<'_>>, WireError> {
    let mut key_id = None;
    let mut signature = None;
    for field in Fields::new(bytes) {
        let (number, value) = field?;
        match number {
            1 => {
                let text = std::str::from_utf8(value.bytes("signature.key_id")?)
                    .map_err(|_| err("signature.key_id is not UTF-8"))?;
                once(&mut key_id, "signature.key_id", text)?;
            }
            2 => once(
                &mut signature,
                "signature.signature",
                value.bytes("signature.signature")?,
            )?,
            _ => {}
        }
    }
    let (key_id, signature) = (key_id.unwrap_or_default(), signature.unwrap_or_default());
    Ok((!(key_id.is_empty() && signature.is_empty())).then_some(Signature { key_id, signature }))
}

fn read_publisher(bytes: &[u8]) -> Result<Publisher<'_>, WireError> {
    let mut publisher = None;
    for field in Fields::new(bytes) {
        let (number, value) = field?;
        let read = match number {
            1 => {
                let n = value.varint("publisher.department")? as i64;
                match department_of_number(n) {
                    Some(d) => Publisher::Department(d),
                    None => Publisher::UnknownDepartment(n),
                }
            }
            2 => Publisher::Service(
                std::str::from_utf8(value.bytes("publisher.service")?)
                    .map_err(|_| err("publisher.service is not UTF-8"))?,
            ),
            _ => continue,
        };
        // A oneof: one principal, once.
        once(&mut publisher, "publisher.principal", read)?;
    }
    Ok(publisher.unwrap_or(Publisher::None))
}

fn read_timestamp(bytes: &[u8]) -> Result<DateTime<Utc>, WireError> {
    let (mut seconds, mut nanos) = (None, None);
    for field in Fields::new(bytes) {
        let (number, value) = field?;
        match number {
            1 => once(
                &mut seconds,
                "accepted_at.seconds",
                value.varint("accepted_at.seconds")? as i64,
            )?,
            2 => once(
                &mut nanos,
                "accepted_at.nanos",
                value.varint("accepted_at.nanos")? as i64,
            )?,
            _ => {}
        }
    }
    let nanos = u32::try_from(nanos.unwrap_or(0))
        .ok()
        .filter(|n| *n < 1_000_000_000)
        .ok_or_else(|| err("accepted_at.nanos is out of range"))?;
    DateTime::from_timestamp(seconds.unwrap_or(0), nanos)
        .ok_or_else(|| err("accepted_at is out of range"))
}

/// A field's value by wire type.
enum Value<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32,
}

impl<'a> Value<'a> {
    fn bytes(self, name: &str) -> Result<&'a [u8], WireError> {
        match self {
            Value::Bytes(b) => Ok(b),
            _ => Err(err(format!("field `{name}` is not length-delimited"))),
        }
    }

    fn varint(self, name: &str) -> Result<u64, WireError> {
        match self {
            Value::Varint(v) => Ok(v),
            _ => Err(err(format!("field `{name}` is not a varint"))),
        }
    }
}

/// The fields of one message, in order.
struct Fields<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Fields {
            rest: bytes,
            failed: false,
        }
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for i in 0..10 {
            let (&byte, rest) = self
                .rest
                .split_first()
                .ok_or_else(|| err("truncated varint"))?;
            self.rest = rest;
            if i == 9 && byte > 1 {
                return Err(err("varint longer than 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(err("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], WireError> {
        let n = usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.rest.len())
            .ok_or_else(|| err("truncated field"))?;
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    fn field(&mut self) -> Result<(u32, Value<'a>), WireError> {
        let tag = self.varint()?;
        let number = u32::try_from(tag >> 3)
            .ok()
            .filter(|n| (1..=536_870_911).contains(n))
            .ok_or_else(|| err(format!("field number {} is out of range", tag >> 3)))?;
        let value = match tag & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed64
            }
            2 => {
                let len = self.varint()?;
                Value::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Value::Fixed32
            }
            other => {
                return Err(err(format!(
                    "field {number}: wire type {other} (a group or invalid)"
                )));
            }
        };
        Ok((number, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let field = self.field();
        self.failed = field.is_err();
        Some(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_bytes_are_refused_never_read_partly() {
        // Truncated length, truncated varint, a group, field number 0, a field twice.
        for bytes in [
            &[0x0a, 0x05, 1, 2][..],
            &[0x08, 0x80][..],
            &[0x0b][..],
            &[0x00, 0x01][..],
            &[0x0a, 0x00, 0x0a, 0x00][..],
            &[0x1a, 0x04, 0x08, 0x01, 0x08, 0x02][..],
        ] {
            assert!(read_record(bytes).is_err(), "{bytes:?}");
        }
        // Unknown fields are skipped; an empty record has nothing.
        let record = read_record(&[0x28, 0x07, 0x0a, 0x01, 0x41]).unwrap();
        assert_eq!(record.event, b"A");
        assert_eq!(record.publisher, Publisher::None);
        assert_eq!(record.signature, None);
    }
}
