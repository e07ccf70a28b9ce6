//! Properties of the three checksums, and what each can and cannot detect.
//!
//! The checks are computed here independently of the library (from the
//! published algorithms) and used as the oracle.
//!
//! - USCC (GB 32100-2015) works mod 31, a prime, over 31 symbols. Writing
//!   the check character's weight as 1, a code is valid iff
//!   `Σ_{i=1..17} C_i·W_i + C_18 ≡ 0 (mod 31)` with `W_i = 3^(i-1) mod 31`.
//!   A substitution at position i changes the sum by `d·W_i` with
//!   `0 < |d| < 31`, never ≡ 0; an adjacent swap of different values a, b
//!   changes it by `(a-b)(W_i - W_(i+1))`, which is ≡ 0 only if the two
//!   weights are equal. For data neighbours `W_i - W_(i+1) = -2·W_i ≢ 0`;
//!   for the last data character and the check character (positions 17 and
//!   18) it is `28 - 1 = 27 ≢ 0`. So GB 32100 detects **every** single
//!   substitution and **every** adjacent transposition, including 17↔18, and
//!   the adjacent-swap property below needs no restriction. What it cannot
//!   detect: `W_1 = 3^0 = 1` equals the check character's weight, so swapping
//!   the first character with the check character goes unnoticed (the only
//!   pair of positions with equal weights, since 3 has order 30 mod 31).
//! - CAS and IMO work mod 10, which is not prime: a weight sharing a factor
//!   with 10 cannot see every change of its digit. The single-digit
//!   properties therefore assert exactly the algebraic condition
//!   `weight·delta ≢ 0 (mod 10)` — a change is rejected if and only if that
//!   holds — rather than "every change is rejected", which is false; the
//!   deterministic tests show real numbers that slip through.

use hazchem_domain::{CasNumber, ImoNumber, Rule, Uscc};
use proptest::prelude::*;

const CHARSET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// Effective weights of all 18 USCC positions (the check character has 1).
fn uscc_weights() -> [u32; 18] {
    let mut w = [1u32; 18];
    for i in 1..17 {
        w[i] = w[i - 1] * 3 % 31;
    }
    w[17] = 1;
    w
}

/// Oracle: the full code for 17 data values.
fn uscc_from_values(values: &[u32]) -> String {
    let w = uscc_weights();
    let sum: u32 = values.iter().zip(w).map(|(v, w)| v * w).sum();
    let check = (31 - sum % 31) % 31;
    values
        .iter()
        .chain(std::iter::once(&check))
        .map(|&v| char::from(CHARSET[v as usize]))
        .collect()
}

fn uscc_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(0u32..31, 17).prop_map(|values| uscc_from_values(&values))
}

/// CAS digits (first group, second group) and the oracle's check digit.
fn cas_check(data: &[u8]) -> u8 {
    let sum: u32 = data
        .iter()
        .rev()
        .zip(1u32..)
        .map(|(&d, w)| u32::from(d) * w)
        .sum();
    u8::try_from(sum % 10).unwrap()
}

fn cas_text(data: &[u8], first_len: usize) -> String {
    let digits: String = data.iter().map(|d| char::from(b'0' + d)).collect();
    format!(
        "{}-{}-{}",
        &digits[..first_len],
        &digits[first_len..],
        cas_check(data)
    )
}

/// (data digits, length of the first group); first digit non-zero.
fn cas_strategy() -> impl Strategy<Value = (Vec<u8>, usize)> {
    (2usize..=7).prop_flat_map(|first_len| {
        (
            1u8..=9,
            prop::collection::vec(0u8..=9, first_len - 1 + 2),
            Just(first_len),
        )
            .prop_map(|(lead, rest, first_len)| {
                let mut data = vec![lead];
                data.extend(rest);
                (data, first_len)
            })
    })
}

const IMO_WEIGHTS: [u32; 6] = [7, 6, 5, 4, 3, 2];

