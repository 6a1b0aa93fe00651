# A menu over cargo; every recipe is one cargo command, so `just` is never required.

# build the web app and the server, then run socklab (args go to the server)
run *ARGS:
    cargo xtask run -- {{ARGS}}

# formatting, lints, and every test (unit, integration, Python interop, browser)
test:
    cargo xtask test

# run the benchmarks and print their figures
bench *ARGS:
    cargo xtask bench {{ARGS}}

# only build the web app into target/web
build-web:
    cargo xtask build-web

# format the code
fmt:
    cargo fmt --all

# lints as CI runs them
lint:
    cargo clippy --workspace --all-targets -- -D warnings
