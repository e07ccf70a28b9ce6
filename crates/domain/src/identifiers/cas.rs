//! CAS registry numbers.

use crate::error::{IdentifierError, IdentifierKind, Rule};
use crate::identifiers::string_identifier;

/// A CAS registry number such as `7732-18-5`.
///
/// Shape `^\d{2,7}-\d{2}-\d$` (ASCII digits only, and, as CAS assigns them,
/// no leading zero in the first group). The last digit is a check digit: the
/// other digits, taken right to left, are multiplied by 1, 2, 3, … and the
/// sum mod 10 must equal it.
///
/// The check is weak: weights that share a factor with 10 (2, 4, 5, 6, 8 and
/// 10 ≡ 0) let some single-digit substitutions through, e.g. `7732-68-5`
/// passes like `7732-18-5`. A number passing the check is well formed, not
/// known to exist: look it up in the [`Catalogue`](crate::Catalogue).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CasNumber(String);

string_identifier!(CasNumber);

const SHAPE: &str = "digits-digits-digit like 7732-18-5";

impl CasNumber {
    /// Validates a CAS number: characters, shape, check digit.
    ///
    /// # Errors
    /// An [`IdentifierError`] of kind [`IdentifierKind::Cas`] with rule
    /// [`Rule::Charset`] (anything but ASCII digits and hyphens),
    /// [`Rule::Format`] (group count or sizes, leading zero) or
    /// [`Rule::CheckCharacter`].
    pub fn parse(s: &str) -> Result<Self, IdentifierError> {
        if let Some(c) = s.chars().find(|c| !c.is_ascii_digit() && *c != '-') {
            return Err(
                error(s, Rule::Charset, "digits and hyphens only").with_found(format!("'{c}'"))
            );
        }
        let groups: Vec<&str> = s.split('-').collect();
        let [first, second, check] = groups.as_slice() else {
            return Err(error(s, Rule::Format, SHAPE));
        };
        if !(2..=7).contains(&first.len()) || second.len() != 2 || check.len() != 1 {
            return Err(error(
                s,
                Rule::Format,
                "2 to 7 digits, 2 digits and 1 check digit like 7732-18-5",
            )
            .with_found(format!(
                "groups of {}, {} and {} digits",
                first.len(),
                second.len(),
                check.len()
            )));
        }
        if first.starts_with('0') {
            return Err(error(s, Rule::Format, "no leading zero in the first group"));
        }
        let expected = check_digit(first, second);
        let found = check.as_bytes()[0] - b'0';
        if found != expected {
            return Err(error(s, Rule::CheckCharacter, format!("'{expected}'"))
                .with_found(format!("'{found}'")));
        }
        Ok(Self(s.to_owned()))
    }

    /// The check digit (the last digit).
    #[must_use]
    pub fn check_digit(&self) -> u8 {
        self.0.as_bytes()[self.0.len() - 1] - b'0'
    }
}

fn error(value: &str, rule: Rule, expected: impl Into<String>) -> IdentifierError {
    IdentifierError::new(IdentifierKind::Cas, value, rule, expected)
}

/// Σ digit·weight mod 10, weights 1, 2, 3, … from the right. Both groups hold
/// ASCII digits only.
fn check_digit(first: &str, second: &str) -> u8 {
    let sum: u32 = first
        .bytes()
        .chain(second.bytes())
        .rev()
        .zip(1u32..)
        .map(|(b, weight)| u32::from(b - b'0') * weight)
        .sum();
    u8::try_from(sum % 10).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_for_missing_hyphens() {
        let e = CasNumber::parse("7664418").unwrap_err();
        assert_eq!(e.rule, Rule::Format);
        assert_eq!(
            e.to_string(),
            "CAS number \"7664418\": format: expected digits-digits-digit like 7732-18-5"
        );
    }

    #[test]
    fn rejects_other_characters_and_leading_zero() {
        assert_eq!(
            CasNumber::parse("7732-18-5 ").unwrap_err().rule,
            Rule::Charset
        );
        assert_eq!(
            CasNumber::parse("７７３２-18-5").unwrap_err().rule,
            Rule::Charset
        );
        assert_eq!(
            CasNumber::parse("07732-18-5").unwrap_err().rule,
            Rule::Format
        );
        assert_eq!(
            CasNumber::parse("12345678-18-5").unwrap_err().rule,
            Rule::Format
        );
        assert_eq!(
            CasNumber::parse("7732--18-5").unwrap_err().rule,
            Rule::Format
        );
        assert_eq!(CasNumber::parse("").unwrap_err().rule, Rule::Format);
    }

    #[test]
    fn check_digit_accessor() {
        assert_eq!(CasNumber::parse("7732-18-5").unwrap().check_digit(), 5);
        let e = CasNumber::parse("7664-41-8").unwrap_err();
        assert_eq!(
            (e.expected.as_str(), e.found.as_deref()),
            ("'7'", Some("'8'"))
        );
    }

    #[test]
    fn longest_form() {
        // 10 data digits would give weight 10 ≡ 0; the longest allowed has 9.
        let cas = "1234567-89-";
        let digits: Vec<u32> = cas.chars().filter_map(|c| c.to_digit(10)).collect();
        let sum: u32 = digits.iter().rev().zip(1..).map(|(d, w)| d * w).sum();
        let full = format!("{cas}{}", sum % 10);
        assert!(CasNumber::parse(&full).is_ok(), "{full}");
    }
}
