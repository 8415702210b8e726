//! Turns a [`TenancyError`] into a PostgreSQL `ERROR` with its SQLSTATE, detail and hint.

use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::pg_sys::panic::{CaughtError, ErrorReport};
use pgrx::prelude::*;
use std::panic::{RefUnwindSafe, UnwindSafe};

use crate::error::{Result, TenancyError};

/// PostgreSQL's MAKE_SQLSTATE for a five-character code.
fn sqlstate(code: &str) -> PgSqlErrorCode {
    let v = code.bytes().enumerate().fold(0i32, |acc, (i, ch)| {
        acc + ((((ch as i32) - ('0' as i32)) & 0x3F) << (6 * i))
    });
    PgSqlErrorCode::from(v)
}

/// `ereport(ERROR)` with a code, a message, and an optional detail and hint.
fn ereport(
    code: PgSqlErrorCode,
    message: String,
    detail: Option<String>,
    hint: Option<String>,
) -> ! {
    let mut report = ErrorReport::new(code, message, "pg_tenancy");
    if let Some(d) = detail {
        report = report.set_detail(d);
    }
    if let Some(h) = hint {
        report = report.set_hint(h);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ereport(ERROR) returned")
}

pub fn raise(e: TenancyError) -> ! {
    ereport(sqlstate(e.state.code()), e.message, e.detail, e.hint)
}

pub trait OrRaise<T> {
    /// The value, or an `ERROR` raised from the [`TenancyError`].
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for Result<T> {
    fn or_raise(self) -> T {
        self.unwrap_or_else(|e| raise(e))
    }
}

impl<T> OrRaise<T> for std::result::Result<T, pgrx::spi::Error> {
    fn or_raise(self) -> T {
        // SPI-level failures (not PostgreSQL errors, which propagate by themselves) are bugs.
        self.unwrap_or_else(|e| panic!("pg_tenancy: SPI failure: {e}"))
    }
}

/// A PostgreSQL error caught on its way out, to be re-raised with more context.
pub struct Caught {
    pub code: PgSqlErrorCode,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

/// Runs `f`; a PostgreSQL error raised inside it is re-raised as `context` rewrites it (the
/// transaction is aborting anyway: nothing is swallowed). Rust panics pass through unchanged.
pub fn with_context<R>(
    f: impl FnOnce() -> R + UnwindSafe,
    context: impl Fn(Caught) -> Caught + UnwindSafe + RefUnwindSafe,
) -> R {
    PgTryBuilder::new(f)
        .catch_others(|e| {
            let r = match &e {
                CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => r,
                CaughtError::RustPanic { .. } => e.rethrow(),
            };
            let c = context(Caught {
                code: r.sql_error_code(),
                message: r.message().to_string(),
                detail: r.detail().map(str::to_string),
                hint: r.hint().map(str::to_string),
            });
            ereport(c.code, c.message, c.detail, c.hint)
        })
        .execute()
}
