# Integration-test targets; the top-level Makefile does `include integration/integration.mk`.
#
#   make setup        install docker-registry, skopeo, umoci, runc, debootstrap,
#                     oci-image-tool, htpasswd (apache2-utils), zstd (root, apt)
#   make fixtures     build/cached OCI-layout fixtures (debian, app, app-shellcmd,
#                     app-debs, app-pipdocs, app-hidden)
#                     under $${XDG_CACHE_HOME:-target}/harden-fixtures
#   make integration  run the integration tests (root; release build of harden,
#                     the debug build is several times slower on 200 MB layers)

INTEGRATION_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
CARGO ?= cargo
INTEGRATION_TEST_ARGS ?=

.PHONY: setup fixtures sigverify integration

setup:
	bash $(INTEGRATION_DIR)/setup.sh

fixtures: setup
	bash $(INTEGRATION_DIR)/build-image.sh all

## The independent signature verifier (the sigstore crate) is built here, before the tests, so its
## first build never counts against a test's timeout.
sigverify:
	$(CARGO) build --release --manifest-path $(INTEGRATION_DIR)/sigverify/Cargo.toml --target-dir target/sigverify

integration: fixtures sigverify
	$(CARGO) test --release --test integration -- $(INTEGRATION_TEST_ARGS)
