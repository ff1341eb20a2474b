# harden — set-up and checks. `make demo` and `make test` work on a fresh Debian machine (as root).
CARGO ?= cargo

.PHONY: all build release demo test lint unit bench fuzz clean-fixtures

all: build

build:
	$(CARGO) build

release:
	$(CARGO) build --release

include integration/integration.mk

## demo: harden a local sample image (real Debian content) through a local registry.
demo: setup release
	bash integration/demo.sh

## test: formatting, lints, unit tests, then the integration tests against real tools.
test: lint unit integration

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

unit:
	$(CARGO) test --bins

## bench: ratios against skopeo, gzip and umoci from one run; prints a Markdown table.
bench: setup release
	bash integration/bench.sh

clean-fixtures:
	rm -rf $${XDG_CACHE_HOME:-target}/harden-fixtures
