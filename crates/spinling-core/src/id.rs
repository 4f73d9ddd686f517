//! Resource ids: uuid4 strings with dashes, 36 characters, as Qinling's.

pub fn new_id() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

/// Whether `s` is a uuid in any of the forms Python's `uuid.UUID()` takes
/// (WSME validates path ids with it).
pub fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_36_character_uuid4_strings() {
        let id = new_id();
        assert_eq!(id.len(), 36);
        assert!(is_uuid(&id));
        assert_eq!(&id[14..15], "4");
        assert_ne!(new_id(), id);
    }

    #[test]
    fn rejects_non_uuids() {
        assert!(!is_uuid("nope"));
        assert!(!is_uuid(""));
    }
}
