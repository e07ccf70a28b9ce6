//! The NATS permissions a bus user needs, subject by subject.
//!
//! This module states what each kind of NATS user must be allowed for the operations *this crate*
//! performs over its connection, and nothing more; `hazchem deploy nats` writes them into the
//! server's `authorization` block, with the event subjects taken from the publish and read policy.
//! Everything not listed is denied (the lists are `allow` lists).
//!
//! | operation (async-nats 0.51) | NATS subjects |
//! | --- | --- |
//! | publish with ack (`send_publish`) | publish the event subject; the PubAck comes back on the connection's inbox |
//! | any request's reply | subscribe `_INBOX.<user>.>`: every connection of the bus uses the inbox prefix `_INBOX.<user>` ([`inbox_prefix`]), so no user can read another's replies or deliveries |
//! | ordered consumer, one filter | publish `$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>` (the filter is in the subject, so a permission can scope it); `$JS.API.CONSUMER.MSG.NEXT.<stream>.<name>` (pull requests; messages and heartbeats arrive on the inbox); on recovery `$JS.API.CONSUMER.INFO.<stream>.<name>` and `$JS.API.CONSUMER.DELETE.<stream>.<name>` |
//! | ordered consumer, no filter or several | `$JS.API.CONSUMER.CREATE.<stream>.<name>`: carries no filter, so only users that may read everything get it |
//! | `get`, id look-up after the duplicate window | `$JS.API.STREAM.MSG.GET.<stream>` |
//! | `last_sequence`, stream look-up | `$JS.API.STREAM.INFO.<stream>` |
//! | cursors (KV) | `$JS.API.STREAM.INFO.KV_<bucket>`, `$JS.API.DIRECT.GET.KV_<bucket>.>` (get), publish `$KV.<bucket>.>` (put, with ack) |
//! | creating or updating the stream and the bucket | `$JS.API.STREAM.UPDATE.<s>`, `$JS.API.STREAM.CREATE.<s>` for both streams, `$JS.API.INFO` (the KV bucket asks for the account's limits) |
//!
//! Not needed, so not granted: `$JS.ACK.>` (ordered consumers do not acknowledge: `AckPolicy::None`),
//! `allow_responses` (bus users only make requests, they answer none; the server's JetStream replies
//! are not subject to the requester's permissions), `_INBOX.>`.
//!
//! Limits of what NATS can check: a consumer with several filter subjects is created on a subject
//! that carries none, so a user whose reading is restricted may only create single-filter consumers
//! (a principal view reads several patterns by authorising each one; see the `jetstream` module);
//! the per-event RESTRICTED classification rule depends on the payload and is checked by the
//! gateway alone; consumer names are random, and a reader may pull from or delete any consumer of
//! the stream whose name it knows.

use crate::subject::SUBJECT_PREFIX;

/// The NATS user that creates and updates the stream and the cursor bucket (the gateway's shared
/// connection).
pub const ADMIN_USER: &str = "gateway-admin";

/// The inbox prefix of `user`'s connections: `_INBOX.<user>`.
pub fn inbox_prefix(user: &str) -> String {
    format!("_INBOX.{user}")
}

/// The subject pattern of every event of type `token`, whoever published it:
/// `hazchem.ev.*.<token>.*`.
pub fn type_subject(token: &str) -> String {
    format!("{SUBJECT_PREFIX}.*.{token}.*")
}

/// The stream and the cursor bucket the permissions are about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    /// The event stream, e.g. [`crate::DEFAULT_STREAM`].
    pub stream: String,
    /// The cursor bucket, e.g. [`crate::DEFAULT_CURSOR_BUCKET`].
    pub cursor_bucket: String,
}

impl Default for Names {
    fn default() -> Self {
        Names {
            stream: crate::DEFAULT_STREAM.to_owned(),
            cursor_bucket: crate::DEFAULT_CURSOR_BUCKET.to_owned(),
        }
    }
}

/// What a user may read from the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadScope {
    /// Every event.
    All,
    /// The events of these types (tokens), whoever published them; empty: nothing.
    Types(Vec<String>),
}

/// The subjects one NATS user may publish and subscribe to (NATS `allow` lists), in a fixed order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Permissions {
    /// `permissions.publish.allow`.
    pub publish: Vec<String>,
    /// `permissions.subscribe.allow`.
    pub subscribe: Vec<String>,
}

