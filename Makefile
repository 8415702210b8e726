# pg_tenancy: every target installs what it needs first (scripts/setup.sh is idempotent).
.PHONY: setup build install demo demo-stop test test-slow regress bench bench-quick clean

DEMO_PORT ?= 28815

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

# 5 000 tenants under default settings; needs the extension installed by `make test`.
test-slow: install
	@bash tests/integration/scale.sh

regress: install
	@bash scripts/regress.sh

clean: demo-stop
	cargo clean
