//! Sticky routing: while an alias splits its traffic, an execution with a routing key gets the
//! version its key's stable place in the weights picks, so one user stays on one version.

use crate::error::{ApiError, ApiResult};

/// A routing key's place in [0, 1): FNV-1a over its bytes, then SplitMix64's finaliser so
/// that keys differing in a character spread over the whole range. Stable across builds,
/// platforms and replicas.
pub fn sticky_draw(key: &str) -> f64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^= hash >> 31;
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

/// The most a routing key may be, in bytes.
pub const MAX_ROUTING_KEY: usize = 255;

/// A routing key as given (an execution's `routing_key`, a webhook invoke's header): at most
/// [`MAX_ROUTING_KEY`] bytes; empty is none.
pub fn check_routing_key(key: Option<String>) -> ApiResult<Option<String>> {
    match key {
        Some(k) if k.len() > MAX_ROUTING_KEY => Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute routing_key. Value: '{}...'. At most {MAX_ROUTING_KEY} bytes.",
            k.chars().take(16).collect::<String>()
        ))),
        Some(k) if k.is_empty() => Ok(None),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_routing_key_always_draws_the_same_place() {
        assert_eq!(sticky_draw("user-42"), sticky_draw("user-42"));
        assert_ne!(sticky_draw("user-42"), sticky_draw("user-43"));
        let d = sticky_draw("");
        assert!((0.0..1.0).contains(&d));
    }

    #[test]
    fn routing_keys_spread_by_the_weights() {
        let n = 20_000;
        let below = (0..n)
            .filter(|i| sticky_draw(&format!("user-{i}")) < 0.1)
            .count();
        let share = below as f64 / n as f64;
        assert!((share - 0.1).abs() < 0.01, "{share}");
    }

    #[test]
    fn a_long_routing_key_is_refused_and_an_empty_one_is_none() {
        assert_eq!(check_routing_key(Some(String::new())).unwrap(), None);
        assert_eq!(
            check_routing_key(Some("x".repeat(256)))
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            check_routing_key(Some("k".into())).unwrap(),
            Some("k".to_string())
        );
    }
}
