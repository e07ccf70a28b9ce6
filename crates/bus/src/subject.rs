//! The subject scheme, its validation, and NATS-style subject filters.

use crate::error::{Error, Result};

/// Every event subject starts with these two tokens.
pub const SUBJECT_PREFIX: &str = "hazchem.ev";

/// The subject pattern the stream captures.
pub const STREAM_SUBJECTS: &str = "hazchem.ev.>";

/// The nine department codes that publish events. Services publish under their own name.
pub const DEPARTMENTS: [&str; 9] = [
    "miit",
    "psb",
    "eeb",
    "transport",
    "emergency",
    "samr",
    "approval",
    "msa",
    "fire",
];

const MAX_TOKEN: usize = 64;
const MAX_ID: usize = 128;

/// Builds `hazchem.ev.<publisher>.<type>.<event-id>`.
///
/// This only formats; it does not validate. [`EventSubject::parse`] (and every publish) checks
/// the result, or call [`validate_publisher`], [`validate_type_token`] and [`validate_event_id`]
/// first.
pub fn event_subject(publisher: &str, type_token: &str, id: &str) -> String {
    format!("{SUBJECT_PREFIX}.{publisher}.{type_token}.{id}")
}

/// The subject pattern matching every event this publisher published with this id, whatever its
/// type: `hazchem.ev.<publisher>.*.<id>`. JetStream's forever-deduplication checks against it.
///
/// Event ids are scoped by publisher: one publisher's id never collides with another's, so no
/// principal can occupy (or learn about, by a duplicate answer) an id of another's.
pub fn id_pattern(publisher: &str, id: &str) -> String {
    format!("{SUBJECT_PREFIX}.{publisher}.*.{id}")
}

/// The key under which the bus deduplicates an event: `<publisher>.<id>` (a publisher token has no
/// dot, so the key is unambiguous). JetStream's `Nats-Msg-Id` and the embedded bus's id index use it.
pub fn dedup_key(publisher: &str, id: &str) -> String {
    format!("{publisher}.{id}")
}

/// Checks a publisher token: a department code or a service name, `[a-z0-9][a-z0-9_-]{0,63}`.
pub fn validate_publisher(publisher: &str) -> Result<()> {
    let ok = !publisher.is_empty()
        && publisher.len() <= MAX_TOKEN
        && (publisher.as_bytes()[0].is_ascii_lowercase()
            || publisher.as_bytes()[0].is_ascii_digit())
        && publisher
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidSubject {
            subject: publisher.to_owned(),
            reason: "publisher must match [a-z0-9][a-z0-9_-]{0,63}".into(),
        })
    }
}

/// Checks an event type token: snake_case, `[a-z][a-z0-9]*(_[a-z0-9]+)*`, at most 64 bytes.
pub fn validate_type_token(type_token: &str) -> Result<()> {
    let ok = !type_token.is_empty()
        && type_token.len() <= MAX_TOKEN
        && type_token.as_bytes()[0].is_ascii_lowercase()
        && type_token.split('_').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidSubject {
            subject: type_token.to_owned(),
            reason: "event type must be snake_case: [a-z][a-z0-9]*(_[a-z0-9]+)*, at most 64 bytes"
                .into(),
        })
    }
}

/// Checks an event id: `[A-Za-z0-9_-]{1,128}`.
pub fn validate_event_id(id: &str) -> Result<()> {
    if is_id_like(id) {
        Ok(())
    } else {
        Err(Error::InvalidEventId { id: id.to_owned() })
    }
}

/// Checks a cursor name: `[A-Za-z0-9_-]{1,128}` (valid as a sled key and a JetStream KV key).
pub fn validate_cursor_name(name: &str) -> Result<()> {
    if is_id_like(name) {
        Ok(())
    } else {
        Err(Error::InvalidCursorName {
            name: name.to_owned(),
        })
    }
}

fn is_id_like(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A parsed, valid event subject, borrowing from the subject string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventSubject<'a> {
    /// Department code or service name.
    pub publisher: &'a str,
    /// snake_case event type token.
    pub type_token: &'a str,
    /// The event id.
    pub id: &'a str,
}

