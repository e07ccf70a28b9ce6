//! Validation by the contract's own field rules, the `(hazchem.v1.rules)` field option.
//!
//! [`validate`] walks a decoded message recursively and checks every field against its rules: `required`,
//! `identifier` (with the algorithms of `hazchem-domain`), `min`/`max`, `max_len` and `not_future`. Beyond
//! the declared rules it checks what every field must satisfy: enum numbers must be defined, timestamps in
//! the range of `google.protobuf.Timestamp`, floating-point numbers finite, strings free of control
//! characters (tab and line feed are allowed, for free text), and no field may be unknown to the contract
//! (the stored bytes are the record; nothing unvalidated goes into it). Fields of a oneof are checked only
//! when set. Every violation is collected; the walk never stops at the first.
//!
//! While walking, it collects the index keys subscription filters match on: every valid USCC, CAS number
//! and batch code anywhere in the message ([`IndexKeys`]).
//!
//! The rules are read from the descriptor pool once, into a map from field full name to [`FieldRules`];
//! each thread resolves a message type's fields and their rules once, on first use (its plan).
//! (`hazchem_proto::FILE_DESCRIPTOR_SET` currently loses custom options, so the rules come from this
//! crate's own compilation of `proto/` until it keeps them; see `build.rs`.)

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use hazchem_domain::{
    CasNumber, IdentifierError, ImoNumber, PlateColour, UnNumber, Uscc, VehiclePlate,
};
use hazchem_proto::v1;
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, MapKey, MessageDescriptor, ReflectMessage,
    Value,
};

/// Full name of the field option extension that carries the rules.
pub const RULES_EXTENSION: &str = "hazchem.v1.rules";

const TIMESTAMP: &str = "google.protobuf.Timestamp";
/// `0001-01-01T00:00:00Z`, the earliest valid `google.protobuf.Timestamp`.
const MIN_TIMESTAMP_SECONDS: i64 = -62_135_596_800;
/// `9999-12-31T23:59:59Z`, the latest valid `google.protobuf.Timestamp`.
const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;
/// How many characters of a value a description quotes.
const QUOTED_VALUE_CHARS: usize = 64;

/// One broken rule: where, which rule, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldViolation {
    /// Path from the root message in proto field names, e.g. `waybill_issued.goods[2].chemical.cas`.
    pub field: String,
    /// Stable machine name of the rule, e.g. `required`, `max_len`, `uscc.check_character`.
    pub rule: String,
    /// A human sentence saying what was expected and what was found.
    pub description: String,
}

impl FieldViolation {
    /// A violation of `rule` at `field`.
    pub fn new(
        field: impl Into<String>,
        rule: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            rule: rule.into(),
            description: description.into(),
        }
    }
}

impl std::fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.field, self.rule, self.description)
    }
}

/// What subscription filters match on: every valid identifier of these kinds found anywhere in an event,
/// sorted and deduplicated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexKeys {
    /// Unified social credit codes (fields with `identifier: IDENTIFIER_USCC`).
    pub enterprises: Vec<String>,
    /// CAS numbers (`IDENTIFIER_CAS`).
    pub chemicals: Vec<String>,
    /// Batch codes (`IDENTIFIER_BATCH_CODE`).
    pub batch_codes: Vec<String>,
}

impl IndexKeys {
    /// Whether no key was found.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.enterprises.is_empty() && self.chemicals.is_empty() && self.batch_codes.is_empty()
    }
}

/// The outcome of [`validate`]: every violation, and the index keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Every broken rule, in the order of the walk (field number order, depth first).
    pub violations: Vec<FieldViolation>,
    /// The valid identifiers found.
    pub keys: IndexKeys,
}

impl Report {
    /// Whether no rule is broken.
    #[must_use]
    pub fn is_valid(&self) -> bool {
        self.violations.is_empty()
    }
}

