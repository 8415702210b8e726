//! Turns a [`TenancyError`] into a PostgreSQL `ERROR` with its SQLSTATE, detail and hint.

use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

use crate::error::{Result, TenancyError};

/// PostgreSQL's MAKE_SQLSTATE for a five-character code.
fn sqlstate(code: &str) -> PgSqlErrorCode {
    let v = code.bytes().enumerate().fold(0i32, |acc, (i, ch)| {
        acc + ((((ch as i32) - ('0' as i32)) & 0x3F) << (6 * i))
    });
    PgSqlErrorCode::from(v)
}

pub fn raise(e: TenancyError) -> ! {
    let mut report = ErrorReport::new(sqlstate(e.state.code()), e.message, "pg_tenancy");
    if let Some(d) = e.detail {
        report = report.set_detail(d);
    }
    if let Some(h) = e.hint {
        report = report.set_hint(h);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ereport(ERROR) returned")
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
