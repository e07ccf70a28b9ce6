//! The contract at run time: the descriptor pool, the event types it defines, and the canonical protobuf
//! JSON mapping (used by the CLI, which reads and writes events as JSON).

use prost::Message;

use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, OneofDescriptor};

use crate::v1;

/// Prefix of the CloudEvents `type` attribute; the event type token follows it.
pub const TYPE_PREFIX: &str = "cn.hazchem.v1.";
/// CloudEvents `specversion` of every event.
pub const SPEC_VERSION: &str = "1.0";
/// CloudEvents `datacontenttype` of every event.
pub const DATA_CONTENT_TYPE: &str = "application/protobuf";

thread_local! {
    /// Each thread decodes its own copy of the contract. Every descriptor holds a reference count on its
    /// pool, and decoding or walking a message takes and drops descriptors by the hundred: with one pool
    /// shared by every thread, that count is one cache line all cores fight over, and admitting events
    /// got slower with each thread added (`cargo bench -p hazchem-admission --bench admit`).
    static POOL: DescriptorPool = DescriptorPool::decode(crate::FILE_DESCRIPTOR_SET)
        .expect("the compiled descriptor set decodes");
    static EVENT: MessageDescriptor = POOL.with(|pool| {
        pool.get_message_by_name("hazchem.v1.Event")
            .expect("hazchem.v1.Event is in the contract")
    });
}

/// Every message, enum, service and option of the contract. This thread's copy: descriptors taken on
/// different threads describe the same contract but do not compare equal.
pub fn pool() -> DescriptorPool {
    POOL.with(Clone::clone)
}

/// The descriptor of a message by its full name, for example "hazchem.v1.Event".
pub fn message(full_name: &str) -> Option<MessageDescriptor> {
    POOL.with(|pool| pool.get_message_by_name(full_name))
}

/// The descriptor of `hazchem.v1.Event`.
pub fn event_descriptor() -> MessageDescriptor {
    EVENT.with(Clone::clone)
}

fn payload_oneof() -> OneofDescriptor {
    event_descriptor()
        .oneofs()
        .find(|o| o.name() == "payload")
        .expect("hazchem.v1.Event has a payload oneof")
}

/// One kind of event: its token (the payload field name, used in subjects and policy) and the full name
/// of its payload message (the CloudEvents `dataschema`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventType {
    pub token: String,
    pub schema: String,
}

impl EventType {
    /// The CloudEvents `type` attribute: "cn.hazchem.v1.<token>".
    pub fn cloudevents_type(&self) -> String {
        format!("{TYPE_PREFIX}{}", self.token)
    }
}

/// Every event type the contract defines, in field-number order.
pub fn event_types() -> Vec<EventType> {
    payload_oneof()
        .fields()
        .map(|f| EventType {
            token: f.name().to_owned(),
            schema: f
                .kind()
                .as_message()
                .map(|m| m.full_name().to_owned())
                .unwrap_or_default(),
        })
        .collect()
}

/// The event type of a decoded event, from the payload it carries.
pub fn event_type_of(event: &DynamicMessage) -> Option<EventType> {
    let oneof = payload_oneof();
    oneof
        .fields()
        .find(|f| event.has_field(f))
        .map(|f| EventType {
            token: f.name().to_owned(),
            schema: f
                .kind()
                .as_message()
                .map(|m| m.full_name().to_owned())
                .unwrap_or_default(),
        })
}

/// Errors of the JSON mapping.
#[derive(Debug)]
pub struct JsonError(pub String);

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for JsonError {}

/// Parses a message of type `M` from its canonical protobuf JSON form.
pub fn from_json<M: Message + Default + prost::Name>(json: &str) -> Result<M, JsonError> {
    let descriptor = message(&M::full_name())
        .ok_or_else(|| JsonError(format!("{} is not in the contract", M::full_name())))?;
    let mut de = serde_json::Deserializer::from_str(json);
    let dynamic = DynamicMessage::deserialize(descriptor, &mut de)
        .map_err(|e| JsonError(format!("{}: {e}", M::full_name())))?;
    de.end()
        .map_err(|e| JsonError(format!("{}: {e}", M::full_name())))?;
    dynamic
        .transcode_to::<M>()
        .map_err(|e| JsonError(format!("{}: {e}", M::full_name())))
}

/// Renders a message of type `M` in its canonical protobuf JSON form.
pub fn to_json<M: Message + prost::Name>(message: &M) -> Result<serde_json::Value, JsonError> {
    let descriptor = self::message(&M::full_name())
        .ok_or_else(|| JsonError(format!("{} is not in the contract", M::full_name())))?;
    let mut dynamic = DynamicMessage::new(descriptor);
    dynamic
        .transcode_from(message)
        .map_err(|e| JsonError(format!("{}: {e}", M::full_name())))?;
    serde_json::to_value(&dynamic).map_err(|e| JsonError(format!("{}: {e}", M::full_name())))
}

/// Decodes the exact bytes of an event as a dynamic message (for validation and indexing by field rules).
pub fn decode_event(bytes: &[u8]) -> Result<DynamicMessage, prost::DecodeError> {
    DynamicMessage::decode(event_descriptor(), bytes)
}

/// The stored record `bytes` (what the stream holds) and the event inside it: the one way a reader opens a
/// record.
pub fn open_record(bytes: &[u8]) -> Result<(v1::Record, v1::Event), prost::DecodeError> {
    let record = v1::Record::decode(bytes)?;
    let event = v1::Event::decode(record.event.as_slice())?;
    Ok((record, event))
}

/// `hazchem.v1.Event` fields used by every service.
impl v1::Event {
    /// The event type token of the payload, for example "waybill_issued".
    pub fn type_token(&self) -> Option<String> {
        let mut dynamic = DynamicMessage::new(event_descriptor());
        dynamic.transcode_from(self).ok()?;
        event_type_of(&dynamic).map(|t| t.token)
    }
}

/// Builds an event envelope around a payload, filling the attributes that follow from it (`type`,
/// `data_schema`, `data_content_type`, `spec_version`). `department` is `None` for the bus's own services.
pub fn build_event(
    id: impl Into<String>,
    source: impl Into<String>,
    department: Option<v1::Department>,
    time: prost_types::Timestamp,
    payload: v1::event::Payload,
) -> v1::Event {
    let mut event = v1::Event {
        spec_version: SPEC_VERSION.to_owned(),
        id: id.into(),
        source: source.into(),
        time: Some(time),
        data_content_type: DATA_CONTENT_TYPE.to_owned(),
        department: department.map_or(0, |d| d as i32),
        classification: v1::DataClassification::Shared as i32,
        payload: Some(payload),
        ..Default::default()
    };
    let mut dynamic = DynamicMessage::new(event_descriptor());
    dynamic
        .transcode_from(&event)
        .expect("an Event transcodes to its own descriptor");
    let event_type = event_type_of(&dynamic).expect("the payload is set");
    event.r#type = event_type.cloudevents_type();
    event.data_schema = event_type.schema;
    event
}
