//! Taking a whole set of locks without ever waiting while holding part of it (`drop_tenant` and
//! the managed tables' `drop` policy; docs/concurrency.md): the timing rules. Pure.
//!
//! PostgreSQL's `DROP SCHEMA … CASCADE` locks a tenant's objects one at a time; waiting for one
//! while holding others is what let an application deadlock with it. pg_tenancy therefore works in
//! attempts. An attempt first waits for the lock that stopped the previous attempt, holding none of
//! the set, then takes all the others without waiting; if one of them is busy, the attempt gives
//! back everything it took and, after a short pause, the next attempt waits for that one. A session
//! that only ever waits while holding nothing of the set cannot be part of a deadlock through it,
//! whatever order the application takes its own locks in.
//!
//! The waits stop at the caller's lock timeout (`lock_timeout => …`, by default the setting
//! `tenancy.drop_lock_timeout`), after which the drop fails with 55P03. A wait for a table
//! outside the tenant (a shared table its foreign keys reference, whose foreign-key triggers the
//! drop removes) lasts at most [`SHARED_WAIT_MS`] at a time: while an `ACCESS EXCLUSIVE` request
//! waits, every other session's reads of that table queue behind it.

use crate::rules::error::{Result, SqlState, TenancyError};

/// The longest single wait for a lock on a table outside the tenant's schema.
pub const SHARED_WAIT_MS: u32 = 100;

/// The `lock_timeout` of the `DROP SCHEMA` statement itself, once every lock pg_tenancy knows
/// about is held: a lock it did not foresee (an object another session is altering) ends the
/// attempt almost at once instead of making it wait while holding the others.
pub const STATEMENT_WAIT_MS: u32 = 1;

/// The first pause between attempts; it doubles up to [`MAX_PAUSE_MS`].
const FIRST_PAUSE_MS: u32 = 10;
const MAX_PAUSE_MS: u32 = 200;

/// A lock timeout in milliseconds from an `interval`'s parts (months count 30 days, as
/// PostgreSQL's interval arithmetic does); 0 means no limit, as for `lock_timeout`. Anything
/// below a millisecond but above 0 rounds up to 1 ms, so it never turns into "no limit".
/// `function` and `param` name the argument in errors (22023).
pub fn timeout_ms(function: &str, param: &str, months: i32, days: i32, micros: i64) -> Result<u32> {
    const DAY_US: i128 = 86_400_000_000;
    let total = micros as i128 + days as i128 * DAY_US + months as i128 * 30 * DAY_US;
    if total < 0 {
        return Err(TenancyError::new(
            SqlState::InvalidParameterValue,
            format!("tenancy.{function}: {param} must not be negative"),
        )
        .hint(format!(
            "Pass how long to wait for locks, e.g. {param} => '5s', or {param} => '0' to wait without a limit."
        )));
    }
    let ms = (total + 999) / 1000;
    if ms > i32::MAX as i128 {
        return Err(TenancyError::new(
            SqlState::InvalidParameterValue,
            format!(
                "tenancy.{function}: {param} must be at most {} ms (about 24 days)",
                i32::MAX
            ),
        )
        .hint(format!(
            "Pass a shorter {param}, or {param} => '0' to wait without a limit."
        )));
    }
    Ok(ms as u32)
}

