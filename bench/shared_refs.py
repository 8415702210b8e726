#!/usr/bin/env python3
"""Native foreign keys to a shared table against pg_tenancy's shared references (issue 15).

Two databases in one cluster, identical but for one thing: in `sr_shared` the owner of
public.plans ran tenancy.share_table, so the shipped migration 20261127000000 makes each tenant's
subscription reference public.plans through pg_tenancy; in `sr_native` every tenant keeps 0005's
native foreign key (two triggers on public.plans per tenant). At each fleet size both are grown
to the same number of tenants, then measured in interleaved rounds (the order alternates):

- create_tenant: backend CPU (from /proc/<pid>/schedstat, ns) and wall time per tenant;
- the first query on public.plans from a fresh connection (CPU and wall);
- deleting a public.plans row nothing references (CPU and wall, warm connection).

Run by bench/shared_refs.sh under the shared database lock. Timings are reported, never asserted.
"""
import argparse
import json
import statistics
import time

import psycopg

ARGS = None
DBS = ["sr_native", "sr_shared"]


def connect(db):
    return psycopg.connect(host=ARGS.host, port=ARGS.port, user="postgres", dbname=db, autocommit=True)


def q(conn, sql, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else None


def cpu_ns(pid):
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def measured(conn, pid, sql, params=None):
    c0, w0 = cpu_ns(pid), time.perf_counter()
    q(conn, sql, params)
    return (cpu_ns(pid) - c0) / 1e6, (time.perf_counter() - w0) * 1000


def setup(db):
    admin = connect("postgres")
    q(admin, f"DROP DATABASE IF EXISTS {db}")
    q(admin, f"CREATE DATABASE {db}")
    admin.close()
    c = connect(db)
    q(c, "CREATE EXTENSION pg_tenancy")
    q(c, "CREATE TABLE public.plans (id bigint PRIMARY KEY, label text)")
    q(c, "INSERT INTO public.plans SELECT g, 'plan ' || g FROM generate_series(1, 10) g")
    if db == "sr_shared":
        q(c, "SELECT tenancy.share_table('public.plans')")
    c.close()


def grow(db, target):
    c = connect(db)
    have = q(c, "SELECT count(*) FROM tenancy.tenants")[0][0]
    while have < target:
        n = min(100, target - have)
        q(c, "SELECT tenancy.create_tenant('t' || g) FROM generate_series(%s::int, %s::int) g", (have + 1, have + n))
        q(c, "INSERT INTO public.plans VALUES (1000000 + %s, 'x') ON CONFLICT DO NOTHING", (have,))
        have += n
    c.close()
    return have


def round_for(db, size, k):
    out = {}
    c = connect(db)
    pid = q(c, "SELECT pg_backend_pid()")[0][0]
    base = 10_000_000 + size * 100 + k * 10
    cpu, wall = [], []
    for i in range(ARGS.creates):
        a, b = measured(c, pid, "SELECT tenancy.create_tenant(%s)", (f"m{base + i}",))
        cpu.append(a)
        wall.append(b)
    out["create_cpu_ms"], out["create_wall_ms"] = statistics.median(cpu), statistics.median(wall)
    # A plans row nothing references, deleted on a warm connection.
    q(c, "INSERT INTO public.plans VALUES (%s, 'spare')", (base,))
    q(c, "SELECT * FROM public.plans WHERE id = 1")
    out["delete_cpu_ms"], out["delete_wall_ms"] = measured(c, pid, "DELETE FROM public.plans WHERE id = %s", (base,))
    c.close()
    # The first query on plans from a fresh connection.
    f = connect(db)
    fpid = q(f, "SELECT pg_backend_pid()")[0][0]
    out["first_query_cpu_ms"], out["first_query_wall_ms"] = measured(f, fpid, "SELECT label FROM public.plans WHERE id = 1")
    f.close()
    return out


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--host", required=True)
    p.add_argument("--port", required=True)
    p.add_argument("--sizes", default="100,1000")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--creates", type=int, default=5)
    p.add_argument("--out", required=True)
    ARGS = p.parse_args()
    for db in DBS:
        setup(db)
    results = {}
    for size in [int(s) for s in ARGS.sizes.split(",")]:
        for db in DBS:
            grow(db, size)
        rows = {db: [] for db in DBS}
        for k in range(ARGS.rounds):
            order = DBS if k % 2 == 0 else list(reversed(DBS))
            for db in order:
                rows[db].append(round_for(db, size, k))
        results[size] = {}
        for db in DBS:
            c = connect(db)
            trig = q(c, "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.plans'::regclass")[0][0]
            tenants = q(c, "SELECT count(*) FROM tenancy.tenants")[0][0]
            c.close()
            med = {m: statistics.median(r[m] for r in rows[db]) for m in rows[db][0]}
            results[size][db] = {"tenants": tenants, "plans_triggers": trig, **med}
            print(size, db, json.dumps(results[size][db]), flush=True)
    with open(ARGS.out, "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
