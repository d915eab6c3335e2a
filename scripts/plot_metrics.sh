#!/usr/bin/env bash
# Plots a metrics CSV written by composer::loggers::MetricsFile (header epoch,batch,sample,key,value) into a PNG
# with two panels: the training loss ("loss/train/total") and the evaluation accuracy ("metrics/eval/accuracy"),
# both against the batch. A panel whose key has no value says so; a file holding neither key is an error.
#
# Usage: scripts/plot_metrics.sh METRICS.csv OUT.png
#
# Needs gnuplot (Debian: gnuplot-nox; the pngcairo terminal when it has one, png otherwise) and awk.
# When one batch was logged more than once (a run resumed from a checkpoint older than its last logged batch
# appends the replayed batches again), the value logged last is plotted. Non-finite values (nan, inf) are left
# out. It can run while training writes the file.
set -euo pipefail

readonly header='epoch,batch,sample,key,value'
readonly loss_key='loss/train/total'
readonly accuracy_key='metrics/eval/accuracy'

die() {
  echo "plot_metrics.sh: $*" >&2
  exit 1
}

if [[ $# -ne 2 ]]; then
  echo "usage: $0 METRICS.csv OUT.png" >&2
  exit 2
fi
csv=$1
png=$2

[[ -e $csv ]] || die "metrics file '$csv' not found"
[[ -f $csv && -r $csv ]] || die "metrics file '$csv' is not a readable file"
command -v gnuplot >/dev/null 2>&1 || die "gnuplot is not installed (Debian: apt-get install gnuplot-nox)"
command -v awk >/dev/null 2>&1 || die "awk is not installed"

first_line=''
IFS= read -r first_line <"$csv" || true
first_line=${first_line%$'\r'}
[[ $first_line == "$header" ]] || die "'$csv' does not start with the header '$header' (is it a MetricsFile CSV?)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# extract KEY OUT: writes "batch value" for KEY, one line per batch (the last value logged for it), by batch.
extract() {
  awk -F, -v key="$1" '
    NR == 1 { next }
    {
      sub(/\r$/, "")
      if ($4 != key || $2 !~ /^[0-9]+$/) next
      value = $NF
      if (value !~ /^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$/) next   # nan, inf, junk
      if (!($2 in last)) batches[++n] = $2
      last[$2] = value
    }
    END { for (i = 1; i <= n; ++i) print batches[i], last[batches[i]] }
  ' "$csv" | sort -n -k1,1 >"$2"
}

extract "$loss_key" "$tmp/loss.dat"
extract "$accuracy_key" "$tmp/accuracy.dat"
if [[ ! -s $tmp/loss.dat && ! -s $tmp/accuracy.dat ]]; then
  die "'$csv' holds no finite value of '$loss_key' nor of '$accuracy_key'"
fi

# A gnuplot string literal: single-quoted, a quote doubled.
gp_quote() {
  local s=${1//\'/\'\'}
  printf "'%s'" "$s"
}

terminal=png
if gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1; then terminal=pngcairo; fi

out_dir=$(dirname -- "$png")
mkdir -p -- "$out_dir" || die "cannot create the folder '$out_dir'"
rm -f -- "$png"

# panel DATA TITLE YLABEL STYLE: one panel, or a note when DATA is empty.
panel() {
  echo "set title $(gp_quote "$2")"
  echo "set ylabel $(gp_quote "$3")"
  if [[ -s $1 ]]; then
    echo "set autoscale"
    echo "plot $(gp_quote "$1") using 1:2 with $4 notitle"
  else
    echo "set xrange [0:1]"
    echo "set yrange [0:1]"
    echo "set label 1 $(gp_quote "no value of $5 in the file") at graph 0.5, 0.5 center"
    echo "plot 2 notitle"
    echo "unset label 1"
  fi
}

{
  if [[ $terminal == pngcairo ]]; then
    echo "set terminal pngcairo size 900,760 noenhanced font 'sans,10'"
  else
    echo "set terminal png size 900,760 noenhanced"
  fi
  echo "set output $(gp_quote "$png")"
  echo "set multiplot layout 2,1 title $(gp_quote "$(basename -- "$csv")")"
  echo "set grid"
  echo "set xlabel 'batch'"
  panel "$tmp/loss.dat" "training loss" "$loss_key" "lines lw 1.5 lc rgb '#1f77b4'" "$loss_key"
  panel "$tmp/accuracy.dat" "evaluation accuracy" "$accuracy_key" "linespoints lw 1.5 pt 7 ps 0.7 lc rgb '#d62728'" \
    "$accuracy_key"
  echo "unset multiplot"
  echo "set output"
} >"$tmp/plot.gp"

gnuplot "$tmp/plot.gp" || die "gnuplot failed to draw '$png'"
[[ -s $png ]] || die "gnuplot wrote no image to '$png'"
echo "plot_metrics.sh: wrote $png"
