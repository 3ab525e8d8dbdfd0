#!/usr/bin/env bash
# Submits ikl-train runs as a Slurm job array: one task per seed, or one task per line of a sweep file.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/train-slurm.sh [-o OUT_DIR] [-s SEEDS | -w SWEEP_FILE] [-p PARTITION] [-t TIME] [-a "SBATCH_ARGS"]
                              [-N NODES] [-G GPUS_PER_NODE] PRESET [-- IKL_TRAIN_FLAGS...]

Submits `sbatch --array`, one GPU per task. Task i trains PRESET (a name from configs/ or a config path) into
OUT_DIR/NAME-<tag>:
  -s SEEDS       seeds as a Slurm range, e.g. 0-4 or 1,3,7: task i runs --set run.seed=$SLURM_ARRAY_TASK_ID
                 (default 0-2)
  -w SWEEP_FILE  one sweep point per line, each a list of --set assignments, e.g.
                     objective.alpha=3 objective.beta=20
                     objective.alpha=4 classWeights.temperature=2
                 task i runs line i+1 (blank lines and # comments are skipped)
  -o OUT_DIR     run directories, on a filesystem the nodes share (default runs-slurm)
  -p PARTITION   Slurm partition (default: the cluster's default)
  -t TIME        time limit per task (default 48:00:00). Before it ends Slurm sends SIGTERM; ikl-train finishes
                 the step, writes last/ and exits 143, and the task requeues itself and resumes from last/.
  -a ARGS        extra sbatch arguments, e.g. "--account=abc --mem=32G"
  -N NODES       data-parallel runs: nodes per run (default 1)
  -G GPUS        data-parallel runs: GPUs (= tasks) per node (default 1). With N*G > 1 every run is one
                 data-parallel ikl-train of N*G tasks (srun; TensorFlow collective ops, gRPC between nodes, NCCL
                 between GPUs); data.batchSize is the global batch and must divide by N*G. Ports: IKL_PORT
                 (default 20000 + job id mod 20000) + the task's index on its node.
  -h             this help
  IKL_TRAIN_FLAGS  passed to every task, e.g. -- --set schedule.epochs=100

Examples:
  scripts/train-slurm.sh -p gpu -s 0-4 cifar10-ikl-at
  scripts/train-slurm.sh -p gpu -w sweeps/alpha-beta.txt cifar100-ikl-at -- --set schedule.epochs=100
  scripts/train-slurm.sh -p gpu -s 0 -N 2 -G 4 cifar10-ikl-at    # one run on 2 nodes x 4 GPUs
Then evaluate each run: scripts/eval-slurm.sh -p gpu 4 -- --checkpoint runs-slurm/cifar10-ikl-at-seed0/wa --attack autoattack
USAGE
}

out_dir=runs-slurm
seeds=""
sweep=""
partition=""
time_limit=48:00:00
extra=""
nodes=1
gpus=1
while getopts ":o:s:w:p:t:a:N:G:h" opt; do
  case "$opt" in
    o) out_dir=$OPTARG ;;
    s) seeds=$OPTARG ;;
    w) sweep=$OPTARG ;;
    p) partition=$OPTARG ;;
    t) time_limit=$OPTARG ;;
    a) extra=$OPTARG ;;
    N) nodes=$OPTARG ;;
    G) gpus=$OPTARG ;;
    h) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
if [[ $# -lt 1 ]]; then usage >&2; exit 2; fi
preset=$1
shift
if [[ ${1:-} == "--" ]]; then shift; fi
for v in "$nodes" "$gpus"; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "train-slurm.sh: -N and -G expect positive integers, got '$v'" >&2; exit 2; }
done
if [[ -n $seeds && -n $sweep ]]; then echo "train-slurm.sh: give -s SEEDS or -w SWEEP_FILE, not both" >&2; exit 2; fi
for a in "$@"; do
  case "$a" in --config|--config=*|--run-dir|--run-dir=*|--resume|--resume=*)
    echo "train-slurm.sh: do not pass $a, the script sets it per task" >&2; exit 2 ;;
  esac
done

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
ikl_train=$root/bin/ikl-train.js
if [[ -f $preset ]]; then config=$(cd "$(dirname "$preset")" && pwd)/$(basename "$preset")
elif [[ -f $root/configs/$preset.yaml ]]; then config=$root/configs/$preset.yaml
else echo "train-slurm.sh: preset '$preset': no such file, nor configs/$preset.yaml" >&2; exit 2
fi
name=$(basename "$config"); name=${name%.*}