/// The rules of one field, read from its `(hazchem.v1.rules)` option.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldRules {
    /// Strings and bytes non-empty, enums and numbers non-zero, messages present, lists non-empty.
    pub required: bool,
    /// The identifier a string (or, for plate colours, an integer) must be.
    pub identifier: Option<v1::Identifier>,
    /// Inclusive lower bound.
    pub min: Option<f64>,
    /// Inclusive upper bound.
    pub max: Option<f64>,
    /// Characters for strings, bytes for bytes, items for repeated fields.
    pub max_len: Option<u32>,
    /// Timestamps: not later than the clock plus the allowed skew.
    pub not_future: bool,
}

impl From<v1::FieldRules> for FieldRules {
    fn from(r: v1::FieldRules) -> Self {
        Self {
            required: r.required,
            identifier: v1::Identifier::try_from(r.identifier)
                .ok()
                .filter(|i| *i != v1::Identifier::Unspecified),
            min: r.min,
            max: r.max,
            max_len: (r.max_len > 0).then_some(r.max_len),
            not_future: r.not_future,
        }
    }
}

const NO_RULES: FieldRules = FieldRules {
    required: false,
    identifier: None,
    min: None,
    max: None,
    max_len: None,
    not_future: false,
};

/// Field full name → rules, read once from the contract's `(hazchem.v1.rules)` options.
static RULES: LazyLock<HashMap<String, FieldRules>> =
    LazyLock::new(|| rules_in(&hazchem_proto::pool()));

fn rules_in(pool: &DescriptorPool) -> HashMap<String, FieldRules> {
    let Some(extension) = pool.get_extension_by_name(RULES_EXTENSION) else {
        return HashMap::new();
    };
    let mut rules = HashMap::new();
    for message in pool.all_messages() {
        for field in message.fields() {
            let options = field.options();
            if !options.has_extension(&extension) {
                continue;
            }
            let value = options.get_extension(&extension);
            if let Some(Ok(r)) = value
                .as_message()
                .map(DynamicMessage::transcode_to::<v1::FieldRules>)
            {
                rules.insert(field.full_name().to_owned(), FieldRules::from(r));
            }
        }
    }
    rules
}

/// The rules of a field of the contract, if it declares any.
#[must_use]
pub fn field_rules(field: &FieldDescriptor) -> Option<&'static FieldRules> {
    RULES.get(field.full_name())
}

/// Every field of the contract that declares rules, by full name (for contract checks and tooling).
#[must_use]
pub fn all_field_rules() -> &'static HashMap<String, FieldRules> {
    &RULES
}

/// Checks every field of `message` (recursively) against its rules; `not_future` timestamps may be up to
/// `max_skew` ahead of `now`. Paths are relative to `message`.
#[must_use]
pub fn validate(message: &DynamicMessage, now: DateTime<Utc>, max_skew: Duration) -> Report {
    let mut walker = Walker::new(Some(Clock::new(now, max_skew)));
    walker.message(message);
    walker.finish()
}

/// Only the index keys of `message` (for events already admitted; no violations are built).
#[must_use]
pub fn index_keys(message: &DynamicMessage) -> IndexKeys {
    let mut walker = Walker::new(None);
    walker.message(message);
    walker.finish().keys
}

/// The instant after which a `not_future` timestamp is rejected.
#[derive(Debug, Clone, Copy)]
struct Clock {
    now: DateTime<Utc>,
    skew: Duration,
    /// `now + skew` as (seconds, nanos).
    limit: (i64, i32),
}

impl Clock {
    fn new(now: DateTime<Utc>, skew: Duration) -> Self {
        let limit = chrono::Duration::from_std(skew)
            .ok()
            .and_then(|s| now.checked_add_signed(s))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        Self {
            now,
            skew,
            limit: (
                limit.timestamp(),
                i32::try_from(limit.timestamp_subsec_nanos()).unwrap_or(0),
            ),
        }
    }
}

/// A field of a message type with what the walk needs to know of it, resolved once per thread and
/// message type rather than at every field visited (descriptor lookups and the rules map cost more than
/// the checks themselves).
struct PlannedField {
    field: FieldDescriptor,
    rules: &'static FieldRules,
    in_oneof: bool,
    shape: Shape,
}

enum Shape {
    List,
    /// A map, with its entries' value field.
    Map(FieldDescriptor),
    /// A singular message field.
    Message,
    Scalar,
}

