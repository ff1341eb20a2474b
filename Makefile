# harden — set-up and checks. `make demo` and `make test` work on a fresh Debian machine (as root).
CARGO ?= cargo

.PHONY: all build release demo test lint unit bench fuzz clean-fixtures image

all: build

build:
	$(CARGO) build

release:
	$(CARGO) build --release

include integration/integration.mk

## demo: harden a local sample image (real Debian content) through a local registry.
demo: setup release
	bash integration/demo.sh

## image: harden's own OCI image, built and hardened by harden (image/build.sh) into
## target/image/harden-oci; IMAGE=registry/harden:TAG also pushes it, SIGN_KEY=cosign.key signs
## and attests it. Reproducible (SOURCE_DATE_EPOCH: the last commit's time); prints the digest.
IMAGE ?=
SIGN_KEY ?=
image: release
	IMAGE='$(IMAGE)' SIGN_KEY='$(SIGN_KEY)' bash image/build.sh

## test: formatting, lints, unit tests, then the integration tests against real tools.
test: lint unit integration

lint:
	$(CARGO) fmt --check
	python3 integration/import-cycles.py src
	$(CARGO) clippy --all-targets -- -D warnings

unit:
	$(CARGO) test --lib --bins

## bench: ratios against skopeo, gzip and umoci from one run; prints a Markdown table.
## BENCH="fleet" (or any of big app batch fleet) runs only those sections.
BENCH ?=
bench: setup release
	bash integration/bench.sh $(BENCH)

## fuzz: each cargo-fuzz target for FUZZ_SECONDS (default 60), from fuzz/seeds; a crash stops
## it and leaves the input in fuzz/artifacts/TARGET/ (turn it into a unit test). No nightly here:
## RUSTC_BOOTSTRAP=1 lets stable rustc take cargo-fuzz's -Z flags.
FUZZ_SECONDS ?= 60
## tar_go_oracle compares harden's tar framing with Go's archive/tar (integration/golist).
FUZZ_TARGETS ?= tar_rewrite profile_parse manifest_parse rpm_read pkgdb_read elf_read tar_go_oracle
GOLIST := $(CURDIR)/target/golist/golist
fuzz: setup
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd integration/golist && GOCACHE=$(CURDIR)/target/golist/cache GOPATH=$(CURDIR)/target/golist/gopath \
	  GO111MODULE=off GOFLAGS= CGO_ENABLED=0 go build -o $(GOLIST) .
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  mkdir -p corpus/$$t && \
	  HARDEN_GOLIST=$(GOLIST) RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t corpus/$$t seeds/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=512 -max_len=1048576 || exit 1; \
	done

clean-fixtures:
	rm -rf $${XDG_CACHE_HOME:-target}/harden-fixtures
