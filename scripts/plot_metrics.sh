#!/usr/bin/env bash
# Plots a metrics CSV written by composer::loggers::MetricsFile (header run,epoch,batch,sample,key,value, or the
# older epoch,batch,sample,key,value without runs) into a PNG with a panel per metric against the batch: the
# training loss ("loss/train/total"), the evaluation accuracy ("metrics/eval/accuracy") and, when the file has it,
# the learning rate ("lr/group0", which the Trainer logs with the loss). A loss or accuracy panel whose key has
# no value says so; a file holding neither key is an error.
#
# Usage: scripts/plot_metrics.sh [--run NAME | --all-runs] METRICS.csv OUT.png
#
# MetricsFile appends, so one file may hold several runs, each named in the run column. By default the last run
# (the one that wrote the file's last row) is plotted; --run NAME plots that run, --all-runs plots one line per
# run (in the order they first appear). The script says which run it plotted. A file with the older header has
# no run column: all of it is plotted as one run.
#
# Needs gnuplot (Debian: gnuplot-nox; the pngcairo terminal when it has one, png otherwise) and awk.
# When one batch of a run was logged more than once (a run resumed, under the same run name, from a checkpoint
# older than its last logged batch appends the replayed batches again), the value logged last is plotted.
# Non-finite values (nan, inf) are left out. A series of one point is drawn as a point, and an axis over a
# single value gets a range around it; the panels share the batch axis. It can run while training writes the file.
set -euo pipefail

readonly header='run,epoch,batch,sample,key,value'
readonly header_without_run='epoch,batch,sample,key,value'
readonly loss_key='loss/train/total'
readonly accuracy_key='metrics/eval/accuracy'
readonly lr_key='lr/group0'

die() {
  echo "plot_metrics.sh: $*" >&2
  exit 1
}

usage() {
  echo "usage: $0 [--run NAME | --all-runs] METRICS.csv OUT.png" >&2
  exit 2
}

run_wanted=''
all_runs=0
positional=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --run)
      [[ $# -ge 2 ]] || usage
      run_wanted=$2
      [[ -n $run_wanted ]] || die "--run needs a run name"
      shift 2
      ;;
    --run=*)
      run_wanted=${1#--run=}
      [[ -n $run_wanted ]] || die "--run needs a run name"
      shift
      ;;
    --all-runs)
      all_runs=1
      shift
      ;;
    -h | --help) usage ;;
    --)
      shift
      positional+=("$@")
      break
      ;;
    -?*) die "unknown option '$1'" ;;
    *)
      positional+=("$1")
      shift
      ;;
  esac
