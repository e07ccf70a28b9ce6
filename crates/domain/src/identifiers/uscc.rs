//! 统一社会信用代码 (unified social credit code), GB 32100-2015.

use crate::error::{IdentifierError, IdentifierKind, Rule};
use crate::identifiers::{characters, string_identifier};

/// A unified social credit code (统一社会信用代码, GB 32100-2015).
///
/// 18 characters from `0-9` and `ABCDEFGHJKLMNPQRTUWXY` (no I, O, S, V, Z),
/// valued 0 to 30 in that order. The 18th is a check character: with weights
/// `W_i = 3^(i-1) mod 31` for the first 17, the check value is
/// `(31 - Σ C_i·W_i mod 31) mod 31`, so that `Σ C_i·W_i + C_18 ≡ 0 (mod 31)`.
///
/// Because 31 is prime and every weight (and the check character's implicit
/// weight 1) is non-zero mod 31, any single substitution is detected; because
/// neighbouring weights differ (`W_i - W_(i+1) ≢ 0`, including
/// `W_17 - 1 = 27` for the last data character and the check character), any
/// swap of two different adjacent characters is detected. Note that
/// `W_1 = 1` equals the check character's weight, so swapping the first
/// character with the check character is *not* detected.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uscc(String);

string_identifier!(Uscc);

impl Uscc {
    /// The 31 permitted characters, in value order (value 0 is `'0'`).
    pub const CHARSET: &'static str = "0123456789ABCDEFGHJKLMNPQRTUWXY";

    /// Weights `3^(i-1) mod 31` of the 17 data characters.
    pub const WEIGHTS: [u32; 17] = weights();

    /// Number of characters.
    pub const LEN: usize = 18;

    const EXPECTED_CHARSET: &'static str = "characters from 0-9 and ABCDEFGHJKLMNPQRTUWXY";

    /// Validates a code: length, character set, check character.
    ///
    /// # Errors
    /// An [`IdentifierError`] of kind [`IdentifierKind::Uscc`] with rule
    /// [`Rule::Length`], [`Rule::Charset`] (a data character outside the
    /// set) or [`Rule::CheckCharacter`] (the 18th character is not the one
    /// computed from the first 17, whether or not it is in the set).
    pub fn parse(s: &str) -> Result<Self, IdentifierError> {
        let chars: Vec<char> = s.chars().collect();
        if chars.len() != Self::LEN {
            return Err(error(s, Rule::Length, "18 characters").with_found(characters(chars.len())));
        }
        let expected = check_character(s, &chars[..17])?;
        let found = chars[17];
        if found != expected {
            return Err(error(s, Rule::CheckCharacter, format!("'{expected}'"))
                .with_found(format!("'{found}'")));
        }
        Ok(Self(s.to_owned()))
    }

    /// Builds a valid code from its first 17 characters by appending the
    /// computed check character.
    ///
    /// # Errors
    /// [`Rule::Length`] unless exactly 17 characters are given,
    /// [`Rule::Charset`] for a character outside the set.
    pub fn with_check(first17: &str) -> Result<Self, IdentifierError> {
        let chars: Vec<char> = first17.chars().collect();
        if chars.len() != Self::LEN - 1 {
            return Err(error(
                first17,
                Rule::Length,
                "17 characters (the code without its check character)",
            )
            .with_found(characters(chars.len())));
        }
        let check = check_character(first17, &chars)?;
        let mut code = first17.to_owned();
        code.push(check);
        Ok(Self(code))
    }

    /// The value 0..=30 of a character in [`Uscc::CHARSET`], if it is in it.
    #[must_use]
    pub fn char_value(c: char) -> Option<u32> {
        Self::CHARSET.find(c).and_then(|i| u32::try_from(i).ok())
    }

    /// The character 1: the registration authority (登记管理部门代码).
    #[must_use]
    pub fn registration_authority(&self) -> char {
        char::from(self.0.as_bytes()[0])
    }