impl<'a> EventSubject<'a> {
    /// Parses and validates `hazchem.ev.<publisher>.<type>.<event-id>`.
    pub fn parse(subject: &'a str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidSubject {
            subject: subject.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = subject
            .strip_prefix(SUBJECT_PREFIX)
            .and_then(|r| r.strip_prefix('.'))
            .ok_or_else(|| bad("must start with hazchem.ev."))?;
        let mut tokens = rest.split('.');
        let (Some(publisher), Some(type_token), Some(id), None) =
            (tokens.next(), tokens.next(), tokens.next(), tokens.next())
        else {
            return Err(bad(
                "must have exactly five tokens: hazchem.ev.<publisher>.<type>.<event-id>",
            ));
        };
        validate_publisher(publisher).map_err(|e| bad(&e.to_string()))?;
        validate_type_token(type_token).map_err(|e| bad(&e.to_string()))?;
        validate_event_id(id).map_err(|e| bad(&e.to_string()))?;
        Ok(EventSubject {
            publisher,
            type_token,
            id,
        })
    }
}

/// Checks that `subject` is a valid event subject whose last token is `id`.
pub(crate) fn validate_outgoing(subject: &str, id: &str) -> Result<()> {
    validate_event_id(id)?;
    let parsed = EventSubject::parse(subject)?;
    if parsed.id != id {
        return Err(Error::IdMismatch {
            subject: subject.to_owned(),
            id: id.to_owned(),
        });
    }
    Ok(())
}

/// Checks a NATS subject pattern: dot-separated non-empty tokens without whitespace, where a
/// token containing `*` or `>` is exactly that wildcard and `>` is only the last token.
pub fn validate_pattern(pattern: &str) -> Result<()> {
    let bad = |reason: &str| Error::InvalidFilter {
        pattern: pattern.to_owned(),
        reason: reason.to_owned(),
    };
    if pattern.is_empty() {
        return Err(bad("empty pattern"));
    }
    let count = pattern.split('.').count();
    for (i, token) in pattern.split('.').enumerate() {
        if token.is_empty() {
            return Err(bad("empty token"));
        }
        if token
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(bad("whitespace or control character"));
        }
        if token.len() > 1 && (token.contains('*') || token.contains('>')) {
            return Err(bad("a wildcard must be a whole token"));
        }
        if token == ">" && i + 1 != count {
            return Err(bad("`>` must be the last token"));
        }
    }
    Ok(())
}

