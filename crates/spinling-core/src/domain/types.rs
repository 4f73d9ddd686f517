//! The domain's vocabulary: version numbers and references, the code sources, statuses and
//! resource ids, each a type that can only hold a valid value. Each parses once, at the edge
//! (a request, a row, a variable); past that the rules match on variants, not on strings or
//! on the wire's `0`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A published version's number: a positive integer. Numbers start at 1 and are never
/// reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct VersionNumber(i64);

impl VersionNumber {
    /// The number `n`, if it is positive.
    pub fn new(n: i64) -> Option<VersionNumber> {
        (n > 0).then_some(VersionNumber(n))
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for VersionNumber {
    type Error = String;
    fn try_from(n: i64) -> Result<Self, Self::Error> {
        VersionNumber::new(n).ok_or_else(|| format!("{n} is not a version number"))
    }
}

impl From<VersionNumber> for i64 {
    fn from(n: VersionNumber) -> i64 {
        n.0
    }
}

impl fmt::Display for VersionNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The code a field such as `function_version` names: the function's current code, or one
/// of its published versions. On the wire and in the database the current code is `0`;
/// [`VersionRef::from_wire`] and [`VersionRef::to_wire`] are the only places that know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub enum VersionRef {
    Current,
    Number(VersionNumber),
}

impl VersionRef {
    /// `0` is the current code, a positive integer a version; a negative one is nothing.
    pub fn from_wire(n: i64) -> Option<VersionRef> {
        match n {
            0 => Some(VersionRef::Current),
            n => VersionNumber::new(n).map(VersionRef::Number),
        }
    }

    pub fn to_wire(self) -> i64 {
        match self {
            VersionRef::Current => 0,
            VersionRef::Number(n) => n.get(),
        }
    }

    /// The version's number, unless this is the current code.
    pub fn number(self) -> Option<VersionNumber> {
        match self {
            VersionRef::Current => None,
            VersionRef::Number(n) => Some(n),
        }
    }
}

impl From<VersionNumber> for VersionRef {
    fn from(n: VersionNumber) -> VersionRef {
        VersionRef::Number(n)
    }
}

impl TryFrom<i64> for VersionRef {
    type Error = String;
    fn try_from(n: i64) -> Result<Self, Self::Error> {
        VersionRef::from_wire(n).ok_or_else(|| format!("{n} names no version"))
    }
}

impl From<VersionRef> for i64 {
    fn from(v: VersionRef) -> i64 {
        v.to_wire()
    }
}

impl fmt::Display for VersionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_wire().fmt(f)
    }
}

/// Where a function's code comes from (`code.source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodeSource {
    /// An uploaded zip package: the only kind Spinling runs and versions.
    Package,
    /// A container image (Qinling's), kept but never run here.
    Image,
    /// An object in OpenStack Swift, which Spinling refuses.
    Swift,
}

impl CodeSource {
    /// As Qinling lists them in its refusal.
    pub const ALL: &'static str = "image, package, swift";

    pub fn parse(s: &str) -> Option<CodeSource> {
        match s {
            "package" => Some(CodeSource::Package),
            "image" => Some(CodeSource::Image),
            "swift" => Some(CodeSource::Swift),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CodeSource::Package => "package",
            CodeSource::Image => "image",
            CodeSource::Swift => "swift",
        }
    }
}

/// Defines a string enum that renders (and serialises) as its wire text.
macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

wire_enum! {
    /// Where an execution is: `running` until its runtime answers (or it is settled as stale).
    ExecutionStatus {
        Running = "running",
        Success = "success",
        Failed = "failed",
    }
}

wire_enum! {
    /// Whether a runtime takes functions: the built-in one always does; a worker when it
    /// answered its ping on create (or on an update that gave an image).
    RuntimeStatus {
        Available = "available",
        Error = "error",
    }
}

/// Why a text is not an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAUuid(pub String);

impl fmt::Display for NotAUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Expected a uuid but received {}.", self.0)
    }
}

/// Defines an id newtype: a uuid in any form Python's `uuid.UUID()` takes (as WSME checks
/// them), kept as given, rendered as a plain string.
macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// `s`, if it is a uuid.
            pub fn parse(s: &str) -> Result<$name, NotAUuid> {
                if crate::id::is_uuid(s) {
                    Ok($name(s.to_string()))
                } else {
                    Err(NotAUuid(s.to_string()))
                }
            }

            /// A fresh id: a uuid4 with dashes, 36 characters, as Qinling's.
            pub fn generate() -> $name {
                $name(crate::id::new_id())
            }

            /// An id as the database holds it: every stored id was checked (or generated)
            /// when it was written, so it is not checked again.
            pub fn from_stored(s: String) -> $name {
                $name(s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl From<&$name> for crate::store::db::Value {
            fn from(id: &$name) -> crate::store::db::Value {
                crate::store::db::Value::Text(id.0.clone())
            }
        }
    };
}

