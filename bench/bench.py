#!/usr/bin/env python3
"""pg_tenancy benchmarks: provisioning and fleet migration against the raw-DDL limit and
django-tenants. Driven by bench/run.sh (`make bench`, `make bench-quick`); each phase writes a
JSON file, `report` turns them into BENCHMARKS.md. Timings are reported, never asserted."""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time

import psycopg

ARGS = None


def connect(db, autocommit=True):
    return psycopg.connect(host=ARGS.host, port=ARGS.port, user="postgres", dbname=db, autocommit=autocommit)


def q(conn, sql, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else None


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


def rss_kb(pid, field="VmHWM"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def create_db(name, extension=True):
    with connect("postgres") as c:
        q(c, f'DROP DATABASE IF EXISTS "{name}"')
        q(c, f'CREATE DATABASE "{name}"')
    conn = connect(name)
    if extension:
        q(conn, "SET client_min_messages = warning")
        q(conn, "CREATE EXTENSION pg_tenancy")
        q(conn, "CREATE TABLE public.plans (id bigint PRIMARY KEY)")
        q(conn, "CREATE TABLE public.organizations (id bigint PRIMARY KEY)")
        q(conn, "SELECT tenancy.manage_tenant('organizations', ARRAY['org_', ':id'])")
    return conn


def migration_statements(conn, schema, sql_rows):
    stmts = []
    for (sql,) in sql_rows:
        stmts += [r[0] for r in q(conn, "SELECT tenancy._split_statements(%s, %s)", (sql, schema))]
    return stmts


def limit_runs(conn, db, tag, runs, per_run, sql_rows):
    """The same DDL sent raw into fresh schemas: autocommit, one transaction, one string."""
    out = {}
    for mode in ("autocommit", "transaction", "string"):
        all_runs = []
        for r in range(runs):
            times = []
            for i in range(per_run):
                schema = f"raw_{tag}_{mode}_{r}_{i}"
                stmts = migration_statements(conn, schema, sql_rows)
                path = f'SET search_path = "{schema}", public'
                start = time.perf_counter()
                if mode == "string":
                    q(conn, ";\n".join([f'CREATE SCHEMA "{schema}"', path] + stmts))
                elif mode == "transaction":
                    with conn.transaction():
                        q(conn, f'CREATE SCHEMA "{schema}"')
                        q(conn, path)
                        for s in stmts:
                            q(conn, s)
                else:
                    q(conn, f'CREATE SCHEMA "{schema}"')
                    q(conn, path)
                    for s in stmts:
                        q(conn, s)
                times.append(time.perf_counter() - start)
                q(conn, "RESET search_path")
            all_runs.append(times)
        out[mode] = per_tenant(all_runs)
    return out


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


def catalog_bytes(conn):
    return q(conn, "SELECT sum(pg_total_relation_size(oid))::bigint FROM pg_class WHERE relnamespace = 'pg_catalog'::regnamespace")[0][0]


def provision_sequence(db, first, count, batches):
    """count tenants with create_tenant on one connection, in `batches` timed batches."""
    conn = connect(db)
    pid = q(conn, "SELECT pg_backend_pid()")[0][0]
    rates, n, size = [], first, count // batches
    for _ in range(batches):
        t0 = time.perf_counter()
        for _ in range(size):
            q(conn, "SELECT tenancy.create_tenant(%s)", (f"seq_{n}",))
            n += 1
        rates.append(size / (time.perf_counter() - t0))
    result = {"tenants_per_second": summary(rates), "backend_rss_kb": rss_kb(pid, "VmRSS"),
              "backend_peak_kb": rss_kb(pid, "VmHWM"), "catalog_bytes": catalog_bytes(conn),
              "tenants": q(conn, "SELECT count(*) FROM tenancy.tenants")[0][0]}
    conn.close()
    return result


class WorkerSampler:
    """Peak RSS of pg_tenancy fleet workers, sampled from /proc while a run goes."""

    def __init__(self):
        self.peak, self.stop = 0, False
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        while not self.stop:
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        if b"fleet worker" not in f.read():
                            continue
                except OSError:
                    continue
                self.peak = max(self.peak, rss_kb(pid, "VmRSS") or 0)
            time.sleep(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop = True
        self.thread.join()


def fleet(db, runs, label, raw_too=True):
    """One new small migration over every tenant: jobs 1, jobs 2, the raw limit, a no-op."""
    admin = connect(db)
    result = {}
    counter = q(admin, "SELECT count(*) FROM tenancy.registered_migrations")[0][0]
    schemas = [r[0] for r in q(admin, "SELECT schema_name::text FROM tenancy.tenants ORDER BY 1")]
    for jobs in (1, 2):
        times, peaks, worker_peaks = [], [], []
        for _ in range(runs):
            counter += 1
            version = f"{1000 + counter}"
            q(admin, "SELECT tenancy.add_migration(%s, %s, %s)",
              (version, f"bench_{counter}", f"ALTER TABLE users ADD COLUMN bench_{counter} text"))
            conn = connect(db)
            q(conn, "SET client_min_messages = warning")
            pid = q(conn, "SELECT pg_backend_pid()")[0][0]
            with WorkerSampler() as sampler:
                t0 = time.perf_counter()
                q(conn, f"CALL tenancy.migrate_all(jobs => {jobs})")
                times.append(time.perf_counter() - t0)
            peaks.append(rss_kb(pid, "VmHWM"))
            worker_peaks.append(sampler.peak)
            conn.close()
        result[f"jobs{jobs}"] = {"seconds": summary(times), "coordinator_peak_kb": max(peaks),
                                 "worker_peak_kb": max(worker_peaks) if jobs > 1 else None}
    if raw_too:
        times = []
        for r in range(runs):
            col = f"raw_{label}_{r}"
            t0 = time.perf_counter()
            for s in schemas:
                with admin.transaction():
                    q(admin, f'SET LOCAL search_path = "{s}", public')
                    q(admin, f"ALTER TABLE users ADD COLUMN {col} text")
            times.append(time.perf_counter() - t0)
        result["limit"] = {"seconds": summary(times)}
    times = []
    for _ in range(runs):
        conn = connect(db)
        q(conn, "SET client_min_messages = warning")
        t0 = time.perf_counter()
        q(conn, "CALL tenancy.migrate_all()")
        times.append(time.perf_counter() - t0)
        conn.close()
    result["noop"] = {"seconds": summary(times)}
    result["tenants"] = len(schemas)
    admin.close()
    return result


def phase_shipped():
    quick = ARGS.quick
    runs, per_run = (2, 5) if quick else (5, 40)
    conn = create_db("bench_shipped")
    rows = q(conn, "SELECT sql FROM tenancy._embedded_migrations() ORDER BY version::numeric")
    out = {"limit": limit_runs(conn, "bench_shipped", "s", runs, per_run, rows),
           "create_tenant": provision_runs(conn, runs, per_run, "create_tenant", 0),
           "managed_insert": provision_runs(conn, runs, per_run, "insert", 0)}
    n1, n2 = (50, 100) if quick else (1000, 10000)
    existing = q(conn, "SELECT count(*) FROM tenancy.tenants")[0][0]
    out["sequence_1"] = provision_sequence("bench_shipped", 0, n1 - existing, 5)
    fleet_runs = 2 if quick else 5
    out["fleet_1"] = fleet("bench_shipped", fleet_runs, "a")
    out["sequence_2"] = provision_sequence("bench_shipped", n1, n2 - n1, 5)
    out["fleet_2"] = fleet("bench_shipped", fleet_runs, "b")
    # One tenant again, now that the catalog holds N2 tenants (fresh connection for each side).
    at_scale = connect("bench_shipped")
    out["at_scale"] = {"limit": limit_runs(at_scale, "bench_shipped", "big", runs, per_run // 2, rows)["transaction"],
                       "create_tenant": provision_runs(at_scale, runs, per_run // 2, "create_tenant", 10_000_000)}
    return out


def phase_zabbix():
    quick = ARGS.quick
    runs, per_run = (2, 2) if quick else (5, 8)
    conn = create_db("bench_zabbix")
    rows = q(conn, "SELECT sql FROM tenancy._embedded_migrations() ORDER BY version::numeric")
    stmts = migration_statements(conn, "x", rows)
    return {"statements": len(stmts),
            "limit": limit_runs(conn, "bench_zabbix", "z", runs, per_run, rows),
            "create_tenant": provision_runs(conn, runs, per_run, "create_tenant", 0),
            "managed_insert": provision_runs(conn, runs, per_run, "insert", 0)}


# --- the peer -----------------------------------------------------------------------------------

def history(n):
    """The shipped set followed by small steps, as (version, name, sql) — the same for both sides."""
    conn = connect("postgres")
    with psycopg.connect(host=ARGS.host, port=ARGS.port, user="postgres", dbname="bench_shipped", autocommit=True) as c:
        shipped = q(c, "SELECT version, name, sql FROM tenancy._embedded_migrations() ORDER BY version::numeric")
    conn.close()
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
    for version, name, sql in steps[5:]:
        q(conn, "SELECT tenancy.add_migration(%s, %s, %s)", (version, name, sql))
    per = max(1, tenants // runs)
    creation = provision_runs(conn, runs, per, "create_tenant", 0)
    conn.close()
    return {"create_tenant": creation, "fleet": fleet(db, runs, "h", raw_too=False)}


def phase_peer():
    quick = ARGS.quick
    tenants, runs = (4, 2) if quick else (100, 5)
    fleet_runs = 2 if quick else 5
    out = {"tenants": tenants}
    for hist in (5, 100):
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
    mem = rss_kb("self", "VmRSS")
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024 // 1024
    # The server under test (PG=NN; bench/run.sh exports its bin directory).
    postgres = os.path.join(os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin"), "postgres")
    pg = subprocess.run([postgres, "--version"], capture_output=True, text=True).stdout.strip()
    return f"{os.cpu_count()} cores ({cpu}), {mem} GiB, {platform.system()} {platform.release()}, {pg}"


def fmt(s, unit="", digits=1):
    return f"{s['median']:.{digits}f}{unit} ({s['min']:.{digits}f}–{s['max']:.{digits}f}, {s['runs']} runs)"


def report():
    d = {k: json.load(open(os.path.join(ARGS.results, f"{k}.json"))) for k in ("shipped", "zabbix", "peer")
         if os.path.exists(os.path.join(ARGS.results, f"{k}.json"))}
    L = []
    w = L.append
    w("# Benchmarks\n")
    w(f"Generated by `{'make bench-quick' if ARGS.quick else 'make bench'}` on {time.strftime('%Y-%m-%d')}. Machine: {machine()}.")
    if ARGS.quick:
        w("\n**Quick mode**: tiny N, debug build, few runs — it checks that the harness works; the figures mean little.\n")
    w("\n## Method\n")
    w("- `make bench` builds the extension in release mode, starts its own PostgreSQL 15 cluster as `postgres` "
      "on a private socket and port with default settings except `fsync = off` (the same for every workload, "
      "so disk flushes do not dominate), and drives it over the unix socket with psycopg 3 from Python.")
    w("- Every figure is the median of at least 5 runs with min–max in brackets (per-tenant figures: the p50 "
      "and p95 of each run, then their median across runs), unless the row says otherwise.")
    w("- **Limit**: the very same statements (split and `@tenant@`-substituted by pg_tenancy's own lexer, "
      "`tenancy._split_statements`) sent raw into a fresh schema: statement by statement in autocommit, inside "
      "one transaction, and as one multi-statement string. Ratios are to the one-transaction limit, which is "
      "what pg_tenancy does (one transaction per tenant).")
    w("- The zabbix workload is Debian's `zabbix-server-pgsql` `schema.sql` as one tenant migration, in a build "
      "whose embedded set is only that file (`TENANCY_MIGRATIONS_DIR`).")
    w("- Fleet: each run registers one new small migration (`ALTER TABLE users ADD COLUMN …`) and times "
      "`CALL tenancy.migrate_all(jobs => J)` on a fresh connection. Its limit sends the same `ALTER TABLE` raw to "
      "every tenant schema, one transaction per tenant (as `migrate_all` commits per tenant).")
    w("- Memory: the backend's VmHWM (peak RSS) from `/proc` after the run; workers sampled every 50 ms.\n")
    if "shipped" in d:
        s = d["shipped"]
        lim = s["limit"]["transaction"]["p50"]["median"]
        w("## Provisioning one tenant (shipped migration set, 6 migrations)\n")
        w("| how | p50 ms | p95 ms | × one-transaction limit (p50) |\n|---|---|---|---|")
        for k, label in (("autocommit", "limit: raw, autocommit"), ("transaction", "limit: raw, one transaction"),
                         ("string", "limit: raw, one multi-statement string")):
            r = s["limit"][k]
            w(f"| {label} | {fmt(r['p50'], digits=2)} | {fmt(r['p95'], digits=2)} | {r['p50']['median'] / lim:.2f} |")
        for k, label in (("create_tenant", "`tenancy.create_tenant`"), ("managed_insert", "INSERT into a managed table")):
            r = s[k]
            w(f"| {label} | {fmt(r['p50'], digits=2)} | {fmt(r['p95'], digits=2)} | **{r['p50']['median'] / lim:.2f}** |")
        w("\nTarget: ≤ 1.10× the one-transaction limit.\n")
        if "at_scale" in s:
            a = s["at_scale"]
            w(f"With {s['sequence_2']['tenants']} tenants already in the database (fresh connection): raw one-transaction "
              f"limit p50 {fmt(a['limit']['p50'], ' ms', 2)}, `create_tenant` p50 {fmt(a['create_tenant']['p50'], ' ms', 2)} "
              f"= **{a['create_tenant']['p50']['median'] / a['limit']['p50']['median']:.2f}×**.\n")
    if "zabbix" in d:
        z = d["zabbix"]
        lim = z["limit"]["transaction"]["p50"]["median"]
        w(f"## Provisioning one tenant (zabbix schema, {z['statements']} statements)\n")
        w("| how | p50 ms | p95 ms | × one-transaction limit (p50) |\n|---|---|---|---|")
        for k in ("autocommit", "transaction", "string"):
            r = z["limit"][k]
            w(f"| limit: raw, {k} | {fmt(r['p50'], digits=1)} | {fmt(r['p95'], digits=1)} | {r['p50']['median'] / lim:.2f} |")
        for k, label in (("create_tenant", "`tenancy.create_tenant`"), ("managed_insert", "INSERT into a managed table")):
            r = z[k]
            w(f"| {label} | {fmt(r['p50'], digits=1)} | {fmt(r['p95'], digits=1)} | **{r['p50']['median'] / lim:.2f}** |")
        w("")
    if "shipped" in d:
        s = d["shipped"]
        w("## Provisioning N tenants in sequence (create_tenant, one connection)\n")
        w("| tenants at the end | tenants/second (5 consecutive batches) | catalog size | backend RSS / peak |\n|---|---|---|---|")
        for k in ("sequence_1", "sequence_2"):
            r = s[k]
            w(f"| {r['tenants']} | {fmt(r['tenants_per_second'], digits=0)} | {r['catalog_bytes'] / 2**20:.0f} MiB | "
              f"{(r['backend_rss_kb'] or 0) / 1024:.0f} / {(r['backend_peak_kb'] or 0) / 1024:.0f} MiB |")
        w("\n## Fleet migration: one new small migration over every tenant\n")
        w("| tenants | jobs 1 | jobs 2 | limit (raw, per tenant) | jobs 1 × limit | jobs 1 / jobs 2 | no-op run |\n|---|---|---|---|---|---|---|")
        for k in ("fleet_1", "fleet_2"):
            r = s[k]
            j1, j2, li = r["jobs1"]["seconds"], r["jobs2"]["seconds"], r["limit"]["seconds"]
            w(f"| {r['tenants']} | {fmt(j1, 's', 2)} | {fmt(j2, 's', 2)} | {fmt(li, 's', 2)} | **{j1['median'] / li['median']:.2f}** | "
              f"**{j1['median'] / j2['median']:.2f}** | {fmt(r['noop']['seconds'], 's', 3)} |")
        w("\nTargets: jobs 1 ≤ 1.20× the limit; jobs 2 ≥ 1.7× faster than jobs 1; no-op run at 10 000 tenants under 1 s.\n")
        r = s["fleet_2"]
        w(f"Backend peak memory during the {r['tenants']}-tenant fleet runs: jobs 1 coordinator "
          f"{(r['jobs1']['coordinator_peak_kb'] or 0) / 1024:.0f} MiB; jobs 2 coordinator "
          f"{(r['jobs2']['coordinator_peak_kb'] or 0) / 1024:.0f} MiB, worker {(r['jobs2']['worker_peak_kb'] or 0) / 1024:.0f} MiB.\n")
    if "peer" in d:
        p = d["peer"]
        n = p["tenants"]
        w(f"## Against django-tenants 4.0.1 (Django 5.2, psycopg 3), {n} tenants\n")
        w("Both sides run the very same SQL: one Django `RunSQL` migration per pg_tenancy migration. Two histories: "
          "the shipped set (6 migrations) and 100 migrations (the shipped set plus small `ADD COLUMN` / `CREATE INDEX` "
          "steps). Django's figures are wall times of `manage.py` commands (process start included, as an operator "
          "sees them); tenant creation is `Client(...).save()` with `auto_create_schema`, timed inside one Django "
          "process.\n")
        w("| measurement | history | django-tenants | pg_tenancy | pg_tenancy faster by |\n|---|---|---|---|---|")
        for h in (5, 100):
            dj, us = p[f"django_{h}"], p[f"ours_{h}"]
            a, b = dj["create"]["p50"]["median"], us["create_tenant"]["p50"]["median"]
            w(f"| create one tenant (p50 ms) | {h} | {fmt(dj['create']['p50'], digits=1)} | {fmt(us['create_tenant']['p50'], digits=1)} | **{a / b:.1f}×** |")
            for ex, j in (("standard", "jobs1"), ("multiprocessing", "jobs2")):
                a, b = dj["fleet"][ex]["seconds"]["median"], us["fleet"][j]["seconds"]["median"]
                w(f"| one new migration, all tenants ({ex} / {j.replace('jobs', 'jobs ')}) | {h} | {fmt(dj['fleet'][ex]['seconds'], 's', 2)} | "
                  f"{fmt(us['fleet'][j]['seconds'], 's', 3)} | **{a / b:.0f}×** |")
            a, b = dj["fleet"]["noop"]["seconds"]["median"], us["fleet"]["noop"]["seconds"]["median"]
            w(f"| no-op run | {h} | {fmt(dj['fleet']['noop']['seconds'], 's', 2)} | {fmt(us['fleet']['noop']['seconds'], 's', 3)} | **{a / b:.0f}×** |")
        dj = p["django_100"]
        w(f"\nAt 1 000 tenants (**extrapolated** linearly from {n}, django-tenants only; it migrates tenant by tenant): "
          f"create 1 000 tenants ≈ {dj['create']['p50']['median'] * 1000 / 1000:.0f} s, "
          f"one new migration ≈ {dj['fleet']['standard']['seconds']['median'] * 1000 / n:.0f} s (standard executor), "
          f"no-op ≈ {dj['fleet']['noop']['seconds']['median'] * 1000 / n:.0f} s. pg_tenancy's measured 1 000-tenant figures "
          "are in the fleet table above.\n")
        w("Targets: tenant creation with the 100-migration history ≥ 2.5× faster; fleet migration of one small "
          "migration ≥ 10× faster; no-op fleet run ≥ 100× faster.\n")
    w(ARGS.discussion.read() if ARGS.discussion else "")
    w("\n## Rerun\n\n```sh\nmake bench         # full run (≈ 15 minutes on 2 cores), rewrites BENCHMARKS.md\nmake bench-quick   # tiny N, checks the harness (part of make test)\n```\n"
      "Raw results: `target/bench/results/*.json`.")
    with open(ARGS.out, "w") as f:
        f.write("\n".join(L) + "\n")


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("phase", choices=["shipped", "zabbix", "peer", "report"])
    ap.add_argument("--host")
    ap.add_argument("--port", type=int)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--results", default="target/bench/results")
    ap.add_argument("--django-dir", default="target/bench/django")
    ap.add_argument("--out", default="BENCHMARKS.md")
    ap.add_argument("--discussion", type=argparse.FileType())
    ARGS = ap.parse_args()
    os.makedirs(ARGS.results, exist_ok=True)
    if ARGS.phase == "report":
        report()
        return
    result = {"shipped": phase_shipped, "zabbix": phase_zabbix, "peer": phase_peer}[ARGS.phase]()
    with open(os.path.join(ARGS.results, f"{ARGS.phase}.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(f"{ARGS.phase}: done")


if __name__ == "__main__":
    main()
