//! Failpoints: places where a test can hold a process, to prove what
//! happens when it dies or loses Redis right there.
//!
//! Compiled in only with the `failpoints` feature, which only test builds
//! enable (a dev-dependency turns it on); in every other build [`hit`] is
//! an empty function. With the feature, `FAILPOINTS=name=wait:PATH[;...]`
//! makes the task reaching `name` log it and wait until `PATH` exists.

/// Holds the calling task at failpoint `name` when a test asked for it.
#[cfg(feature = "failpoints")]
pub async fn hit(name: &str) {
    let Ok(spec) = std::env::var("FAILPOINTS") else {
        return;
    };
    for part in spec.split(';') {
        let Some((point, action)) = part.split_once('=') else {
            continue;
        };
        if point.trim() != name {
            continue;
        }
        if let Some(path) = action.trim().strip_prefix("wait:") {
            tracing::warn!(
                failpoint = name,
                release = path,
                "failpoint reached; waiting"
            );
            while !std::path::Path::new(path).exists() {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            tracing::warn!(failpoint = name, "failpoint released");
        }
    }
}

/// Holds the calling task at failpoint `name` when a test asked for it
/// (never, in this build).
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub async fn hit(_name: &str) {}
