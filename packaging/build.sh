#!/usr/bin/env bash
# Builds target/debian/vipsec_<version>-1_<arch>.deb and
# target/generate-rpm/vipsec-<version>-1.<arch>.rpm from the metadata in Cargo.toml.
# Needs cargo-deb and cargo-generate-rpm (cargo install --locked cargo-deb cargo-generate-rpm).
set -euo pipefail
cd -P "$(dirname "$0")/.."
cargo build --release --locked --quiet
# Man pages and completions come from the CLI definition itself, so they match --help.
rm -rf target/packaging
cargo run --release --locked --quiet --features docs --bin vipsec-docs -- target/packaging
gzip -9n target/packaging/man/*.8
cargo deb --no-build --locked --quiet
cargo generate-rpm
ls target/debian/*.deb target/generate-rpm/*.rpm
