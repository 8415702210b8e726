#!/usr/bin/env python3
"""pg_tenancy benchmarks: provisioning, the scale curve (per-tenant cost as the fleet grows, with and
without a foreign key to a shared table), the history curve (per-tenant cost as the migration history
grows), fleet migration against the one-round-trip raw loop, and django-tenants. Driven by
bench/run.sh (`make bench`, `make bench-quick`); each phase writes a JSON file, `report` turns them
into BENCHMARKS.md and the plots. Timings are reported, never asserted.

Measurements: wall time from the client; backend CPU from /proc/PID/sched (the scheduler's on-CPU
time of the backend serving the connection; utime + stime where the kernel lacks it);
server CPU of a fleet run from the postmaster's own and reaped children's times plus its live
children; memory from /proc/PID/smaps_rollup (private and shared separately); WAL records from
pg_stat_wal."""
import argparse
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import psycopg

ARGS = None
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def connect(db, autocommit=True):
    return psycopg.connect(host=ARGS.host, port=ARGS.port, user="postgres", dbname=db, autocommit=autocommit)


def q(conn, sql, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else None


def qi(name):
    """A quoted identifier, for the names this harness makes up."""
    return '"' + name.replace('"', '""') + '"'


def summary(samples):
    """Median, min and max of per-run figures, plus the run count."""
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "runs": len(samples)}


def pct(values, p):
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def per_tenant(runs):
    """runs: list of lists of per-tenant seconds -> p50/p95 summaries across runs (in ms)."""
    return {
        "p50": summary([pct(r, 50) * 1000 for r in runs]),
        "p95": summary([pct(r, 95) * 1000 for r in runs]),
        "samples": sum(len(r) for r in runs),
    }


# --- what /proc says --------------------------------------------------------------------------

def _stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        # the command name is in parentheses and may contain spaces: split after the last ')'
        return f.read().rsplit(")", 1)[1].split()


def cpu_s(pid):
    """CPU time of a process, in seconds: the scheduler's se.sum_exec_runtime (/proc/PID/sched,
    nanosecond precision) where the kernel has it, else utime + stime (clock ticks)."""
    try:
        with open(f"/proc/{pid}/sched") as f:
            for line in f:
                if line.startswith("se.sum_exec_runtime"):
                    return float(line.split(":")[1]) / 1000
    except (OSError, ValueError):
        pass
    try:
        st = _stat(pid)
    except OSError:
        return None
    return (int(st[11]) + int(st[12])) / CLK_TCK


def backend_pid(conn):
    return q(conn, "SELECT pg_backend_pid()")[0][0]


def postmaster_pid(conn):
    return int(_stat(backend_pid(conn))[1])


def server_cpu_s(pm):
    """CPU of the whole server: the postmaster (with the children it reaped: exited backends and
    workers) plus its live children."""
    st = _stat(pm)
    total = sum(int(x) for x in st[11:15])
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            s = _stat(pid)
        except OSError:
            continue
        if int(s[1]) == pm:
            total += int(s[11]) + int(s[12])
    return total / CLK_TCK


def smaps(pid):
    """Memory of one process from smaps_rollup, in KiB: rss, pss, private and shared."""
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                    out[parts[0][:-1]] = int(parts[1])
    except OSError:
        return None
    return {"rss": out.get("Rss", 0), "pss": out.get("Pss", 0),
            "private": out.get("Private_Clean", 0) + out.get("Private_Dirty", 0),
            "shared": out.get("Shared_Clean", 0) + out.get("Shared_Dirty", 0)}


def mib(kb):
    return f"{(kb or 0) / 1024:.0f}"


def wal_records(conn):
    q(conn, "SELECT pg_stat_clear_snapshot()")
    return q(conn, "SELECT wal_records FROM pg_stat_wal")[0][0]


class Timer:
    """Wall and backend CPU of one connection's statements."""

    def __init__(self, conn):
        self.conn, self.pid = conn, backend_pid(conn)

    def run(self, fn):
        c0, t0 = cpu_s(self.pid), time.perf_counter()
        fn()
        wall = time.perf_counter() - t0
        return wall, cpu_s(self.pid) - c0


def cpu_mean_ms(samples):
    """The mean over the samples (where only clock ticks are available, a single sample is 0 or 10 ms)."""
    return 1000 * sum(samples) / len(samples)


def walls(samples):
    ms = [s * 1000 for s in samples]
    return {"p50": pct(ms, 50), "p95": pct(ms, 95), "min": min(ms), "max": max(ms), "n": len(ms)}


def create_db(name, extension=True, plans_rows=0):
    with connect("postgres") as c:
        q(c, f"DROP DATABASE IF EXISTS {qi(name)}")
        q(c, f"CREATE DATABASE {qi(name)}")
    conn = connect(name)
    if extension:
        q(conn, "SET client_min_messages = warning")
        q(conn, "CREATE EXTENSION pg_tenancy")
        q(conn, "CREATE TABLE public.plans (id bigint PRIMARY KEY)")
        if plans_rows:
            q(conn, "INSERT INTO public.plans SELECT generate_series(1, %s)", (plans_rows,))
        q(conn, "CREATE TABLE public.organizations (id bigint PRIMARY KEY)")
        q(conn, "SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':id'])")
    return conn


def drop_db(name):
    with connect("postgres") as c:
        q(c, f"DROP DATABASE IF EXISTS {qi(name)}")


def split(conn, schema, sql_rows):
    """Statements of migrations as pg_tenancy runs them (its own lexer, @tenant@ substituted)."""
    stmts = []
    for sql in sql_rows:
        stmts += [r[0] for r in q(conn, "SELECT tenancy._split_statements(%s, %s)", (sql, schema))]
    return stmts


def raw_transaction(schema, stmts):
    """One multi-statement string: one transaction and one round trip, so only the server's cost."""
    return ";\n".join(["BEGIN", f"CREATE SCHEMA {qi(schema)}", f"SET LOCAL search_path = {qi(schema)}, public"]
                      + stmts + ["COMMIT"])


def catalog(conn):
    r = q(conn, "SELECT (SELECT count(*) FROM pg_class), "
                "(SELECT sum(pg_total_relation_size(oid))::bigint FROM pg_class WHERE relnamespace = 'pg_catalog'::regnamespace), "
                "(SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.plans'::regclass), "
                "(SELECT count(*) FROM tenancy.tenants)")[0]
    return {"relations": r[0], "catalog_bytes": r[1], "plans_triggers": r[2], "tenants": r[3]}


# --- migration sets ---------------------------------------------------------------------------

def shipped_set():
    """tenant_migrations/ as (version, name, sql), in apply order (what a normal build embeds)."""
    d = os.path.join(ROOT, "tenant_migrations")
    out = []
    for f in os.listdir(d):
        m = re.fullmatch(r"(\d+)_(.+)\.sql", f)
        if m:
            out.append((m.group(1), m.group(2), open(os.path.join(d, f)).read()))
    return sorted(out, key=lambda m: int(m[0]))


def register(conn, migrations):
    for version, name, sql in migrations:
        q(conn, "SELECT tenancy.add_migration(%s, %s, %s)", (version, name, sql))


FK = re.compile(r"\s+REFERENCES\s+public\.plans\s*\(id\)", re.I)


def set_shipped():
    """The shipped migrations as they are: 0005 declares subscription.plan_id REFERENCES public.plans
    and 20261127000000 turns it into a shared reference (tenancy.reference_shared) where public.plans
    is shared, and changes nothing where it is not."""
    ms = shipped_set()
    if not any(FK.search(sql) for _, _, sql in ms):
        raise SystemExit("bench: the shipped migrations no longer declare a native foreign key to public.plans; "
                         "give the native_fk variant the old 0005 text (see SCALE_VARIANTS in bench/bench.py)")
    return ms


def set_no_fk():
    """The shipped migrations with the foreign key to public.plans removed (plan_id stays a plain
    bigint): the floor that a reference without fan-in should reach."""
    out, hits = [], 0
    for version, name, sql in shipped_set():
        new, n = FK.subn("", sql)
        hits += n
        out.append((version, name, new))
    if hits != 1:
        raise SystemExit(f"bench: expected one REFERENCES public.plans in the shipped set, found {hits}")
    return out


def share_plans(conn):
    """What the application's DBA does once before the first tenant: public.plans' owner runs
    tenancy.share_table (docs/functions/share_table.md)."""
    owner = q(conn, "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'public.plans'::regclass")[0][0]
    q(conn, f"SET ROLE {qi(owner)}")
    q(conn, "SELECT tenancy.share_table('public.plans')")
    q(conn, "RESET ROLE")
    # The run in BENCHMARKS.md measured sign-ups declaring 0005's key as a shared reference at
    # once, which is now opt-in (docs/functions/reference_shared.md): keep measuring that.
    db = q(conn, "SELECT current_database()")[0][0]
    q(conn, f"ALTER DATABASE {qi(db)} SET tenancy.convert_shared_foreign_keys = on")
    q(conn, "SET tenancy.convert_shared_foreign_keys = on")


def share_plans_and_build_snapshot(conn):
    """share_plans, then the snapshot new tenants are built from (docs/snapshots.md): the path a
    DBA opts into once; create_tenant then never replays the set."""
    share_plans(conn)
    path, reason = q(conn, "SELECT path, reason FROM tenancy.build_snapshot()")[0]
    if path != "snapshot":
        raise SystemExit(f"bench: the shipped set's snapshot was not proven: {reason}")


# The scale curve's variants, measured side by side in one cluster. Each is a migration set
# registered in a database of its own (the build used embeds no migrations), plus an optional set-up
# run once before the first tenant (as the database owner). All three run the shipped set's text:
# shared_ref is what a new installation does (public.plans shared, so 20261127000000 replaces 0005's
# native foreign key by a shared reference); native_fk leaves public.plans unshared, so every tenant
# keeps 0005's native foreign key (as before shared references, and on Citus); no_fk drops the
# REFERENCES clause (the floor).
SCALE_VARIANTS = {
    "native_fk": {"label": "native FK to public.plans (shipped set, plans not shared)", "migrations": set_shipped,
                  "setup": None},
    "shared_ref": {"label": "shared reference (shipped set, plans shared with tenancy.share_table, convert_shared_foreign_keys on)",
                   "migrations": set_shipped, "setup": share_plans},
    "no_fk": {"label": "no reference to plans at all (floor)", "migrations": set_no_fk, "setup": None},
    "snapshot": {"label": "as shared_ref, tenants built from the proven snapshot (tenancy.build_snapshot() once before the first tenant)",
                 "migrations": set_shipped, "setup": lambda conn: share_plans_and_build_snapshot(conn)},
}

# The variant that stands for "the shipped migrations" in the targets.
SHIPPED_VARIANT = "shared_ref"


# --- provisioning one tenant, interleaved ---------------------------------------------------