fn imo_text(data: &[u8]) -> String {
    let sum: u32 = data
        .iter()
        .zip(IMO_WEIGHTS)
        .map(|(&d, w)| u32::from(d) * w)
        .sum();
    let mut s: String = data.iter().map(|d| char::from(b'0' + d)).collect();
    s.push(char::from(b'0' + u8::try_from(sum % 10).unwrap()));
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn generated_uscc_parses_and_matches_with_check(code in uscc_strategy()) {
        let parsed = Uscc::parse(&code);
        prop_assert!(parsed.is_ok(), "{code}: {parsed:?}");
        let rebuilt = Uscc::with_check(&code[..17]).unwrap();
        prop_assert_eq!(rebuilt.as_str(), code.as_str());
    }

    #[test]
    fn uscc_single_substitution_is_rejected(
        code in uscc_strategy(),
        pos in 0usize..18,
        replacement in 0usize..31,
    ) {
        let mut bytes = code.clone().into_bytes();
        prop_assume!(bytes[pos] != CHARSET[replacement]);
        bytes[pos] = CHARSET[replacement];
        let changed = String::from_utf8(bytes).unwrap();
        let err = Uscc::parse(&changed).expect_err("a substitution must be rejected");
        prop_assert_eq!(err.rule, Rule::CheckCharacter, "{} -> {}: {}", code, changed, err);
    }

    /// Every adjacent swap, positions 1↔2 up to 17↔18 (see the module
    /// comment for why 17↔18 is covered by GB 32100 as well).
    #[test]
    fn uscc_adjacent_swap_is_rejected(code in uscc_strategy(), pos in 0usize..17) {
        let mut bytes = code.clone().into_bytes();
        prop_assume!(bytes[pos] != bytes[pos + 1]);
        bytes.swap(pos, pos + 1);
        let changed = String::from_utf8(bytes).unwrap();
        let err = Uscc::parse(&changed).expect_err("an adjacent swap must be rejected");
        prop_assert_eq!(err.rule, Rule::CheckCharacter, "{} -> {}: {}", code, changed, err);
    }

    #[test]
    fn uscc_swap_of_first_and_check_character_is_not_detected(code in uscc_strategy()) {
        let mut bytes = code.into_bytes();
        bytes.swap(0, 17);
        let swapped = String::from_utf8(bytes).unwrap();
        prop_assert!(Uscc::parse(&swapped).is_ok(), "{}", swapped);
    }

    #[test]
    fn generated_cas_parses((data, first_len) in cas_strategy()) {
        let cas = cas_text(&data, first_len);
        prop_assert!(CasNumber::parse(&cas).is_ok(), "{}", cas);
    }

    /// Changing one digit is rejected exactly when the checksum can see it:
    /// always for the check digit, and for a data digit with weight k (its
    /// position from the right, 1-based) when k·delta ≢ 0 (mod 10).
    #[test]
    fn cas_single_digit_change_detected_iff_checksum_can_see_it(
        (data, first_len) in cas_strategy(),
        pos_seed in any::<prop::sample::Index>(),
        new_digit in 0u8..=9,
    ) {
        let cas = cas_text(&data, first_len);
        let digit_positions: Vec<usize> = cas
            .char_indices()
            .filter(|(_, c)| c.is_ascii_digit())
            .map(|(i, _)| i)
            .collect();
        let which = pos_seed.index(digit_positions.len());
        let at = digit_positions[which];
        let old = cas.as_bytes()[at] - b'0';
        prop_assume!(old != new_digit);
        let mut bytes = cas.clone().into_bytes();
        bytes[at] = b'0' + new_digit;
        let changed = String::from_utf8(bytes).unwrap();
        let result = CasNumber::parse(&changed);
        if which == digit_positions.len() - 1 {
            prop_assert_eq!(result.unwrap_err().rule, Rule::CheckCharacter);
        } else if which == 0 && new_digit == 0 {
            prop_assert_eq!(result.unwrap_err().rule, Rule::Format);
        } else {
            let weight = u32::try_from(data.len() - which).unwrap();
            let delta = u32::from(new_digit.abs_diff(old));
            let visible = !(weight * delta).is_multiple_of(10);
            match result {
                Ok(_) => prop_assert!(!visible, "{} -> {} accepted", cas, changed),
                Err(e) => {
                    prop_assert!(visible, "{} -> {} rejected: {}", cas, changed, e);
                    prop_assert_eq!(e.rule, Rule::CheckCharacter);
                }
            }
        }
    }

    /// Swapping two different neighbouring data digits (across a hyphen
    /// too) is always detected: neighbouring weights differ by 1.
    #[test]
    fn cas_adjacent_data_digit_swap_is_rejected(
        (data, first_len) in cas_strategy(),
        pos_seed in any::<prop::sample::Index>(),
    ) {
        let pos = pos_seed.index(data.len() - 1);
        prop_assume!(data[pos] != data[pos + 1]);
        let mut swapped = data.clone();
        swapped.swap(pos, pos + 1);
        let digits: String = swapped.iter().map(|d| char::from(b'0' + d)).collect();
        let changed = format!(
            "{}-{}-{}",
            &digits[..first_len],
            &digits[first_len..],
            cas_check(&data)
        );
        let err = CasNumber::parse(&changed).expect_err("an adjacent swap must be rejected");
        let expected = if swapped[0] == 0 { Rule::Format } else { Rule::CheckCharacter };
        prop_assert_eq!(err.rule, expected, "{}", changed);
    }

    #[test]
    fn generated_imo_parses(data in prop::collection::vec(0u8..=9, 6)) {
        let imo = imo_text(&data);
        prop_assert!(ImoNumber::parse(&imo).is_ok(), "{}", imo);
    }

    /// As for CAS: rejected exactly when weight·delta ≢ 0 (mod 10), and
    /// always for the check digit.
    #[test]
    fn imo_single_digit_change_detected_iff_checksum_can_see_it(
        data in prop::collection::vec(0u8..=9, 6),
        pos in 0usize..7,
        new_digit in 0u8..=9,
    ) {
        let imo = imo_text(&data);
        let old = imo.as_bytes()[pos] - b'0';
        prop_assume!(old != new_digit);
        let mut bytes = imo.clone().into_bytes();
        bytes[pos] = b'0' + new_digit;
        let changed = String::from_utf8(bytes).unwrap();
        let result = ImoNumber::parse(&changed);
        let visible =
            pos == 6 || !(IMO_WEIGHTS[pos] * u32::from(new_digit.abs_diff(old))).is_multiple_of(10);
        match result {
            Ok(_) => prop_assert!(!visible, "{} -> {} accepted", imo, changed),
            Err(e) => {
                prop_assert!(visible, "{} -> {} rejected: {}", imo, changed, e);
                prop_assert_eq!(e.rule, Rule::CheckCharacter);
            }
        }
    }

    /// Adjacent swaps among the six data digits: weights differ by 1.
    #[test]
    fn imo_adjacent_data_digit_swap_is_rejected(
        data in prop::collection::vec(0u8..=9, 6),
        pos in 0usize..5,
    ) {
        prop_assume!(data[pos] != data[pos + 1]);
        let imo = imo_text(&data);
        let mut bytes = imo.into_bytes();
        bytes.swap(pos, pos + 1);
        let changed = String::from_utf8(bytes).unwrap();
        prop_assert_eq!(ImoNumber::parse(&changed).unwrap_err().rule, Rule::CheckCharacter);
    }
}

