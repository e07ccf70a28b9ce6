//! Validated identifier newtypes.
//!
//! Every type here can only be built through validation: `parse` (and the
//! [`FromStr`](std::str::FromStr) and serde implementations, which call it)
//! return an [`IdentifierError`](crate::IdentifierError) naming the kind, the
//! rule broken and what was expected.

mod cas;
mod imo;
mod plate;
mod un;
mod uscc;

pub use cas::CasNumber;
pub use imo::ImoNumber;
pub use plate::{PlateColour, VehiclePlate};
pub use un::UnNumber;
pub use uscc::Uscc;

/// Implements `as_str`, `Display`, `FromStr`, `AsRef<str>`, `TryFrom<&str>`,
/// `TryFrom<String>`, `From<T> for String` and string serde (validated on
/// deserialize) for a newtype over `String` with a `parse` constructor.
macro_rules! string_identifier {
    ($ty:ident) => {
        impl $ty {
            /// The identifier as text.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = $crate::IdentifierError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = $crate::IdentifierError;

            fn try_from(s: &str) -> Result<Self, Self::Error> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = $crate::IdentifierError;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl From<$ty> for String {
            fn from(id: $ty) -> String {
                id.0
            }
        }

        impl ::serde::Serialize for $ty {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> Result<Self, D::Error> {
                let text = <String as ::serde::Deserialize>::deserialize(deserializer)?;
                Self::parse(&text).map_err(::serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use string_identifier;

/// `"N characters"` with the right plural, for error messages.
pub(crate) fn characters(n: usize) -> String {
    if n == 1 {
        "1 character".to_owned()
    } else {
        format!("{n} characters")
    }
}
