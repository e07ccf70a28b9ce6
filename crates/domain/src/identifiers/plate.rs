//! Vehicle registration plates and plate colour codes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{IdentifierError, IdentifierKind, Rule};
use crate::identifiers::characters;

/// Plate colour codes as used in vehicle monitoring (JT/T 808): 1 blue,
/// 2 yellow, 3 black, 4 white, 5 green, 9 other, 93 yellow-green,
/// 94 gradient green. Serialised as the numeric code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PlateColour {
    /// 1 蓝色.
    Blue,
    /// 2 黄色; dangerous-goods tractors carry yellow plates.
    Yellow,
    /// 3 黑色.
    Black,
    /// 4 白色.
    White,
    /// 5 绿色 (new energy).
    Green,
    /// 9 其他.
    Other,
    /// 93 黄绿色 (new energy, large vehicles).
    YellowGreen,
    /// 94 渐变绿色 (new energy, small vehicles).
    GradientGreen,
}

impl PlateColour {
    /// Every colour, in code order.
    pub const ALL: [Self; 8] = [
        Self::Blue,
        Self::Yellow,
        Self::Black,
        Self::White,
        Self::Green,
        Self::Other,
        Self::YellowGreen,
        Self::GradientGreen,
    ];

    /// The colour with this code.
    ///
    /// # Errors
    /// An [`IdentifierError`] of kind [`IdentifierKind::PlateColour`] and
    /// rule [`Rule::Unknown`] listing the valid codes.
    pub fn from_code(code: u32) -> Result<Self, IdentifierError> {
        Self::ALL
            .into_iter()
            .find(|c| c.code() == code)
            .ok_or_else(|| {
                IdentifierError::new(
                    IdentifierKind::PlateColour,
                    code.to_string(),
                    Rule::Unknown,
                    "one of 1 blue, 2 yellow, 3 black, 4 white, 5 green, 9 other, \
                 93 yellow-green, 94 gradient green",
                )
            })
    }

    /// The numeric code.
    #[must_use]
    pub const fn code(self) -> u32 {
        match self {
            Self::Blue => 1,
            Self::Yellow => 2,
            Self::Black => 3,
            Self::White => 4,
            Self::Green => 5,
            Self::Other => 9,
            Self::YellowGreen => 93,
            Self::GradientGreen => 94,
        }
    }

    /// English name, e.g. `"yellow-green"`.
    #[must_use]
    pub const fn name_en(self) -> &'static str {
        match self {
            Self::Blue => "blue",
            Self::Yellow => "yellow",
            Self::Black => "black",
            Self::White => "white",
            Self::Green => "green",
            Self::Other => "other",
            Self::YellowGreen => "yellow-green",
            Self::GradientGreen => "gradient green",
        }
    }

    /// Chinese name, e.g. `"黄色"`.
    #[must_use]
    pub const fn name_zh(self) -> &'static str {
        match self {
            Self::Blue => "蓝色",
            Self::Yellow => "黄色",
            Self::Black => "黑色",
            Self::White => "白色",
            Self::Green => "绿色",
            Self::Other => "其他",
            Self::YellowGreen => "黄绿色",
            Self::GradientGreen => "渐变绿色",
        }
    }

    /// Whether plates of this colour are new-energy plates (5, 93, 94), which
    /// have six letters/digits after the issuing-authority letter.
    #[must_use]
    pub const fn is_new_energy(self) -> bool {
        matches!(self, Self::Green | Self::YellowGreen | Self::GradientGreen)
    }
}

impl fmt::Display for PlateColour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name_en())
    }
}

impl TryFrom<u32> for PlateColour {
    type Error = IdentifierError;

    fn try_from(code: u32) -> Result<Self, Self::Error> {
        Self::from_code(code)
    }
}

impl Serialize for PlateColour {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(self.code())
    }
}

impl<'de> Deserialize<'de> for PlateColour {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = u32::deserialize(deserializer)?;
        Self::from_code(code).map_err(serde::de::Error::custom)
    }
}