thread_local! {
    /// Message full name → its fields, planned on first use.
    static PLANS: RefCell<HashMap<String, Rc<[PlannedField]>>> = RefCell::new(HashMap::new());
}

fn plan(descriptor: &MessageDescriptor) -> Rc<[PlannedField]> {
    PLANS.with(|plans| {
        if let Some(plan) = plans.borrow().get(descriptor.full_name()) {
            return Rc::clone(plan);
        }
        let plan: Rc<[PlannedField]> = descriptor
            .fields()
            .map(|field| {
                let shape = if field.is_map() {
                    field.kind().as_message().map_or(Shape::Scalar, |entry| {
                        Shape::Map(entry.map_entry_value_field())
                    })
                } else if field.is_list() {
                    Shape::List
                } else if field.kind().as_message().is_some() {
                    Shape::Message
                } else {
                    Shape::Scalar
                };
                PlannedField {
                    rules: field_rules(&field).unwrap_or(&NO_RULES),
                    in_oneof: field.containing_oneof().is_some(),
                    shape,
                    field,
                }
            })
            .collect();
        plans
            .borrow_mut()
            .insert(descriptor.full_name().to_owned(), Rc::clone(&plan));
        plan
    })
}

struct Walker {
    /// `None`: only collect index keys.
    clock: Option<Clock>,
    path: String,
    violations: Vec<FieldViolation>,
    enterprises: BTreeSet<String>,
    chemicals: BTreeSet<String>,
    batch_codes: BTreeSet<String>,
}

impl Walker {
    fn new(clock: Option<Clock>) -> Self {
        Self {
            clock,
            path: String::new(),
            violations: Vec::new(),
            enterprises: BTreeSet::new(),
            chemicals: BTreeSet::new(),
            batch_codes: BTreeSet::new(),
        }
    }

    fn finish(self) -> Report {
        Report {
            violations: self.violations,
            keys: IndexKeys {
                enterprises: self.enterprises.into_iter().collect(),
                chemicals: self.chemicals.into_iter().collect(),
                batch_codes: self.batch_codes.into_iter().collect(),
            },
        }
    }

    fn checking(&self) -> bool {
        self.clock.is_some()
    }

    fn violation(&mut self, rule: impl Into<String>, description: impl Into<String>) {
        if self.checking() {
            self.violations
                .push(FieldViolation::new(self.path.clone(), rule, description));
        }
    }

    fn enter(&mut self, name: &str) -> usize {
        let mark = self.path.len();
        if !self.path.is_empty() {
            self.path.push('.');
        }
        self.path.push_str(name);
        mark
    }

    fn message(&mut self, message: &DynamicMessage) {
        let descriptor = message.descriptor();
        for planned in plan(&descriptor).iter() {
            let field = &planned.field;
            let present = message.has_field(field);
            if planned.in_oneof && !present {
                continue;
            }
            let rules = planned.rules;
            let mark = self.enter(field.name());
            match &planned.shape {
                Shape::List => {
                    let value = message.get_field(field);
                    let items = value.as_list().unwrap_or_default();
                    self.collection(rules, items.len());
                    for (i, item) in items.iter().enumerate() {
                        let item_mark = self.path.len();
                        let _ = write!(self.path, "[{i}]");
                        self.value(field, rules, item, message, false);
                        self.path.truncate(item_mark);
                    }
                }
                Shape::Map(value_field) => {
                    let value = message.get_field(field);
                    if let Some(map) = value.as_map() {
                        self.collection(rules, map.len());
                        let mut entries: Vec<(&MapKey, &Value)> = map.iter().collect();
                        entries.sort_by(|a, b| a.0.cmp(b.0));
                        for (key, item) in entries {
                            let item_mark = self.path.len();
                            let _ = write!(self.path, "[{}]", map_key(key));
                            self.value(value_field, rules, item, message, false);
                            self.path.truncate(item_mark);
                        }
                    }
                }
                Shape::Message if !present => {
                    if rules.required {
                        self.violation("required", "required: must be set");
                    }
                }
                Shape::Message | Shape::Scalar => {
                    let value = message.get_field(field);
                    self.value(field, rules, &value, message, true);
                }
            }
            self.path.truncate(mark);
        }
        if self.checking() {
            for unknown in message.unknown_fields() {
                let mark = self.enter(&format!("#{}", unknown.number()));
                self.violation(
                    "unknown_field",
                    format!(
                        "field number {} is not a field of {} in this version of the contract",
                        unknown.number(),
                        descriptor.full_name()
                    ),
                );
                self.path.truncate(mark);
            }
        }
    }

