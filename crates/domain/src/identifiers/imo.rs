//! IMO ship identification numbers.

use crate::error::{IdentifierError, IdentifierKind, Rule};
use crate::identifiers::{characters, string_identifier};

/// An IMO ship identification number: exactly seven ASCII digits, no `IMO`
/// prefix. Digits 1-6 times 7, 6, 5, 4, 3, 2, summed, mod 10 equal digit 7.
///
/// Like the CAS check, this one is weak: weights 6, 4 and 2 miss a change of
/// a digit by 5, and weight 5 misses any even change.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImoNumber(String);

string_identifier!(ImoNumber);

impl ImoNumber {
    /// Weights of digits 1-6.
    pub const WEIGHTS: [u32; 6] = [7, 6, 5, 4, 3, 2];

    /// Validates length, digits and check digit.
    ///
    /// # Errors
    /// An [`IdentifierError`] of kind [`IdentifierKind::Imo`] with rule
    /// [`Rule::Length`], [`Rule::Charset`] or [`Rule::CheckCharacter`].
    pub fn parse(s: &str) -> Result<Self, IdentifierError> {
        let n = s.chars().count();
        if n != 7 {
            return Err(error(s, Rule::Length, "7 digits").with_found(characters(n)));
        }
        if let Some(c) = s.chars().find(|c| !c.is_ascii_digit()) {
            return Err(error(s, Rule::Charset, "digits only").with_found(format!("'{c}'")));
        }
        let digits: Vec<u32> = s.bytes().map(|b| u32::from(b - b'0')).collect();
        let expected = digits[..6]
            .iter()
            .zip(Self::WEIGHTS)
            .map(|(d, w)| d * w)
            .sum::<u32>()
            % 10;
        if digits[6] != expected {
            return Err(error(s, Rule::CheckCharacter, format!("'{expected}'"))
                .with_found(format!("'{}'", digits[6])));
        }
        Ok(Self(s.to_owned()))
    }
}

fn error(value: &str, rule: Rule, expected: impl Into<String>) -> IdentifierError {
    IdentifierError::new(IdentifierKind::Imo, value, rule, expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict() {
        assert!(ImoNumber::parse("9074729").is_ok());
        assert_eq!(
            ImoNumber::parse("IMO9074729").unwrap_err().rule,
            Rule::Length
        );
        assert_eq!(ImoNumber::parse("907472").unwrap_err().rule, Rule::Length);
        assert_eq!(ImoNumber::parse("90747 9").unwrap_err().rule, Rule::Charset);
        let e = ImoNumber::parse("9074728").unwrap_err();
        assert_eq!(
            e.to_string(),
            "IMO number \"9074728\": wrong check character: expected '9', found '8'"
        );
    }
}