/// A vehicle registration plate together with its colour: in monitoring and
/// waybill data a vehicle is keyed by the pair (plate, colour code).
///
/// Accepted shapes (mainland civil plates; ASCII letters exclude I and O):
/// - province abbreviation + letter + 5 letters/digits, e.g. `苏F12345`;
/// - trailer: province + letter + 4 letters/digits + `挂`, e.g. `苏F1234挂`;
/// - new-energy colours (5, 93, 94): province + letter + 6 letters/digits.
///
/// [`Display`](fmt::Display) and [`FromStr`] use the compact form
/// `plate/colour-code`, e.g. `苏F12345/2`; serde uses a struct
/// `{"plate": "苏F12345", "colour": 2}`, validated on deserialize.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VehiclePlate {
    plate: String,
    colour: PlateColour,
}

impl VehiclePlate {
    /// The 31 mainland provincial-level abbreviations that start a plate.
    pub const PROVINCES: &'static str =
        "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼";

    /// The character that ends a trailer plate.
    pub const TRAILER_SUFFIX: char = '挂';

    /// Validates a plate for a colour code.
    ///
    /// # Errors
    /// For an unknown colour code, an [`IdentifierError`] of kind
    /// [`IdentifierKind::PlateColour`]; otherwise of kind
    /// [`IdentifierKind::VehiclePlate`] with rule [`Rule::Length`] or
    /// [`Rule::Charset`].
    pub fn parse(plate: &str, colour_code: u32) -> Result<Self, IdentifierError> {
        let colour = PlateColour::from_code(colour_code)?;
        Self::new(plate, colour)
    }

    /// Validates a plate for a colour.
    ///
    /// # Errors
    /// As [`VehiclePlate::parse`], less the colour-code error.
    pub fn new(plate: &str, colour: PlateColour) -> Result<Self, IdentifierError> {
        let chars: Vec<char> = plate.chars().collect();
        let err = |rule, expected: &str| {
            IdentifierError::new(IdentifierKind::VehiclePlate, plate, rule, expected)
        };
        let Some(&province) = chars.first() else {
            return Err(err(Rule::Length, shape(colour)).with_found("0 characters"));
        };
        if !Self::PROVINCES.contains(province) {
            return Err(err(
                Rule::Charset,
                "a provincial abbreviation (京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼) first",
            )
            .with_found(format!("'{province}'")));
        }
        let wanted = if colour.is_new_energy() { 8 } else { 7 };
        if chars.len() != wanted {
            return Err(err(Rule::Length, shape(colour)).with_found(characters(chars.len())));
        }
        if !is_plate_letter(chars[1]) {
            return Err(err(
                Rule::Charset,
                "a letter A-Z other than I and O after the province",
            )
            .with_found(format!("'{}'", chars[1])));
        }
        let serial = match chars[2..].split_last() {
            Some((&Self::TRAILER_SUFFIX, rest)) if !colour.is_new_energy() => rest,
            _ => &chars[2..],
        };
        if let Some(&c) = serial
            .iter()
            .find(|&&c| !is_plate_letter(c) && !c.is_ascii_digit())
        {
            return Err(err(
                Rule::Charset,
                "letters A-Z other than I and O, digits, and 挂 only at the end of a trailer plate",
            )
            .with_found(format!("'{c}'")));
        }
        Ok(Self {
            plate: plate.to_owned(),
            colour,
        })
    }

    /// The plate text, e.g. `苏F12345`.
    #[must_use]
    pub fn plate(&self) -> &str {
        &self.plate
    }

    /// The plate text (same as [`VehiclePlate::plate`]); the colour is not
    /// part of it.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.plate
    }

    /// The plate colour.
    #[must_use]
    pub fn colour(&self) -> PlateColour {
        self.colour
    }

    /// Whether this is a trailer plate (ends in `挂`).
    #[must_use]
    pub fn is_trailer(&self) -> bool {
        self.plate.ends_with(Self::TRAILER_SUFFIX)
    }

    /// The province abbreviation.
    #[must_use]
    pub fn province(&self) -> char {
        self.plate.chars().next().unwrap_or_default()
    }
}

fn shape(colour: PlateColour) -> &'static str {
    if colour.is_new_energy() {
        "8 characters for a new-energy plate: province, letter, 6 letters/digits"
    } else {
        "7 characters: province, letter, 5 letters/digits (or 4 and 挂 for a trailer)"
    }
}

fn is_plate_letter(c: char) -> bool {
    c.is_ascii_uppercase() && c != 'I' && c != 'O'
}