impl Permissions {
    /// A principal the gateway publishes and reads as (a department; also a service): publishes
    /// `publish` (event subjects `hazchem.ev.<user>.<type>.*`), reads `read`.
    pub fn principal(names: &Names, user: &str, publish: &[String], read: &ReadScope) -> Self {
        let mut p = Permissions {
            publish: publish.to_vec(),
            subscribe: vec![format!("{}.>", inbox_prefix(user))],
        };
        p.add_reading(names, read);
        p
    }

    /// A service's own process: publishes `publish`, reads everything, reads the stream's state
    /// and single messages, keeps cursors; does not manage the stream.
    pub fn service(names: &Names, user: &str, publish: &[String]) -> Self {
        let mut p = Permissions::principal(names, user, publish, &ReadScope::All);
        p.add_state(names);
        p
    }

    /// The admin ([`ADMIN_USER`]): creates and updates the stream and the cursor bucket, reads
    /// everything, keeps cursors; publishes no event.
    pub fn admin(names: &Names) -> Self {
        let mut p = Permissions::principal(names, ADMIN_USER, &[], &ReadScope::All);
        p.add_state(names);
        let kv = kv_stream(names);
        p.publish.push("$JS.API.INFO".to_owned());
        for stream in [&names.stream, &kv] {
            p.publish.push(format!("$JS.API.STREAM.CREATE.{stream}"));
            p.publish.push(format!("$JS.API.STREAM.UPDATE.{stream}"));
        }
        p
    }

    fn add_reading(&mut self, names: &Names, read: &ReadScope) {
        let stream = &names.stream;
        match read {
            ReadScope::Types(types) if types.is_empty() => return,
            ReadScope::All => {
                self.subscribe.push(format!("{SUBJECT_PREFIX}.>"));
                self.publish
                    .push(format!("$JS.API.CONSUMER.CREATE.{stream}.>"));
            }
            ReadScope::Types(types) => {
                for token in types {
                    self.subscribe.push(type_subject(token));
                }
                for token in types {
                    self.publish.push(format!(
                        "$JS.API.CONSUMER.CREATE.{stream}.*.{}",
                        type_subject(token)
                    ));
                }
            }
        }
        for api in ["MSG.NEXT", "INFO", "DELETE"] {
            self.publish
                .push(format!("$JS.API.CONSUMER.{api}.{stream}.*"));
        }
    }

    fn add_state(&mut self, names: &Names) {
        let stream = &names.stream;
        let bucket = &names.cursor_bucket;
        let kv = kv_stream(names);
        self.publish.extend([
            format!("$JS.API.STREAM.INFO.{stream}"),
            format!("$JS.API.STREAM.MSG.GET.{stream}"),
            format!("$JS.API.STREAM.INFO.{kv}"),
            format!("$JS.API.DIRECT.GET.{kv}.>"),
            format!("$KV.{bucket}.>"),
        ]);
    }
}

fn kv_stream(names: &Names) -> String {
    format!("KV_{}", names.cursor_bucket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restricted_readers_get_filtered_consumer_creation_only() {
        let p = Permissions::principal(
            &Names::default(),
            "fire",
            &["hazchem.ev.fire.incident_reported.*".to_owned()],
            &ReadScope::Types(vec!["incident_reported".to_owned()]),
        );
        assert_eq!(
            p.publish,
            [
                "hazchem.ev.fire.incident_reported.*",
                "$JS.API.CONSUMER.CREATE.HAZCHEM_EVENTS.*.hazchem.ev.*.incident_reported.*",
                "$JS.API.CONSUMER.MSG.NEXT.HAZCHEM_EVENTS.*",
                "$JS.API.CONSUMER.INFO.HAZCHEM_EVENTS.*",
                "$JS.API.CONSUMER.DELETE.HAZCHEM_EVENTS.*",
            ]
        );
        assert_eq!(
            p.subscribe,
            ["_INBOX.fire.>", "hazchem.ev.*.incident_reported.*"]
        );
    }

    #[test]
    fn nothing_to_read_means_no_consumer_api() {
        let p = Permissions::principal(&Names::default(), "miit", &[], &ReadScope::Types(vec![]));
        assert!(p.publish.is_empty());
        assert_eq!(p.subscribe, ["_INBOX.miit.>"]);
    }

    #[test]
    fn only_the_admin_manages_streams() {
        let service = Permissions::service(&Names::default(), "ledger", &[]);
        assert!(!service.publish.iter().any(|s| s.contains("STREAM.CREATE")));
        let admin = Permissions::admin(&Names::default());
        assert!(
            admin
                .publish
                .contains(&"$JS.API.STREAM.CREATE.KV_hazchem-cursors".to_owned())
        );
        assert!(!admin.publish.iter().any(|s| s.starts_with("hazchem.ev")));
    }
}
