//! The backoff every reconnect and retry loop waits with: `core::backoff`'s capped, jittered
//! exponential delays, each loop with a generator of its own seeded from the process's
//! randomness, and the one way to wait that ends early on shutdown.

use crate::core::backoff::Backoff;
use std::hash::{BuildHasher as _, Hasher as _};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Waiting for RabbitMQ to come back: from 200 ms, doubling, up to 10 s.
pub fn broker() -> Backoff {
    new(Duration::from_millis(200), Duration::from_secs(10))
}

/// Waiting for Postgres to take work again: from 100 ms, doubling, up to 5 s.
pub fn database() -> Backoff {
    new(Duration::from_millis(100), Duration::from_secs(5))
}

/// Delays from `base` up to `cap` with a seed of their own.
pub fn new(base: Duration, cap: Duration) -> Backoff {
    Backoff::new(base, cap, seed())
}

/// A different seed for every call: std's `RandomState` draws its keys from the operating
/// system once per thread and then varies them per instance.
fn seed() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x5eed);
    h.finish()
}

/// How long a connection must have lasted for its loss to start the backoff over. A broker that
/// accepts the connection and then drops the consumer at once (a permission refused, a queue
/// deleted) must meet a growing delay, not the first one again and again.
pub const STABLE_SESSION: Duration = Duration::from_secs(30);

/// After a session that lasted `lasted`: the backoff starts over only if it was stable.
pub fn after_session(backoff: &mut Backoff, lasted: Duration) {
    if lasted >= STABLE_SESSION {
        backoff.reset();
    }
}

/// Sleeps `delay`, or less when `stop` is cancelled first; `false` when it was.
pub async fn pause(delay: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(delay) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_loop_gets_its_own_jitter() {
        let firsts: std::collections::HashSet<Duration> = (0..20).map(|_| broker().next_delay()).collect();
        assert!(firsts.len() > 10, "{firsts:?}");
        assert!(
            firsts
                .iter()
                .all(|d| *d >= Duration::from_millis(100) && *d <= Duration::from_millis(200))
        );
    }

    #[test]
    fn a_connection_dropped_at_once_keeps_the_delay_growing_and_a_stable_one_starts_it_over() {
        let mut b = broker();
        for _ in 0..4 {
            b.next_delay();
        }
        after_session(&mut b, Duration::from_millis(300));
        assert_eq!(b.attempts(), 4, "a session that lasted no time is no success");
        assert!(b.next_delay() >= Duration::from_millis(1600));
        after_session(&mut b, STABLE_SESSION);
        assert_eq!(b.attempts(), 0);
        assert!(b.next_delay() <= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn pause_ends_early_on_shutdown() {
        let stop = CancellationToken::new();
        stop.cancel();
        let started = std::time::Instant::now();
        assert!(!pause(Duration::from_secs(30), &stop).await);
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(pause(Duration::from_millis(1), &CancellationToken::new()).await);
    }
}
