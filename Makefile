# The two commands: `make demo` and `make test`. Both install what is missing first.
SHELL := /bin/bash

.PHONY: deps demo test lint unit bench clean

deps:
	@scripts/install-deps.sh

demo: deps
	@scripts/demo.sh

# Everything CI checks: formatting, lints, unit tests, and the emulator-backed tests
# (which fail instead of skipping when CI=true and an emulator is missing).
test: deps lint
	cargo test --all-targets

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

unit:
	cargo test --lib

bench: deps
	@scripts/bench.sh

clean:
	rm -rf demo-work bench-work