    /// `required` and `max_len` of a repeated or map field.
    fn collection(&mut self, rules: &FieldRules, len: usize) {
        if rules.required && len == 0 {
            self.violation("required", "required: must have at least one item");
        }
        if let Some(max) = rules.max_len
            && len > max as usize
        {
            self.violation("max_len", format!("at most {max} items, found {len}"));
        }
    }

    /// One value: a singular field's (`singular`) or an item of a list or map.
    fn value(
        &mut self,
        field: &FieldDescriptor,
        rules: &FieldRules,
        value: &Value,
        parent: &DynamicMessage,
        singular: bool,
    ) {
        match value {
            Value::String(s) => self.string(rules, s, parent, singular),
            Value::Bytes(b) => {
                if singular && rules.required && b.is_empty() {
                    self.violation("required", "required: must not be empty");
                } else if singular
                    && let Some(max) = rules.max_len
                    && b.len() > max as usize
                {
                    self.violation("max_len", format!("at most {max} bytes, found {}", b.len()));
                }
            }
            Value::EnumNumber(n) => self.enumeration(field, rules, *n, singular),
            Value::Bool(_) => {}
            Value::I32(v) => self.number(rules, f64::from(*v), i64::from(*v), singular),
            Value::U32(v) => self.number(rules, f64::from(*v), i64::from(*v), singular),
            #[allow(clippy::cast_precision_loss)]
            Value::I64(v) => self.number(rules, *v as f64, *v, singular),
            #[allow(clippy::cast_precision_loss)]
            Value::U64(v) => self.number(
                rules,
                *v as f64,
                i64::try_from(*v).unwrap_or(i64::MAX),
                singular,
            ),
            Value::F32(v) => self.float(rules, f64::from(*v), singular),
            Value::F64(v) => self.float(rules, *v, singular),
            Value::Message(m) => {
                if m.descriptor().full_name() == TIMESTAMP {
                    self.timestamp(rules, m);
                } else {
                    self.message(m);
                }
            }
            Value::List(_) | Value::Map(_) => {}
        }
    }

    fn string(&mut self, rules: &FieldRules, s: &str, parent: &DynamicMessage, singular: bool) {
        if let Some((position, c)) = s
            .chars()
            .enumerate()
            .find(|(_, c)| c.is_control() && *c != '\n' && *c != '\t')
        {
            self.violation(
                "control_character",
                format!(
                    "contains the control character U+{:04X} at character {}; only tab and line feed are allowed",
                    u32::from(c),
                    position + 1
                ),
            );
        }
        if singular {
            if rules.required && s.is_empty() {
                self.violation("required", "required: must not be empty");
                return;
            }
            if let Some(max) = rules.max_len
                && s.len() > max as usize
            {
                let chars = s.chars().count();
                if chars > max as usize {
                    self.violation(
                        "max_len",
                        format!("at most {max} characters, found {chars}"),
                    );
                }
            }
        }
        // An empty optional string is not checked; an empty list item is.
        if s.is_empty() && singular {
            return;
        }
        if let Some(identifier) = rules.identifier {
            self.identifier(identifier, s, parent);
        }
    }

