#!/usr/bin/env bash
# The GPU variants of the benchmark suite in one go, on the first visible CUDA device:
#   1. sampling (sampling.py --device cuda --no-compile): the loop's overhead over bare model
#      calls (also with CUDA graphs); the CIFAR-10 RefineNet (3x32x32, ngf 128, batch 128):
#      ms/step, samples/s, peak memory and agreement with the plain sampler for eager float32,
#      channels_last, bf16 autocast, CUDA graphs, TF32 and their combinations; samples/s for
#      128 to 1,024 chains;
#   2. training losses (training.py --device cuda --configs cifar10 --sections losses): batch-128
#      steps, examples/s and peak memory for DSM, sliced SM (both Jacobian modes), channels_last,
#      bf16, TF32 and gradient checkpointing;
#   3. training speed (training.py --device cuda --sections speed): train_step at batch 128 on
#      the MNIST and CIFAR-10 RefineNets, fp32 eager / fp32 compiled / bf16 eager / bf16
#      compiled, with their ratios to fp32 eager and peak memory;
#   4. compile (sampling.py --device cuda --only-compile), last, in the time that is left.
# Each part has a time limit, so that the whole run stays under 8 minutes on a recent GPU.
# Results: benchmarks/results/{sampling,training}_cuda[_quick].json, training_cuda_speed[_quick].json,
# sampling_cuda[_quick]_compile.json.
#
# Usage: benchmarks/gpu.sh [--quick] [--no-compile]
#   --quick       fewer steps and repeats (a smoke run)
#   --no-compile  skip part 4
# Without a CUDA device it says so, skips everything and exits 0 (so CI can smoke-test it).
# The Python interpreter is $PYTHON (default: python).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="${PYTHON:-python}"
quick=()
compile=1
for arg in "$@"; do
    case "$arg" in
        --quick) quick=(--quick) ;;
        --no-compile) compile=0 ;;
        -h | --help)
            sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "gpu.sh: unknown argument '$arg' (expected --quick, --no-compile or --help)" >&2
            exit 2
            ;;
    esac
done

if ! "$py" -c 'import torch'; then
    echo "gpu.sh: cannot import torch with '$py' (set PYTHON to the project's interpreter)" >&2
    exit 1
fi
if ! "$py" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu.sh: no CUDA device is visible to torch on this machine; skipping all GPU benchmarks."
    echo "gpu.sh: (the CPU suite runs with: nox -s benchmarks)"
    exit 0
fi

"$py" -c 'import torch; print(f"gpu.sh: torch {torch.__version__} on {torch.cuda.get_device_name()}")'
budget=470 # seconds, for everything from the start of this script (imports included)
start=0    # $SECONDS counts from the start of the script
status=0
part() { # part NAME LIMIT_SECONDS COMMAND...
    local name=$1 limit=$2 rc=0
    shift 2
    echo "gpu.sh: --- $name (at most $limit s) ---"
    timeout "$limit" "$@" || rc=$?
    if ((rc == 124)); then
        echo "gpu.sh: $name stopped at its time limit ($limit s); its JSON holds the parts it finished"
    elif ((rc != 0)); then
        echo "gpu.sh: $name failed with status $rc"
    fi
    ((rc == 0)) || status=1
}
part sampling 200 "$py" "$here/sampling.py" --device cuda --no-compile ${quick[@]+"${quick[@]}"}
part training 90 "$py" "$here/training.py" --device cuda --configs cifar10 --sections losses ${quick[@]+"${quick[@]}"}
part training-speed 120 "$py" "$here/training.py" --device cuda --sections speed ${quick[@]+"${quick[@]}"}
left=$((budget - (SECONDS - start)))
if ((compile == 0)); then
    echo "gpu.sh: compile variants skipped (--no-compile)"
elif ((left < 60)); then
    echo "gpu.sh: compile variants skipped: only $left s of the 8-minute budget left"
else
    part compile "$left" "$py" "$here/sampling.py" --device cuda --only-compile ${quick[@]+"${quick[@]}"}
fi
echo "gpu.sh: finished in $((SECONDS - start)) s with status $status"
exit "$status"
