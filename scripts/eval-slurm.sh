#!/usr/bin/env bash
# Submits an ikl-eval evaluation as a Slurm job array (one shard per task, one GPU each) plus a merge job that
# runs only if every shard succeeded (afterok).
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/eval-slurm.sh [-o OUT_DIR] [-p PARTITION] [-t TIME] [-a "SBATCH_ARGS"] N -- IKL_EVAL_FLAGS...

Submits `sbatch --array=0..N-1`: task i runs `ikl-eval --shard i/N` on one GPU with a resumable state file
(requeued or resubmitted tasks continue where they stopped). A second job, dependent on the array with
afterok, merges the shard reports into OUT_DIR/report.json.

  N             number of shards (array tasks)
  -o OUT_DIR    reports, states and logs, on a filesystem the nodes share (default eval-slurm)
  -p PARTITION  Slurm partition (default: the cluster's default)
  -t TIME       time limit per shard (default 04:00:00)
  -a ARGS       extra sbatch arguments for the shard jobs, e.g. "--account=abc --mem=16G"
  -h            this help

Example:
  scripts/eval-slurm.sh -p gpu 8 -- --checkpoint runs/ikl/best --attack autoattack
USAGE
}

out_dir=eval-slurm
partition=""
time_limit=04:00:00
extra=""
while getopts ":o:p:t:a:h" opt; do
  case "$opt" in
    o) out_dir=$OPTARG ;;
    p) partition=$OPTARG ;;
    t) time_limit=$OPTARG ;;
    a) extra=$OPTARG ;;
    h) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
if [[ $# -lt 1 ]]; then usage >&2; exit 2; fi
n=$1
shift
if ! [[ $n =~ ^[1-9][0-9]*$ ]]; then echo "eval-slurm.sh: N must be a positive integer, got '$n'" >&2; exit 2; fi
if [[ ${1:-} == "--" ]]; then shift; fi
for a in "$@"; do
  case "$a" in --shard|--shard=*|--state|--state=*) echo "eval-slurm.sh: do not pass $a, the script sets it per shard" >&2; exit 2 ;; esac
done
command -v sbatch >/dev/null || { echo "eval-slurm.sh: sbatch not found (run this on a Slurm login node)" >&2; exit 1; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ikl_eval=$(cd "$here/.." && pwd)/bin/ikl-eval.js
mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
flags=$(printf ' %q' "$@")
q_out=$(printf %q "$out_dir")
q_bin=$(printf %q "$ikl_eval")
part_arg=()
if [[ -n $partition ]]; then part_arg=(--partition="$partition"); fi
read -r -a extra_args <<<"$extra"

# Slurm gives each task its GPU through CUDA_VISIBLE_DEVICES; the report goes to a .tmp file until complete.
array_job=$(sbatch --parsable "${part_arg[@]}" "${extra_args[@]}" \
  --job-name=ikl-eval --array="0-$((n - 1))" --gres=gpu:1 --cpus-per-task=4 --time="$time_limit" \
  --output="$out_dir/shard%a.log" \
  --wrap="set -euo pipefail; i=\$SLURM_ARRAY_TASK_ID; node $q_bin$flags --shard \$i/$n --state $q_out/shard\$i.state.json --no-progress --log-format json > $q_out/shard\$i.json.tmp && mv $q_out/shard\$i.json.tmp $q_out/shard\$i.json")
array_job=${array_job%%;*}

reports=""
for ((i = 0; i < n; i++)); do reports+=" $q_out/shard$i.json"; done
merge_job=$(sbatch --parsable "${part_arg[@]}" --job-name=ikl-eval-merge --dependency="afterok:$array_job" \
  --time=00:10:00 --output="$out_dir/merge.log" \
  --wrap="set -euo pipefail; node $q_bin merge$reports > $q_out/report.json.tmp && mv $q_out/report.json.tmp $q_out/report.json")
merge_job=${merge_job%%;*}

echo "eval-slurm.sh: shards: job array $array_job (0-$((n - 1))), merge: job $merge_job -> $out_dir/report.json" >&2
echo "$array_job $merge_job"