    fn identifier(&mut self, identifier: v1::Identifier, s: &str, parent: &DynamicMessage) {
        let result: Result<(), IdentifierError> = match identifier {
            v1::Identifier::Uscc => Uscc::parse(s).map(|u| {
                self.enterprises.insert(u.as_str().to_owned());
            }),
            v1::Identifier::Cas => CasNumber::parse(s).map(|c| {
                self.chemicals.insert(c.as_str().to_owned());
            }),
            v1::Identifier::UnNumber => UnNumber::parse(s).map(drop),
            v1::Identifier::Imo => ImoNumber::parse(s).map(drop),
            v1::Identifier::VehiclePlate => match sibling_plate_colour(parent) {
                // The colour is reported on its own field; the plate's shape depends on it.
                Sibling::Invalid => Ok(()),
                Sibling::Colour(colour) => VehiclePlate::new(s, colour).map(drop),
                Sibling::Absent => VehiclePlate::new(s, PlateColour::Yellow)
                    .or_else(|e| VehiclePlate::new(s, PlateColour::Green).map_err(|_| e))
                    .map(drop),
            },
            v1::Identifier::Token => {
                if let Err((rule, description)) = token(s, "token", "token", 128) {
                    self.violation(rule, description);
                }
                Ok(())
            }
            v1::Identifier::BatchCode => {
                match token(s, "batch_code", "batch code", 64) {
                    Ok(()) => {
                        self.batch_codes.insert(s.to_owned());
                    }
                    Err((rule, description)) => self.violation(rule, description),
                }
                Ok(())
            }
            // Not a string identifier (plate colours are integers) or unspecified.
            v1::Identifier::PlateColour | v1::Identifier::Unspecified => Ok(()),
        };
        if let Err(error) = result {
            self.identifier_error(&error);
        }
    }

    fn identifier_error(&mut self, error: &IdentifierError) {
        if !self.checking() {
            return;
        }
        let mut shown = error.clone();
        shown.value = quoted_value(&error.value);
        let rule = format!("{}.{}", error.kind.as_str(), error.rule.as_str());
        self.violation(rule, printable(&shown.to_string()));
    }

    fn enumeration(&mut self, field: &FieldDescriptor, rules: &FieldRules, n: i32, singular: bool) {
        let Some(descriptor) = field.kind().as_enum().cloned() else {
            return;
        };
        if singular && rules.required && n == 0 {
            if self.checking() {
                let values: Vec<String> = descriptor
                    .values()
                    .filter(|v| v.number() != 0)
                    .map(|v| v.name().to_owned())
                    .collect();
                let zero = descriptor
                    .get_value(0)
                    .map_or_else(|| "0".to_owned(), |v| v.name().to_owned());
                self.violation(
                    "required",
                    format!(
                        "required: must not be {zero}; expected one of {}",
                        values.join(", ")
                    ),
                );
            }
            return;
        }
        if descriptor.get_value(n).is_none() {
            self.violation(
                "enum.undefined",
                format!("{n} is not a value of {}", descriptor.full_name()),
            );
        }
    }

    /// An integer: `required` (non-zero), plate colour codes, bounds.
    fn number(&mut self, rules: &FieldRules, value: f64, integer: i64, singular: bool) {
        if singular && rules.required && integer == 0 {
            self.violation("required", "required: must not be 0");
            return;
        }
        if rules.identifier == Some(v1::Identifier::PlateColour)
            && (integer != 0 || !singular)
            && let Err(error) = PlateColour::from_code(u32::try_from(integer).unwrap_or(u32::MAX))
        {
            let mut error = error;
            error.value = integer.to_string();
            self.identifier_error(&error);
        }
        self.bounds(rules, value);
    }

    fn float(&mut self, rules: &FieldRules, value: f64, singular: bool) {
        if !value.is_finite() {
            self.violation("finite", format!("must be a finite number, found {value}"));
            return;
        }
        if singular && rules.required && value == 0.0 {
            self.violation("required", "required: must not be 0");
            return;
        }
        self.bounds(rules, value);
    }

    fn bounds(&mut self, rules: &FieldRules, value: f64) {
        if let Some(min) = rules.min
            && value < min
        {
            self.violation("min", format!("must be at least {min}, found {value}"));
        }
        if let Some(max) = rules.max
            && value > max
        {
            self.violation("max", format!("must be at most {max}, found {value}"));
        }
    }

