//! The few SPI calls everything else is built on. Every query text passed here is fully
//! qualified, with its operators qualified too, so it means the same thing whatever the caller's
//! `search_path` is.

use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;

use crate::db::report::OrRaise;

/// The first column of the first row, or `None` when there is no row (or it is NULL).
/// Runs read-write, so in READ COMMITTED each call takes a fresh snapshot: it sees what committed
/// while this statement waited for a lock.
pub fn get_one<T: FromDatum + IntoDatum>(query: &str, args: &[DatumWithOid]) -> Option<T> {
    Spi::connect_mut(|c| {
        let t = c.update(query, Some(1), args).or_raise();
        if t.is_empty() {
            None
        } else {
            t.first().get_one::<T>().or_raise()
        }
    })
}

pub fn run(sql: &str) {
    Spi::run(sql).or_raise()
}

/// `set_config(name, value, is_local)`.
pub fn set_config(name: &str, value: &str, is_local: bool) {
    Spi::run_with_args(
        "SELECT pg_catalog.set_config($1, $2, $3)",
        &[name.into(), value.into(), is_local.into()],
    )
    .or_raise()
}

pub fn current_setting(name: &str) -> Option<String> {
    get_one::<String>(
        "SELECT pg_catalog.current_setting($1, true)",
        &[name.into()],
    )
}

/// Runs a query returning (text, bool) rows.
pub fn rows_text_bool(query: &str) -> Vec<(String, bool)> {
    Spi::connect_mut(|c| {
        c.update(query, None, &[])
            .or_raise()
            .map(|r| {
                (
                    r.get::<String>(1).or_raise().unwrap_or_default(),
                    r.get::<bool>(2).or_raise().unwrap_or(false),
                )
            })
            .collect()
    })
}

/// Runs a query returning (text, text) rows.
pub fn rows_text_text(query: &str) -> Vec<(String, String)> {
    Spi::connect_mut(|c| {
        c.update(query, None, &[])
            .or_raise()
            .map(|r| {
                (
                    r.get::<String>(1).or_raise().unwrap_or_default(),
                    r.get::<String>(2).or_raise().unwrap_or_default(),
                )
            })
            .collect()
    })
}