/// A timeout as PostgreSQL prints `lock_timeout`: `5s`, `300ms`, `2min`.
pub fn describe_ms(ms: u32) -> String {
    if ms == 0 {
        "no limit".to_string()
    } else if ms.is_multiple_of(60_000) {
        format!("{}min", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// What is left of a lock timeout of `limit_ms` (0: no limit) after `elapsed_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Left {
    Unlimited,
    Ms(u32),
    Nothing,
}

pub fn left(limit_ms: u32, elapsed_ms: u64) -> Left {
    if limit_ms == 0 {
        Left::Unlimited
    } else if elapsed_ms >= limit_ms as u64 {
        Left::Nothing
    } else {
        Left::Ms(limit_ms - elapsed_ms as u32)
    }
}

/// The `lock_timeout` (in PostgreSQL's sense: 0 waits without a limit) for an attempt's one
/// waiting lock request; `in_tenant`: the object belongs to the tenant being dropped. `None` when
/// nothing is left.
pub fn wait_ms(left: Left, in_tenant: bool) -> Option<u32> {
    match (left, in_tenant) {
        (Left::Nothing, _) => None,
        (Left::Unlimited, true) => Some(0),
        (Left::Unlimited, false) => Some(SHARED_WAIT_MS),
        (Left::Ms(ms), true) => Some(ms.max(1)),
        (Left::Ms(ms), false) => Some(ms.clamp(1, SHARED_WAIT_MS)),
    }
}

/// The pause before attempt `attempt` + 1 (counting from 0): doubling from 10 ms up to 200 ms,
/// each between half and all of that (`jitter` picks where, so sessions dropping at the same time
/// do not retry in step), and never past what is left.
pub fn pause_ms(attempt: u32, jitter: u32, left: Left) -> u32 {
    let full = FIRST_PAUSE_MS
        .saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX))
        .min(MAX_PAUSE_MS);
    let pause = full / 2 + jitter % (full / 2 + 1);
    match left {
        Left::Ms(ms) => pause.min(ms),
        Left::Nothing => 0,
        Left::Unlimited => pause,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_become_milliseconds() {
        assert_eq!(
            timeout_ms("drop_tenant", "lock_timeout", 0, 0, 5_000_000),
            Ok(5000)
        );
        assert_eq!(
            timeout_ms("drop_tenant", "lock_timeout", 0, 0, 300_000),
            Ok(300)
        );
        assert_eq!(timeout_ms("drop_tenant", "lock_timeout", 0, 0, 0), Ok(0));
        // Below a millisecond is not "no limit".
        assert_eq!(timeout_ms("drop_tenant", "lock_timeout", 0, 0, 1), Ok(1));
        assert_eq!(
            timeout_ms("drop_tenant", "lock_timeout", 0, 1, 0),
            Ok(86_400_000)
        );
        assert_eq!(
            timeout_ms("drop_tenant", "lock_timeout", 0, 24, 0),
            Ok(2_073_600_000)
        );
        let e = timeout_ms("drop_tenant", "lock_timeout", 0, 0, -1).unwrap_err();
        assert_eq!(e.state, SqlState::InvalidParameterValue);
        assert_eq!(
            e.message,
            "tenancy.drop_tenant: lock_timeout must not be negative"
        );
        // A negative part that the others outweigh is fine: the total counts.
        assert_eq!(
            timeout_ms("drop_tenant", "lock_timeout", 0, 1, -86_399_000_000),
            Ok(1000)
        );
        let e = timeout_ms("drop_tenant", "lock_timeout", 1, 0, 0).unwrap_err();
        assert!(e.message.contains("at most 2147483647 ms"), "{}", e.message);
        assert!(timeout_ms("drop_tenant", "lock_timeout", i32::MAX, i32::MAX, i64::MAX).is_err());
        assert!(timeout_ms("drop_tenant", "lock_timeout", i32::MIN, i32::MIN, i64::MIN).is_err());
    }

    #[test]
    fn timeouts_read_as_postgresql_prints_them() {
        assert_eq!(describe_ms(5000), "5s");
        assert_eq!(describe_ms(300), "300ms");
        assert_eq!(describe_ms(1500), "1500ms");
        assert_eq!(describe_ms(120_000), "2min");
        assert_eq!(describe_ms(0), "no limit");
    }

    #[test]
    fn what_is_left() {
        assert_eq!(left(0, 1_000_000), Left::Unlimited);
        assert_eq!(left(5000, 0), Left::Ms(5000));
        assert_eq!(left(5000, 4999), Left::Ms(1));
        assert_eq!(left(5000, 5000), Left::Nothing);
        assert_eq!(left(5000, u64::MAX), Left::Nothing);
    }

    #[test]
    fn waits_for_shared_tables_are_short() {
        assert_eq!(wait_ms(Left::Unlimited, true), Some(0));
        assert_eq!(wait_ms(Left::Unlimited, false), Some(SHARED_WAIT_MS));
        assert_eq!(wait_ms(Left::Ms(4000), true), Some(4000));
        assert_eq!(wait_ms(Left::Ms(4000), false), Some(SHARED_WAIT_MS));
        assert_eq!(wait_ms(Left::Ms(30), false), Some(30));
        assert_eq!(wait_ms(Left::Nothing, true), None);
        // Never 0 while time is limited: 0 would wait without a limit.
        assert_eq!(wait_ms(Left::Ms(0), true), Some(1));
        assert_eq!(wait_ms(Left::Ms(0), false), Some(1));
    }

    #[test]
    fn pauses_double_with_jitter_and_stop_at_the_deadline() {
        for jitter in [0, 1, 7, 1000, u32::MAX] {
            let p0 = pause_ms(0, jitter, Left::Unlimited);
            assert!((5..=10).contains(&p0), "{p0}");
            let p3 = pause_ms(3, jitter, Left::Unlimited);
            assert!((40..=80).contains(&p3), "{p3}");
            for attempt in [5, 10, 31, 32, 1000, u32::MAX] {
                let p = pause_ms(attempt, jitter, Left::Unlimited);
                assert!((100..=200).contains(&p), "{attempt}: {p}");
            }
        }
        assert_eq!(pause_ms(10, 7, Left::Ms(3)), 3);
        assert_eq!(pause_ms(10, 7, Left::Nothing), 0);
    }
}