    fn timestamp(&mut self, rules: &FieldRules, timestamp: &DynamicMessage) {
        let seconds = timestamp
            .get_field_by_name("seconds")
            .and_then(|v| v.as_i64())
            .unwrap_or(0);
        let nanos = timestamp
            .get_field_by_name("nanos")
            .and_then(|v| v.as_i32())
            .unwrap_or(0);
        if !(MIN_TIMESTAMP_SECONDS..=MAX_TIMESTAMP_SECONDS).contains(&seconds)
            || !(0..=999_999_999).contains(&nanos)
        {
            self.violation(
                "timestamp.range",
                format!(
                    "a timestamp lies between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z with nanos \
                     0 to 999999999, found seconds {seconds}, nanos {nanos}"
                ),
            );
        } else if rules.not_future
            && let Some(clock) = self.clock
            && (seconds, nanos) > clock.limit
        {
            let at = DateTime::from_timestamp(seconds, u32::try_from(nanos).unwrap_or(0))
                .map_or_else(|| seconds.to_string(), rfc3339);
            self.violation(
                "not_future",
                format!(
                    "{at} is in the future: the gateway's clock is {} and allows {} s of skew",
                    rfc3339(clock.now),
                    clock.skew.as_secs()
                ),
            );
        }
        if self.checking() {
            for unknown in timestamp.unknown_fields() {
                let mark = self.enter(&format!("#{}", unknown.number()));
                self.violation(
                    "unknown_field",
                    format!(
                        "field number {} is not a field of {TIMESTAMP}",
                        unknown.number()
                    ),
                );
                self.path.truncate(mark);
            }
        }
    }
}

enum Sibling {
    Absent,
    Invalid,
    Colour(PlateColour),
}

/// The `plate_colour` field beside a plate, which decides the plate's shape.
fn sibling_plate_colour(parent: &DynamicMessage) -> Sibling {
    match parent.get_field_by_name("plate_colour").as_deref() {
        None => Sibling::Absent,
        Some(Value::U32(code)) => {
            PlateColour::from_code(*code).map_or(Sibling::Invalid, Sibling::Colour)
        }
        Some(Value::I32(code)) => u32::try_from(*code)
            .ok()
            .and_then(|c| PlateColour::from_code(c).ok())
            .map_or(Sibling::Invalid, Sibling::Colour),
        Some(_) => Sibling::Invalid,
    }
}

