//! The one conversion between protobuf timestamps and chrono instants.

use chrono::{DateTime, Utc};
use prost_types::Timestamp;

/// A protobuf timestamp from a chrono instant.
pub fn timestamp(t: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

/// The chrono instant of a protobuf timestamp; `None` if it is out of range (nanos negative or past a
/// second, or seconds beyond what chrono represents).
pub fn datetime(t: &Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_and_bad_ones_are_none() {
        let t = DateTime::from_timestamp(1_790_000_000, 123_456_789).unwrap();
        assert_eq!(datetime(&timestamp(t)), Some(t));
        for bad in [(0, -1), (0, 1_000_000_000), (i64::MAX, 0)] {
            let ts = Timestamp {
                seconds: bad.0,
                nanos: bad.1,
            };
            assert_eq!(datetime(&ts), None, "{bad:?}");
        }
    }
}
