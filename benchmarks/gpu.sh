#!/usr/bin/env bash
# The GPU variants of the benchmark suite in one go, on the first visible CUDA device:
#   1. sampling (benchmarks/sampling.py --device cuda): the loop's overhead over bare model calls,
#      then the CIFAR-10 RefineNet (3x32x32, ngf 128, batch 128): ms/step, samples/s, peak memory
#      and agreement with the plain sampler for eager float32, compile, channels_last, bf16
#      autocast, CUDA graphs, TF32 and their combinations, and samples/s for larger batches;
#   2. training (benchmarks/training.py --device cuda --configs cifar10): batch 128 steps,
#      examples/s, peak memory, DSM vs sliced SM (both Jacobian modes), channels_last, bf16, TF32.
# Each part has its own time limit so that the whole run stays under 8 minutes on a recent GPU.
# Results: benchmarks/results/{sampling,training}_cuda[_quick].json.
#
# Usage: benchmarks/gpu.sh [--quick] [--no-compile]
#   --quick       fewer steps and repeats (a smoke run)
#   --no-compile  skip the torch.compile variant (the slowest to set up)
# Without a CUDA device it says so, skips everything and exits 0 (so CI can smoke-test it).
# The Python interpreter is $PYTHON (default: python).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="${PYTHON:-python}"
flags=()
for arg in "$@"; do
    case "$arg" in
        --quick | --no-compile) flags+=("$arg") ;;
        -h | --help)
            sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
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
start=$SECONDS
status=0
timeout 300 "$py" "$here/sampling.py" --device cuda ${flags[@]+"${flags[@]}"} || status=$?
training_flags=()
for flag in ${flags[@]+"${flags[@]}"}; do
    [[ "$flag" == "--quick" ]] && training_flags+=("--quick")
done
timeout 150 "$py" "$here/training.py" --device cuda --configs cifar10 \
    ${training_flags[@]+"${training_flags[@]}"} || status=$?
echo "gpu.sh: finished in $((SECONDS - start)) s with status $status"
exit "$status"
