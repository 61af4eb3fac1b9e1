//! Exponential backoff with full jitter, for retries of failed attempts.

use std::time::Duration;

/// The first retry waits about this long.
pub const BASE: Duration = Duration::from_secs(1);
/// No retry waits longer than this.
pub const CAP: Duration = Duration::from_secs(10 * 60);

/// How long to wait before attempt `attempt + 1`, after attempt `attempt`
/// (counted from 1) failed: a random time in `[d/2, d]` with
/// `d = min(CAP, BASE * 2^(attempt-1))` ("equal jitter": never zero, never
/// in lockstep with other jobs that failed at the same moment).
pub fn retry_delay(attempt: u32) -> Duration {
    retry_delay_with(attempt, BASE, CAP, rand::random::<f64>())
}

/// [`retry_delay`] with explicit bounds and random number in `[0, 1)`.
pub fn retry_delay_with(attempt: u32, base: Duration, cap: Duration, random: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let full = base.saturating_mul(1u32 << exp).min(cap);
    let half = full / 2;
    half + half.mul_f64(random.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_jitter_and_is_capped() {
        let s = Duration::from_secs;
        assert_eq!(
            retry_delay_with(1, s(1), s(600), 0.0),
            Duration::from_millis(500)
        );
        assert_eq!(retry_delay_with(1, s(1), s(600), 1.0), s(1));
        assert_eq!(retry_delay_with(3, s(1), s(600), 1.0), s(4));
        assert_eq!(retry_delay_with(40, s(1), s(600), 1.0), s(600));
        for attempt in 1..20 {
            let d = retry_delay(attempt);
            assert!(d >= Duration::from_millis(500) && d <= CAP, "{d:?}");
        }
    }
}
