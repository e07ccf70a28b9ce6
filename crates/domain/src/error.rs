//! Errors of this crate.
//!
//! [`IdentifierError`] is a plain struct a caller can match on: which kind of
//! identifier, the value given, the [`Rule`] it broke and what was expected.
//! [`Rule::as_str`] and [`IdentifierKind::as_str`] are short stable machine
//! names suitable for gRPC field-violation details.

use std::fmt;
use std::path::PathBuf;

/// The kind of identifier (or coded value) that failed validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdentifierKind {
    /// 统一社会信用代码 (GB 32100-2015).
    Uscc,
    /// CAS registry number.
    Cas,
    /// UN number of the dangerous goods list.
    Un,
    /// IMO ship identification number.
    Imo,
    /// Vehicle registration plate.
    VehiclePlate,
    /// Plate colour code (JT/T 808).
    PlateColour,
    /// Department code.
    Department,
}

impl IdentifierKind {
    /// Short stable machine name, e.g. `"uscc"`, `"vehicle_plate"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Uscc => "uscc",
            Self::Cas => "cas",
            Self::Un => "un",
            Self::Imo => "imo",
            Self::VehiclePlate => "vehicle_plate",
            Self::PlateColour => "plate_colour",
            Self::Department => "department",
        }
    }

    /// Human label used in error messages, e.g. `"USCC"`, `"CAS number"`.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Uscc => "USCC",
            Self::Cas => "CAS number",
            Self::Un => "UN number",
            Self::Imo => "IMO number",
            Self::VehiclePlate => "vehicle plate",
            Self::PlateColour => "plate colour",
            Self::Department => "department",
        }
    }
}

impl fmt::Display for IdentifierKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The validation rule an identifier broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// Wrong number of characters.
    Length,
    /// A character outside the permitted character set.
    Charset,
    /// The overall shape is wrong (missing separators, prefix, group sizes).
    Format,
    /// The check character or check digit does not match.
    CheckCharacter,
    /// A code that is not one of the known values.
    Unknown,
}

impl Rule {
    /// Short stable machine name: `"length"`, `"charset"`, `"format"`,
    /// `"check_character"` or `"unknown"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Length => "length",
            Self::Charset => "charset",
            Self::Format => "format",
            Self::CheckCharacter => "check_character",
            Self::Unknown => "unknown",
        }
    }

    /// Human description used in error messages.
    #[must_use]
    pub const fn description(self) -> &'static str {
        match self {
            Self::Length => "wrong length",
            Self::Charset => "character not allowed",
            Self::Format => "format",
            Self::CheckCharacter => "wrong check character",
            Self::Unknown => "unknown code",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An identifier failed validation.
///
/// Displays as, for example,
/// `USCC "91350100M000100Y4Z": wrong check character: expected '3', found 'Z'`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} \"{}\": {}: expected {}{}", kind.label(), value, rule.description(), expected, FoundSuffix(found.as_deref()))]
pub struct IdentifierError {
    /// Which kind of identifier was being validated.
    pub kind: IdentifierKind,
    /// The value as given.
    pub value: String,
    /// The rule it broke.
    pub rule: Rule,
    /// What was expected, in words (for a check character: the character in
    /// single quotes, e.g. `'3'`).
    pub expected: String,
    /// What was found instead, in words, where that adds anything (for a
    /// check character: the character in single quotes).
    pub found: Option<String>,
}

impl IdentifierError {
    /// A new error without a `found` part.
    pub fn new(
        kind: IdentifierKind,
        value: impl Into<String>,
        rule: Rule,
        expected: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            value: value.into(),
            rule,
            expected: expected.into(),
            found: None,
        }
    }

    /// Adds what was found instead.
    #[must_use]
    pub fn with_found(mut self, found: impl Into<String>) -> Self {
        self.found = Some(found.into());
        self
    }
}

struct FoundSuffix<'a>(Option<&'a str>);

impl fmt::Display for FoundSuffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(found) => write!(f, ", found {found}"),
            None => Ok(()),
        }
    }
}

/// Where in a catalogue file a problem is: the entry's position and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryLocation {
    /// 1-based position of the `[[chemicals]]` entry in the file.
    pub index: usize,
    /// 1-based line of the offending value, where known.
    pub line: Option<usize>,
    /// The entry's Chinese name, where given.
    pub name_zh: String,
}

impl fmt::Display for EntryLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "chemicals entry {}", self.index)?;
        if !self.name_zh.is_empty() {
            write!(f, " ({})", self.name_zh)?;
        }
        if let Some(line) = self.line {
            write!(f, " at line {line}")?;
        }
        Ok(())
    }
}

/// Loading a chemical catalogue failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// The file could not be read.
    #[error("catalogue {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not have the catalogue's shape.
    #[error("catalogue{}: {source}", PathSuffix(path.as_ref()))]
    Toml {
        /// The file, when loaded from one.
        path: Option<PathBuf>,
        /// The parse error (its message names line and column).
        source: Box<toml::de::Error>,
    },
    /// A top-level field is missing or empty.
    #[error("catalogue: {field} must not be empty")]
    EmptyField {
        /// `version`, `source` or a list's display name.
        field: String,
    },
    /// A CAS or UN number failed validation.
    #[error("{at}: {source}")]
    Identifier {
        /// The entry.
        at: EntryLocation,
        /// Why the identifier is invalid.
        source: Box<IdentifierError>,
    },
    /// An entry has an empty or invalid field other than an identifier.
    #[error("{at}: {field}: {message}")]
    InvalidField {
        /// The entry.
        at: EntryLocation,
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// An entry names a list that `[lists]` does not declare.
    #[error("{at}: list \"{list}\" is not declared in [lists] (declared: {declared})")]
    UndeclaredList {
        /// The entry.
        at: EntryLocation,
        /// The undeclared list name.
        list: String,
        /// The declared list names, comma separated.
        declared: String,
    },
    /// Two entries have the same CAS number.
    #[error(
        "{at}: duplicate CAS number {cas}, already used by chemicals entry {first_index} ({first_name_zh})"
    )]
    DuplicateCas {
        /// The later entry.
        at: EntryLocation,
        /// The CAS number.
        cas: String,
        /// 1-based position of the first entry with this CAS number.
        first_index: usize,
        /// Name of the first entry with this CAS number.
        first_name_zh: String,
    },
}

struct PathSuffix<'a>(Option<&'a PathBuf>);

impl fmt::Display for PathSuffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(path) => write!(f, " {}", path.display()),
            None => Ok(()),
        }
    }
}
