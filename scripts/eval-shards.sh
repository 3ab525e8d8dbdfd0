#!/usr/bin/env bash
# Runs an ikl-eval evaluation as N shards in parallel, one process per GPU, then merges the shard reports.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/eval-shards.sh [-o OUT_DIR] [-g GPU_LIST] N -- IKL_EVAL_FLAGS...

Runs `ikl-eval --shard i/N` for i = 0..N-1 in parallel, shard i on GPU i (CUDA_VISIBLE_DEVICES), each with its
own resumable state file, then prints the merged report (`ikl-eval merge`) on stdout and writes it to
OUT_DIR/report.json. Run it again after a crash: finished shards resume from their state files.

  N             number of shards (one process each)
  -o OUT_DIR    shard reports, states and logs (default eval-shards)
  -g GPU_LIST   comma-separated GPU ids to cycle through (default 0,1,...,N-1; "none" = CPU only)
  -h            this help

Example:
  scripts/eval-shards.sh 4 -- --checkpoint runs/ikl/best --attack autoattack --n-examples 10000
USAGE
}

out_dir=eval-shards
gpus=""
while getopts ":o:g:h" opt; do
  case "$opt" in
    o) out_dir=$OPTARG ;;
    g) gpus=$OPTARG ;;
    h) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
if [[ $# -lt 1 ]]; then usage >&2; exit 2; fi
n=$1
shift
if ! [[ $n =~ ^[1-9][0-9]*$ ]]; then echo "eval-shards.sh: N must be a positive integer, got '$n'" >&2; exit 2; fi
if [[ ${1:-} == "--" ]]; then shift; fi
for a in "$@"; do
  case "$a" in --shard|--shard=*|--state|--state=*) echo "eval-shards.sh: do not pass $a, the script sets it per shard" >&2; exit 2 ;; esac
done

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ikl_eval=${IKL_EVAL:-"$here/../bin/ikl-eval.js"}
if [[ -z $gpus ]]; then gpus=$(seq -s, 0 $((n - 1))); fi
IFS=, read -r -a gpu_ids <<<"$gpus"
mkdir -p "$out_dir"

pids=()
for ((i = 0; i < n; i++)); do
  if [[ $gpus == none ]]; then dev=""; else dev=${gpu_ids[$((i % ${#gpu_ids[@]}))]}; fi
  echo "eval-shards.sh: shard $i/$n on ${dev:-CPU} -> $out_dir/shard$i.json (log $out_dir/shard$i.log)" >&2
  CUDA_VISIBLE_DEVICES=$dev node "$ikl_eval" "$@" --shard "$i/$n" --state "$out_dir/shard$i.state.json" --no-progress \
    >"$out_dir/shard$i.json.tmp" 2>"$out_dir/shard$i.log" &
  pids+=($!)
done

failed=0
for ((i = 0; i < n; i++)); do
  if wait "${pids[$i]}"; then
    mv "$out_dir/shard$i.json.tmp" "$out_dir/shard$i.json"
  else
    rc=$?
    echo "eval-shards.sh: shard $i failed with exit code $rc (see $out_dir/shard$i.log)" >&2
    failed=1
  fi
done
if [[ $failed -ne 0 ]]; then exit 1; fi

reports=()
for ((i = 0; i < n; i++)); do reports+=("$out_dir/shard$i.json"); done
node "$ikl_eval" merge "${reports[@]}" | tee "$out_dir/report.json"