impl fmt::Display for VehiclePlate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.plate, self.colour.code())
    }
}

impl FromStr for VehiclePlate {
    type Err = IdentifierError;

    /// Parses the compact form `plate/colour-code`, e.g. `苏F12345/2`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((plate, code)) = s.rsplit_once('/') else {
            return Err(IdentifierError::new(
                IdentifierKind::VehiclePlate,
                s,
                Rule::Format,
                "plate/colour-code like 苏F12345/2",
            ));
        };
        let code = code.parse::<u32>().map_err(|_| {
            IdentifierError::new(
                IdentifierKind::PlateColour,
                code,
                Rule::Format,
                "a numeric colour code such as 2",
            )
        })?;
        Self::parse(plate, code)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlateRepr<P> {
    plate: P,
    colour: u32,
}

impl Serialize for VehiclePlate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        PlateRepr {
            plate: self.plate.as_str(),
            colour: self.colour.code(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for VehiclePlate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr = PlateRepr::<String>::deserialize(deserializer)?;
        Self::parse(&repr.plate, repr.colour).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provinces_are_31_distinct() {
        let mut p: Vec<char> = VehiclePlate::PROVINCES.chars().collect();
        assert_eq!(p.len(), 31);
        p.sort_unstable();
        p.dedup();
        assert_eq!(p.len(), 31);
    }

    #[test]
    fn colours_round_trip() {
        for c in PlateColour::ALL {
            assert_eq!(PlateColour::from_code(c.code()).unwrap(), c);
        }
        let e = PlateColour::from_code(6).unwrap_err();
        assert_eq!(
            (e.kind, e.rule),
            (IdentifierKind::PlateColour, Rule::Unknown)
        );
    }

    #[test]
    fn shapes() {
        assert!(!VehiclePlate::parse("苏F12345", 2).unwrap().is_trailer());
        let trailer = VehiclePlate::parse("苏F1234挂", 2).unwrap();
        assert!(trailer.is_trailer());
        assert_eq!(trailer.province(), '苏');
        assert!(VehiclePlate::parse("粤BD12345", 5).is_ok());
        assert!(VehiclePlate::parse("京AD12345", 94).is_ok());
        assert!(VehiclePlate::parse("沪A12345D", 93).is_ok());
        let cases = [
            ("粤BD12345", 2, Rule::Length),
            ("粤B12345", 5, Rule::Length),
            ("粤B1234挂", 5, Rule::Length),
            ("粤BD1234挂", 93, Rule::Charset),
            ("苏I12345", 2, Rule::Charset),
            ("苏F1O345", 2, Rule::Charset),
            ("苏f12345", 2, Rule::Charset),
            ("苏F12挂45", 2, Rule::Charset),
            ("港F12345", 2, Rule::Charset),
            ("", 2, Rule::Length),
        ];
        for (plate, colour, rule) in cases {
            let e = VehiclePlate::parse(plate, colour).unwrap_err();
            assert_eq!(
                (e.kind, e.rule),
                (IdentifierKind::VehiclePlate, rule),
                "{plate}: {e}"
            );
        }
        assert_eq!(
            VehiclePlate::parse("苏F12345", 7).unwrap_err().kind,
            IdentifierKind::PlateColour
        );
    }

    #[test]
    fn display_from_str_and_serde() {
        let p = VehiclePlate::parse("苏F1234挂", 2).unwrap();
        assert_eq!(p.to_string(), "苏F1234挂/2");
        assert_eq!("苏F1234挂/2".parse::<VehiclePlate>().unwrap(), p);
        assert!("苏F1234挂".parse::<VehiclePlate>().is_err());
        assert!("苏F1234挂/x".parse::<VehiclePlate>().is_err());
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, r#"{"plate":"苏F1234挂","colour":2}"#);
        assert_eq!(serde_json::from_str::<VehiclePlate>(&json).unwrap(), p);
        assert!(serde_json::from_str::<VehiclePlate>(r#"{"plate":"苏F1234","colour":2}"#).is_err());
        assert!(
            serde_json::from_str::<VehiclePlate>(r#"{"plate":"苏F12345","colour":8}"#).is_err()
        );
        assert_eq!(
            serde_json::to_string(&PlateColour::GradientGreen).unwrap(),
            "94"
        );
    }
}