uuid_id! {
    /// A function's id.
    FunctionId
}

uuid_id! {
    /// A runtime's id (a client may choose it on create).
    RuntimeId
}

uuid_id! {
    /// An execution's id (a client may choose it on create).
    ExecutionId
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_number_is_positive() {
        assert_eq!(VersionNumber::new(1).map(VersionNumber::get), Some(1));
        assert_eq!(VersionNumber::new(0), None);
        assert_eq!(VersionNumber::new(-3), None);
        assert_eq!(
            VersionNumber::new(i64::MAX).unwrap().to_string(),
            "9223372036854775807"
        );
    }

    #[test]
    fn a_version_number_serialises_as_its_integer_and_refuses_zero() {
        let n = VersionNumber::new(7).unwrap();
        assert_eq!(serde_json::to_string(&n).unwrap(), "7");
        assert_eq!(serde_json::from_str::<VersionNumber>("7").unwrap(), n);
        assert!(serde_json::from_str::<VersionNumber>("0").is_err());
    }

    #[test]
    fn zero_on_the_wire_is_the_current_code() {
        assert_eq!(VersionRef::from_wire(0), Some(VersionRef::Current));
        assert_eq!(VersionRef::Current.to_wire(), 0);
        assert_eq!(VersionRef::Current.number(), None);
    }

    #[test]
    fn a_positive_integer_on_the_wire_is_a_version_and_a_negative_one_is_nothing() {
        let three = VersionRef::from_wire(3).unwrap();
        assert_eq!(three, VersionRef::Number(VersionNumber::new(3).unwrap()));
        assert_eq!(three.to_wire(), 3);
        assert_eq!(three.to_string(), "3");
        assert_eq!(VersionRef::from_wire(-1), None);
    }

    #[test]
    fn a_version_ref_serialises_as_the_wires_integer() {
        assert_eq!(serde_json::to_string(&VersionRef::Current).unwrap(), "0");
        assert_eq!(
            serde_json::from_str::<VersionRef>("2").unwrap(),
            VersionRef::from_wire(2).unwrap()
        );
        assert!(serde_json::from_str::<VersionRef>("-2").is_err());
    }

    #[test]
    fn the_three_code_sources_parse_and_nothing_else() {
        for source in [CodeSource::Package, CodeSource::Image, CodeSource::Swift] {
            assert_eq!(CodeSource::parse(source.as_str()), Some(source));
        }
        assert_eq!(CodeSource::parse("Package"), None);
        assert_eq!(CodeSource::parse(""), None);
    }

    #[test]
    fn execution_statuses_render_as_qinlings_words() {
        for status in [
            ExecutionStatus::Running,
            ExecutionStatus::Success,
            ExecutionStatus::Failed,
        ] {
            assert_eq!(ExecutionStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(
            serde_json::to_string(&ExecutionStatus::Success).unwrap(),
            "\"success\""
        );
        assert_eq!(ExecutionStatus::parse("error"), None);
    }

    #[test]
    fn runtime_statuses_render_as_qinlings_words() {
        assert_eq!(
            RuntimeStatus::parse("available"),
            Some(RuntimeStatus::Available)
        );
        assert_eq!(RuntimeStatus::parse("error"), Some(RuntimeStatus::Error));
        assert_eq!(RuntimeStatus::parse("creating"), None);
        assert_eq!(
            serde_json::to_string(&RuntimeStatus::Error).unwrap(),
            "\"error\""
        );
    }

    #[test]
    fn an_id_must_be_a_uuid() {
        let id = "0b6d2c1c-7c41-4a44-9a68-3c5a2b1f0e11";
        assert_eq!(FunctionId::parse(id).unwrap().as_str(), id);
        assert_eq!(RuntimeId::parse("nope"), Err(NotAUuid("nope".into())));
        assert_eq!(
            ExecutionId::parse("").unwrap_err().to_string(),
            "Expected a uuid but received ."
        );
    }

    #[test]
    fn python_accepts_uuids_without_dashes_and_so_do_ids() {
        let id = "0b6d2c1c7c414a449a683c5a2b1f0e11";
        assert_eq!(ExecutionId::parse(id).unwrap().to_string(), id);
    }

    #[test]
    fn a_generated_id_is_a_valid_one_and_serialises_as_a_plain_string() {
        let id = FunctionId::generate();
        assert_eq!(FunctionId::parse(id.as_str()), Ok(id.clone()));
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            format!("\"{}\"", id.as_str())
        );
    }
}