# Validate every task's config now, on the login node: a bad sweep line should fail before queueing.
points=()
if [[ -n $sweep ]]; then
  [[ -f $sweep ]] || { echo "train-slurm.sh: -w $sweep: no such file" >&2; exit 2; }
  sweep=$(cd "$(dirname "$sweep")" && pwd)/$(basename "$sweep")
  while IFS= read -r line || [[ -n $line ]]; do
    line=${line%%#*}
    [[ -z ${line//[[:space:]]/} ]] && continue
    points+=("$line")
  done <"$sweep"
  [[ ${#points[@]} -gt 0 ]] || { echo "train-slurm.sh: -w $sweep: no sweep points" >&2; exit 2; }
  for i in "${!points[@]}"; do
    read -r -a assigns <<<"${points[$i]}"
    sets=()
    for s in "${assigns[@]}"; do sets+=(--set "$s"); done
    node "$ikl_train" --config "$config" "$@" "${sets[@]}" --print-config >/dev/null ||
      { echo "train-slurm.sh: -w $sweep: sweep point $((i + 1)) (${points[$i]}) is invalid (above)" >&2; exit 2; }
  done
  array="0-$((${#points[@]} - 1))"
else
  array=${seeds:-0-2}
  if ! [[ $array =~ ^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$ ]]; then
    echo "train-slurm.sh: -s expected a Slurm range like 0-4 or 1,3,7, got '$array'" >&2; exit 2
  fi
  node "$ikl_train" --config "$config" "$@" --print-config >/dev/null
fi

command -v sbatch >/dev/null || { echo "train-slurm.sh: sbatch not found (run this on a Slurm login node)" >&2; exit 1; }
mkdir -p "$out_dir/logs"
out_dir=$(cd "$out_dir" && pwd)
flags=$(printf ' %q' "$@")
part_arg=()
if [[ -n $partition ]]; then part_arg=(--partition="$partition"); fi
read -r -a extra_args <<<"$extra"

# The task body. SIGTERM 5 minutes before the time limit (--signal) goes to the srun step: ikl-train writes
# last/ and exits 143; the task then requeues itself and the next start resumes from last/.
# Data parallelism: one task per GPU; ikl-train finds its place from Slurm's variables (src/collective/cluster.ts).
sbatch --job-name="ikl-$name" --array="$array" --nodes="$nodes" --ntasks-per-node="$gpus" --gres=gpu:"$gpus" \
  --cpus-per-task=4 --time="$time_limit" \
  --signal=TERM@300 --requeue --open-mode=append --output="$out_dir/logs/$name-%A_%a.log" \
  "${part_arg[@]+"${part_arg[@]}"}" "${extra_args[@]+"${extra_args[@]}"}" <<EOF
#!/usr/bin/env bash
set -euo pipefail
task=\$SLURM_ARRAY_TASK_ID
sets=()
if [[ -n "$sweep" ]]; then
  line=\$(grep -v '^[[:space:]]*\(#\|\$\)' "$sweep" | sed 's/#.*//' | sed -n "\$((task + 1))p")
  read -r -a assigns <<<"\$line"
  for s in "\${assigns[@]}"; do sets+=(--set "\$s"); done
  tag=sweep\$task
else
  sets=(--set "run.seed=\$task")
  tag=seed\$task
fi
dir="$out_dir/$name-\$tag"
resume=()
if [[ -e "\$dir/last" ]]; then resume=(--resume); fi
export IKL_PORT=\${IKL_PORT:-\$((20000 + SLURM_JOB_ID % 20000))}
set +e
srun node "$ikl_train" --config "$config" --run-dir "\$dir" --log-format json --no-progress \
  "\${resume[@]+"\${resume[@]}"}" $flags "\${sets[@]}"
code=\$?
set -e
if [[ \$code == 143 || \$code == 130 ]]; then
  echo "ikl-train stopped (exit \$code) with last/ written; requeueing \$SLURM_JOB_ID" >&2
  scontrol requeue "\${SLURM_ARRAY_JOB_ID}_\${SLURM_ARRAY_TASK_ID}"
fi
exit \$code
EOF
