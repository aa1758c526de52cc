# Sourced by the benchmark scripts: what each of them needs before its first run.

# Builds the release binary ($bin; with the cargo features in $features, if set) and makes a
# work folder ($work), removed on exit.
build_and_make_workdir() {
  cargo build --release -q -p trainbench ${features:+--features "$features"}
  bin=target/release/trainbench
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
}

# Generates ROWS rows of HIGGS-like data (seed 1, so every script sees the same rows) into FILE.
generate_higgs() { # ROWS FILE
  "$bin" gen higgs-like --rows "$1" --seed 1 --out "$2" >/dev/null
}

# "N cores, CPU model", for the header line of a result.
machine() {
  echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
}
