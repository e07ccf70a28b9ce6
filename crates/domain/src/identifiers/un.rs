//! UN numbers of the dangerous goods list.

use crate::error::{IdentifierError, IdentifierKind, Rule};
use crate::identifiers::string_identifier;

/// A UN number such as `UN1005`: `UN` and four ASCII digits.
///
/// There is no checksum; whether the number is on the dangerous goods list in
/// use is the [`Catalogue`](crate::Catalogue)'s business.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UnNumber(String);

string_identifier!(UnNumber);

impl UnNumber {
    /// Validates the shape `^UN\d{4}$`.
    ///
    /// # Errors
    /// An [`IdentifierError`] of kind [`IdentifierKind::Un`] with rule
    /// [`Rule::Format`].
    pub fn parse(s: &str) -> Result<Self, IdentifierError> {
        let ok = s
            .strip_prefix("UN")
            .is_some_and(|digits| digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_digit()));
        if !ok {
            return Err(IdentifierError::new(
                IdentifierKind::Un,
                s,
                Rule::Format,
                "UN followed by 4 digits like UN1005",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The four-digit number, e.g. 1005 for `UN1005`.
    #[must_use]
    pub fn number(&self) -> u16 {
        self.0[2..].parse().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape() {
        assert_eq!(UnNumber::parse("UN1005").unwrap().number(), 1005);
        assert_eq!(UnNumber::parse("UN0004").unwrap().number(), 4);
        for bad in [
            "",
            "UN",
            "un1005",
            "UN10055",
            "UN10a5",
            "UN１００５",
            " UN1005",
        ] {
            let e = UnNumber::parse(bad).unwrap_err();
            assert_eq!(
                (e.kind, e.rule),
                (IdentifierKind::Un, Rule::Format),
                "{bad}"
            );
        }
        assert_eq!(
            UnNumber::parse("1005").unwrap_err().to_string(),
            "UN number \"1005\": format: expected UN followed by 4 digits like UN1005"
        );
    }
}
