//! The hazardous-chemicals catalogue, loaded from a versioned TOML file.
//!
//! Which regulatory lists exist and which chemicals are on them is data,
//! declared in the file's `[lists]` table; nothing here knows any list by
//! name. The format:
//!
//! ```toml
//! version = "sample-2026.1"
//! source = "where the data comes from"
//! [lists]
//! example_list = "示例名单"           # key = display name
//! [[chemicals]]
//! cas = "7664-41-7"
//! un = "UN1005"              # optional
//! name_zh = "氨"
//! name_en = "ammonia"        # optional
//! transport_class = "2.3"    # optional: UN class or division
//! lists = ["example_list"]  # optional; each must be declared in [lists]
//! ```
//!
//! Loading validates every CAS and UN number, rejects an entry naming an
//! undeclared list, a duplicate CAS number, an unknown field, and empty
//! names, with an error naming the entry and line. Several entries may share
//! a UN number (collective "n.o.s." entries do).

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::{CatalogueError, EntryLocation};
use crate::identifiers::{CasNumber, UnNumber};

/// The TOML text of the sample catalogue shipped with this crate
/// (`data/catalogue-sample.toml`): 40 common hazardous chemicals for tests
/// and the simulator, not the official catalogue.
pub const SAMPLE_CATALOGUE_TOML: &str = include_str!("../data/catalogue-sample.toml");

/// UN dangerous-goods classes and divisions accepted as `transport_class`.
const TRANSPORT_CLASSES: [&str; 25] = [
    "1", "1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "2", "2.1", "2.2", "2.3", "3", "4", "4.1",
    "4.2", "4.3", "5", "5.1", "5.2", "6", "6.1", "6.2", "7", "8", "9",
];

/// One chemical of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chemical {
    cas: CasNumber,
    un: Option<UnNumber>,
    name_zh: String,
    name_en: Option<String>,
    transport_class: Option<String>,
    lists: Vec<String>,
}

impl Chemical {
    /// CAS number (unique within the catalogue).
    #[must_use]
    pub fn cas(&self) -> &CasNumber {
        &self.cas
    }

    /// UN number, if the entry gives one.
    #[must_use]
    pub fn un(&self) -> Option<&UnNumber> {
        self.un.as_ref()
    }

    /// Chinese name (品名).
    #[must_use]
    pub fn name_zh(&self) -> &str {
        &self.name_zh
    }

    /// English name, if given.
    #[must_use]
    pub fn name_en(&self) -> Option<&str> {
        self.name_en.as_deref()
    }

    /// UN transport class or division, e.g. `"2.3"`, if given.
    #[must_use]
    pub fn transport_class(&self) -> Option<&str> {
        self.transport_class.as_deref()
    }

    /// Keys of the lists this chemical is on, as written in the file.
    #[must_use]
    pub fn lists(&self) -> &[String] {
        &self.lists
    }

    /// Whether this chemical is on the list with this key.
    #[must_use]
    pub fn is_on(&self, list: &str) -> bool {
        self.lists.iter().any(|l| l == list)
    }
}

