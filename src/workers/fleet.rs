//! Fleet background workers: `CALL tenancy.migrate_all(jobs => N)` starts N - 1 of them. Each
//! connects as the calling role to the calling database and runs the same step as the
//! coordinator (`tenancy._fleet_step`), one transaction per tenant.

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::prelude::*;

/// Starts up to `jobs - 1` background workers for run `run_id` (the calling session is the
/// other job). Returns how many started; fewer when the server has no free worker slots.
#[pg_extern(volatile, name = "_fleet_launch")]
#[search_path(pg_catalog, pg_temp)]
fn fleet_launch(run_id: i64, wanted: i32) -> i32 {
    // SAFETY: plain reads of this backend's identity.
    let (db, user, pid) = unsafe { (pg_sys::MyDatabaseId, pg_sys::GetUserId(), pg_sys::MyProcPid) };
    let mut started = 0;
    for i in 0..wanted.max(0) {
        let worker = BackgroundWorkerBuilder::new(&format!(
            "pg_tenancy fleet worker {} (run {run_id})",
            i + 1
        ))
        .set_type("pg_tenancy fleet worker")
        .set_library("pg_tenancy")
        .set_function("tenancy_fleet_worker_main")
        .set_argument(run_id.into_datum())
        .set_extra(&format!("{} {}", db.to_u32(), user.to_u32()))
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

/// A fleet worker: connects as the calling role to the calling database, then runs
/// `tenancy._fleet_step(run)` one transaction at a time until the queue is empty.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn tenancy_fleet_worker_main(arg: pg_sys::Datum) {
    let run_id = arg.value() as i64;
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let mut ids = BackgroundWorker::get_extra()
        .split(' ')
        .map(|x| x.parse::<u32>().unwrap_or(0));
    let db = pg_sys::Oid::from(ids.next().unwrap_or(0));
    let user = pg_sys::Oid::from(ids.next().unwrap_or(0));
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(db), Some(user));
    // The coordinator waits while a session with this application_name is alive.
    BackgroundWorker::transaction(|| {
        Spi::run_with_args(
            "SELECT pg_catalog.set_config('application_name', 'pg_tenancy fleet run ' || $1, false)",
            &[run_id.into()],
        )
    })
    .ok();
    while !BackgroundWorker::sigterm_received() {
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
