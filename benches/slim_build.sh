#!/usr/bin/env bash
# The slim runtime build (`--no-default-features`) against the full build (default), side by
# side in one run, each from its own empty target directory: clean build time, binary size
# (as built, with line tables, and stripped), and `predict` of one image with the model built
# into the binary: wall time from process start to output (median of RUNS) and peak memory.
#
#   benches/slim_build.sh [OUT_DIR]
#
# Crates must already be downloaded (`cargo fetch`), so the build times are compile times.
# Needs GNU time (/usr/bin/time, Debian package `time`). IMAGE overrides the image, RUNS the
# number of predict runs, BUILDS the builds measured ("full slim").
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-bench-results/slim-build}
IMAGE=${IMAGE:-fixtures/observations/hst/hst_arp142.jpg}
RUNS=${RUNS:-5}
mkdir -p "$OUT"

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "| build | clean build | binary | stripped | predict one image (median of $RUNS) | peak memory |"
echo "| --- | --- | --- | --- | --- | --- |"
for build in ${BUILDS:-full slim}; do
  flags=()
  [ "$build" = slim ] && flags=(--no-default-features)
  target="$OUT/target-$build"
  rm -rf "$target"
  start=$(date +%s)
  CARGO_TARGET_DIR="$target" cargo build --release --locked --offline -p deepgalaxy "${flags[@]}" \
    >"$OUT/build-$build.log" 2>&1 || { tail -20 "$OUT/build-$build.log" >&2; exit 1; }
  build_s=$(($(date +%s) - start))
  bin="$target/release/deepgalaxy"
  size=$(stat -c %s "$bin")
  strip -o "$OUT/deepgalaxy-$build.stripped" "$bin"
  stripped=$(stat -c %s "$OUT/deepgalaxy-$build.stripped")
  : >"$OUT/predict-$build.txt"
  for ((i = 0; i < RUNS; i++)); do
    /usr/bin/time -f '%e %M' -o "$OUT/time.txt" "$bin" predict "$IMAGE" \
      >"$OUT/predict-$build.csv" 2>"$OUT/stderr.txt" || { cat "$OUT/stderr.txt" >&2; exit 1; }
    cat "$OUT/time.txt" >>"$OUT/predict-$build.txt"
  done
  wall=$(cut -d' ' -f1 "$OUT/predict-$build.txt" | median)
  peak_kb=$(cut -d' ' -f2 "$OUT/predict-$build.txt" | median)
  awk -v b="$build" -v t="$build_s" -v s="$size" -v x="$stripped" -v w="$wall" -v m="$peak_kb" \
    'BEGIN { printf "| %s | %d min %d s | %.1f MB | %.1f MB | %s s | %d MB |\n", b, t / 60, t % 60, s / 1e6, x / 1e6, w, m / 1024 }'
done
