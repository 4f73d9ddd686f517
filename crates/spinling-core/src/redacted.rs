//! Secrets in `Debug` output.

use std::fmt;

/// Stands for a secret in `Debug` output: tokens and passwords never reach a log.
pub(crate) struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}