def one_tenant(conn, runs, per_run, sql_rows, prefix):
    """The same migrations into fresh schemas, the variants interleaved tenant by tenant (rotating
    order): raw statement by statement in autocommit, raw in one transaction (statement by
    statement), raw as one multi-statement string (one transaction), create_tenant, and an INSERT
    into a managed table. Wall p50/p95 per run; backend CPU as a mean over all samples."""
    kinds = ["autocommit", "transaction", "string", "create_tenant", "managed_insert"]
    timer = Timer(conn)
    wall = {k: [] for k in kinds}
    cpu = {k: [] for k in kinds}
    n = 0
    for r in range(runs):
        for k in kinds:
            wall[k].append([])
        for i in range(per_run):
            order = kinds[n % len(kinds):] + kinds[:n % len(kinds)]
            for k in order:
                schema = f"{prefix}_{k}_{n}"
                if k in ("autocommit", "transaction", "string"):
                    stmts = split(conn, schema, sql_rows)
                    path = f"SET search_path = {qi(schema)}, public"

                    def go(k=k, schema=schema, stmts=stmts, path=path):
                        if k == "string":
                            q(conn, raw_transaction(schema, stmts))
                        elif k == "transaction":
                            with conn.transaction():
                                q(conn, f"CREATE SCHEMA {qi(schema)}")
                                q(conn, path)
                                for s in stmts:
                                    q(conn, s)
                        else:
                            q(conn, f"CREATE SCHEMA {qi(schema)}")
                            q(conn, path)
                            for s in stmts:
                                q(conn, s)
                elif k == "create_tenant":
                    def go(schema=schema):
                        q(conn, "SELECT tenancy.create_tenant(%s)", (schema,))
                else:
                    def go(n=n):
                        q(conn, "INSERT INTO organizations VALUES (%s)", (n,))
                w, c = timer.run(go)
                q(conn, "RESET search_path")
                wall[k][-1].append(w)
                cpu[k].append(c)
            n += 1
    return {k: dict(per_tenant(wall[k]), cpu_ms=cpu_mean_ms(cpu[k])) for k in kinds}


def provision_runs(conn, runs, per_run, how, start_id):
    all_runs, n = [], start_id
    for _ in range(runs):
        times = []
        for _ in range(per_run):
            t0 = time.perf_counter()
            if how == "create_tenant":
                q(conn, "SELECT tenancy.create_tenant(%s)", (f"ct_{n}",))
            else:
                q(conn, "INSERT INTO organizations VALUES (%s)", (n,))
            times.append(time.perf_counter() - t0)
            n += 1
        all_runs.append(times)
    return per_tenant(all_runs)