/// `[A-Za-z0-9_-]{1,max}`: event, task and document identifiers (`token`), batch codes (`batch_code`).
fn token(s: &str, kind: &str, label: &str, max: usize) -> Result<(), (String, String)> {
    let chars = s.chars().count();
    if chars == 0 || chars > max {
        return Err((
            format!("{kind}.length"),
            printable(&format!(
                "{label} \"{}\": wrong length: expected 1 to {max} characters, found {chars}",
                quoted_value(s)
            )),
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err((
            format!("{kind}.charset"),
            printable(&format!(
                "{label} \"{}\": character not allowed: expected A-Z a-z 0-9 _ -, found '{c}'",
                quoted_value(s)
            )),
        ));
    }
    Ok(())
}

fn map_key(key: &MapKey) -> String {
    match key {
        MapKey::Bool(v) => v.to_string(),
        MapKey::I32(v) => v.to_string(),
        MapKey::I64(v) => v.to_string(),
        MapKey::U32(v) => v.to_string(),
        MapKey::U64(v) => v.to_string(),
        MapKey::String(v) => format!("\"{}\"", printable(&quoted_value(v))),
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A value as quoted in a description: at most [`QUOTED_VALUE_CHARS`] characters.
fn quoted_value(value: &str) -> String {
    if value.chars().count() <= QUOTED_VALUE_CHARS {
        value.to_owned()
    } else {
        let mut short: String = value.chars().take(QUOTED_VALUE_CHARS).collect();
        short.push('…');
        short
    }
}

/// Text safe to show: control characters escaped as `\u{..}`.
pub(crate) fn printable(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests: the rules are checked at wall time against fixed fixtures
mod tests {
    use super::*;

    fn check<M: prost::Message + prost::Name>(message: &M) -> Report {
        let descriptor = hazchem_proto::message(&M::full_name()).unwrap();
        let mut dynamic = DynamicMessage::new(descriptor);
        dynamic.transcode_from(message).unwrap();
        validate(&dynamic, Utc::now(), Duration::from_secs(300))
    }

    fn rules_of(message: &str, field: &str) -> &'static FieldRules {
        RULES
            .get(&format!("hazchem.v1.{message}.{field}"))
            .unwrap_or_else(|| panic!("{message}.{field} has rules"))
    }

    #[test]
    fn rules_are_read_from_the_contract() {
        assert!(RULES.len() > 300, "only {} fields with rules", RULES.len());
        let id = rules_of("Event", "id");
        assert!(id.required);
        assert_eq!(id.identifier, Some(v1::Identifier::Token));
        assert_eq!(rules_of("Event", "source").max_len, Some(256));
        assert!(rules_of("Event", "time").not_future);
        let latitude = rules_of("GeoPoint", "latitude");
        assert_eq!((latitude.min, latitude.max), (Some(-90.0), Some(90.0)));
        assert_eq!(
            rules_of("Vehicle", "plate_colour").identifier,
            Some(v1::Identifier::PlateColour)
        );
        assert!(!RULES.contains_key("hazchem.v1.Event.department"));
    }

    #[test]
    fn a_vehicle_is_checked_with_its_colour() {
        let vehicle = |plate: &str, colour| v1::Vehicle {
            plate: plate.into(),
            plate_colour: colour,
            transport_certificate: String::new(),
        };
        assert!(check(&vehicle("苏F12345", 2)).is_valid());
        assert!(check(&vehicle("苏F1234挂", 2)).is_valid());
        // Eight characters are a new-energy plate: wrong for yellow, right for green.
        let report = check(&vehicle("苏FD12345", 2));
        assert_eq!(report.violations[0].field, "plate");
        assert_eq!(report.violations[0].rule, "vehicle_plate.length");
        assert!(check(&vehicle("苏FD12345", 5)).is_valid());
        // An unknown colour is reported once, on the colour.
        let report = check(&vehicle("苏F12345", 7));
        assert_eq!(report.violations.len(), 1);
        assert_eq!(report.violations[0].field, "plate_colour");
        assert_eq!(report.violations[0].rule, "plate_colour.unknown");
        // Missing both: two `required`, no identifier noise.
        let report = check(&vehicle("", 0));
        let got: Vec<_> = report
            .violations
            .iter()
            .map(|v| (v.field.as_str(), v.rule.as_str()))
            .collect();
        assert_eq!(got, [("plate", "required"), ("plate_colour", "required")]);
    }

    #[test]
    fn tokens_and_batch_codes() {
        assert!(token("abc-DEF_123", "token", "token", 128).is_ok());
        assert_eq!(
            token(&"a".repeat(129), "token", "token", 128)
                .unwrap_err()
                .0,
            "token.length"
        );
        let (rule, description) = token("lot 7", "batch_code", "batch code", 64).unwrap_err();
        assert_eq!(rule, "batch_code.charset");
        assert_eq!(
            description,
            "batch code \"lot 7\": character not allowed: expected A-Z a-z 0-9 _ -, found ' '"
        );
    }

    #[test]
    fn control_characters_are_escaped_in_descriptions() {
        assert_eq!(printable("a\u{7}b"), "a\\u{0007}b");
        assert_eq!(printable("苏F12345"), "苏F12345");
        let long = "x".repeat(100);
        assert_eq!(quoted_value(&long).chars().count(), QUOTED_VALUE_CHARS + 1);
    }

    #[test]
    fn list_items_are_indexed_in_paths() {
        let incident = v1::IncidentReported {
            chemicals: vec![
                v1::ChemicalRef {
                    cas: "7664-41-7".into(),
                    ..Default::default()
                },
                v1::ChemicalRef {
                    cas: "7664-41-8".into(),
                    un_number: "UN105".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let report = check(&incident);
        let got: Vec<_> = report
            .violations
            .iter()
            .map(|v| (v.field.as_str(), v.rule.as_str()))
            .collect();
        assert!(
            got.contains(&("chemicals[1].cas", "cas.check_character")),
            "{got:?}"
        );
        assert!(
            got.contains(&("chemicals[1].un_number", "un.format")),
            "{got:?}"
        );
        assert_eq!(report.keys.chemicals, ["7664-41-7"]);
    }
}
