#!/usr/bin/env bash
# Trains presets in parallel (one per GPU), then evaluates each run's weight average (wa/) with AutoAttack.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/train-presets.sh [-o OUT_DIR] [-g GPU_LIST] [-n N_EXAMPLES] [-E] PRESET... [-- IKL_TRAIN_FLAGS...]

For every PRESET (a name from configs/, e.g. cifar10-ikl-at, or a path to a .yaml/.json config), in parallel,
preset i on GPU i (CUDA_VISIBLE_DEVICES):
  1. ikl-train --config PRESET --run-dir OUT_DIR/NAME   (resumes with --resume when OUT_DIR/NAME/last exists)
  2. ikl-eval --checkpoint OUT_DIR/NAME/wa --attack autoattack  (last/ when the preset keeps no weight average)
     with a resumable state file; the report goes to OUT_DIR/NAME/autoattack.json
Logs go to OUT_DIR/NAME/train.log and eval.log. Run the script again after a crash: training resumes from
last/, the evaluation from its state file, and finished steps are skipped. A summary table is printed at the end.

  -o OUT_DIR     run directories (default runs)
  -g GPU_LIST    comma-separated GPU ids to cycle through (default 0,1,...; "none" = CPU only, one run at a time
                 is then advisable: TensorFlow already uses every core)
  -n N_EXAMPLES  AutoAttack test examples (default 10000, the published protocol)
  -E             train only, no AutoAttack
  -h             this help
  IKL_TRAIN_FLAGS  passed to every ikl-train, e.g. -- --set run.seed=1

Examples:
  scripts/train-presets.sh cifar10-ikl-at cifar100-ikl-at cifar10-trades        # 3 GPUs
  scripts/train-presets.sh -g none -n 500 quickstart                             # CPU smoke test
  scripts/train-presets.sh -o runs/seed1 cifar10-ikl-at -- --set run.seed=1
USAGE
}

out_dir=runs
gpus=""
n_examples=10000
do_eval=1
while getopts ":o:g:n:Eh" opt; do
  case "$opt" in
    o) out_dir=$OPTARG ;;
    g) gpus=$OPTARG ;;
    n) n_examples=$OPTARG ;;
    E) do_eval=0 ;;
    h) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
presets=()
while [[ $# -gt 0 && $1 != "--" ]]; do presets+=("$1"); shift; done
if [[ ${1:-} == "--" ]]; then shift; fi
train_flags=("$@")
if [[ ${#presets[@]} -eq 0 ]]; then usage >&2; exit 2; fi
if ! [[ $n_examples =~ ^[1-9][0-9]*$ ]]; then echo "train-presets.sh: -n must be a positive integer, got '$n_examples'" >&2; exit 2; fi
for a in "${train_flags[@]}"; do
  case "$a" in --config|--config=*|--run-dir|--run-dir=*|--resume|--resume=*)
    echo "train-presets.sh: do not pass $a, the script sets it per preset" >&2; exit 2 ;;
  esac
done

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# The package's own entry points (what `npx ikl-train` / `npx ikl-eval` run), so this works from a checkout too.
ikl_train=("${IKL_TRAIN:-node}" "$root/bin/ikl-train.js")
ikl_eval=("${IKL_EVAL:-node}" "$root/bin/ikl-eval.js")

# Resolve every preset before starting anything: a typo should fail now, not after hours of training.
configs=()
names=()
for p in "${presets[@]}"; do
  if [[ -f $p ]]; then cfg=$p
  elif [[ -f $root/configs/$p.yaml ]]; then cfg=$root/configs/$p.yaml
  else echo "train-presets.sh: preset '$p': no such file, nor configs/$p.yaml" >&2; exit 2
  fi
  name=$(basename "$cfg"); name=${name%.*}
  for n in "${names[@]+"${names[@]}"}"; do
    if [[ $n == "$name" ]]; then echo "train-presets.sh: preset '$name' given twice" >&2; exit 2; fi
  done
  "${ikl_train[@]}" --config "$cfg" "${train_flags[@]+"${train_flags[@]}"}" --print-config >/dev/null
  configs+=("$cfg")
  names+=("$name")
done

if [[ -z $gpus ]]; then
  gpus=$(seq -s, 0 $((${#presets[@]} - 1)))
fi
IFS=, read -r -a gpu_list <<<"$gpus"
mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)

run_one() {
  local cfg=$1 name=$2 gpu=$3
  local dir=$out_dir/$name
  mkdir -p "$dir"
  if [[ $gpu == none ]]; then export CUDA_VISIBLE_DEVICES=""; else export CUDA_VISIBLE_DEVICES=$gpu; fi
  local resume=()
  if [[ -e $dir/last ]]; then resume=(--resume); fi
  echo "[$name] training on GPU ${gpu} -> $dir (log: $dir/train.log)" >&2
  "${ikl_train[@]}" --config "$cfg" --run-dir "$dir" --log-format json --no-progress \
    "${resume[@]+"${resume[@]}"}" "${train_flags[@]+"${train_flags[@]}"}" >>"$dir/train.log" 2>&1 || {
    local code=$?
    echo "[$name] ikl-train failed (exit $code), see $dir/train.log" >&2
    return "$code"
  }
  [[ $do_eval == 1 ]] || return 0
  local ckpt=$dir/wa
  [[ -e $ckpt ]] || ckpt=$dir/last
  echo "[$name] AutoAttack on $ckpt, $n_examples examples (log: $dir/eval.log)" >&2
  "${ikl_eval[@]}" --checkpoint "$ckpt" --attack autoattack --n-examples "$n_examples" \
    --state "$dir/autoattack.state.json" --log-format json --no-progress >"$dir/autoattack.json.tmp" 2>>"$dir/eval.log" || {
    local code=$?
    echo "[$name] ikl-eval failed (exit $code), see $dir/eval.log" >&2
    return "$code"
  }
  mv "$dir/autoattack.json.tmp" "$dir/autoattack.json"
}

pids=()
for i in "${!configs[@]}"; do
  gpu=${gpu_list[$((i % ${#gpu_list[@]}))]}
  run_one "${configs[$i]}" "${names[$i]}" "$gpu" &
  pids+=($!)
done
# Ctrl-C reaches every child (same process group); ikl-train checkpoints and exits 130, rerun to resume.
failed=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then failed=$((failed + 1)); fi
done

printf '\n%-24s %8s %12s  %s\n' preset clean autoattack report >&2
for name in "${names[@]}"; do
  report=$out_dir/$name/autoattack.json
  if [[ -f $report ]]; then
    node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      const pct = (v) => (typeof v === "number" ? (100 * v).toFixed(2) : "?");
      console.log(`${process.argv[2].padEnd(24)} ${pct(r.clean_acc).padStart(8)} ${pct(r.robust_acc).padStart(12)}  ${process.argv[1]}`);' \
      "$report" "$name" >&2
  else
    printf '%-24s %8s %12s  %s\n' "$name" - - "(no report)" >&2
  fi
done
if [[ $failed -gt 0 ]]; then echo "train-presets.sh: $failed run(s) failed" >&2; exit 1; fi
