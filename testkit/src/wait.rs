//! Free ports and bounded waiting for asynchronous conditions.

use std::future::Future;
use std::net::TcpListener;
use std::time::Duration;

/// How often [`eventually!`](crate::eventually!) and [`eventually`] look again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// The kernel picks it, so two tests (or two processes) asking at once get
/// different ports; the small window before the caller binds it is accepted,
/// and the servers here retry on a fresh port when they lose that race.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// Polls `condition` every 20 ms until it is true or `timeout` passes;
/// returns whether it became true.
pub async fn wait_until<F, Fut>(timeout: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Polls `condition` every 20 ms until it is true; panics when `timeout`
/// passes first. See also [`eventually!`](crate::eventually!), which names
/// the failed condition.
pub async fn eventually<F, Fut>(timeout: Duration, condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    if !wait_until(timeout, condition).await {
        panic!("condition still false after {timeout:?}");
    }
}

/// Awaits a condition: evaluates the expression (which may `.await`) every
/// 20 ms until it is true, and panics naming it when the timeout passes.
///
/// ```ignore
/// eventually!(Duration::from_secs(10), gw.get("/readyz").await.status() == 503);
/// eventually!(Duration::from_secs(10), seen.len() == 3, "only saw {seen:?}");
/// ```
#[macro_export]
macro_rules! eventually {
    ($timeout:expr, $cond:expr $(,)?) => {
        $crate::eventually!($timeout, $cond, "")
    };
    ($timeout:expr, $cond:expr, $($msg:tt)+) => {{
        let timeout: ::std::time::Duration = $timeout;
        let deadline = $crate::__private::tokio::time::Instant::now() + timeout;
        loop {
            let done: bool = $cond;
            if done {
                break;
            }
            if $crate::__private::tokio::time::Instant::now() >= deadline {
                panic!(
                    "not true after {:?}: `{}` {}",
                    timeout,
                    stringify!($cond),
                    format_args!($($msg)+)
                );
            }
            $crate::__private::tokio::time::sleep($crate::wait::POLL_INTERVAL).await;
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn eventually_waits_for_a_condition_and_gives_up_in_time() {
        let start = tokio::time::Instant::now();
        let mut n = 0;
        crate::eventually!(Duration::from_secs(5), {
            n += 1;
            n == 3
        });
        assert_eq!(n, 3);
        assert!(!wait_until(Duration::from_millis(100), || async { false }).await);
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    #[should_panic(expected = "not true after")]
    async fn eventually_panics_naming_the_condition() {
        crate::eventually!(Duration::from_millis(50), 1 + 1 == 3);
    }

    #[test]
    fn free_ports_can_be_bound() {
        let port = free_port();
        TcpListener::bind(("127.0.0.1", port)).unwrap();
    }
}
