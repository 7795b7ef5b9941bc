//! How long to wait before the next try of a reconnect or retry loop: exponential growth from a
//! base, capped, with jitter. One rule for every such loop (the stage runner's RabbitMQ
//! reconnects and database retries, the scheduler's, the deliver stage's, the live feed's,
//! the start-up wait for Postgres), so that after an outage the many processes that lost the
//! broker or the database do not all come back at the same instant.
//!
//! "Equal jitter": the n-th delay is drawn from `[c/2, c]` where `c = min(cap, base·2ⁿ)`. Half
//! the delay is fixed, so a loop never spins at zero, and the other half spreads the clients
//! out. Pure: the randomness is a parameter ([`delay`]) or a seeded generator ([`Backoff`]).

use std::time::Duration;

/// The ceiling of the `attempt`-th delay (0-based): `min(cap, base·2^attempt)`.
pub fn ceiling(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(cap).min(cap)
}

/// The `attempt`-th delay for a random `unit` in `[0, 1]`: in `[c/2, c]`, `c` the [`ceiling`].
pub fn delay(attempt: u32, base: Duration, cap: Duration, unit: f64) -> Duration {
    let c = ceiling(attempt, base, cap);
    let half = c / 2;
    half + (c - half).mul_f64(unit.clamp(0.0, 1.0))
}

/// A loop's backoff: each [`next_delay`](Backoff::next_delay) is the next attempt's [`delay`];
/// [`reset`](Backoff::reset) after a success starts again from `base`.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
    state: u64,
}

impl Backoff {
    /// Delays from `base` up to `cap`, jittered by a generator seeded with `seed` (give each
    /// loop its own: `runtime::backoff` seeds from the process's randomness).
    pub fn new(base: Duration, cap: Duration, seed: u64) -> Self {
        Self {
            base,
            cap: cap.max(base),
            attempt: 0,
            state: seed,
        }
    }

    /// The delay before the next try; each call counts one more failed attempt.
    pub fn next_delay(&mut self) -> Duration {
        let d = delay(self.attempt, self.base, self.cap, self.unit());
        self.attempt = self.attempt.saturating_add(1);
        d
    }

    /// After a success: the next failure waits about `base` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Failed attempts since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// A uniform number in `[0, 1)` (SplitMix64: small, fast, and plenty for spreading delays).
    fn unit(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let (base, cap) = (100 * MS, 5000 * MS);
        let c: Vec<u128> = (0..8).map(|a| ceiling(a, base, cap).as_millis()).collect();
        assert_eq!(c, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(ceiling(u32::MAX, base, cap), cap);
        assert_eq!(delay(0, base, cap, 0.0), 50 * MS);
        assert_eq!(delay(0, base, cap, 1.0), 100 * MS);
    }

    #[test]
    fn a_reset_starts_again_from_the_base() {
        let mut b = Backoff::new(200 * MS, 10_000 * MS, 7);
        for _ in 0..10 {
            b.next_delay();
        }
        assert!(b.next_delay() >= 5000 * MS);
        b.reset();
        assert_eq!(b.attempts(), 0);
        assert!(b.next_delay() <= 200 * MS);
    }

    #[test]
    fn two_seeds_spread_the_same_attempt() {
        let mut a = Backoff::new(1000 * MS, 60_000 * MS, 1);
        let mut b = Backoff::new(1000 * MS, 60_000 * MS, 2);
        let same = (0..10).filter(|_| a.next_delay() == b.next_delay()).count();
        assert!(same < 3, "{same} of 10 delays equal");
    }

    proptest! {
        #[test]
        fn delays_stay_within_half_the_ceiling_and_the_cap_and_grow(
            base_ms in 1u64..5_000,
            cap_ms in 1u64..120_000,
            seed in any::<u64>(),
            unit in 0.0f64..=1.0,
            attempt in 0u32..64,
        ) {
            let (base, cap) = (Duration::from_millis(base_ms), Duration::from_millis(cap_ms.max(base_ms)));
            let d = delay(attempt, base, cap, unit);
            let c = ceiling(attempt, base, cap);
            prop_assert!(d <= cap && d <= c && d >= c / 2, "{d:?} not in [{:?}, {c:?}]", c / 2);
            // The same draw one attempt later never waits less: the delays grow to the cap.
            prop_assert!(delay(attempt + 1, base, cap, unit) >= d);
            // And a generator's sequence stays in [0, cap] with non-decreasing ceilings.
            let mut b = Backoff::new(base, cap, seed);
            let mut last_floor = Duration::ZERO;
            for a in 0..40 {
                let d = b.next_delay();
                let c = ceiling(a, base, cap);
                prop_assert!(d <= cap && d >= c / 2);
                prop_assert!(c / 2 >= last_floor);
                last_floor = c / 2;
            }
        }
    }
}
