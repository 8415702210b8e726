//! Turns a [`TenancyError`] into a PostgreSQL `ERROR` with its SQLSTATE, detail and hint.

use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::pg_sys::panic::{CaughtError, ErrorReport};
use pgrx::prelude::*;
use std::panic::{RefUnwindSafe, UnwindSafe};

use crate::rules::error::{Result, SqlState, TenancyError};

/// PostgreSQL's error code for each [`SqlState`]: an exhaustive match, so a new state cannot be
/// added without naming its code (and `sqlstates_match_their_codes` checks the two agree).
fn sqlstate(state: SqlState) -> PgSqlErrorCode {
    use PgSqlErrorCode::*;
    match state {
        SqlState::InvalidName => ERRCODE_INVALID_NAME,
        SqlState::NameTooLong => ERRCODE_NAME_TOO_LONG,
        SqlState::DuplicateSchema => ERRCODE_DUPLICATE_SCHEMA,
        SqlState::InvalidSchemaName => ERRCODE_INVALID_SCHEMA_NAME,
        SqlState::UndefinedObject => ERRCODE_UNDEFINED_OBJECT,
        SqlState::DuplicateObject => ERRCODE_DUPLICATE_OBJECT,
        SqlState::InsufficientPrivilege => ERRCODE_INSUFFICIENT_PRIVILEGE,
        SqlState::InvalidParameterValue => ERRCODE_INVALID_PARAMETER_VALUE,
        SqlState::NullValueNotAllowed => ERRCODE_NULL_VALUE_NOT_ALLOWED,
        SqlState::ActiveSqlTransaction => ERRCODE_ACTIVE_SQL_TRANSACTION,
        SqlState::ObjectNotInPrerequisiteState => ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        SqlState::SyntaxError => ERRCODE_SYNTAX_ERROR,
        SqlState::UndefinedTable => ERRCODE_UNDEFINED_TABLE,
        SqlState::UndefinedColumn => ERRCODE_UNDEFINED_COLUMN,
        SqlState::FeatureNotSupported => ERRCODE_FEATURE_NOT_SUPPORTED,
        SqlState::LockNotAvailable => ERRCODE_LOCK_NOT_AVAILABLE,
        SqlState::ReadOnlySqlTransaction => ERRCODE_READ_ONLY_SQL_TRANSACTION,
        SqlState::DependentObjectsStillExist => ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
        SqlState::ForeignKeyViolation => ERRCODE_FOREIGN_KEY_VIOLATION,
        SqlState::SerializationFailure => ERRCODE_T_R_SERIALIZATION_FAILURE,
        SqlState::DatatypeMismatch => ERRCODE_DATATYPE_MISMATCH,
        SqlState::InvalidForeignKey => ERRCODE_INVALID_FOREIGN_KEY,
        SqlState::TriggerProtocolViolated => ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
        SqlState::CollationMismatch => ERRCODE_COLLATION_MISMATCH,
    }
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
    ereport(sqlstate(e.state), e.message, e.detail, e.hint)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// PostgreSQL's MAKE_SQLSTATE, to check the match above against the five-character codes.
    fn make_sqlstate(code: &str) -> i32 {
        code.bytes().enumerate().fold(0i32, |acc, (i, ch)| {
            acc + ((((ch as i32) - ('0' as i32)) & 0x3F) << (6 * i))
        })
    }

    #[test]
    fn sqlstates_match_their_codes() {
        for state in SqlState::ALL {
            assert_eq!(
                sqlstate(state) as i32,
                make_sqlstate(state.code()),
                "{state:?} maps to another code than {}",
                state.code()
            );
        }
    }
}
