//! The D-Bus argument types a profile may name, and values of those types.
//!
//! Profiles spell a call's arguments as a signature ("sd") plus one source per argument; the
//! types here are what that signature parses into, so a value that reaches the bus has been
//! range-checked against its D-Bus type, not just its slot type.

use serde::Serialize;
use std::fmt;

/// Why a value is not one of a D-Bus type.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    #[error("'{0}' is not a supported D-Bus type (use b y n q i u x t d s)")]
    UnsupportedType(char),
    #[error("a number cannot be passed as D-Bus type '{0}'")]
    NotANumberType(char),
    #[error("{0} is not a whole number, but the D-Bus type '{1}' needs one")]
    NotWhole(f64, char),
    #[error("{0} does not fit D-Bus type '{1}'")]
    DoesNotFit(f64, char),
    #[error("'{0}' is not a boolean (write true or false)")]
    NotABoolean(String),
    #[error("'{0}' is not a number")]
    NotANumber(String),
}

/// A basic D-Bus type, by its signature character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbusType {
    Bool,
    Byte,
    Int16,
    Uint16,
    Int32,
    Uint32,
    Int64,
    Uint64,
    Double,
    String,
}

impl DbusType {
    pub fn from_char(c: char) -> Option<DbusType> {
        Some(match c {
            'b' => DbusType::Bool,
            'y' => DbusType::Byte,
            'n' => DbusType::Int16,
            'q' => DbusType::Uint16,
            'i' => DbusType::Int32,
            'u' => DbusType::Uint32,
            'x' => DbusType::Int64,
            't' => DbusType::Uint64,
            'd' => DbusType::Double,
            's' => DbusType::String,
            _ => return None,
        })
    }

    pub fn as_char(self) -> char {
        match self {
            DbusType::Bool => 'b',
            DbusType::Byte => 'y',
            DbusType::Int16 => 'n',
            DbusType::Uint16 => 'q',
            DbusType::Int32 => 'i',
            DbusType::Uint32 => 'u',
            DbusType::Int64 => 'x',
            DbusType::Uint64 => 't',
            DbusType::Double => 'd',
            DbusType::String => 's',
        }
    }

    /// Parses a whole signature of basic types ("sd", "su", "").
    pub fn parse_signature(sig: &str) -> Result<Vec<DbusType>, ValueError> {
        sig.chars()
            .map(|c| DbusType::from_char(c).ok_or(ValueError::UnsupportedType(c)))
            .collect()
    }

    /// The integer range of an integer type; None for double, bool and string.
    pub fn integer_range(self) -> Option<(f64, f64)> {
        Some(match self {
            DbusType::Byte => (0.0, u8::MAX as f64),
            DbusType::Int16 => (i16::MIN as f64, i16::MAX as f64),
            DbusType::Uint16 => (0.0, u16::MAX as f64),
            DbusType::Int32 => (i32::MIN as f64, i32::MAX as f64),
            DbusType::Uint32 => (0.0, u32::MAX as f64),
            DbusType::Int64 => (i64::MIN as f64, i64::MAX as f64),
            DbusType::Uint64 => (0.0, u64::MAX as f64),
            _ => return None,
        })
    }

    /// Converts a number to this type, refusing fractions for integer types and values
    /// outside the type's range.
    pub fn number(self, v: f64) -> Result<ArgValue, ValueError> {
        if self == DbusType::Double {
            return Ok(ArgValue::Double(v));
        }
        let Some((lo, hi)) = self.integer_range() else {
            return Err(ValueError::NotANumberType(self.as_char()));
        };
        if v.fract() != 0.0 {
            return Err(ValueError::NotWhole(v, self.as_char()));
        }
        if v < lo || v > hi {
            return Err(ValueError::DoesNotFit(v, self.as_char()));
        }
        Ok(match self {
            DbusType::Byte => ArgValue::Byte(v as u8),
            DbusType::Int16 => ArgValue::Int16(v as i16),
            DbusType::Uint16 => ArgValue::Uint16(v as u16),
            DbusType::Int32 => ArgValue::Int32(v as i32),
            DbusType::Uint32 => ArgValue::Uint32(v as u32),
            DbusType::Int64 => ArgValue::Int64(v as i64),
            DbusType::Uint64 => ArgValue::Uint64(v as u64),
            _ => unreachable!("integer_range covers exactly the integer types"),
        })
    }