    /// Characters 3-8: the administrative division code (登记管理机关行政区划码).
    #[must_use]
    pub fn region_code(&self) -> &str {
        &self.0[2..8]
    }

    /// Characters 9-17: the organisation code (主体标识码).
    #[must_use]
    pub fn organisation_code(&self) -> &str {
        &self.0[8..17]
    }

    /// The check character (character 18).
    #[must_use]
    pub fn check_char(&self) -> char {
        char::from(self.0.as_bytes()[17])
    }
}

const fn weights() -> [u32; 17] {
    let mut w = [0u32; 17];
    let mut power = 1u32;
    let mut i = 0;
    while i < 17 {
        w[i] = power;
        power = power * 3 % 31;
        i += 1;
    }
    w
}

fn error(value: &str, rule: Rule, expected: impl Into<String>) -> IdentifierError {
    IdentifierError::new(IdentifierKind::Uscc, value, rule, expected)
}

/// The check character for 17 data characters, checking the character set.
fn check_character(value: &str, data: &[char]) -> Result<char, IdentifierError> {
    let mut sum = 0u32;
    for (i, (&c, &w)) in data.iter().zip(Uscc::WEIGHTS.iter()).enumerate() {
        let Some(v) = Uscc::char_value(c) else {
            return Err(error(value, Rule::Charset, Uscc::EXPECTED_CHARSET)
                .with_found(format!("'{c}' at position {}", i + 1)));
        };
        sum += v * w;
    }
    let check = (31 - sum % 31) % 31;
    Ok(char::from(Uscc::CHARSET.as_bytes()[check as usize]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_the_published_ones() {
        assert_eq!(
            Uscc::WEIGHTS,
            [
                1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28
            ]
        );
    }

    #[test]
    fn with_check_appends_the_check_character() {
        let code = Uscc::with_check("91350100M000100Y4").unwrap();
        assert_eq!(code.as_str(), "91350100M000100Y43");
        assert_eq!(code.check_char(), '3');
        assert_eq!(code.region_code(), "350100");
        assert_eq!(code.organisation_code(), "M000100Y4");
        assert_eq!(code.registration_authority(), '9');
    }

    #[test]
    fn with_check_rejects_wrong_length_and_charset() {
        let e = Uscc::with_check("91350100M000100Y43").unwrap_err();
        assert_eq!(e.rule, Rule::Length);
        let e = Uscc::with_check("91350100M000100O4").unwrap_err();
        assert_eq!(e.rule, Rule::Charset);
        assert_eq!(e.found.as_deref(), Some("'O' at position 16"));
    }

    #[test]
    fn char_values_cover_the_charset() {
        for (i, c) in Uscc::CHARSET.chars().enumerate() {
            assert_eq!(Uscc::char_value(c), Some(u32::try_from(i).unwrap()));
        }
        for c in ['I', 'O', 'S', 'V', 'Z', 'a', '-', '苏'] {
            assert_eq!(Uscc::char_value(c), None);
        }
    }

    #[test]
    fn message_names_kind_rule_and_expectation() {
        let e = Uscc::parse("91350100M000100Y4Z").unwrap_err();
        assert_eq!(
            e.to_string(),
            "USCC \"91350100M000100Y4Z\": wrong check character: expected '3', found 'Z'"
        );
        let e = Uscc::parse("91350100M00").unwrap_err();
        assert_eq!(
            e.to_string(),
            "USCC \"91350100M00\": wrong length: expected 18 characters, found 11 characters"
        );
    }

    #[test]
    fn serde_validates() {
        let code: Uscc = serde_json::from_str("\"91350200776049653A\"").unwrap();
        assert_eq!(
            serde_json::to_string(&code).unwrap(),
            "\"91350200776049653A\""
        );
        let err = serde_json::from_str::<Uscc>("\"91350200776049653B\"").unwrap_err();
        assert!(err.to_string().contains("wrong check character"), "{err}");
    }
}