/// True if `subject` (a literal subject) matches `pattern` (which may use `*` and `>`).
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    for p in pattern.split('.') {
        match (p, subject_tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (literal, Some(s)) if literal == s => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

/// True if some literal subject matches both patterns.
pub fn patterns_overlap(a: &str, b: &str) -> bool {
    let mut a_tokens = a.split('.');
    let mut b_tokens = b.split('.');
    loop {
        match (a_tokens.next(), b_tokens.next()) {
            (None, None) => return true,
            // `>` needs at least one token, which the other side supplies (or is `>` itself).
            (Some(">"), Some(_)) | (Some(_), Some(">")) => return true,
            (Some(x), Some(y)) => {
                if x != "*" && y != "*" && x != y {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// Which subjects a reader wants: NATS subject patterns with `*` and `>`; empty means everything.
///
/// Every pattern must be well-formed and able to match some subject under `hazchem.ev.>`.
/// Overlapping patterns are allowed; a message matching several is delivered once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    subjects: Vec<String>,
}

impl Filter {
    /// Everything.
    pub fn all() -> Self {
        Filter::default()
    }

    /// The union of the given patterns (empty = everything).
    pub fn new<I, S>(patterns: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut subjects: Vec<String> = Vec::new();
        for pattern in patterns {
            let pattern = pattern.into();
            validate_pattern(&pattern)?;
            if !patterns_overlap(&pattern, STREAM_SUBJECTS) {
                return Err(Error::InvalidFilter {
                    pattern,
                    reason: format!("matches nothing under {STREAM_SUBJECTS}"),
                });
            }
            if !subjects.contains(&pattern) {
                subjects.push(pattern);
            }
        }
        Ok(Filter { subjects })
    }

    /// A single pattern.
    pub fn subject(pattern: impl Into<String>) -> Result<Self> {
        Filter::new([pattern.into()])
    }

    /// The patterns (empty = everything).
    pub fn subjects(&self) -> &[String] {
        &self.subjects
    }

    /// True if this filter passes everything.
    pub fn is_all(&self) -> bool {
        self.subjects.is_empty()
    }

    /// True if `subject` passes the filter.
    pub fn matches(&self, subject: &str) -> bool {
        self.subjects.is_empty() || self.subjects.iter().any(|p| subject_matches(p, subject))
    }

    /// The patterns to give a JetStream consumer as `filter_subjects`, or `None` when the
    /// server cannot take them (it refuses overlapping filters) and the reader must filter
    /// client-side from the whole stream.
    pub(crate) fn server_side(&self) -> Option<Vec<String>> {
        for (i, a) in self.subjects.iter().enumerate() {
            for b in &self.subjects[i + 1..] {
                if patterns_overlap(a, b) {
                    return None;
                }
            }
        }
        Some(self.subjects.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_parses_event_subjects() {
        let s = event_subject("miit", "licence_issued", "01HZX-a_9");
        assert_eq!(s, "hazchem.ev.miit.licence_issued.01HZX-a_9");
        let parsed = EventSubject::parse(&s).unwrap();
        assert_eq!(parsed.publisher, "miit");
        assert_eq!(parsed.type_token, "licence_issued");
        assert_eq!(parsed.id, "01HZX-a_9");
        assert_eq!(id_pattern("psb", "abc"), "hazchem.ev.psb.*.abc");
        assert_eq!(dedup_key("psb", "abc"), "psb.abc");
        for dept in DEPARTMENTS {
            validate_publisher(dept).unwrap();
        }
    }

    #[test]
    fn rejects_malformed_subjects() {
        for bad in [
            "",
            "hazchem.ev",
            "hazchem.ev.miit.licence_issued",
            "hazchem.ev.miit.licence_issued.id.extra",
            "hazchem.xx.miit.licence_issued.id",
            "hazchem.ev.MIIT.licence_issued.id",
            "hazchem.ev.miit.LicenceIssued.id",
            "hazchem.ev.miit.licence__issued.id",
            "hazchem.ev.miit._licence.id",
            "hazchem.ev.miit.licence_.id",
            "hazchem.ev.miit.licence_issued.a*b",
            "hazchem.ev.miit.licence_issued.*",
            "hazchem.ev.*.licence_issued.id",
            "hazchem.ev.miit.licence_issued.with space",
            "hazchem.ev..licence_issued.id",
        ] {
            assert!(
                EventSubject::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn validates_tokens() {
        validate_publisher("ledger").unwrap();
        validate_publisher("warning-engine_2").unwrap();
        validate_publisher("9lives").unwrap();
        assert!(validate_publisher("").is_err());
        assert!(validate_publisher("-x").is_err());
        assert!(validate_publisher("Miit").is_err());
        assert!(validate_publisher("a.b").is_err());
        assert!(validate_publisher(&"a".repeat(65)).is_err());

        validate_type_token("sale").unwrap();
        validate_type_token("road_transport_2").unwrap();
        assert!(validate_type_token("2sale").is_err());
        assert!(validate_type_token("sale-x").is_err());
        assert!(validate_type_token("").is_err());

        validate_event_id("a").unwrap();
        validate_event_id(&"Z9_-".repeat(32)).unwrap();
        assert!(validate_event_id(&"a".repeat(129)).is_err());
        assert!(validate_event_id("").is_err());
        assert!(validate_event_id("a.b").is_err());
        assert!(validate_event_id("a b").is_err());
        assert!(validate_event_id("é").is_err());

        validate_cursor_name("ledger-main_1").unwrap();
        assert!(validate_cursor_name("ledger.main").is_err());
    }

    #[test]
    fn outgoing_id_must_be_the_last_token() {
        validate_outgoing("hazchem.ev.psb.alarm.x1", "x1").unwrap();
        assert!(matches!(
            validate_outgoing("hazchem.ev.psb.alarm.x1", "x2"),
            Err(Error::IdMismatch { .. })
        ));
        assert!(matches!(
            validate_outgoing("hazchem.ev.psb.alarm.x1", "x.1"),
            Err(Error::InvalidEventId { .. })
        ));
    }

    #[test]
    fn matches_wildcards() {
        let s = "hazchem.ev.miit.sale.e1";
        assert!(subject_matches(s, s));
        assert!(subject_matches("hazchem.ev.>", s));
        assert!(subject_matches("hazchem.>", s));
        assert!(subject_matches(">", s));
        assert!(subject_matches("hazchem.ev.*.sale.*", s));
        assert!(subject_matches("hazchem.ev.miit.*.>", s));
        assert!(subject_matches("*.*.*.*.*", s));
        assert!(!subject_matches("hazchem.ev.psb.>", s));
        assert!(!subject_matches("hazchem.ev.*.sale", s));
        assert!(!subject_matches("hazchem.ev.miit.sale.e1.>", s));
        assert!(!subject_matches("hazchem.ev.miit.sale.e1.x", s));
        assert!(!subject_matches("*.*.*.*", s));
        assert!(!subject_matches("hazchem.ev.miit.sale.e", s));
        assert!(!subject_matches("hazchem.ev.miit.sale.e1x", s));
        // `>` needs at least one token.
        assert!(!subject_matches("hazchem.ev.miit.sale.e1.>", s));
        assert!(!subject_matches("a.>", "a"));
    }

    #[test]
    fn validates_patterns() {
        for ok in ["a", "a.*", "a.>", "*", ">", "a.*.b.>"] {
            validate_pattern(ok).unwrap();
        }
        for bad in [
            "", "a..b", ".a", "a.", "a.>.b", "a.b*", "a.>x", "a. b", "a.\tb",
        ] {
            assert!(validate_pattern(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn detects_overlap() {
        assert!(patterns_overlap("a.b", "a.b"));
        assert!(patterns_overlap("a.*", "a.b"));
        assert!(patterns_overlap("a.*.c", "a.b.*"));
        assert!(patterns_overlap("a.>", "a.b.c"));
        assert!(patterns_overlap("a.>", "*.b"));
        assert!(patterns_overlap(">", "x"));
        assert!(!patterns_overlap("a.>", "a"));
        assert!(!patterns_overlap("a.b", "a.c"));
        assert!(!patterns_overlap("a.*", "a.b.c"));
        assert!(!patterns_overlap("a.*.c", "a.*.d"));
        assert!(!patterns_overlap("b.>", "a.>"));
    }

    #[test]
    fn filters() {
        let all = Filter::all();
        assert!(all.is_all());
        assert!(all.matches("hazchem.ev.miit.sale.e1"));

        let f = Filter::new(["hazchem.ev.miit.>", "hazchem.ev.*.alarm.*"]).unwrap();
        assert!(f.matches("hazchem.ev.miit.sale.e1"));
        assert!(f.matches("hazchem.ev.fire.alarm.e2"));
        assert!(!f.matches("hazchem.ev.fire.sale.e3"));
        // The two patterns overlap (hazchem.ev.miit.alarm.x), so JetStream filters client-side.
        assert_eq!(f.server_side(), None);

        let g =
            Filter::new(["hazchem.ev.miit.>", "hazchem.ev.psb.>", "hazchem.ev.miit.>"]).unwrap();
        assert_eq!(g.subjects().len(), 2);
        assert_eq!(
            g.server_side(),
            Some(vec!["hazchem.ev.miit.>".into(), "hazchem.ev.psb.>".into()])
        );

        assert!(Filter::subject("hazchem.>").is_ok());
        assert!(Filter::subject(">").is_ok());
        assert!(matches!(
            Filter::subject("other.>"),
            Err(Error::InvalidFilter { .. })
        ));
        assert!(matches!(
            Filter::subject("hazchem.ev"),
            Err(Error::InvalidFilter { .. })
        ));
        assert!(Filter::subject("hazchem.ev.a b").is_err());
    }
}