    /// Parses a literal written in a profile ("true", "100", "front").
    pub fn literal(self, text: &str) -> Result<ArgValue, ValueError> {
        match self {
            DbusType::String => Ok(ArgValue::String(text.to_string())),
            DbusType::Bool => match text {
                "true" => Ok(ArgValue::Bool(true)),
                "false" => Ok(ArgValue::Bool(false)),
                _ => Err(ValueError::NotABoolean(text.to_string())),
            },
            _ => {
                let v: f64 = text
                    .trim()
                    .parse()
                    .map_err(|_| ValueError::NotANumber(text.to_string()))?;
                self.number(v)
            }
        }
    }
}

impl fmt::Display for DbusType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_char())
    }
}

/// A typed argument value, ready to go on the bus. Serialises to plain JSON for reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ArgValue {
    Bool(bool),
    Byte(u8),
    Int16(i16),
    Uint16(u16),
    Int32(i32),
    Uint32(u32),
    Int64(i64),
    Uint64(u64),
    Double(f64),
    String(String),
}

impl ArgValue {
    /// The value as a number, for the numeric types.
    pub fn as_number(&self) -> Option<f64> {
        Some(match self {
            ArgValue::Byte(v) => f64::from(*v),
            ArgValue::Int16(v) => f64::from(*v),
            ArgValue::Uint16(v) => f64::from(*v),
            ArgValue::Int32(v) => f64::from(*v),
            ArgValue::Uint32(v) => f64::from(*v),
            ArgValue::Int64(v) => *v as f64,
            ArgValue::Uint64(v) => *v as f64,
            ArgValue::Double(v) => *v,
            ArgValue::Bool(_) | ArgValue::String(_) => return None,
        })
    }

    pub fn to_variant(&self) -> zbus::Variant<'static> {
        match self {
            ArgValue::Bool(v) => zbus::Variant::from(*v),
            ArgValue::Byte(v) => zbus::Variant::from(*v),
            ArgValue::Int16(v) => zbus::Variant::from(*v),
            ArgValue::Uint16(v) => zbus::Variant::from(*v),
            ArgValue::Int32(v) => zbus::Variant::from(*v),
            ArgValue::Uint32(v) => zbus::Variant::from(*v),
            ArgValue::Int64(v) => zbus::Variant::from(*v),
            ArgValue::Uint64(v) => zbus::Variant::from(*v),
            ArgValue::Double(v) => zbus::Variant::from(*v),
            ArgValue::String(v) => zbus::Variant::from(v.clone()),
        }
    }
}

/// Renders a value received from the bus for a spoken reply ("21.5", "on", "Radio").
pub fn speak_variant(v: &zbus::Variant<'_>) -> String {
    use crate::text::format_number;
    match v {
        zbus::Variant::Bool(b) => if *b { "on" } else { "off" }.to_string(),
        zbus::Variant::U8(n) => n.to_string(),
        zbus::Variant::I16(n) => n.to_string(),
        zbus::Variant::U16(n) => n.to_string(),
        zbus::Variant::I32(n) => n.to_string(),
        zbus::Variant::U32(n) => n.to_string(),
        zbus::Variant::I64(n) => n.to_string(),
        zbus::Variant::U64(n) => n.to_string(),
        zbus::Variant::F64(n) => format_number(*n),
        zbus::Variant::Str(s) => s.to_string(),
        zbus::Variant::Variant(inner) => speak_variant(inner),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_parse() {
        assert_eq!(
            DbusType::parse_signature("sd").unwrap(),
            vec![DbusType::String, DbusType::Double]
        );
        assert!(DbusType::parse_signature("a{sv}").is_err());
    }

    #[test]
    fn numbers_are_checked_against_the_type() {
        assert_eq!(DbusType::Uint32.number(70.0), Ok(ArgValue::Uint32(70)));
        assert!(DbusType::Uint32.number(-1.0).is_err());
        assert!(DbusType::Byte.number(256.0).is_err());
        assert!(DbusType::Int32.number(2.5).is_err());
        assert_eq!(DbusType::Double.number(2.5), Ok(ArgValue::Double(2.5)));
        assert!(DbusType::String.number(1.0).is_err());
    }

    #[test]
    fn literals_parse() {
        assert_eq!(DbusType::Bool.literal("true"), Ok(ArgValue::Bool(true)));
        assert!(DbusType::Bool.literal("yes").is_err());
        assert_eq!(DbusType::Uint32.literal("100"), Ok(ArgValue::Uint32(100)));
        assert_eq!(
            DbusType::String.literal("front"),
            Ok(ArgValue::String("front".into()))
        );
    }
}