/// Exhaustive proof of the claims in the module comment about USCC weights.
#[test]
fn uscc_only_positions_1_and_18_share_a_weight() {
    let w = uscc_weights();
    let mut equal_pairs = Vec::new();
    for i in 0..18 {
        for j in i + 1..18 {
            if w[i] == w[j] {
                equal_pairs.push((i + 1, j + 1));
            }
        }
    }
    assert_eq!(equal_pairs, [(1, 18)]);
    // In particular all adjacent weights differ, 17↔18 included (28 vs 1).
    assert!(w.windows(2).all(|p| p[0] != p[1]));
    assert_eq!((w[16], w[17]), (28, 1));
}

/// Exhaustive over every pair of values (a, b) at positions 17 and 18: with
/// a ≠ b, the swapped code is always rejected (the sum changes by 27·(b-a)).
#[test]
fn uscc_swap_of_positions_17_and_18_is_always_detected() {
    let mut checked = 0;
    for first in 0..31 {
        for c17 in 0..31 {
            let mut values = vec![first, 1, 3, 5, 0, 1, 0, 0, 22, 0, 0, 0, 1, 0, 0, 29];
            values.push(c17);
            let code = uscc_from_values(&values);
            assert!(Uscc::parse(&code).is_ok(), "{code}");
            let mut bytes = code.clone().into_bytes();
            if bytes[16] == bytes[17] {
                continue;
            }
            bytes.swap(16, 17);
            let swapped = String::from_utf8(bytes).unwrap();
            let err = Uscc::parse(&swapped).unwrap_err();
            assert_eq!(err.rule, Rule::CheckCharacter, "{code} -> {swapped}");
            checked += 1;
        }
    }
    // Varying the first character (weight 1) moves the check character
    // through all 31 values, so every (a, b) pair with a ≠ b is covered.
    assert_eq!(checked, 31 * 30);
}

/// GB 32100 cannot detect a swap of the first character and the check
/// character: both have weight 1.
#[test]
fn uscc_first_and_check_character_swap_goes_undetected() {
    let code = Uscc::parse("91350100M000100Y43").unwrap();
    assert_eq!(code.as_str(), "91350100M000100Y43");
    let swapped = "31350100M000100Y49";
    assert!(Uscc::parse(swapped).is_ok());
}

/// CAS weights 2, 4, 6, 8 miss a change by 5, weight 5 misses even changes.
#[test]
fn cas_check_digit_misses_some_substitutions() {
    // Water, 7732-18-5: digits right to left 8,1,2,3,7,7 with weights 1..6.
    assert!(CasNumber::parse("7732-18-5").is_ok());
    // '1' has weight 2: 1 → 6 changes the sum by 10.
    assert!(CasNumber::parse("7732-68-5").is_ok());
    // The second '7' has weight 5: 7 → 9 changes the sum by 10.
    assert!(CasNumber::parse("7932-18-5").is_ok());
    // '8' has weight 1 and '2' weight 3: every change is seen.
    for d in 0..=9 {
        if d != 8 {
            assert!(CasNumber::parse(&format!("7732-1{d}-5")).is_err());
        }
        if d != 2 {
            assert!(CasNumber::parse(&format!("773{d}-18-5")).is_err());
        }
    }
}

/// IMO weight 2 (digit 6) misses a change by 5.
#[test]
fn imo_check_digit_misses_some_substitutions() {
    assert!(ImoNumber::parse("9074729").is_ok());
    assert!(ImoNumber::parse("9074779").is_ok());
    // Weight 5 (digit 3) misses an even change: 7 → 9.
    assert!(ImoNumber::parse("9094729").is_ok());
}
