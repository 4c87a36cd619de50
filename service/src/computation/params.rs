//! What a `/computation` request may ask for, parsed once at the edge so the handler
//! and the pool only ever see values they can run.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The length of a chain a request asked for: from 1 to the configured maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Iterations(u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("iterations must be a whole number from 1 to {max}")]
pub struct IterationsError {
    pub max: u32,
}

impl Iterations {
    /// A whole number written only in ASCII digits: no sign, no spaces, no `_`. Rust's
    /// own parser takes a leading `+`, which the API's "whole number" does not.
    pub fn parse(raw: &str, max: u32) -> Result<Self, IterationsError> {
        let refused = IterationsError { max };
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(refused);
        }
        match raw.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => Ok(Self(n)),
            _ => Err(refused),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// The seed of a chain: 1 to [`Seed::MAX_BYTES`] bytes, hashed again at every step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("seed must be 1 to {max} bytes", max = Seed::MAX_BYTES)]
pub struct SeedError;

impl Seed {
    /// Longest accepted seed, in bytes: every step hashes the seed again.
    pub const MAX_BYTES: usize = 1024;

    pub fn parse(raw: &str) -> Result<Self, SeedError> {
        if raw.is_empty() || raw.len() > Self::MAX_BYTES {
            return Err(SeedError);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The seed of a request that gives none: the current time, in RFC 3339.
    pub fn now() -> Self {
        let now = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            // Only years outside 0000..=9999 cannot be written in RFC 3339.
            .expect("the current UTC time has an RFC 3339 form");
        Self(now)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterations_are_digits_only_within_the_maximum() {
        assert_eq!(
            Iterations::parse("50000", 1_000_000).map(Iterations::get),
            Ok(50_000)
        );
        assert_eq!(Iterations::parse("007", 10).map(Iterations::get), Ok(7));
        assert_eq!(Iterations::parse("10", 10).map(Iterations::get), Ok(10));
        for bad in [
            "",
            " 5",
            "5 ",
            "+5",
            "-5",
            "5.0",
            "1_000",
            "٣",
            "99999999999",
            "0",
            "11",
        ] {
            assert_eq!(
                Iterations::parse(bad, 10),
                Err(IterationsError { max: 10 }),
                "{bad:?}"
            );
        }
        assert_eq!(
            IterationsError { max: 10 }.to_string(),
            "iterations must be a whole number from 1 to 10"
        );
    }

    #[test]
    fn seeds_are_1_to_1024_bytes() {
        assert_eq!(
            Seed::parse("a b").map(Seed::into_string),
            Ok("a b".to_owned())
        );
        let longest = "é".repeat(Seed::MAX_BYTES / 2);
        assert_eq!(Seed::parse(&longest).map(|s| s.as_str().len()), Ok(1024));
        assert_eq!(Seed::parse(""), Err(SeedError));
        assert_eq!(Seed::parse(&"s".repeat(1025)), Err(SeedError));
        assert_eq!(SeedError.to_string(), "seed must be 1 to 1024 bytes");
    }

    #[test]
    fn a_default_seed_is_the_time_in_rfc_3339() {
        let year = OffsetDateTime::now_utc().year();
        let seed = Seed::now();
        let seed = seed.as_str();
        // 2026-11-22T12:00:00.123456789Z
        assert!(seed.starts_with(&format!("{year}-")), "{seed}");
        assert_eq!(seed.as_bytes()[10], b'T', "{seed}");
        assert!(seed.ends_with('Z'), "{seed}");
    }
}
