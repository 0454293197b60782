#!/usr/bin/env bash
# Peak resident memory of `predict` over 1,000 and 10,000 images (COUNTS; it must be flat in
# the count: images are decoded a bounded number at a time and each prediction is written as
# soon as it is computed) and of `index` over a catalog of the paper grid's size (INDEX_ROWS,
# default 35,784 = 36 simulations x 71 snapshots x 14 cameras).
#
#   benches/peak_memory.sh MODEL.onnx CATALOG.csv [OUT_DIR]
#
# The image folders are made of hard links to the catalog's images (cycled), so they cost no
# disk; the index catalog repeats the catalog's rows (new ids) up to INDEX_ROWS. Needs GNU time (/usr/bin/time, Debian package `time`) and a release build
# (`cargo build --release`); BIN overrides the binary.
set -euo pipefail
MODEL=$1
CATALOG=$2
OUT=${3:-bench-results/peak-memory}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/deepgalaxy}
mkdir -p "$OUT"
base=$(dirname "$CATALOG")
mapfile -t files < <(tail -n +2 "$CATALOG" | cut -d, -f2 | head -n 2000)
(( ${#files[@]} > 0 )) || { echo "no images listed in $CATALOG" >&2; exit 1; }

peak() { # command... -> peak RSS in MB and seconds
  /usr/bin/time -f '%M %e' -o "$OUT/time.txt" "$@" >/dev/null 2>"$OUT/stderr.txt" || {
    cat "$OUT/stderr.txt" >&2; exit 1; }
  read -r kb secs < "$OUT/time.txt"
  echo "$((kb / 1024)) MB, ${secs} s"
}

for n in ${COUNTS:-1000 10000}; do
  dir="$OUT/images-$n"
  if [ ! -d "$dir" ]; then
    mkdir -p "$dir.tmp"
    for ((i = 0; i < n; i++)); do
      ln "$base/${files[i % ${#files[@]}]}" "$dir.tmp/img$i.png"
    done
    mv "$dir.tmp" "$dir"
  fi
  echo "predict over $n images: $(peak "$BIN" predict --model "$MODEL" "$dir" --output "$OUT/predict-$n.csv")"
done
rows=${INDEX_ROWS:-35784}
big="$base/catalog-$rows.csv"
awk -F, -v OFS=, -v n="$rows" 'NR == 1 { print; next } { line[++k] = $0 }
  END { for (i = 0; i < n; i++) { $0 = line[i % k + 1]; $1 = $1 "_r" i; print } }' "$CATALOG" > "$big"
echo "index over $rows images: $(peak "$BIN" index --model "$MODEL" --data "$big" --output "$OUT/library.idx")"
