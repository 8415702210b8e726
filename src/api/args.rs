//! Arguments of the SQL functions: one rule for NULL.
//!
//! A NULL where a value is needed fails with 22004 naming the function and the parameter, and a
//! hint showing a call that works. Parameters where NULL has a meaning of its own (`target` of
//! `migrate_tenant`, `baseline` of `register_tenant`, `base_version` of the generator, `to_cols`
//! of `add_foreign_key`) are documented on their function's page and never come through here.

use crate::db::report::raise;
use crate::rules::error::{SqlState, TenancyError};

/// The value, or 22004 for `tenancy.<function>`'s parameter `param`; `example` is a call that
/// works, shown in the hint.
pub fn required<T>(value: Option<T>, function: &str, param: &str, example: &str) -> T {
    value.unwrap_or_else(|| {
        raise(
            TenancyError::new(
                SqlState::NullValueNotAllowed,
                format!("tenancy.{function}: {param} must not be NULL"),
            )
            .hint(format!("Pass a value for {param}, e.g. {example}.")),
        )
    })
}
