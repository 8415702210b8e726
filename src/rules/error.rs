//! One error type for everything a user can cause: SQLSTATE + message + detail + hint.
//!
//! Pure: no pgrx here. The SPI layer turns a [`TenancyError`] into an `ereport(ERROR)` with
//! [`crate::db::report::raise`].

use std::fmt;

/// The SQLSTATEs pg_tenancy raises. Each maps 1:1 to a PostgreSQL error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqlState {
    /// 42602 invalid_name
    InvalidName,
    /// 42622 name_too_long
    NameTooLong,
    /// 42P06 duplicate_schema
    DuplicateSchema,
    /// 3F000 invalid_schema_name (a schema that does not exist)
    InvalidSchemaName,
    /// 42704 undefined_object (not a registered tenant, unknown migration)
    UndefinedObject,
    /// 42710 duplicate_object (already registered, clashing migration)
    DuplicateObject,
    /// 42501 insufficient_privilege
    InsufficientPrivilege,
    /// 22023 invalid_parameter_value
    InvalidParameterValue,
    /// 22004 null_value_not_allowed
    NullValueNotAllowed,
    /// 25001 active_sql_transaction (statement that cannot run inside a transaction block)
    ActiveSqlTransaction,
    /// 55000 object_not_in_prerequisite_state (checksum drift, schema replaced behind our back)
    ObjectNotInPrerequisiteState,
    /// 42601 syntax_error (unterminated quote or comment in a migration)
    SyntaxError,
    /// 42P01 undefined_table
    UndefinedTable,
    /// 42703 undefined_column (a template names a column the table does not have)
    UndefinedColumn,
    /// 0A000 feature_not_supported (a statement a tenant migration may not contain: COPY to or
    /// from the client, session state such as temporary tables or LISTEN, plain SET search_path)
    FeatureNotSupported,
    /// 55P03 lock_not_available (drop_tenant could not take its locks within its lock timeout)
    LockNotAvailable,
    /// 25006 read_only_sql_transaction (a write on a hot standby)
    ReadOnlySqlTransaction,
    /// 2BP01 dependent_objects_still_exist (drop_tenant: objects of other schemas depend on it)
    DependentObjectsStillExist,
    /// 23503 foreign_key_violation (a tenant row referencing a missing shared row, or a shared
    /// row deleted or re-keyed while tenant rows reference it)
    ForeignKeyViolation,
    /// 40001 serialization_failure (a shared row deleted at REPEATABLE READ or SERIALIZABLE while
    /// a concurrent transaction, invisible to its snapshot, made a tenant row reference it)
    SerializationFailure,
    /// 42804 datatype_mismatch (referencing and referenced columns of different types)
    DatatypeMismatch,
    /// 42830 invalid_foreign_key (the referenced columns are not the shared table's key)
    InvalidForeignKey,
    /// 39P01 trigger_protocol_violated
    TriggerProtocolViolated,
    /// 42P21 collation_mismatch (a referencing column whose collation would compare keys
    /// differently from the shared key's)
    CollationMismatch,
}

impl SqlState {
    /// Every state, for tests that check each one.
    pub const ALL: [SqlState; 24] = [
        SqlState::InvalidName,
        SqlState::NameTooLong,
        SqlState::DuplicateSchema,
        SqlState::InvalidSchemaName,
        SqlState::UndefinedObject,
        SqlState::DuplicateObject,
        SqlState::InsufficientPrivilege,
        SqlState::InvalidParameterValue,
        SqlState::NullValueNotAllowed,
        SqlState::ActiveSqlTransaction,
        SqlState::ObjectNotInPrerequisiteState,
        SqlState::SyntaxError,
        SqlState::UndefinedTable,
        SqlState::UndefinedColumn,
        SqlState::FeatureNotSupported,
        SqlState::LockNotAvailable,
        SqlState::ReadOnlySqlTransaction,
        SqlState::DependentObjectsStillExist,
        SqlState::ForeignKeyViolation,
        SqlState::SerializationFailure,
        SqlState::DatatypeMismatch,
        SqlState::InvalidForeignKey,
        SqlState::TriggerProtocolViolated,
        SqlState::CollationMismatch,
    ];

    pub fn code(self) -> &'static str {
        match self {
            SqlState::InvalidName => "42602",
            SqlState::NameTooLong => "42622",
            SqlState::DuplicateSchema => "42P06",
            SqlState::InvalidSchemaName => "3F000",
            SqlState::UndefinedObject => "42704",
            SqlState::DuplicateObject => "42710",
            SqlState::InsufficientPrivilege => "42501",
            SqlState::InvalidParameterValue => "22023",
            SqlState::NullValueNotAllowed => "22004",
            SqlState::ActiveSqlTransaction => "25001",
            SqlState::ObjectNotInPrerequisiteState => "55000",
            SqlState::SyntaxError => "42601",
            SqlState::UndefinedColumn => "42703",
            SqlState::UndefinedTable => "42P01",
            SqlState::FeatureNotSupported => "0A000",
            SqlState::LockNotAvailable => "55P03",
            SqlState::ReadOnlySqlTransaction => "25006",
            SqlState::DependentObjectsStillExist => "2BP01",
            SqlState::ForeignKeyViolation => "23503",
            SqlState::SerializationFailure => "40001",
            SqlState::DatatypeMismatch => "42804",
            SqlState::InvalidForeignKey => "42830",
            SqlState::TriggerProtocolViolated => "39P01",
            SqlState::CollationMismatch => "42P21",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenancyError {
    pub state: SqlState,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl TenancyError {
    pub fn new(state: SqlState, message: impl Into<String>) -> Self {
        TenancyError {
            state,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

impl fmt::Display for TenancyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.state.code(), self.message)?;
        if let Some(d) = &self.detail {
            write!(f, "\nDETAIL: {d}")?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\nHINT: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TenancyError {}

pub type Result<T> = std::result::Result<T, TenancyError>;