done
[[ ${#positional[@]} -eq 2 ]] || usage
[[ -z $run_wanted || $all_runs -eq 0 ]] || die "--run and --all-runs cannot be used together"
csv=${positional[0]}
png=${positional[1]}

[[ -e $csv ]] || die "metrics file '$csv' not found"
[[ -f $csv && -r $csv ]] || die "metrics file '$csv' is not a readable file"
command -v gnuplot >/dev/null 2>&1 || die "gnuplot is not installed (Debian: apt-get install gnuplot-nox)"
command -v awk >/dev/null 2>&1 || die "awk is not installed"

first_line=''
IFS= read -r first_line <"$csv" || true
first_line=${first_line%$'\r'}
if [[ $first_line == "$header" ]]; then
  has_run=1
elif [[ $first_line == "$header_without_run" ]]; then
  has_run=0
  [[ -z $run_wanted ]] || die "'$csv' has no run column (it was written before rows named their run): drop --run"
else
  die "'$csv' does not start with the header '$header' (is it a MetricsFile CSV?)"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One pass over the file: $tmp/runs lists the runs (index, tab, name) in the order they first appear, $tmp/last
# holds the index of the run of the last row, and $tmp/<series>.<index> holds "batch value" for each key of each
# run, the value logged last for a batch, in the order the batches first appear.
awk -F, -v has_run="$has_run" -v loss_key="$loss_key" -v accuracy_key="$accuracy_key" -v lr_key="$lr_key" \
  -v dir="$tmp" '
  BEGIN { series[loss_key] = "loss"; series[accuracy_key] = "accuracy"; series[lr_key] = "lr" }
  NR == 1 { next }
  {
    sub(/\r$/, "")
    if ($0 == "") next
    off = has_run ? 1 : 0
    run = has_run ? $1 : ""
    batch = $(2 + off)
    key = $(4 + off)
    if (batch !~ /^[0-9]+$/ || NF < 5 + off) next
    if (!(run in run_index)) { run_index[run] = ++runs; run_name[runs] = run }
    r = run_index[run]
    last_run = r
    if (!(key in series)) next
    value = $NF
    if (value !~ /^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$/) next   # nan, inf, junk
    s = series[key] "." r
    if (!((s, batch) in last)) order[s, ++count[s]] = batch
    last[s, batch] = value
  }
  END {
    for (i = 1; i <= runs; ++i) print i "\t" run_name[i] > (dir "/runs")
    close(dir "/runs")
    print last_run + 0 > (dir "/last")
    close(dir "/last")
    for (s in count) {
      file = dir "/" s
      for (i = 1; i <= count[s]; ++i) print order[s, i], last[s, order[s, i]] > file
      close(file)
    }
  }
' "$csv" || die "cannot read '$csv'"

run_names=()
if [[ -s $tmp/runs ]]; then
  while IFS=$'\t' read -r index name; do run_names[index]=$name; done <"$tmp/runs"
fi
run_count=${#run_names[@]}
[[ $run_count -gt 0 ]] || die "'$csv' holds no metric row"

# The runs to plot, by index.
selected=()
if [[ $all_runs -eq 1 ]]; then
  for ((i = 1; i <= run_count; ++i)); do selected+=("$i"); done
elif [[ -n $run_wanted ]]; then
  for ((i = 1; i <= run_count; ++i)); do [[ ${run_names[i]} == "$run_wanted" ]] && selected+=("$i"); done
  if [[ ${#selected[@]} -eq 0 ]]; then
    die "'$csv' has no run '$run_wanted'; its runs: $(IFS=' '; echo "${run_names[*]}")"
  fi
else
  selected=("$(cat "$tmp/last")")
fi

for s in loss accuracy lr; do
  for i in "${selected[@]}"; do
    if [[ -s $tmp/$s.$i ]]; then sort -n -k1,1 -o "$tmp/$s.$i" "$tmp/$s.$i"; fi
  done
done

# has_series NAME: whether a selected run has a value of NAME.
has_series() {
  local i
  for i in "${selected[@]}"; do [[ -s $tmp/$1.$i ]] && return 0; done
  return 1
}

# What is plotted, in words.
if [[ $has_run -eq 0 ]]; then
  what='the whole file (it has no run column)'
  title=$(basename -- "$csv")
elif [[ ${#selected[@]} -gt 1 ]]; then
  what="all ${#selected[@]} runs"
  title="$(basename -- "$csv"), ${#selected[@]} runs"
else
  name=${run_names[${selected[0]}]}
  what="run '$name'"
  [[ $run_count -gt 1 ]] && what+=" ($run_count runs in the file; --run NAME or --all-runs for the others)"
  title="$(basename -- "$csv"), run $name"
fi

if ! has_series loss && ! has_series accuracy; then
  die "'$csv' holds no finite value of '$loss_key' nor of '$accuracy_key' for $what"
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

# Colours of the runs when several are plotted.
readonly palette=('#1f77b4' '#d62728' '#2ca02c' '#ff7f0e' '#9467bd' '#8c564b' '#e377c2' '#7f7f7f' '#bcbd22' '#17becf')

# The batches every panel shows, the same for all: from the first to the last batch plotted in any panel (one
# batch either side of a single batch, which gnuplot would otherwise warn about).
x_range=$(for s in loss accuracy lr; do for i in "${selected[@]}"; do
  if [[ -s $tmp/$s.$i ]]; then cat -- "$tmp/$s.$i"; fi
done; done | awk '
  NF >= 2 {
    if (n++ == 0) xmin = xmax = $1
    if ($1 < xmin) xmin = $1
    if ($1 > xmax) xmax = $1
  }
  END { if (xmin == xmax) { xmin -= 1; xmax += 1 } printf "[%.17g:%.17g]", xmin, xmax }
')

# y_range FILES...: the range of a panel's values over a single value (which gnuplot would otherwise warn about
# and widen by itself): 10% of the value either side (1 for 0); nothing otherwise (autoscaled).
y_range() {
  awk '
    NF >= 2 {
      if (n++ == 0) ymin = ymax = $2
      if ($2 < ymin) ymin = $2
      if ($2 > ymax) ymax = $2
    }
    END {
      if (n == 0) exit
      big = ymax < 0 ? -ymax : ymax
      if ((ymin < 0 ? -ymin : ymin) > big) big = ymin < 0 ? -ymin : ymin
      if (ymax - ymin <= 1e-12 * big) {
        d = big * 0.1
        if (d == 0) d = 1
        printf "set yrange [%.17g:%.17g]\n", ymin - d, ymax + d
      }
    }
  ' "$@"
}

# panel SERIES TITLE KEY STYLE COLOUR: one panel with a line per selected run, or a note when none has a value.
panel() {
  local series=$1 panel_title=$2 key=$3 style=$4 colour=$5
  echo "set title $(gp_quote "$panel_title")"
  echo "set ylabel $(gp_quote "$key")"
  echo "set autoscale"
  echo "set xrange $x_range"
  local files=() plots=() i file points line_style
  for i in "${selected[@]}"; do
    file=$tmp/$series.$i
    [[ -s $file ]] || continue
    files+=("$file")
    points=$(wc -l <"$file")
    if [[ $points -eq 1 ]]; then line_style='points pt 7 ps 1'; else line_style=$style; fi
    if [[ ${#selected[@]} -gt 1 ]]; then
      local run_colour=${palette[(i - 1) % ${#palette[@]}]}
      plots+=("$(gp_quote "$file") using 1:2 with $line_style lc rgb '$run_colour' title $(gp_quote "${run_names[i]}")")
    else
      plots+=("$(gp_quote "$file") using 1:2 with $line_style lc rgb '$colour' notitle")
    fi
  done
  if [[ ${#files[@]} -gt 0 ]]; then
    y_range "${files[@]}"
    local joined
    joined=$(printf '%s, ' "${plots[@]}")
    echo "plot ${joined%, }"
  else
    echo "set yrange [0:1]"
    echo "set label 1 $(gp_quote "no value of $key in the file") at graph 0.5, 0.5 center"
    echo "plot 2 notitle"
    echo "unset label 1"
  fi
}

panels=2
has_series lr && panels=3
height=$((panels == 3 ? 1100 : 760))

{
  if [[ $terminal == pngcairo ]]; then
    echo "set terminal pngcairo size 900,$height noenhanced font 'sans,10'"
  else
    echo "set terminal png size 900,$height noenhanced"
  fi
  echo "set output $(gp_quote "$png")"
  echo "set multiplot layout $panels,1 title $(gp_quote "$title")"
  echo "set grid"
  echo "set key top right"
  echo "set xlabel 'batch'"
  panel loss "training loss" "$loss_key" "lines lw 1.5" '#1f77b4'
  panel accuracy "evaluation accuracy" "$accuracy_key" "linespoints lw 1.5 pt 7 ps 0.7" '#d62728'
  if [[ $panels -eq 3 ]]; then panel lr "learning rate" "$lr_key" "lines lw 1.5" '#2ca02c'; fi
  echo "unset multiplot"
  echo "set output"
} >"$tmp/plot.gp"

gnuplot "$tmp/plot.gp" || die "gnuplot failed to draw '$png'"
[[ -s $png ]] || die "gnuplot wrote no image to '$png'"
echo "plot_metrics.sh: plotted $what"
echo "plot_metrics.sh: wrote $png"
