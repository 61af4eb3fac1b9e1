//! Wall-clock time as Relay writes it: milliseconds since the Unix epoch
//! (event ids, instance reports, token expiry, latency histograms).

/// Milliseconds since the Unix epoch, now (0 for a clock set before 1970).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Whole seconds since the Unix epoch, now (JWT `exp` and `nbf` are in seconds).
pub fn now_secs() -> u64 {
    now_ms() / 1000
}
