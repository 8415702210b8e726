//! Fleet background workers: `CALL tenancy.migrate_all(jobs => N)` starts N - 1 of them. Each
//! connects as the calling role to the calling database and runs the same step as the
//! coordinator (`tenancy._fleet_step`), one transaction per tenant.
//!
//! SIGTERM (`pg_terminate_backend`, a server shutdown) runs PostgreSQL's own `die`, as pg_cron's
//! workers do: the worker stops at the next CHECK_FOR_INTERRUPTS, in the middle of a tenant's
//! migration too (a lock wait, `pg_sleep`, a long statement), with FATAL. Its transaction rolls
//! back, so the tenant it had claimed is unlocked and still queued, and the run's other jobs
//! migrate it.

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder};
use pgrx::prelude::*;

use crate::api::args::required;
use crate::db::report::raise;
use crate::db::spi;
use crate::rules::error::{SqlState, TenancyError};
use crate::rules::worker_extra;

/// Starts up to `wanted` background workers for run `run_id` (the calling session is the
/// other job). Returns how many started; fewer when the server has no free worker slots.
#[pg_extern(volatile, name = "_fleet_launch")]
#[search_path(pg_catalog, pg_temp)]
fn fleet_launch(run_id: Option<i64>, wanted: Option<i32>) -> i32 {
    const EXAMPLE: &str = "CALL tenancy.migrate_all(jobs => 2), which calls it";
    let run_id = required(run_id, "_fleet_launch", "run_id", EXAMPLE);
    let wanted = required(wanted, "_fleet_launch", "wanted", EXAMPLE);
    if wanted < 0 {
        raise(
            TenancyError::new(
                SqlState::InvalidParameterValue,
                format!("tenancy._fleet_launch: wanted must not be negative, not {wanted}"),
            )
            .hint("Pass how many background workers to start, e.g. 1; CALL tenancy.migrate_all(jobs => N) starts N - 1."),
        );
    }
    let exists = spi::get_one::<bool>(
        "SELECT EXISTS (SELECT FROM tenancy.fleet_runs r WHERE r.run_id OPERATOR(pg_catalog.=) $1)",
        &[run_id.into()],
    );
    if exists != Some(true) {
        raise(
            TenancyError::new(
                SqlState::UndefinedObject,
                format!("tenancy._fleet_launch: there is no fleet run {run_id}"),
            )
            .hint("SELECT run_id FROM tenancy.progress lists the runs; CALL tenancy.migrate_all(jobs => N) starts a run with its workers."),
        );
    }
    // SAFETY: plain reads of this backend's identity.
    let (db, user, pid) = unsafe { (pg_sys::MyDatabaseId, pg_sys::GetUserId(), pg_sys::MyProcPid) };
    let extra = worker_extra::encode(db.to_u32(), user.to_u32());
    let mut started = 0;
    for i in 0..wanted {
        let worker = BackgroundWorkerBuilder::new(&format!(
            "pg_tenancy fleet worker {} (run {run_id})",
            i + 1
        ))
        .set_type("pg_tenancy fleet worker")
        .set_library("pg_tenancy")
        .set_function("tenancy_fleet_worker_main")
        .set_argument(run_id.into_datum())
        .set_extra(&extra)
        .enable_spi_access()
        .set_notify_pid(pid)
        .load_dynamic();
        if worker.is_err() {
            break;
        }
        started += 1;
    }
    started
}

// PostgreSQL's own signal handlers, by their C symbols: pgrx's bindings of C functions are Rust
// wrappers that catch ERRORs, which a signal handler must not be.
unsafe extern "C-unwind" {
    /// SIGTERM in PostgreSQL's backends: sets ProcDiePending and the latch.
    fn die(postgres_signal_arg: std::ffi::c_int);
    /// SIGHUP in PostgreSQL's auxiliary processes: sets ConfigReloadPending and the latch.
    #[link_name = "SignalHandlerForConfigReload"]
    fn signal_handler_for_config_reload(postgres_signal_arg: std::ffi::c_int);
}

/// Installs `handler` for `signal` in this process.
unsafe fn set_signal_handler(signal: u32, handler: unsafe extern "C-unwind" fn(i32)) {
    #[cfg(not(feature = "pg18"))]
    // SAFETY: installs a signal handler of PostgreSQL's in this process.
    unsafe {
        pg_sys::pqsignal(signal as i32, Some(handler));
    }
    #[cfg(feature = "pg18")]
    // SAFETY: installs a signal handler of PostgreSQL's in this process.
    unsafe {
        pg_sys::pqsignal_be(signal as i32, Some(handler));
    }
}

/// Re-reads the configuration files after a SIGHUP (`pg_reload_conf()`), between transactions as
/// PostgreSQL's own backends do.
fn reload_config_if_asked() {
    // SAFETY: ConfigReloadPending is this process's flag, set by its SIGHUP handler.
    unsafe {
        if (&raw const pg_sys::ConfigReloadPending).read_volatile() != 0 {
            (&raw mut pg_sys::ConfigReloadPending).write_volatile(0);
            pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP);
        }
    }
}

/// A fleet worker: connects as the calling role to the calling database, then runs
/// `tenancy._fleet_step(run)` one transaction at a time until the queue is empty.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn tenancy_fleet_worker_main(arg: pg_sys::Datum) {
    let run_id = arg.value() as i64;
    // SAFETY: PostgreSQL's own handlers, as in its backends (and pg_cron's workers): SIGTERM
    // makes the next CHECK_FOR_INTERRUPTS end the process with FATAL, aborting its transaction.
    // A background worker starts with signals blocked; unblocking delivers one sent meanwhile.
    unsafe {
        set_signal_handler(pg_sys::SIGTERM, die);
        set_signal_handler(pg_sys::SIGHUP, signal_handler_for_config_reload);
        pg_sys::BackgroundWorkerUnblockSignals();
    }
    let (db, user) =
        worker_extra::decode(BackgroundWorker::get_extra()).unwrap_or_else(|e| raise(e));
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(db.into()), Some(user.into()));
    // The coordinator waits while a session with this application_name is alive.
    BackgroundWorker::transaction(|| {
        Spi::run_with_args(
            "SELECT pg_catalog.set_config('application_name', 'pg_tenancy fleet run ' || $1, false)",
            &[run_id.into()],
        )
    })
    .ok();
    loop {
        pgrx::check_for_interrupts!();
        reload_config_if_asked();
        let more = BackgroundWorker::transaction(|| {
            Spi::get_one_with_args::<bool>("SELECT tenancy._fleet_step($1)", &[run_id.into()])
                .ok()
                .flatten()
                .unwrap_or(false)
        });
        if !more {
            break;
        }
    }
}
