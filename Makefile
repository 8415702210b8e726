# pg_tenancy: every target installs what it needs first (scripts/setup.sh is idempotent).
.PHONY: setup build install demo demo-stop test test-slow test-package test-pg-upgrade package regress bench bench-quick bench-fifty bench-history bench-citus clean

DEMO_PORT ?= 28815
# The PostgreSQL major under test: 15 (Debian's, the default), 14, 16, 17 or 18.
PG ?= 15
export PG
# make test SUITE=core: only the in-database, golden and trust-recipe tests (the parts that depend on PG).
SUITE ?= full
export SUITE

setup:
	@bash scripts/setup.sh

build: setup
	cargo build

install: setup
	@bash -c 'source scripts/common.sh && install_extension'

demo: setup
	@DEMO_PORT=$(DEMO_PORT) bash scripts/demo.sh

demo-stop:
	@bash -c 'source scripts/common.sh && cluster_stop demo && echo "demo cluster stopped"'

test: setup
	@bash scripts/test.sh

bench: setup
	@bash bench/run.sh

bench-quick: setup
	@QUICK=1 bash bench/run.sh

# Issue 15's 50 000-tenant run of the shipped set (hours; release build): only that phase, then the
# report from the results already in target/bench/results. BENCH_FIFTY_N=5000 for a shorter run.
bench-fifty: setup
	@BENCH_ONLY=fifty bash bench/run.sh

# Only the history curve (release build; a build embedding no migrations), then the report from the
# results already in target/bench/results. Any phases: BENCH_ONLY=scale,history make bench.
bench-history: setup
	@BENCH_ONLY=history bash bench/run.sh

# pg_tenancy on a 3-node Citus cluster vs a single node (docs/citus.md); skipped (and successful)
# when the PostgreSQL under test has no Citus installed. PROFILE=debug for the debug build.
bench-citus: setup
	@bash bench/citus.sh || [ $$? -eq 77 ]

# 5 000 tenants under default settings; needs the extension installed by `make test`.
test-slow: install
	@bash tests/integration/scale.sh

# An installable package for PostgreSQL $(PG) in target/packages (.deb for 15, tarball otherwise).
package: setup
	@bash scripts/package.sh

# Builds the package and installs it into a PostgreSQL that has never seen the build tree.
test-package: setup
	@bash tests/integration/package.sh

# pg_upgrade of a 15 cluster with tenants to 18, the extension installed in both.
test-pg-upgrade: setup
	@PG=15 PG15_FROM=pypi bash scripts/setup.sh && PG=18 bash scripts/setup.sh && bash tests/integration/pg_upgrade.sh

regress: install
	@bash scripts/regress.sh

clean: demo-stop
	cargo clean