def provision_sequence(db, first, count, batches):
    """count tenants with create_tenant on one connection, in `batches` timed batches; the
    backend's memory at the end (private and shared separately: most of its RSS is shared buffers)."""
    conn = connect(db)
    pid = backend_pid(conn)
    rates, n, size = [], first, max(1, count // batches)
    for _ in range(batches):
        t0 = time.perf_counter()
        for _ in range(size):
            q(conn, "SELECT tenancy.create_tenant(%s)", (f"seq_{n}",))
            n += 1
        rates.append(size / (time.perf_counter() - t0))
    result = {"tenants_per_second": summary(rates), "memory": smaps(pid)}
    result.update(catalog(conn))
    conn.close()
    return result


# --- the fleet --------------------------------------------------------------------------------

class MemorySampler:
    """Peak private memory (and the shared memory at that moment) of a coordinator backend and of
    pg_tenancy's fleet workers, sampled from /proc/PID/smaps_rollup while a run goes."""

    def __init__(self, coordinator):
        self.coordinator = coordinator
        self.peak = {"coordinator": None, "worker": None}
        self.stop = False
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def keep(self, who, m):
        if m and (self.peak[who] is None or m["private"] > self.peak[who]["private"]):
            self.peak[who] = m

    def loop(self):
        while not self.stop:
            self.keep("coordinator", smaps(self.coordinator))
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        if b"fleet worker" not in f.read():
                            continue
                except OSError:
                    continue
                self.keep("worker", smaps(pid))
            time.sleep(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop = True
        self.thread.join()


def psql(db, script):
    """Runs a SQL file through ONE psql session: each statement its own autocommit round trip."""
    psql_bin = os.path.join(os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin"), "psql")
    subprocess.run([psql_bin, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", ARGS.host, "-p", str(ARGS.port),
                    "-U", "postgres", "-d", db, "-f", script], check=True, stdout=subprocess.DEVNULL)


def fleet(db, runs, label, kinds=("jobs1", "jobs2", "raw", "noop")):
    """One new small migration (`ALTER TABLE users ADD COLUMN … text`) over every tenant, interleaved
    round by round in rotating order: migrate_all(jobs 1), migrate_all(jobs 2), the one-round-trip
    raw loop (the same ALTER, schema-qualified, one autocommit statement per tenant from one psql
    session) and a no-op migrate_all. Wall, server CPU and WAL records of each run."""
    admin = connect(db)
    pm = postmaster_pid(admin)
    schemas = [r[0] for r in q(admin, "SELECT schema_name::text FROM tenancy.tenants ORDER BY 1")]
    counter = q(admin, "SELECT count(*) FROM tenancy.migrations")[0][0]
    samples = {k: [] for k in kinds}
    for r in range(runs):
        order = list(kinds[r % len(kinds):]) + list(kinds[:r % len(kinds)])
        for k in order:
            script, mem = None, None
            if k in ("jobs1", "jobs2"):
                counter += 1
                q(admin, "SELECT tenancy.add_migration(%s, %s, %s)",
                  (f"{40000000000000 + counter}", f"bench_{label}_{counter}",
                   f"ALTER TABLE users ADD COLUMN bench_{label}_{counter} text"))
            elif k == "raw":
                fd, script = tempfile.mkstemp(suffix=".sql")
                with os.fdopen(fd, "w") as f:
                    for s in schemas:
                        f.write(f"ALTER TABLE {qi(s)}.users ADD COLUMN raw_{label}_{r} text;\n")
            time.sleep(0.3)
            wal0, cpu0 = wal_records(admin), server_cpu_s(pm)
            if k == "raw":
                t0 = time.perf_counter()
                psql(db, script)
                wall = time.perf_counter() - t0
                os.unlink(script)
            else:
                conn = connect(db)
                q(conn, "SET client_min_messages = warning")
                jobs = {"jobs1": "jobs => 1", "jobs2": "jobs => 2", "noop": ""}[k]
                with MemorySampler(backend_pid(conn)) as sampler:
                    t0 = time.perf_counter()
                    q(conn, f"CALL tenancy.migrate_all({jobs})")
                    wall = time.perf_counter() - t0
                mem = sampler.peak
                conn.close()
            time.sleep(0.5)  # exited backends and workers flush their WAL counters and are reaped
            samples[k].append({"wall": wall, "server_cpu": server_cpu_s(pm) - cpu0,
                               "wal_records": wal_records(admin) - wal0, "memory": mem})
    out = {"tenants": len(schemas), "runs": runs}
    for k, ss in samples.items():
        out[k] = {"seconds": summary([s["wall"] for s in ss]),
                  "server_cpu": summary([s["server_cpu"] for s in ss]),
                  "wal_per_tenant": summary([s["wal_records"] / max(1, len(schemas)) for s in ss])}
        mems = [s["memory"] for s in ss if s["memory"]]
        for who in ("coordinator", "worker"):
            ms = [m[who] for m in mems if m[who]]
            out[k][f"{who}_memory"] = max(ms, key=lambda m: m["private"]) if ms else None
    admin.close()
    return out


def phase_shipped():
    quick = ARGS.quick
    runs, per_run = (2, 3) if quick else (5, 20)
    conn = create_db("bench_shipped")
    rows = [r[0] for r in q(conn, "SELECT sql FROM tenancy._embedded_migrations() ORDER BY version::numeric")]
    out = {"one_tenant": one_tenant(conn, runs, per_run, rows, "one"),
           "migrations": len(rows)}
    n1 = 50 if quick else 1000
    existing = q(conn, "SELECT count(*) FROM tenancy.tenants")[0][0]
    out["sequence_1"] = provision_sequence("bench_shipped", 0, n1 - existing, 5)
    out["fleet_1"] = fleet("bench_shipped", 2 if quick else 5, "a")
    conn.close()
    return out


def phase_zabbix():
    """Debian's zabbix schema as the one registered migration (the build embeds none)."""
    quick = ARGS.quick
    runs, per_run = (1, 2) if quick else (5, 6)
    conn = create_db("bench_zabbix")
    sql = open(ARGS.zabbix).read()
    register(conn, [("0001", "zabbix", sql)])
    stmts = split(conn, "x", [sql])
    out = {"statements": len(stmts), "one_tenant": one_tenant(conn, runs, per_run, [sql], "z")}
    conn.close()
    drop_db("bench_zabbix")
    return out




# --- the scale curve --------------------------------------------------------------------------

def scale_points():
    if ARGS.quick:
        return [20, 50]
    env = os.environ.get("BENCH_SCALE")
    return [int(x) for x in env.split(",")] if env else [100, 1000, 5000, 10000]


def phase_scale():
    """Per-tenant create_tenant cost as the fleet grows, the variants of SCALE_VARIANTS side by side
    in one cluster: grown together in alternating chunks, measured at each point in interleaved
    rounds (rotating order). At each point also: the application's query on public.plans on a warm
    connection, its next query after a tenant was created elsewhere (each new foreign key
    invalidates plans' relation cache entry in every backend), the first query of a fresh
    connection, and deleting an unreferenced plans row (first in a session, then again)."""
    quick = ARGS.quick
    rounds, fresh, deletes, chunk = (3, 3, 1, 10) if quick else (20, 20, 3, 50)
    names = list(SCALE_VARIANTS)
    dbs = {v: f"bench_scale_{v}" for v in names}
    admin, grow = {}, {}
    for v in names:
        admin[v] = create_db(dbs[v], plans_rows=10)
        register(admin[v], SCALE_VARIANTS[v]["migrations"]())
        if SCALE_VARIANTS[v]["setup"]:
            SCALE_VARIANTS[v]["setup"](admin[v])
        grow[v] = connect(dbs[v])
    grow_pid = {v: backend_pid(grow[v]) for v in names}
    made = {v: 0 for v in names}
    next_plan = {v: 1000 for v in names}
    growth = {v: [] for v in names}  # (tenants before the chunk, seconds per tenant, cpu per tenant)
    points = []

    def new_tenant(conn, v):
        made[v] += 1
        q(conn, "SELECT tenancy.create_tenant(%s)", (f"t_{made[v]}",))

    for target in scale_points():
        # grow every variant to `target` tenants, alternating chunks
        while any(made[v] < target for v in names):
            for v in names:
                k = min(chunk, target - made[v])
                if k <= 0:
                    continue
                before = made[v]
                c0, t0 = cpu_s(grow_pid[v]), time.perf_counter()
                for _ in range(k):
                    new_tenant(grow[v], v)
                growth[v].append((before, (time.perf_counter() - t0) / k, (cpu_s(grow_pid[v]) - c0) / k))
        point = {"target": target, "variants": {}}
        for v in names:
            point["variants"][v] = dict(catalog(admin[v]), grower_memory=smaps(grow_pid[v]))
        # provisioning and the application's queries, interleaved
        prov = {v: connect(dbs[v]) for v in names}
        app = {v: connect(dbs[v]) for v in names}
        for v in names:
            new_tenant(prov[v], v)  # warm-up, not timed
            q(app[v], "SELECT id FROM public.plans WHERE id = 1")
        pt, at = {v: Timer(prov[v]) for v in names}, {v: Timer(app[v]) for v in names}
        s = {v: {"create": [], "app_warm": [], "app_after_create": []} for v in names}
        for r in range(rounds):
            for v in names[r % len(names):] + names[:r % len(names)]:
                s[v]["app_warm"].append(at[v].run(lambda: q(app[v], "SELECT id FROM public.plans WHERE id = 1")))
                s[v]["create"].append(pt[v].run(lambda: new_tenant(prov[v], v)))
                s[v]["app_after_create"].append(at[v].run(lambda: q(app[v], "SELECT id FROM public.plans WHERE id = 1")))
        for v in names:
            prov[v].close()
            app[v].close()
        # a fresh connection's first query on plans
        for v in names:
            s[v]["app_first"] = []
        for r in range(fresh):
            for v in names[r % len(names):] + names[:r % len(names)]:
                c = connect(dbs[v])
                s[v]["app_first"].append(Timer(c).run(lambda: q(c, "SELECT id FROM public.plans WHERE id = 1")))
                c.close()
        # deleting a plans row nothing references: first in a session, then a second one
        for v in names:
            s[v]["delete_first"], s[v]["delete_again"] = [], []
        for r in range(deletes):
            for v in names[r % len(names):] + names[:r % len(names)]:
                a, b = next_plan[v], next_plan[v] + 1
                next_plan[v] += 2
                q(admin[v], "INSERT INTO public.plans VALUES (%s), (%s)", (a, b))
                c = connect(dbs[v])
                t = Timer(c)
                for key, row in (("delete_first", a), ("delete_again", b)):
                    try:
                        s[v][key].append(t.run(lambda: q(c, "DELETE FROM public.plans WHERE id = %s", (row,))))
                    except psycopg.errors.OutOfMemory as e:
                        # with native foreign keys, one lock per tenant table: past max_locks_per_transaction
                        # the delete fails (a finding, not a harness error)
                        point["variants"][v].setdefault("errors", {})[key] = f"{e.sqlstate} {str(e).splitlines()[0]}"
                c.close()
        # the application's query on plans while a sign-up is open (not committed yet): does the
        # sign-up hold a lock on plans that blocks it? (lock_timeout 1 s)
        for v in names:
            s[v]["app_during_signup"], point["variants"][v]["signup_locks_on_plans"] = [], []
            point["variants"][v]["app_blocked_during_signup"] = 0
        for r in range(deletes):
            for v in names[r % len(names):] + names[:r % len(names)]:
                signup = connect(dbs[v], autocommit=False)
                made[v] += 1
                q(signup, "SELECT tenancy.create_tenant(%s)", (f"t_{made[v]}",))
                locks = [m for (m,) in q(admin[v], "SELECT mode FROM pg_locks WHERE relation = 'public.plans'::regclass "
                                                   "AND pid = %s AND granted ORDER BY 1", (backend_pid(signup),))]
                point["variants"][v]["signup_locks_on_plans"] = sorted(set(point["variants"][v]["signup_locks_on_plans"]) | set(locks))
                c = connect(dbs[v])
                q(c, "SET lock_timeout = '1s'")
                t = Timer(c)

                def probe():
                    try:
                        q(c, "SELECT id FROM public.plans WHERE id = 1")
                    except psycopg.errors.LockNotAvailable:
                        point["variants"][v]["app_blocked_during_signup"] += 1
                s[v]["app_during_signup"].append(t.run(probe))
                c.close()
                signup.commit()
                signup.close()
        for v in names:
            point["variants"][v]["tenants_after"] = made[v]
            for key, samples in s[v].items():
                point["variants"][v][key] = {"wall": walls([w for w, _ in samples]),
                                             "cpu_ms": cpu_mean_ms([c for _, c in samples])} if samples else None
        points.append(point)
        print(f"scale: {target} tenants measured", flush=True)
    for v in names:
        grow[v].close()
    out = {"variants": {v: SCALE_VARIANTS[v]["label"] for v in names}, "points": points,
           "growth": {v: growth[v] for v in names}}
    # the fleet at the largest point, on the shipped set as a new installation runs it
    out["fleet"] = fleet(dbs[SHIPPED_VARIANT], 1 if quick else 3, "s")
    for v in names:
        admin[v].close()
        drop_db(dbs[v])
    return out


# --- fifty thousand tenants -------------------------------------------------------------------

def fifty_count():
    return int(os.environ.get("BENCH_FIFTY_N", "50000"))


def phase_fifty():
    """The shipped set (the build's embedded migrations) to BENCH_FIFTY_N tenants (50 000), as a new
    installation runs it: public.plans shared before the first tenant. create_tenant in chunks of
    1 000, each chunk on a fresh connection (as a pool recycles them); per chunk: wall, the
    provisioning backend's CPU per tenant and its private memory at the end, the catalog (pg_class
    rows, size), the database's size. At the end, the application's first query on plans from a
    fresh connection and deleting an unreferenced plans row. Opt-in: `make bench-fifty` (or
    BENCH_FIFTY=1 make bench)."""
    total = fifty_count()
    chunk = min(1000, total)
    conn = create_db("bench_fifty", plans_rows=10)
    share_plans(conn)
    embedded = q(conn, "SELECT count(*) FROM tenancy._embedded_migrations()")[0][0]
    chunks = []
    t_start = time.perf_counter()
    made = 0
    while made < total:
        k = min(chunk, total - made)
        c = connect("bench_fifty")
        pid = backend_pid(c)
        c0, t0 = cpu_s(pid), time.perf_counter()
        for _ in range(k):
            made += 1
            q(c, "SELECT tenancy.create_tenant(%s)", (f"t_{made}",))
        wall, cpu = time.perf_counter() - t0, cpu_s(pid) - c0
        memory = smaps(pid)
        c.close()
        cat = catalog(conn)
        cat["database_bytes"] = q(conn, "SELECT pg_database_size(current_database())")[0][0]
        chunks.append(dict(cat, tenants_before=made - k, count=k, wall_s=wall, cpu_ms_per_tenant=1000 * cpu / k,
                           wall_ms_per_tenant=1000 * wall / k, tenants_per_second=k / wall, memory=memory,
                           elapsed_s=time.perf_counter() - t_start))
        print(f"fifty: {made} tenants, {k / wall:.1f} tenants/s, {1000 * cpu / k:.1f} ms CPU per tenant, "
              f"{cat['relations']} relations", flush=True)
    elapsed = time.perf_counter() - t_start
    end = {}
    for label, sql in (("app_first", "SELECT id FROM public.plans WHERE id = 1"),):
        samples = []
        for _ in range(5):
            c = connect("bench_fifty")
            samples.append(Timer(c).run(lambda: q(c, sql)))
            c.close()
        end[label] = {"wall": walls([w for w, _ in samples]), "cpu_ms": cpu_mean_ms([c for _, c in samples])}
    samples = []
    for i in range(3):
        q(conn, "INSERT INTO public.plans VALUES (%s)", (900000 + i,))
        c = connect("bench_fifty")
        samples.append(Timer(c).run(lambda: q(c, "DELETE FROM public.plans WHERE id = %s", (900000 + i,))))
        c.close()
    end["delete_first"] = {"wall": walls([w for w, _ in samples]), "cpu_ms": cpu_mean_ms([c for _, c in samples])}
    out = {"tenants": made, "migrations": embedded, "chunk": chunk, "elapsed_s": elapsed, "chunks": chunks, "end": end,
           "build": os.environ.get("PROFILE", "?")}
    conn.close()
    if os.environ.get("BENCH_FIFTY_KEEP") != "1":
        drop_db("bench_fifty")
    return out


def fifty_section(f, w, rel):
    png = os.path.join(ARGS.plots, "fifty.png")
    plot_fifty(f, png)
    first, last = f["chunks"][0], f["chunks"][-1]
    w(f"## {f['tenants']:,} tenants: the shipped set\n".replace(",", " "))
    w(f"`make bench-fifty` ({f.get('build', '?')} build): the shipped migrations ({f['migrations']}) as a new installation "
      f"runs them (public.plans shared before the first tenant), `create_tenant` in chunks of {f['chunk']} on one "
      f"connection per chunk. {f['tenants']} tenants in {f['elapsed_s'] / 60:.0f} min "
      f"({f['tenants'] / f['elapsed_s']:.1f} tenants/s overall); at the end {last['relations']} relations, a "
      f"{last['catalog_bytes'] / 2**20:.0f} MiB catalog and a {last['database_bytes'] / 2**30:.2f} GiB database.\n")
    w(f"![fifty thousand]({rel(png)})\n")
    w("| tenants at the end of the chunk | tenants/s | backend CPU ms per tenant | wall ms per tenant | × first chunk (CPU) "
      "| relations | catalog MiB | database MiB | provisioning backend private MiB |\n|---|---|---|---|---|---|---|---|---|")
    step = max(1, len(f["chunks"]) // 10)
    rows = f["chunks"][::step]
    if rows[-1] is not last:
        rows.append(last)
    for c in rows:
        w(f"| {c['tenants_before'] + c['count']} | {c['tenants_per_second']:.1f} | {c['cpu_ms_per_tenant']:.1f} | "
          f"{c['wall_ms_per_tenant']:.1f} | {c['cpu_ms_per_tenant'] / max(first['cpu_ms_per_tenant'], 1e-9):.2f} | "
          f"{c['relations']} | {c['catalog_bytes'] / 2**20:.0f} | {c['database_bytes'] / 2**20:.0f} | "
          f"{mib(c['memory']['private']) if c['memory'] else '–'} |")
    e = f["end"]
    w(f"\nAt {f['tenants']} tenants: the application's first query on plans from a fresh connection "
      f"{e['app_first']['cpu_ms']:.1f} ms CPU ({e['app_first']['wall']['p50']:.1f} ms wall); deleting an unreferenced "
      f"plans row, first in a session, {e['delete_first']['wall']['p50']:.1f} ms wall. Every chunk: "
      f"`{os.path.relpath(ARGS.results, ROOT)}/fifty.json`.\n")


def plot_fifty(f, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    xs = [c["tenants_before"] + c["count"] for c in f["chunks"]]
    fig, ax = plt.subplots(figsize=(7.5, 4.4))
    ax.plot(xs, [c["cpu_ms_per_tenant"] for c in f["chunks"]], marker=".", label="backend CPU per tenant (ms)")
    ax.plot(xs, [c["wall_ms_per_tenant"] for c in f["chunks"]], marker=".", label="wall per tenant (ms)")
    ax.set_xlabel("tenants in the database")
    ax.set_ylabel("ms per new tenant (mean of the chunk)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(xs, [c["catalog_bytes"] / 2**20 for c in f["chunks"]], color="grey", linestyle="--", label="catalog MiB")
    ax2.set_ylabel("catalog MiB")
    ax2.set_ylim(bottom=0)
    lines = ax.get_legend_handles_labels()
    more = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="upper left")
    ax.set_title(f"The shipped set to {f['tenants']} tenants: create_tenant per 1 000-tenant chunk", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# --- the history curve ------------------------------------------------------------------------

HISTORY_FIRST_VERSION = 30000000000000  # after every shipped version

# The final schema every generated history reaches, whatever its length: HISTORY_TABLES tables,
# each created with id + created_at and grown by ADD COLUMN steps, plus indexes, CHECKs, SET
# DEFAULTs and comments on its columns (fixed, seeded: the same for 100 and 500 migrations).
HISTORY_TABLES = 10
HISTORY_ADDS = 28      # ADD COLUMN steps of the final schema: 10 × 2 + 28 = 48 columns
HISTORY_INDEXES = 8
HISTORY_CHECKS = 3
HISTORY_DEFAULTS = 2
HISTORY_COMMENTS = 4
_TYPES = [("integer", "0"), ("text", "''"), ("boolean", "false"), ("timestamptz", "now()"),
          ("numeric(12,2)", "0"), ("bigint", None)]
_TEMP_DEFAULT = {"integer": "7", "text": "'draft'", "boolean": "true", "timestamptz": "'2000-01-01'",
                 "numeric(12,2)": "1", "bigint": "1"}


def history_core():
    """The steps that build the final schema (one statement each), in a fixed seeded order, and the
    final tables: {name: {"cols": [[name, type, default, notnull]], "checks", "indexes", "comments"}}.
    Each step is (sql, table, columns it names)."""
    rng = random.Random(15)
    tables, lists, k = {}, [], 0
    per = [HISTORY_ADDS // HISTORY_TABLES + (1 if t < HISTORY_ADDS % HISTORY_TABLES else 0) for t in range(HISTORY_TABLES)]
    for t in range(HISTORY_TABLES):
        name = f"h_{t + 1}"
        tab = {"cols": [["id", "bigint", None, True], ["created_at", "timestamptz", "now()", True]],
               "checks": [], "indexes": [], "comments": []}
        tables[name] = tab
        steps = [(f"CREATE TABLE {name} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                  "created_at timestamptz NOT NULL DEFAULT now())", name, [])]
        for _ in range(per[t]):
            typ, default = _TYPES[k % len(_TYPES)]
            if k % 3 == 0:
                default = None
            notnull = default is not None and k % 2 == 0
            col = f"c_{k}"
            k += 1
            tab["cols"].append([col, typ, default, notnull])
            steps.append((f"ALTER TABLE {name} ADD COLUMN {col} {typ}" + (f" DEFAULT {default}" if default else "")
                          + (" NOT NULL" if notnull else ""), name, [col]))
        lists.append(steps)
    # Indexes, CHECKs, defaults and comments on columns the tables have, each after its column's
    # ADD COLUMN (or the CREATE TABLE) at a random place in its table's steps.
    refs = (["index"] * HISTORY_INDEXES + ["check"] * HISTORY_CHECKS + ["default"] * HISTORY_DEFAULTS
            + ["comment"] * HISTORY_COMMENTS)
    used = set()  # (op, table, column): one index, check, default and comment per column at most

    def fits(op, name, c):
        return (c[0] != "id" and (op, name, c[0]) not in used
                and (op != "check" or c[1] in ("integer", "bigint", "numeric(12,2)"))
                and (op != "default" or (c[2] is None and c[1] in ("integer", "text", "boolean"))))

    for j, op in enumerate(refs):
        t0 = j % HISTORY_TABLES if op != "check" else rng.randrange(HISTORY_TABLES)
        for u in range(HISTORY_TABLES):  # this table, or the next one that has such a column
            t = (t0 + u) % HISTORY_TABLES
            name = f"h_{t + 1}"
            tab, steps = tables[name], lists[t]
            cands = [c for c in tab["cols"] if fits(op, name, c)]
            if cands:
                break
        c = rng.choice(cands)
        used.add((op, name, c[0]))
        after = max([i for i, s in enumerate(steps) if c[0] in s[2]] + [0])
        if op == "index":
            sql = f"CREATE INDEX {name}_{c[0]}_idx ON {name} ({c[0]})"
            tab["indexes"].append(sql)
        elif op == "check":
            con = f"{name}_{c[0]}_check"
            tab["checks"].append(f"CONSTRAINT {con} CHECK ({c[0]} >= 0)")
            sql = f"ALTER TABLE {name} ADD {tab['checks'][-1]}"
        elif op == "default":
            c[2] = {"integer": "1", "text": "'x'", "boolean": "true"}[c[1]]
            sql = f"ALTER TABLE {name} ALTER COLUMN {c[0]} SET DEFAULT {c[2]}"
        else:
            tab["comments"].append((c[0], f"{c[0]} of {name}"))
            sql = f"COMMENT ON COLUMN {name}.{c[0]} IS '{c[0]} of {name}'"
        steps.insert(rng.randint(after + 1, len(steps)), (sql, name, [c[0]]))
    # The tables' step lists merged in a random order that keeps each list's own order.
    core, heads = [], [0] * HISTORY_TABLES
    while len(core) < sum(len(s) for s in lists):
        live = [t for t in range(HISTORY_TABLES) if heads[t] < len(lists[t])]
        t = rng.choices(live, weights=[len(lists[t]) - heads[t] for t in live])[0]
        core.append(lists[t][heads[t]])
        heads[t] += 1
    return core, tables


def squashed_history(tables):
    """The final schema as raw DDL: each table created once with all its final columns (final
    defaults, CHECKs inline), then the indexes, then the comments."""
    out = []
    for name, t in tables.items():
        cols = ["id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY"]
        cols += [f"{c[0]} {c[1]}" + (f" DEFAULT {c[2]}" if c[2] else "") + (" NOT NULL" if c[3] else "")
                 for c in t["cols"][1:]]
        out.append(f"CREATE TABLE {name} ({', '.join(cols + t['checks'])})")
    out += [i for t in tables.values() for i in t["indexes"]]
    out += [f"COMMENT ON COLUMN {name}.{col} IS '{text}'" for name, t in tables.items() for col, text in t["comments"]]
    return out


def generated_history(total, shipped_count):
    """total - shipped_count generated one-statement migrations after the shipped set: the fixed
    final schema's steps (history_core) with *churn* interleaved at seeded random places, churn that
    leaves the final schema unchanged: ADD COLUMN of a temporary column, later dropped (one DROP for
    the table's open temporaries); CREATE INDEX, later DROP INDEX; ADD CHECK, later DROP CONSTRAINT;
    SET DEFAULT to another value, later back; RENAME COLUMN, later back; a comment rewritten, later
    back to its final text; and the table's comment rewritten as it is (a one-step filler). Renames,
    defaults and comments touch only columns the core no longer names. Returns the steps as
    (version, name, sql), the squashed final schema (the same list for every total) and the count
    of ADD COLUMN steps (about half)."""
    count = total - shipped_count
    if count <= 0:
        return [], [], 0
    core, tables = history_core()
    churn = count - len(core)
    if churn < 0:
        raise SystemExit(f"bench: a generated history needs at least {shipped_count + len(core)} migrations, not {total}")
    rng = random.Random(total * 1000 + 15)
    # Where each core step's columns are named last: the columns settled after it.
    last = {}
    for i, (_, name, cols) in enumerate(core):
        for c in cols:
            last[(name, c)] = i
    for name, t in tables.items():
        for c in t["cols"][:2]:
            last.setdefault((name, c[0]), 0)
    state = {name: {"comments": {}, "defaults": {}} for name in tables}  # current column comments / defaults
    types = {(name, c[0]): c[1] for name, t in tables.items() for c in t["cols"]}
    exists = []  # tables created so far
    cols_now = {name: [] for name in tables}  # core columns that exist now
    opens = []  # [kind, table, data...]: each closes with one step
    tmpcols = {}  # table -> open temporary columns (closed by one DROP)
    busy = set()  # (table, column) with an open rename / default / comment
    steps, ci, k = [], 0, 0

    def need():
        return len(opens) + sum(1 for v in tmpcols.values() if v)

    def close(op):
        kind, t = op[0], op[1]
        if kind == "tmpcol":
            cols = tmpcols.pop(t)
            return "drop_column", f"ALTER TABLE {t} " + ", ".join(f"DROP COLUMN {c}" for c in cols)
        opens.remove(op)
        if kind == "index":
            return "drop_index", f"DROP INDEX {op[2]}"
        if kind == "check":
            return "drop_check", f"ALTER TABLE {t} DROP CONSTRAINT {op[2]}"
        busy.discard((t, op[2]))
        if kind == "rename":
            return "rename_back", f"ALTER TABLE {t} RENAME COLUMN {op[3]} TO {op[2]}"
        if kind == "default":
            d = state[t]["defaults"].get(op[2])
            return "default_back", (f"ALTER TABLE {t} ALTER COLUMN {op[2]} " + (f"SET DEFAULT {d}" if d else "DROP DEFAULT"))
        text = state[t]["comments"].get(op[2])
        return "comment_back", f"COMMENT ON COLUMN {t}.{op[2]} IS " + (f"'{text}'" if text else "NULL")

    while ci < len(core) or churn > 0:
        take_core = ci < len(core) and (churn == 0 or not exists or rng.random() < (len(core) - ci) / (len(core) - ci + churn))
        if take_core:
            sql, t, cols = core[ci]
            if sql.startswith("CREATE TABLE"):
                exists.append(t)
                cols_now[t] = ["id", "created_at"]
                state[t]["defaults"]["created_at"] = "now()"
            elif " ADD COLUMN " in sql:
                cols_now[t].append(cols[0])
                m = re.search(r" DEFAULT (.+?)( NOT NULL)?$", sql)
                if m:
                    state[t]["defaults"][cols[0]] = m.group(1)
            elif " SET DEFAULT " in sql:
                state[t]["defaults"][cols[0]] = sql.rsplit(" SET DEFAULT ", 1)[1]
            elif sql.startswith("COMMENT ON COLUMN"):
                state[t]["comments"][cols[0]] = sql.split(" IS '", 1)[1][:-1]
            kind = ("create_table" if sql.startswith("CREATE TABLE") else "add_column" if " ADD COLUMN " in sql
                    else "index" if sql.startswith("CREATE INDEX") else "check" if " ADD CONSTRAINT " in sql
                    else "default" if " SET DEFAULT " in sql else "comment")
            steps.append((kind, sql))
            ci += 1
            continue
        free = churn - need()
        k += 1
        settled = [(t, c) for t in exists for c in cols_now[t]
                   if c != "id" and last[(t, c)] < ci and (t, c) not in busy]
        usable = [(t, c) for t in exists for c in cols_now[t] if (t, c) not in busy]
        kinds = []
        if free >= 1 and any(tmpcols.get(t) for t in exists):
            kinds += [("tmpcol_more", 12)]
        if free >= 2:
            kinds += [("tmpcol", 6), ("index", 1), ("check", 1)]
            if settled:
                kinds += [("rename", 1), ("default", 1), ("comment", 1)]
        if need() and (free == 0 or rng.random() < 0.35):
            op = rng.choice(opens + [["tmpcol", t] for t in sorted(tmpcols) if tmpcols[t]])
            kind, sql = close(op)
        elif not kinds:
            t = rng.choice(exists)
            kind, sql = "comment_table", f"COMMENT ON TABLE {t} IS NULL"
        else:
            kind = rng.choices([x for x, _ in kinds], weights=[w for _, w in kinds])[0]
            if kind in ("tmpcol", "tmpcol_more"):
                t = rng.choice([t for t in exists if tmpcols.get(t)] if kind == "tmpcol_more" else exists)
                col = f"tmp_{k}"
                typ, default = _TYPES[k % len(_TYPES)]
                tmpcols.setdefault(t, []).append(col)
                kind, sql = "add_tmp_column", f"ALTER TABLE {t} ADD COLUMN {col} {typ}" + (f" DEFAULT {default}" if default and k % 2 else "")
            elif kind == "index":
                t, c = rng.choice(usable)
                opens.append(["index", t, f"{t}_tmp_{k}_idx"])
                sql = f"CREATE INDEX {t}_tmp_{k}_idx ON {t} ({c})"
            elif kind == "check":
                t, c = rng.choice(usable)
                opens.append(["check", t, f"{t}_tmp_{k}_check"])
                sql = f"ALTER TABLE {t} ADD CONSTRAINT {t}_tmp_{k}_check CHECK ({c} IS NOT NULL)"
            else:
                t, c = rng.choice(settled)
                busy.add((t, c))
                if kind == "rename":
                    opens.append(["rename", t, c, f"{c}_r{k}"])
                    sql = f"ALTER TABLE {t} RENAME COLUMN {c} TO {c}_r{k}"
                elif kind == "default":
                    opens.append(["default", t, c])
                    sql = f"ALTER TABLE {t} ALTER COLUMN {c} SET DEFAULT {_TEMP_DEFAULT[types[(t, c)]]}"
                else:
                    opens.append(["comment", t, c])
                    sql = f"COMMENT ON COLUMN {t}.{c} IS 'draft {k}'"
            kind = {"index": "tmp_index", "check": "tmp_check", "default": "tmp_default",
                    "comment": "draft_comment"}.get(kind, kind)
        steps.append((kind, sql))
        churn -= 1
    assert ci == len(core) and not opens and not any(tmpcols.values()), "bench: the churn left the schema changed"
    out = [(f"{HISTORY_FIRST_VERSION + i}", f"{kind}_{i}", sql) for i, (kind, sql) in enumerate(steps)]
    adds = sum(1 for _, _, sql in out if " ADD COLUMN " in sql)
    return out, squashed_history(tables), adds


_SNAPSHOTS = {}
_SNAPSHOT_REASONS = {}  # id(conn) -> the build's path, reason and time


def baseline_variant(conn):
    """Issue 15's baseline snapshots: the snapshot is built once per database (as the bench role,
    which owns the tenants it creates), then a function (conn, schema) -> None that provisions one
    tenant from it (create_tenant with tenancy.use_snapshot on), or None when the set could not be
    proven (the reason is printed). The other create_tenant variant runs with use_snapshot off."""
    key = id(conn)
    if key not in _SNAPSHOTS:
        t0 = time.perf_counter()
        path, reason = q(conn, "SELECT path, reason FROM tenancy.build_snapshot()")[0]
        _SNAPSHOTS[key] = path == "snapshot"
        _SNAPSHOT_REASONS[key] = {"path": path, "reason": reason, "build_s": time.perf_counter() - t0}
        print(f"  snapshot built in {time.perf_counter() - t0:.2f} s: {path}: {reason}", file=sys.stderr)
    if not _SNAPSHOTS[key]:
        return None
    return lambda c, schema: q(c, "SELECT tenancy.create_tenant(%s)", (schema,))


def comments(conn, schema):
    """The comments on a schema's tables and columns, as (table, column, text) without the schema."""
    return q(conn, "SELECT c.relname::text, coalesce(a.attname::text, ''), d.description FROM pg_description d "
                   "JOIN pg_class c ON d.classoid = 'pg_class'::regclass AND d.objoid = c.oid "
                   "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.objsubid AND d.objsubid > 0 "
                   "WHERE c.relnamespace = %s::regnamespace ORDER BY 1, 2, 3", (schema,))


def check_history_equal(conn, shipped, plans, lengths):
    """Every history length reaches one final schema: in the longest length's database, a tenant
    replayed by create_tenant against the raw statements of each other length and the squashed
    DDL, with tenancy.compare_schemas and the comments; stops the phase on any difference. The
    tables stay free of rows (nothing volatile for the snapshot's proof to refuse)."""
    if any(plans[h]["squashed_generated"] != plans[lengths[-1]]["squashed_generated"] for h in lengths if h > len(shipped)):
        raise SystemExit("bench: generated histories of different lengths squash to different schemas")
    q(conn, "SELECT set_config('tenancy.use_snapshot', 'off', false)")
    q(conn, "SELECT tenancy.create_tenant('hcheck_replay')")
    others = {f"hcheck_raw_{h}": plans[h]["steps"] for h in lengths[:-1] if h > len(shipped)}
    others["hcheck_squashed"] = plans[lengths[-1]]["steps"][:len(shipped)] + plans[lengths[-1]]["squashed_generated"]
    want = comments(conn, "hcheck_replay")
    for schema, steps in others.items():
        stmts = split(conn, schema, steps[:len(shipped)]) + split(conn, schema, steps[len(shipped):])
        q(conn, raw_transaction(schema, stmts))
        diff = q(conn, "SELECT object, difference FROM tenancy.compare_schemas('hcheck_replay', %s)", (schema,))
        got = comments(conn, schema)
        if diff or got != want:
            raise SystemExit(f"bench: the {lengths[-1]}-migration history and {schema} differ: {diff[:5]} "
                             f"{[c for c in want if c not in got][:3]} {[c for c in got if c not in want][:3]}")
        q(conn, f"DROP SCHEMA {qi(schema)} CASCADE")
    print(f"  history check: {', '.join(others)} equal to a {lengths[-1]}-migration replay "
          f"(tenancy.compare_schemas and comments; {len(plans[lengths[-1]]['squashed_generated'])} squashed statements)",
          file=sys.stderr)
    q(conn, "SELECT tenancy.drop_tenant('hcheck_replay')")


def phase_history():
    """create_tenant's per-tenant cost as the history grows (the shipped set, then generated
    migrations that reach one fixed final schema at every length: generated_history), against the
    same statements sent raw in one transaction and against the final schema's DDL (the shipped
    set as it is, the generated tables squashed), and from the proven snapshot, interleaved tenant
    by tenant in rotating order, one database per history length."""
    quick = ARGS.quick
    lengths = [len(shipped_set()), 70, 90] if quick else [len(shipped_set()), 100, 500]
    rounds = 3 if quick else 12
    shipped = shipped_set()
    dbs, conns, plans = {}, {}, {}
    for h in lengths:
        dbs[h] = f"bench_history_{h}"
        conns[h] = create_db(dbs[h])
        steps, squashed, adds = generated_history(h, len(shipped))
        register(conns[h], shipped + steps)
        plans[h] = {"steps": [s for _, _, s in shipped + steps], "squashed_generated": squashed,
                    "add_column": adds + sum(len(re.findall(r"\bADD\s+COLUMN\b", s, re.I)) for _, _, s in shipped),
                    "migrations": len(shipped) + len(steps)}
    check_history_equal(conns[lengths[-1]], shipped, plans, lengths)
    variants = ["replay", "raw_transaction", "squashed"]
    s = {h: {v: [] for v in variants + ["baseline"]} for h in lengths}
    n = 0
    for r in range(rounds):
        for h in lengths:
            conn = conns[h]
            timer = Timer(conn)
            base = baseline_variant(conn)
            vs = variants + (["baseline"] if base else [])
            for v in vs[r % len(vs):] + vs[:r % len(vs)]:
                n += 1
                schema = f"h_{v}_{n}"
                if v == "replay":
                    go = lambda: q(conn, "SELECT tenancy.create_tenant(%s)", (schema,))
                elif v == "baseline":
                    go = lambda: base(conn, schema)
                else:
                    stmts = split(conn, schema, plans[h]["steps"][:len(shipped)])
                    if v == "raw_transaction":
                        stmts += split(conn, schema, plans[h]["steps"][len(shipped):])
                    else:
                        stmts += plans[h]["squashed_generated"]
                    text = raw_transaction(schema, stmts)
                    go = lambda: q(conn, text)
                q(conn, "SELECT set_config('tenancy.use_snapshot', %s, false)", ("on" if v == "baseline" else "off",))
                s[h][v].append(timer.run(go))
    core, tables = history_core()
    out = {"lengths": lengths, "rounds": rounds, "points": [],
           "final_schema": {"tables": len(tables), "columns": sum(len(t["cols"]) for t in tables.values()),
                            "indexes": sum(len(t["indexes"]) for t in tables.values()),
                            "checks": sum(len(t["checks"]) for t in tables.values()),
                            "comments": sum(len(t["comments"]) for t in tables.values()),
                            "steps": len(core), "add_column": HISTORY_ADDS}}
    for h in lengths:
        p = {"migrations": plans[h]["migrations"], "add_column": plans[h]["add_column"],
             "statements_squashed": len(split(conns[h], "x", plans[h]["steps"][:len(shipped)]))
             + len(plans[h]["squashed_generated"]), "snapshot": _SNAPSHOT_REASONS.get(id(conns[h]))}
        for v, samples in s[h].items():
            p[v] = {"wall": walls([w for w, _ in samples]), "cpu_ms": cpu_mean_ms([c for _, c in samples])} if samples else None
        out["points"].append(p)
        conns[h].close()
        drop_db(dbs[h])
    return out


# --- the peer -----------------------------------------------------------------------------------

def history(n):
    """The shipped set followed by small steps, as (version, name, sql) — the same for both sides."""
    shipped = shipped_set()
    out = list(shipped)
    first = len(out) + 1
    for i in range(first, n + 1):
        if (i - first) % 2 == 0:
            out.append((f"{i:04d}", f"step_{i}", f"ALTER TABLE projects ADD COLUMN step_{i} integer"))
        else:
            out.append((f"{i:04d}", f"step_{i}", f"CREATE INDEX projects_step_{i - 1}_idx ON projects (step_{i - 1})"))
    return out


def django_env(db):
    env = dict(os.environ)
    env.update({"DJANGO_SETTINGS_MODULE": "benchsite.settings", "BENCH_DB": db, "BENCH_HOST": ARGS.host,
                "BENCH_PORT": str(ARGS.port), "PYTHONPATH": ARGS.django_dir})
    return env


def django(db, *args, check=True):
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, os.path.join(ARGS.django_dir, "manage.py"), *args],
                       env=django_env(db), capture_output=True, text=True)
    if check and p.returncode != 0:
        raise SystemExit(f"django {args} failed:\n{p.stdout}\n{p.stderr}")
    return time.perf_counter() - t0, p.stdout


def write_django_migrations(steps):
    mig = os.path.join(ARGS.django_dir, "tenantapp", "migrations")
    for f in os.listdir(mig):
        if f[0].isdigit():
            os.remove(os.path.join(mig, f))
    prev = None
    for version, name, sql in steps:
        mod = f"{version}_{name}"
        dep = f"[('tenantapp', '{prev}')]" if prev else "[]"
        # @tenant@ needs the schema being migrated: the same substitution, at run time.
        if "@tenant@" in sql:
            op = "migrations.RunPython(run, migrations.RunPython.noop)"
            helper = ("\n\ndef run(apps, schema_editor):\n"
                      "    name = '\"' + schema_editor.connection.schema_name.replace('\"', '\"\"') + '\"'\n"
                      f"    schema_editor.execute({sql!r}.replace('@tenant@', name))\n")
        else:
            op, helper = f"migrations.RunSQL({sql!r})", ""
        with open(os.path.join(mig, mod + ".py"), "w") as f:
            f.write(f"from django.db import migrations{helper}\n\n\nclass Migration(migrations.Migration):\n"
                    f"    dependencies = {dep}\n    operations = [{op}]\n")
        prev = mod


def django_db(db, steps, tenants):
    create_db(db, extension=False).close()
    with connect(db) as c:
        q(c, "CREATE TABLE public.plans (id bigint PRIMARY KEY)")
    write_django_migrations(steps)
    django(db, "migrate_schemas", "--shared")
    _, out = django(db, "bench_create", str(tenants))
    return [float(x) for x in out.split()]


def django_fleet(db, steps, runs):
    res = {}
    for executor in ("standard", "multiprocessing"):
        times = []
        for r in range(runs):
            i = len(steps) + 1
            steps.append((f"{i:04d}", f"new_{i}", f"ALTER TABLE users ADD COLUMN new_{i} text"))
            write_django_migrations(steps)
            t, _ = django(db, "migrate_schemas", "--tenant", f"--executor={executor}")
            times.append(t)
        res[executor] = {"seconds": summary(times)}
    times = [django(db, "migrate_schemas", "--tenant")[0] for _ in range(runs)]
    res["noop"] = {"seconds": summary(times)}
    return res


def ours_history(db, steps, tenants, runs):
    conn = create_db(db)
    for version, name, sql in steps[len(shipped_set()):]:
        q(conn, "SELECT tenancy.add_migration(%s, %s, %s)", (version, name, sql))
    per = max(1, tenants // runs)
    creation = provision_runs(conn, runs, per, "create_tenant", 0)
    conn.close()
    return {"create_tenant": creation, "fleet": fleet(db, runs, "h", kinds=("jobs1", "jobs2", "noop"))}


def phase_peer():
    quick = ARGS.quick
    tenants, runs = (4, 2) if quick else (100, 5)
    fleet_runs = 2 if quick else 5
    out = {"tenants": tenants}
    out["histories"] = [5, 20] if quick else [5, 100]
    for hist in out["histories"]:
        steps = history(hist)
        creation = django_db(f"bench_django_{hist}", steps, tenants)
        chunks = [creation[i::runs] for i in range(runs)]
        out[f"django_{hist}"] = {"create": per_tenant(chunks),
                                 "fleet": django_fleet(f"bench_django_{hist}", list(steps), fleet_runs)}
        out[f"ours_{hist}"] = ours_history(f"bench_ours_{hist}", steps, tenants, runs)
    return out


# --- the report ---------------------------------------------------------------------------------

def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024 // 1024
    # The server under test (PG=NN; bench/run.sh exports its bin directory).
    postgres = os.path.join(os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin"), "postgres")
    pg = subprocess.run([postgres, "--version"], capture_output=True, text=True).stdout.strip()
    return f"{os.cpu_count()} cores ({cpu}), {mem} GiB, {platform.system()} {platform.release()}, {pg}"


def settings():
    """The server's settings that matter here; kept in the results, so that the report can be
    rebuilt from them without the server."""
    saved = os.path.join(ARGS.results, "settings.json")
    try:
        with connect("postgres") as c:
            rows = q(c, "SELECT name, setting, unit FROM pg_settings WHERE name IN "
                        "('fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers', 'wal_level')"
                        " ORDER BY name")
        text = ", ".join(f"`{n} = {s}{' × ' + u if u and u != 'bool' else ''}`" for n, s, u in rows)
        with open(saved, "w") as f:
            json.dump(text, f)
        return text
    except psycopg.Error as e:
        if os.path.exists(saved):
            return json.load(open(saved))
        return f"(server settings not read: {e.__class__.__name__})"


def fmt(s, unit="", digits=1):
    return f"{s['median']:.{digits}f}{unit} ({s['min']:.{digits}f}–{s['max']:.{digits}f}, {s['runs']} runs)"


def fw(w, digits=1):
    """A walls() summary: p50 (min–max, n)."""
    return f"{w['p50']:.{digits}f} ({w['min']:.{digits}f}–{w['max']:.{digits}f}, n={w['n']})"


def mem(m):
    if not m:
        return "–"
    return f"{mib(m['private'])} private / {mib(m['shared'])} shared (PSS {mib(m['pss'])}, RSS {mib(m['rss'])}) MiB"


def verdict(ok):
    return "**met**" if ok else "**missed**"


def plot_scale(scale, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    pts = scale["points"]
    xs = [p["variants"][next(iter(p["variants"]))]["tenants"] for p in pts]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    panels = [("create", "create_tenant: backend CPU per tenant (ms)"),
              ("app_first", "app's first query on plans,\nfresh connection: backend CPU (ms)"),
              ("delete_first", "DELETE of an unreferenced plans row,\nfirst in session: wall (ms)")]
    for ax, (key, title) in zip(axes, panels):
        for v in scale["variants"]:
            ys = [None if not p["variants"][v].get(key) else p["variants"][v][key]["wall"]["p50"] if key == "delete_first"
                  else p["variants"][v][key]["cpu_ms"] for p in pts]
            # The variant's key (its long label is in the report's text): legends stay inside.
            ax.plot(xs, [float("nan") if y is None else y for y in ys], marker="o", label=v)
            for x, y in zip(xs, ys):
                if y is None and key == "delete_first":
                    ax.annotate(f"{v}: fails", (x, 0), textcoords="offset points", xytext=(-30, 8), fontsize=7, color="red")
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{x:,}".replace(",", " ") for x in xs])
        ax.set_xlabel("tenants in the database")
        ax.set_title(title, fontsize=10)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper left")
    fig.suptitle("Scale curve: cost per operation as the number of tenants grows (flat is the goal)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_history(hist, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    pts = hist["points"]
    xs = [p["migrations"] for p in pts]
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    for key, label in (("replay", "create_tenant replaying every migration"),
                       ("raw_transaction", "the same statements raw, one transaction"),
                       ("squashed", "final schema, raw (squashed CREATE TABLEs)"),
                       ("baseline", "create_tenant from the snapshot")):
        ys = [p[key]["cpu_ms"] if p.get(key) else None for p in pts]
        if any(y is not None for y in ys):
            ax.plot(xs, ys, marker="o", label=label)
    ax.set_xlabel("migrations in the history")
    ax.set_ylabel("backend CPU per new tenant (ms)")
    ax.set_xticks(xs)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    nobase = "" if any(p.get("baseline") for p in pts) else "\n(no proven snapshot: no line for it)"
    same = "\n(one final schema at every length; the history adds churn)" if hist.get("final_schema") else ""
    ax.set_title("History curve: provisioning cost as the history grows" + same + nobase, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def report():
    d = {k: json.load(open(os.path.join(ARGS.results, f"{k}.json")))
         for k in ("shipped", "zabbix", "scale", "history", "peer", "fifty")
         if os.path.exists(os.path.join(ARGS.results, f"{k}.json"))}
    outdir = os.path.dirname(os.path.abspath(ARGS.out))
    os.makedirs(ARGS.plots, exist_ok=True)
    rel = lambda p: os.path.relpath(p, outdir)
    L = []
    w = L.append
    w("# Benchmarks\n")
    w(f"Generated by `{'make bench-quick' if ARGS.quick else 'make bench'}` on {time.strftime('%Y-%m-%d')}. "
      f"Machine: {machine()}. Server settings: {settings()}.")
    if ARGS.quick:
        w("\n**Quick mode**: tiny N, debug build, few runs — it checks that the harness works; the figures mean little.\n")
    if not ARGS.quick and "scale" in d:
        top = d["scale"]["points"][-1]["target"]
        if top < 10000:
            w(f"\n**This run's scale curve stops at {top} tenants** (a shortened run, as `BENCH_SCALE` gives); the targets at 10 000 tenants "
              "are marked *not measured* below.\n")
    w("\n## Method\n")
    w("- `make bench` builds the extension in release mode, starts its own PostgreSQL cluster as `postgres` on a "
      "private socket and port with default settings and **`fsync = on`** (every commit reaches the disk, as in "
      "production; earlier versions of this file ran with `fsync = off`), and drives it over the unix socket with "
      "psycopg 3 from Python.")
    w("- **Interleaved**: variants that are compared are measured in the same run, one sample of each in turn, the "
      "order rotating from round to round, so that the noise of the 2 shared cores falls on all of them alike.")
    w("- **Wall** is the client's clock. **Backend CPU** is the on-CPU time of the backend serving the "
      "connection (`se.sum_exec_runtime` in `/proc/PID/sched`, nanosecond precision; the mean over all samples). "
      "**Server CPU** of a fleet run is the whole cluster's: the postmaster with the backends and workers it "
      "reaped, plus its live children. **WAL records** come from `pg_stat_wal` (cluster-wide; autovacuum may add a few).")
    w("- **Memory** is `/proc/PID/smaps_rollup`: *private* (what this backend alone holds: its caches, plans, "
      "work memory) separately from *shared* (mostly shared buffers it has touched, counted once for the whole "
      "server). Earlier versions reported peak RSS, which is mostly shared buffers.")
    w("- **Raw limits** send the very same statements (split and `@tenant@`-substituted by pg_tenancy's own lexer, "
      "`tenancy._split_statements`) into a fresh schema: statement by statement in autocommit, statement by "
      "statement inside one transaction, and as one multi-statement string (one transaction, one round trip). "
      "The fleet's raw limit is **the one-round-trip loop**: one schema-qualified autocommit `ALTER TABLE` per "
      "tenant, all from one `psql` session reading a generated script.")
    w("- Per-tenant wall figures: p50 and p95 of each run, then their median across runs, min–max in brackets; "
      "scale and history points: p50 of all samples (min–max, n).")
    w("- The **scale curve** and **history curve** and the zabbix workload run in a build whose embedded migration "
      "set is empty: each database registers its own set (`tenancy.add_migration`), so variants of the set can sit "
      "side by side in one cluster. The shipped set is `tenant_migrations/`.\n")

    if "scale" in d or "history" in d or "shipped" in d:
        targets(d, w)

    if "shipped" in d:
        s = d["shipped"]
        o = s["one_tenant"]
        lim = o["transaction"]["p50"]["median"]
        limc = o["transaction"]["cpu_ms"]
        w(f"## Provisioning one tenant (shipped migration set, {s['migrations']} migrations, empty database)\n")
        w("| how | p50 ms | p95 ms | backend CPU ms (mean) | × one-transaction limit (p50 wall) | × (CPU) |\n|---|---|---|---|---|---|")
        for k, label in (("autocommit", "limit: raw, autocommit (one commit per statement)"),
                         ("transaction", "limit: raw, one transaction"),
                         ("string", "limit: raw, one multi-statement string"),
                         ("create_tenant", "`tenancy.create_tenant`"),
                         ("managed_insert", "INSERT into a managed table")):
            r = o[k]
            bold = "**" if k in ("create_tenant", "managed_insert") else ""
            w(f"| {label} | {fmt(r['p50'], digits=2)} | {fmt(r['p95'], digits=2)} | {r['cpu_ms']:.1f} | "
              f"{bold}{r['p50']['median'] / lim:.2f}{bold} | {r['cpu_ms'] / limc:.2f} |")
        w("\nTarget (issue 7): ≤ 1.10× the one-transaction limit.\n")
    if "zabbix" in d:
        z = d["zabbix"]
        o = z["one_tenant"]
        lim = o["transaction"]["p50"]["median"]
        w(f"## Provisioning one tenant (zabbix schema, {z['statements']} statements)\n")
        w("| how | p50 ms | p95 ms | backend CPU ms (mean) | × one-transaction limit (p50) |\n|---|---|---|---|---|")
        for k in ("autocommit", "transaction", "string", "create_tenant", "managed_insert"):
            r = o[k]
            label = {"create_tenant": "`tenancy.create_tenant`", "managed_insert": "INSERT into a managed table"}.get(k, f"limit: raw, {k}")
            w(f"| {label} | {fmt(r['p50'], digits=1)} | {fmt(r['p95'], digits=1)} | {r['cpu_ms']:.0f} | {r['p50']['median'] / lim:.2f} |")
        w("")
    if "scale" in d:
        scale_section(d["scale"], w, rel)
    if "history" in d:
        history_section(d["history"], w, rel)
    if "fifty" in d:
        fifty_section(d["fifty"], w, rel)
    if "shipped" in d:
        s = d["shipped"]
        r = s["sequence_1"]
        w("## Provisioning N tenants in sequence (create_tenant, one connection)\n")
        w("| tenants at the end | tenants/second (5 consecutive batches) | catalog size | provisioning backend memory at the end |\n|---|---|---|---|")
        w(f"| {r['tenants']} | {fmt(r['tenants_per_second'], digits=0)} | {r['catalog_bytes'] / 2**20:.0f} MiB | {mem(r['memory'])} |")
        w("")
    fleets = []
    if "shipped" in d:
        fleets.append(d["shipped"]["fleet_1"])
    if "scale" in d:
        fleets.append(d["scale"]["fleet"])
    if fleets:
        w("## Fleet migration: one new small migration over every tenant\n")
        w("The raw limit is the one-round-trip loop (see Method). Wall time, server CPU and WAL records per tenant.\n")
        w("| tenants | measurement | jobs 1 | jobs 2 | raw loop | jobs 1 × raw | no-op run |\n|---|---|---|---|---|---|---|")
        for f in fleets:
            j1, j2, raw, noop = f["jobs1"], f["jobs2"], f["raw"], f["noop"]
            w(f"| {f['tenants']} | wall | {fmt(j1['seconds'], 's', 2)} | {fmt(j2['seconds'], 's', 2)} | {fmt(raw['seconds'], 's', 2)} | "
              f"**{j1['seconds']['median'] / raw['seconds']['median']:.2f}** | {fmt(noop['seconds'], 's', 3)} |")
            w(f"| {f['tenants']} | server CPU | {fmt(j1['server_cpu'], 's', 2)} | {fmt(j2['server_cpu'], 's', 2)} | {fmt(raw['server_cpu'], 's', 2)} | "
              f"{j1['server_cpu']['median'] / max(raw['server_cpu']['median'], 1e-9):.2f} | {fmt(noop['server_cpu'], 's', 2)} |")
            w(f"| {f['tenants']} | WAL records per tenant | {fmt(j1['wal_per_tenant'])} | {fmt(j2['wal_per_tenant'])} | "
              f"{fmt(raw['wal_per_tenant'])} | {j1['wal_per_tenant']['median'] / max(raw['wal_per_tenant']['median'], 1e-9):.2f} | "
              f"{fmt(noop['wal_per_tenant'], digits=2)} |")
        w("\nTargets: jobs 1 ≤ 1.20× the one-round-trip raw loop (issue 15); jobs 2 ≥ 1.7× faster than jobs 1 (issue 7); "
          "no-op run at 10 000 tenants < 0.2 s (issue 15); ≤ 10 WAL records per tenant for a one-statement migration (issue 15).\n")
        f = fleets[-1]
        w(f"Memory during the {f['tenants']}-tenant runs (peak private, sampled every 50 ms): jobs 1 coordinator "
          f"{mem(f['jobs1']['coordinator_memory'])}; jobs 2 coordinator {mem(f['jobs2']['coordinator_memory'])}, "
          f"worker {mem(f['jobs2']['worker_memory'])}.\n")
    if "peer" in d:
        peer_section(d["peer"], w)
    w(ARGS.discussion.read() if ARGS.discussion else "")
    w("\n## Rerun\n\n```sh\nmake bench                        # full run, rewrites BENCHMARKS.md and bench/plots/*.png\n"
      "BENCH_SCALE=100,1000,5000 make bench   # a shorter scale curve\nmake bench-history                # only the history curve (BENCH_ONLY=phase,… for any phases)\n"
      "make bench-quick                  # tiny N, checks the harness (part of make test)\n```\n"
      "Raw results: `target/bench/results/*.json`.")
    with open(ARGS.out, "w") as f:
        f.write("\n".join(L) + "\n")


def shipped_key(sc):
    """The scale variant that stands for the shipped migrations (results of older runs: native_fk)."""
    return SHIPPED_VARIANT if SHIPPED_VARIANT in sc["variants"] else "native_fk"


def point_at(scale, n):
    for p in scale["points"]:
        if p["target"] == n:
            return p
    return None


def targets(d, w):
    w("## Issue 15's targets\n")
    w("| target | measured | verdict |\n|---|---|---|")
    sc = d.get("scale")
    if sc and not ARGS.quick:
        first, last = sc["points"][0], sc["points"][-1]
        at10k = point_at(sc, 10000)
        main = shipped_key(sc)
        others = [v for v in sc["variants"] if v != main]

        def ratio(v, key):
            return last["variants"][v][key]["cpu_ms"] / max(first["variants"][v][key]["cpu_ms"], 1e-9)

        # The shipped set replayed (main), and built from its snapshot when the run has that variant.
        for key, name, limit in (("create", "per-tenant provisioning CPU at 10 000 tenants ≤ 1.15× at 100 (shipped migrations)", 1.15),
                                 ("app_first", "application's first query on plans, fresh connection, at 10 000 ≤ 2× at 100", 2.0)):
            for m in [main] + (["snapshot"] if key == "create" and "snapshot" in sc["variants"] else []):
                lo, hi = first["variants"][m][key], last["variants"][m][key]
                r = ratio(m, key)
                text = (f"{m}: {lo['cpu_ms']:.1f} → {hi['cpu_ms']:.1f} ms CPU = {r:.2f}× at {last['target']} ("
                        + ", ".join(f"{v}: {ratio(v, key):.2f}×" for v in sc["variants"] if v != m) + ")")
                if at10k:
                    v = verdict(r <= limit)
                elif r > limit:
                    v = f"**missed** (already above at {last['target']})"
                else:
                    v = "not measured at 10 000"
                w(f"| {name}{', from the snapshot' if m == 'snapshot' else ''} | {text} | {v} |")
        def dwall(var):
            m = last["variants"][var].get("delete_first")
            if m:
                return m["wall"]["p50"], f"{m['wall']['p50']:.1f} ms"
            return None, "fails: " + last["variants"][var].get("errors", {}).get("delete_first", "no sample")

        hi, hi_text = dwall(main)
        if hi is None:
            v = "**missed** (the delete fails)"
        else:
            v = verdict(hi <= 50) if at10k else (f"**missed** (already above at {last['target']})" if hi > 50 else "not measured at 10 000")
        w(f"| deleting an unreferenced shared row at 10 000 tenants ≤ 50 ms | {main}: {hi_text} wall, first in a session, "
          f"at {last['target']} (" + ", ".join(f"{o}: {dwall(o)[1]}" for o in others) + f") | {v} |")
    hs = d.get("history")
    if hs and not ARGS.quick:
        by = {p["migrations"]: p for p in hs["points"]}
        if 100 in by:
            p = by[100]
            r = p["replay"]["cpu_ms"] / p["raw_transaction"]["cpu_ms"]
            sq = p["squashed"]["cpu_ms"] / p["raw_transaction"]["cpu_ms"]
            if p.get("baseline"):
                b = p["baseline"]["cpu_ms"] / p["raw_transaction"]["cpu_ms"]
                bw = p["baseline"]["wall"]["p50"] / p["raw_transaction"]["wall"]["p50"]
                w(f"| `create_tenant` with a 100-migration ALTER-heavy history ≤ 0.70× the raw replay in one transaction | "
                  f"from the snapshot {b:.2f}× (CPU; wall {bw:.2f}×); replaying {r:.2f}×; the squashed final schema {sq:.2f}× "
                  f"| {verdict(b <= 0.70)} |")
            else:
                w(f"| `create_tenant` with a 100-migration ALTER-heavy history ≤ 0.70× the raw replay in one transaction | "
                  f"{r:.2f}× (CPU; wall {p['replay']['wall']['p50'] / p['raw_transaction']['wall']['p50']:.2f}×); the squashed "
                  f"final schema is {sq:.2f}× | {verdict(r <= 0.70)} (no snapshot: the set was not proven) |")
        if 100 in by and 500 in by:
            k = "baseline" if by[500].get("baseline") and by[100].get("baseline") else "replay"
            r = by[500][k]["cpu_ms"] / by[100][k]["cpu_ms"]
            rw = by[500][k]["wall"]["p50"] / by[100][k]["wall"]["p50"]
            how = "from the snapshot" if k == "baseline" else "replaying (no snapshot)"
            ctx = "; ".join(f"{label} {by[500][v]['cpu_ms'] / by[100][v]['cpu_ms']:.2f}×"
                            for v, label in (("replay", "replaying"), ("raw_transaction", "raw one transaction"),
                                             ("squashed", "the final schema's raw DDL")) if v != k)
            w(f"| `create_tenant` at 500 migrations within 1.15× of its cost at 100 | {how}: {r:.2f}× (CPU; wall {rw:.2f}×); "
              f"{ctx} (the same final schema at both lengths) | {verdict(r <= 1.15)} |")
    fleets = []
    if "shipped" in d:
        fleets.append(d["shipped"]["fleet_1"])
    if sc:
        fleets.append(sc["fleet"])
    for f in fleets:
        r = f["jobs1"]["seconds"]["median"] / f["raw"]["seconds"]["median"]
        w(f"| `migrate_all(jobs => 1)` ≤ 1.20× the one-round-trip raw loop, fsync on ({f['tenants']} tenants) | {r:.2f}× (wall) | {verdict(r <= 1.20)} |")
        wal = f["jobs1"]["wal_per_tenant"]["median"]
        w(f"| ≤ 10 WAL records per tenant for a one-statement migration ({f['tenants']} tenants) | {wal:.1f} "
          f"(raw loop {f['raw']['wal_per_tenant']['median']:.1f}) | {verdict(wal <= 10)} |")
    if sc:
        f = sc["fleet"]
        noop = f["noop"]["seconds"]["median"]
        v = verdict(noop < 0.2) if f["tenants"] >= 10000 else ("**missed**" if noop >= 0.2 else f"not measured at 10 000 ({f['tenants']} tenants)")
        w(f"| no-op `migrate_all` at 10 000 tenants < 0.2 s | {noop:.3f} s at {f['tenants']} tenants | {v} |")
    f = d.get("fifty")
    if f and f["tenants"] >= 50000:
        last = f["chunks"][-1]
        w(f"| a 50 000-tenant run of the shipped set completes (rate and catalog size reported) | {f['tenants']} tenants in "
          f"{f['elapsed_s'] / 60:.0f} min, {f['tenants'] / f['elapsed_s']:.1f} tenants/s overall, last chunk "
          f"{last['tenants_per_second']:.1f} tenants/s and {last['cpu_ms_per_tenant'] / max(f['chunks'][0]['cpu_ms_per_tenant'], 1e-9):.2f}× "
          f"the first chunk's CPU per tenant; {last['relations']} relations, {last['catalog_bytes'] / 2**20:.0f} MiB catalog, "
          f"{last['database_bytes'] / 2**30:.2f} GiB database | **met** |")
    elif f:
        w(f"| a 50 000-tenant run of the shipped set completes (rate and catalog size reported) | only {f['tenants']} tenants "
          "in this run's `make bench-fifty` (BENCH_FIFTY_N) | not measured |")
    else:
        w("| a 50 000-tenant run of the shipped set completes (rate and catalog size reported) | not in this run "
          "(opt-in: `make bench-fifty`, or `BENCH_FIFTY=1 make bench`) | not measured |")
    w("")


def scale_section(sc, w, rel):
    names = list(sc["variants"])
    png = os.path.join(ARGS.plots, "scale.png")
    plot_scale(sc, png)
    w("## Scale curve: cost per tenant as the fleet grows\n")
    w("Side by side in one cluster, grown together in alternating chunks and measured in interleaved rounds: "
      + "; ".join(f"**{v}**: {label}" for v, label in sc["variants"].items()) + ".\n")
    w(f"![scale curve]({rel(png)})\n")
    rows = [("create", "`create_tenant`: backend CPU ms (mean)", "cpu"),
            ("create", "`create_tenant`: wall ms (p50)", "wall"),
            ("app_warm", "app query on plans, warm connection: wall ms (p50)", "wall"),
            ("app_after_create", "app's next query on plans after a tenant was created: CPU ms (mean)", "cpu"),
            ("app_after_create", "… wall ms (p50)", "wall"),
            ("app_first", "app's first query on plans, fresh connection: CPU ms (mean)", "cpu"),
            ("app_first", "… wall ms (p50)", "wall"),
            ("delete_first", "DELETE of an unreferenced plans row, first in a session: wall ms (p50)", "wall"),
            ("delete_first", "… CPU ms (mean)", "cpu"),
            ("delete_again", "the same, second in the session: wall ms (p50)", "wall"),
            ("app_during_signup", "app query on plans while a sign-up is not committed yet: wall ms (p50; lock_timeout 1 s)", "wall")]
    head = " | ".join(f"{p['target']} {v}" for p in sc["points"] for v in names)
    w(f"| measurement | {head} |\n|---|" + "---|" * (len(sc["points"]) * len(names)))
    for key, label, kind in rows:
        cells = []
        for p in sc["points"]:
            for v in names:
                m = p["variants"][v].get(key)
                if m is None:
                    err = p["variants"][v].get("errors", {}).get(key)
                    cells.append(f"fails ({err})" if err else "–")
                    continue
                cells.append(f"{m['cpu_ms']:.1f}" if kind == "cpu" else f"{m['wall']['p50']:.1f}")
        w(f"| {label} | " + " | ".join(cells) + " |")
    for label, fn in (("tenants", lambda m: str(m["tenants"])),
                      ("triggers on public.plans", lambda m: str(m["plans_triggers"])),
                      ("relations (pg_class rows)", lambda m: f"{m['relations']}"),
                      ("locks an open sign-up holds on public.plans", lambda m: ", ".join(m.get("signup_locks_on_plans", [])) or "none"),
                      ("app queries on plans that timed out behind an open sign-up", lambda m: f"{m.get('app_blocked_during_signup', '–')} of {m.get('app_during_signup', {}).get('wall', {}).get('n', '–')}"),
                      ("catalog size MiB", lambda m: f"{m['catalog_bytes'] / 2**20:.0f}"),
                      ("growing backend: private / shared MiB", lambda m: f"{mib(m['grower_memory']['private'])} / {mib(m['grower_memory']['shared'])}" if m["grower_memory"] else "–")):
        w(f"| {label} | " + " | ".join(fn(p["variants"][v]) for p in sc["points"] for v in names) + " |")
    first, last = sc["points"][0], sc["points"][-1]
    r = {v: last["variants"][v]["create"]["cpu_ms"] / max(first["variants"][v]["create"]["cpu_ms"], 1e-9) for v in names}
    floor = "no_fk" if "no_fk" in names else names[-1]
    cat = last["variants"][floor]["relations"] / max(first["variants"][floor]["relations"], 1)
    w(f"\nFrom {first['target']} to {last['target']} tenants the catalog grew {cat:.0f}× "
      f"({first['variants'][floor]['relations']} → {last['variants'][floor]['relations']} relations, "
      f"{first['variants'][floor]['catalog_bytes'] / 2**20:.0f} → {last['variants'][floor]['catalog_bytes'] / 2**20:.0f} MiB) "
      f"in every database; `create_tenant`'s CPU per tenant changed "
      + ", ".join(f"{r[v]:.2f}× in {v}" + (f" (public.plans then carrying {last['variants'][v]['plans_triggers']} triggers)"
                                           if v == "native_fk" else "") for v in names)
      + f". Raw figures, with the cost of every chunk of the growth: `{os.path.relpath(ARGS.results, ROOT)}/scale.json`.\n")


def history_text(hs):
    """What the generated history is, in words, for the report and the plot."""
    f = hs.get("final_schema")
    if not f:  # results of an older harness (a history whose final schema grew with its length)
        return ("the shipped set, then generated one-statement migrations, ALTER-heavy, whose final schema grows "
                "with the history (an older harness's results).")
    return (f"the shipped set, then generated one-statement migrations that reach **one fixed final schema at every "
            f"length**: {f['tables']} tables ({f['columns']} columns, {f['indexes']} indexes, {f['checks']} CHECKs, "
            f"{f['comments']} column comments), built ALTER-heavy in {f['steps']} steps (each `CREATE TABLE` with `id` "
            f"and `created_at`, then {f['add_column']} `ADD COLUMN`s, the indexes, CHECKs, `SET DEFAULT`s and comments), "
            "with **churn** interleaved at seeded random places that leaves that schema unchanged: temporary columns "
            "added and later dropped, temporary indexes and CHECKs created and later dropped, defaults set to another "
            "value and back, columns renamed and back, comments rewritten and back to their final text. About half "
            "of the migrations are `ADD COLUMN`s (their count is in the first column). The tables stay empty. "
            "Before measuring, the harness checks that a tenant replaying the longest history, the raw statements "
            "of each other length and the squashed DDL are equal (`tenancy.compare_schemas` and the comments), so "
            "the final-schema column measures the same schema at every length.")


def history_section(hs, w, rel):
    png = os.path.join(ARGS.plots, "history.png")
    plot_history(hs, png)
    w("## History curve: cost per tenant as the migration history grows\n")
    w("One database per history length. The history: " + history_text(hs) + " "
      "Interleaved tenant by tenant in rotating order: `create_tenant` replaying every migration "
      "(`tenancy.use_snapshot = off`); the very same statements raw in one transaction (one multi-statement "
      "string: no round trips); the final schema as raw DDL (the shipped set as it is, then one `CREATE TABLE` per "
      "generated table with all its final columns and CHECKs, then indexes and comments); and `create_tenant` "
      "building the tenant from the proven snapshot (`tenancy.build_snapshot()`, built once per database before "
      "the rounds, `tenancy.use_snapshot = on`; docs/snapshots.md).\n")
    w(f"![history curve]({rel(png)})\n")
    w("| migrations (ADD COLUMN) | `create_tenant` replaying CPU / wall ms | raw, one transaction CPU / wall ms | final schema raw CPU / wall ms "
      "| `create_tenant` from the snapshot CPU / wall ms | replay × raw (CPU) | final schema × raw (CPU) | snapshot × raw (CPU) |\n|---|---|---|---|---|---|---|---|")
    for p in hs["points"]:
        c = lambda k: f"{p[k]['cpu_ms']:.1f} / {fw(p[k]['wall'])}" if p.get(k) else "not proven (replays)"
        snap = f"{p['baseline']['cpu_ms'] / p['raw_transaction']['cpu_ms']:.2f}" if p.get("baseline") else "–"
        w(f"| {p['migrations']} ({p['add_column']}) | {c('replay')} | {c('raw_transaction')} | {c('squashed')} | {c('baseline')} | "
          f"{p['replay']['cpu_ms'] / p['raw_transaction']['cpu_ms']:.2f} | {p['squashed']['cpu_ms'] / p['raw_transaction']['cpu_ms']:.2f} | {snap} |")
    pts = hs["points"]
    if len(pts) >= 3:
        a, b = pts[1], pts[-1]
        growth = lambda k: f"{b[k]['cpu_ms'] / a[k]['cpu_ms']:.2f}×" if a.get(k) and b.get(k) else "–"
        w(f"\nFrom {a['migrations']} to {b['migrations']} migrations (backend CPU): replaying {growth('replay')}, raw one "
          f"transaction {growth('raw_transaction')}, final schema raw DDL {growth('squashed')}, from the snapshot "
          f"{growth('baseline')}.")
    over = [f"{p['baseline']['cpu_ms'] - p['squashed']['cpu_ms']:+.1f} ms at {p['migrations']} migrations" for p in pts if p.get("baseline")]
    if over:
        w("\n`create_tenant` from the snapshot against the raw final-schema DDL (backend CPU, per tenant; what pg_tenancy "
          "adds to building the same schema: the fingerprint check, registry and ledger rows, running as the tenant's "
          "owner in a subtransaction): " + ", ".join(over) + ".")
    reasons = [(p["migrations"], p["snapshot"]) for p in pts if p.get("snapshot")]
    if reasons:
        w("\nSnapshot builds (`tenancy.build_snapshot()`: path, reason, build time): "
          + "; ".join(f"{m} migrations: {r['path']} — {r['reason']} ({r['build_s']:.2f} s)" for m, r in reasons) + ".")
    w("")


def peer_section(p, w):
    n = p["tenants"]
    w(f"## Against django-tenants 4.0.1 (Django 5.2, psycopg 3), {n} tenants\n")
    w(f"Both sides run the very same SQL: one Django `RunSQL` migration per pg_tenancy migration. Two histories: "
      f"the shipped set and {p.get('histories', [5, 100])[-1]} migrations (the shipped set plus small `ADD COLUMN` / `CREATE INDEX` "
      "steps). Django's figures are wall times of `manage.py` commands (process start included, as an operator "
      "sees them); tenant creation is `Client(...).save()` with `auto_create_schema`, timed inside one Django "
      "process. Not interleaved: each side runs as a block.\n")
    w("| measurement | history | django-tenants | pg_tenancy | pg_tenancy faster by |\n|---|---|---|---|---|")
    for h in p.get("histories", [5, 100]):
        dj, us = p[f"django_{h}"], p[f"ours_{h}"]
        a, b = dj["create"]["p50"]["median"], us["create_tenant"]["p50"]["median"]
        w(f"| create one tenant (p50 ms) | {h} | {fmt(dj['create']['p50'], digits=1)} | {fmt(us['create_tenant']['p50'], digits=1)} | **{a / b:.1f}×** |")
        for ex, j in (("standard", "jobs1"), ("multiprocessing", "jobs2")):
            a, b = dj["fleet"][ex]["seconds"]["median"], us["fleet"][j]["seconds"]["median"]
            w(f"| one new migration, all tenants ({ex} / {j.replace('jobs', 'jobs ')}) | {h} | {fmt(dj['fleet'][ex]['seconds'], 's', 2)} | "
              f"{fmt(us['fleet'][j]['seconds'], 's', 3)} | **{a / b:.0f}×** |")
        a, b = dj["fleet"]["noop"]["seconds"]["median"], us["fleet"]["noop"]["seconds"]["median"]
        w(f"| no-op run | {h} | {fmt(dj['fleet']['noop']['seconds'], 's', 2)} | {fmt(us['fleet']['noop']['seconds'], 's', 3)} | **{a / b:.0f}×** |")
    w("\nTargets (issue 7): tenant creation with the 100-migration history ≥ 2.5× faster; fleet migration of one small "
      "migration ≥ 10× faster; no-op fleet run ≥ 100× faster.\n")


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("phase", choices=["shipped", "zabbix", "scale", "history", "peer", "fifty", "report"])
    ap.add_argument("--host")
    ap.add_argument("--port", type=int)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--results", default="target/bench/results")
    ap.add_argument("--django-dir", default="target/bench/django")
    ap.add_argument("--zabbix", default="target/zabbix/schema.sql")
    ap.add_argument("--out", default="BENCHMARKS.md")
    ap.add_argument("--plots", default="bench/plots")
    ap.add_argument("--discussion", type=argparse.FileType())
    ARGS = ap.parse_args()
    os.makedirs(ARGS.results, exist_ok=True)
    if ARGS.phase == "report":
        report()
        return
    result = {"shipped": phase_shipped, "zabbix": phase_zabbix, "scale": phase_scale, "history": phase_history,
              "peer": phase_peer, "fifty": phase_fifty}[ARGS.phase]()
    with open(os.path.join(ARGS.results, f"{ARGS.phase}.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(f"{ARGS.phase}: done")


if __name__ == "__main__":
    main()
