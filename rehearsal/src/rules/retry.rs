//! When a client's retry of a failed request comes back, on the rehearsal's minute grid.
//!
//! Sources: the AWS Architecture Blog, "Exponential Backoff And Jitter" (Marc Brooker, 2015)
//! and the Amazon Builders' Library, "Timeouts, retries, and backoff with jitter": the n-th
//! retry waits `min(cap, base x 2^(n-1))` (exponential), or a uniformly random time between
//! 0 and that ("full jitter", what the AWS SDKs do), or always `base` (fixed); the AWS SDKs
//! and Tools reference guide, "Retry behavior", caps the backoff at 20 seconds
//! (`retry_max_backoff_ms`). A retry is sent when its attempt has failed *and* its backoff
//! has passed: a request the service times out fails after the request timeout, one that
//! reached a target that no longer answers after the load balancer's 10-second connection
//! timeout, one with no target at all at once (`rules::alb`).
//!
//! On the minute grid: a minute's requests arrive evenly over the minute, so a retry whose
//! delay (failure plus backoff) is `d` seconds lands in the same minute for a share
//! `1 - d / 60` of them and in the next one for `d / 60`; a delay of 60 s or more is taken as
//! 60 s (every retry in the next minute), so a retry never skips a minute. With jitter the
//! share is averaged over the uniform backoff.

use std::str::FromStr;

use serde::Serialize;

/// How long a client waits before retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backoff {
    Fixed,
    Exponential,
    ExponentialJitter,
}

impl FromStr for Backoff {
    type Err = String;

    fn from_str(text: &str) -> Result<Backoff, String> {
        match text {
            "fixed" => Ok(Backoff::Fixed),
            "exponential" => Ok(Backoff::Exponential),
            "exponential-jitter" => Ok(Backoff::ExponentialJitter),
            other => Err(format!(
                "--backoff takes fixed, exponential or exponential-jitter, not '{other}'"
            )),
        }
    }
}

impl Backoff {
    pub fn as_str(self) -> &'static str {
        match self {
            Backoff::Fixed => "fixed",
            Backoff::Exponential => "exponential",
            Backoff::ExponentialJitter => "exponential-jitter",
        }
    }
}

/// A client's retries.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: none).
    pub retries: u32,
    pub backoff: Backoff,
    pub base_secs: f64,
    /// The longest backoff (the AWS SDKs' 20 s).
    pub max_backoff_secs: f64,
}

/// The longest a retry waits on the minute grid.
pub const MINUTE_SECS: f64 = 60.0;

impl RetryPolicy {
    /// The backoff before retry `n` (1 for the first retry): its upper end with jitter.
    pub fn backoff_secs(&self, n: u32) -> f64 {
        let grown = match self.backoff {
            Backoff::Fixed => self.base_secs,
            Backoff::Exponential | Backoff::ExponentialJitter => {
                self.base_secs * 2f64.powi(n.saturating_sub(1).min(62) as i32)
            }
        };
        grown.min(self.max_backoff_secs)
    }

    /// The share of retry `n` of requests that failed after `failed_after_secs` that lands
    /// in the next minute (the rest lands in the same minute).
    pub fn next_minute_share(&self, n: u32, failed_after_secs: f64) -> f64 {
        let low = failed_after_secs.max(0.0);
        let high = low + self.backoff_secs(n);
        let delay = match self.backoff {
            Backoff::Fixed | Backoff::Exponential => high.min(MINUTE_SECS),
            // E[min(d, 60)] for d uniform in [low, high].
            Backoff::ExponentialJitter => {
                if low >= MINUTE_SECS {
                    MINUTE_SECS
                } else if high <= MINUTE_SECS {
                    (low + high) / 2.0
                } else {
                    ((MINUTE_SECS * MINUTE_SECS - low * low) / 2.0
                        + MINUTE_SECS * (high - MINUTE_SECS))
                        / (high - low)
                }
            }
        };
        delay / MINUTE_SECS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(backoff: Backoff, base_secs: f64) -> RetryPolicy {
        RetryPolicy {
            retries: 3,
            backoff,
            base_secs,
            max_backoff_secs: 20.0,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn the_backoff_grows_by_policy_up_to_its_cap() {
        // (backoff, base, retry, seconds)
        let cases = [
            (Backoff::Fixed, 1.0, 1, 1.0),
            (Backoff::Fixed, 1.0, 4, 1.0),
            (Backoff::Exponential, 1.0, 1, 1.0),
            (Backoff::Exponential, 1.0, 3, 4.0),
            (Backoff::Exponential, 1.0, 6, 20.0), // 32 s capped at 20
            (Backoff::ExponentialJitter, 0.1, 2, 0.2),
        ];
        for (backoff, base, n, want) in cases {
            assert!(
                close(policy(backoff, base).backoff_secs(n), want),
                "{backoff:?} retry {n}"
            );
        }
    }

    #[test]
    fn a_retry_lands_in_the_next_minute_for_its_delay_over_sixty_seconds() {
        // (backoff, base, retry, failed after, share in the next minute, why)
        let cases = [
            (
                Backoff::Fixed,
                2.0,
                1,
                10.0,
                12.0 / 60.0,
                "a 10 s timeout and 2 s: 12/60",
            ),
            (
                Backoff::Fixed,
                0.1,
                1,
                0.0,
                0.1 / 60.0,
                "no target: at once, 100 ms later",
            ),
            (
                Backoff::Exponential,
                1.0,
                3,
                10.0,
                14.0 / 60.0,
                "third retry: 10 s + 4 s",
            ),
            (
                Backoff::Fixed,
                5.0,
                1,
                60.0,
                1.0,
                "a 60 s timeout: every retry next minute",
            ),
            (
                Backoff::ExponentialJitter,
                4.0,
                2,
                10.0,
                14.0 / 60.0,
                "jitter: 10 s + uniform 0-8 s, 14 s on average",
            ),
            (
                Backoff::ExponentialJitter,
                16.0,
                2,
                50.0,
                // d uniform in [50, 70]: half below 60 (mean 55), half capped at 60.
                57.5 / 60.0,
                "jitter past the minute: the part beyond 60 s counts as 60",
            ),
        ];
        for (backoff, base, n, failed_after, want, why) in cases {
            let got = policy(backoff, base).next_minute_share(n, failed_after);
            assert!(close(got, want), "{why}: {got} != {want}");
        }
    }

    #[test]
    fn backoff_names_are_the_command_line_s() {
        for name in ["fixed", "exponential", "exponential-jitter"] {
            assert_eq!(name.parse::<Backoff>().map(Backoff::as_str), Ok(name));
        }
        assert!("linear".parse::<Backoff>().is_err());
    }
}
