# The two commands: `make demo` and `make test`. Both install what is missing first.
SHELL := /bin/bash

.PHONY: deps demo test lint unit bench clean image functions-package test-image test-functions-package checkov

deps:
	@scripts/install-deps.sh

demo: deps
	@scripts/demo.sh

# Everything CI checks: formatting, lints, unit tests, the emulator-backed tests (which fail
# instead of skipping when CI=true and an emulator is missing), the two packages (the
# Functions zip, its handler linked for glibc 2.17, run in a Debian 11 root filesystem as
# the host drives it and killed mid-sync; the container image built from the debug binary
# cargo test made and its rootfs run under chroot against the emulators), and checkov over
# deploy/terraform. The cargo suite runs last, so its summary closes the output.
test: deps lint
	cargo build --bin trailvault
	scripts/test-functions-package.sh
	scripts/test-image.sh
	scripts/checkov.sh
	cargo test --doc
	cargo test --all-targets

# localhost/trailvault:latest from deploy/container/Dockerfile (podman; no registry needed).
image: deps
	@scripts/build-image.sh

# dist/trailvault-functions.zip: host.json, the function folders and a glibc-only handler
# linked against glibc 2.17 (cargo-zigbuild), which the Functions host's Debian 11 runs.
functions-package: deps
	@scripts/functions-package.sh

# The package tests on their own; `make image test-image TEST_IMAGE=localhost/trailvault:latest`
# tests the image `make image` built instead of building one from the debug binary.
test-image: deps
	scripts/test-image.sh

test-functions-package: deps
	scripts/test-functions-package.sh

checkov: deps
	scripts/checkov.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --no-default-features --all-targets -- -D warnings

unit:
	cargo test --lib

bench: deps
	@scripts/bench.sh

clean:
	rm -rf demo-work bench-work dist