/// A loaded, validated chemical catalogue.
#[derive(Debug, Clone)]
pub struct Catalogue {
    version: String,
    source: String,
    lists: BTreeMap<String, String>,
    chemicals: Vec<Chemical>,
    by_cas: HashMap<CasNumber, usize>,
    by_un: HashMap<UnNumber, Vec<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalogue {
    version: String,
    source: String,
    lists: BTreeMap<String, String>,
    #[serde(default)]
    chemicals: Vec<RawChemical>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChemical {
    cas: Spanned<String>,
    un: Option<Spanned<String>>,
    name_zh: Spanned<String>,
    name_en: Option<Spanned<String>>,
    transport_class: Option<Spanned<String>>,
    #[serde(default)]
    lists: Vec<Spanned<String>>,
}

impl Catalogue {
    /// Parses and validates a catalogue from TOML text.
    ///
    /// # Errors
    /// [`CatalogueError::Toml`] for bad TOML, a missing or unknown field;
    /// [`CatalogueError::EmptyField`], [`CatalogueError::Identifier`],
    /// [`CatalogueError::InvalidField`], [`CatalogueError::UndeclaredList`]
    /// or [`CatalogueError::DuplicateCas`] for invalid content. Errors about
    /// an entry name its position, name and line.
    pub fn from_toml_str(text: &str) -> Result<Self, CatalogueError> {
        let raw: RawCatalogue = toml::from_str(text).map_err(|e| CatalogueError::Toml {
            path: None,
            source: Box::new(e),
        })?;
        Self::from_raw(raw, text)
    }

    /// Reads, parses and validates a catalogue file.
    ///
    /// # Errors
    /// [`CatalogueError::Io`] if the file cannot be read; otherwise as
    /// [`Catalogue::from_toml_str`], with the path in TOML errors.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, CatalogueError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| CatalogueError::Io {
            path: path.to_owned(),
            source,
        })?;
        let raw: RawCatalogue = toml::from_str(&text).map_err(|e| CatalogueError::Toml {
            path: Some(path.to_owned()),
            source: Box::new(e),
        })?;
        Self::from_raw(raw, &text)
    }

    /// The sample catalogue shipped with this crate
    /// ([`SAMPLE_CATALOGUE_TOML`]).
    ///
    /// # Panics
    /// Never in practice: the sample is validated by this crate's tests.
    #[must_use]
    pub fn sample() -> Self {
        Self::from_toml_str(SAMPLE_CATALOGUE_TOML).expect("the bundled sample catalogue is valid")
    }

    fn from_raw(raw: RawCatalogue, text: &str) -> Result<Self, CatalogueError> {
        for (field, value) in [("version", &raw.version), ("source", &raw.source)] {
            if value.trim().is_empty() {
                return Err(CatalogueError::EmptyField {
                    field: field.to_owned(),
                });
            }
        }
        for (key, name) in &raw.lists {
            if key.trim().is_empty() || name.trim().is_empty() {
                return Err(CatalogueError::EmptyField {
                    field: format!("[lists] entry \"{key}\""),
                });
            }
        }
        let declared = || raw.lists.keys().cloned().collect::<Vec<_>>().join(", ");

        let mut chemicals = Vec::with_capacity(raw.chemicals.len());
        let mut by_cas: HashMap<CasNumber, usize> = HashMap::new();
        let mut by_un: HashMap<UnNumber, Vec<usize>> = HashMap::new();
        for (i, entry) in raw.chemicals.into_iter().enumerate() {
            let name_zh = entry.name_zh.get_ref().trim().to_owned();
            let at = |span: Range<usize>| EntryLocation {
                index: i + 1,
                line: Some(line_of(text, span.start)),
                name_zh: name_zh.clone(),
            };
            if name_zh.is_empty() {
                return Err(CatalogueError::InvalidField {
                    at: at(entry.name_zh.span()),
                    field: "name_zh",
                    message: "must not be empty".to_owned(),
                });
            }
            let cas = CasNumber::parse(entry.cas.get_ref()).map_err(|source| {
                CatalogueError::Identifier {
                    at: at(entry.cas.span()),
                    source: Box::new(source),
                }
            })?;
            let un = entry
                .un
                .as_ref()
                .map(|un| {
                    UnNumber::parse(un.get_ref()).map_err(|source| CatalogueError::Identifier {
                        at: at(un.span()),
                        source: Box::new(source),
                    })
                })
                .transpose()?;
            let name_en = match &entry.name_en {
                Some(n) if n.get_ref().trim().is_empty() => {
                    return Err(CatalogueError::InvalidField {
                        at: at(n.span()),
                        field: "name_en",
                        message: "must not be empty when given".to_owned(),
                    });
                }
                Some(n) => Some(n.get_ref().trim().to_owned()),
                None => None,
            };
            let transport_class = match &entry.transport_class {
                Some(c) if !TRANSPORT_CLASSES.contains(&c.get_ref().as_str()) => {
                    return Err(CatalogueError::InvalidField {
                        at: at(c.span()),
                        field: "transport_class",
                        message: format!(
                            "\"{}\" is not a UN class or division such as 3 or 2.3",
                            c.get_ref()
                        ),
                    });
                }
                Some(c) => Some(c.get_ref().clone()),
                None => None,
            };
            let mut lists: Vec<String> = Vec::with_capacity(entry.lists.len());
            for list in &entry.lists {
                let key = list.get_ref();
                if !raw.lists.contains_key(key) {
                    return Err(CatalogueError::UndeclaredList {
                        at: at(list.span()),
                        list: key.clone(),
                        declared: declared(),
                    });
                }
                if lists.contains(key) {
                    return Err(CatalogueError::InvalidField {
                        at: at(list.span()),
                        field: "lists",
                        message: format!("list \"{key}\" named twice"),
                    });
                }
                lists.push(key.clone());
            }
            if let Some(&first) = by_cas.get(&cas) {
                let first: &Chemical = &chemicals[first];
                return Err(CatalogueError::DuplicateCas {
                    at: at(entry.cas.span()),
                    cas: cas.to_string(),
                    first_index: by_cas[&cas] + 1,
                    first_name_zh: first.name_zh.clone(),
                });
            }
            by_cas.insert(cas.clone(), i);
            if let Some(un) = &un {
                by_un.entry(un.clone()).or_default().push(i);
            }
            chemicals.push(Chemical {
                cas,
                un,
                name_zh,
                name_en,
                transport_class,
                lists,
            });
        }
        Ok(Self {
            version: raw.version,
            source: raw.source,
            lists: raw.lists,
            chemicals,
            by_cas,
            by_un,
        })
    }

    /// The catalogue's version string, e.g. `"sample-2026.1"`.
    #[must_use]
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Where the data comes from.
    #[must_use]
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The declared lists: key (as used in entries) → display name.
    #[must_use]
    pub fn lists(&self) -> &BTreeMap<String, String> {
        &self.lists
    }

    /// The display name of a declared list.
    #[must_use]
    pub fn list_name(&self, list: &str) -> Option<&str> {
        self.lists.get(list).map(String::as_str)
    }

    /// All chemicals, in file order.
    #[must_use]
    pub fn chemicals(&self) -> &[Chemical] {
        &self.chemicals
    }

    /// Number of chemicals.
    #[must_use]
    pub fn len(&self) -> usize {
        self.chemicals.len()
    }

    /// Whether the catalogue has no chemicals.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.chemicals.is_empty()
    }

    /// The chemical with this CAS number.
    #[must_use]
    pub fn by_cas(&self, cas: &CasNumber) -> Option<&Chemical> {
        self.by_cas.get(cas).map(|&i| &self.chemicals[i])
    }

    /// The chemicals with this UN number, in file order (several entries may
    /// share one; none if the number is not in the catalogue).
    pub fn by_un<'a>(&'a self, un: &UnNumber) -> impl Iterator<Item = &'a Chemical> + use<'a> {
        let indices: &'a [usize] = self.by_un.get(un).map_or(&[], Vec::as_slice);
        indices.iter().map(|&i| &self.chemicals[i])
    }

    /// Whether the chemical with this CAS number is on the list with this
    /// key. `false` if the chemical is not in the catalogue or the list is
    /// not declared (see [`Catalogue::list_name`] to tell those apart).
    #[must_use]
    pub fn is_listed(&self, cas: &CasNumber, list: &str) -> bool {
        self.by_cas(cas).is_some_and(|c| c.is_on(list))
    }

    /// The chemicals on the list with this key, in file order.
    pub fn members<'a>(&'a self, list: &'a str) -> impl Iterator<Item = &'a Chemical> + 'a {
        self.chemicals.iter().filter(move |c| c.is_on(list))
    }
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
