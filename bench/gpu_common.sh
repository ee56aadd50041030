# Sourced by bench/gpu_run.sh and bench/gpu_dense.sh: what both need on a GPU machine where openbook is
# importable (src/ on PYTHONPATH) but not installed.

# openbook on PYTHONPATH but not installed: an `openbook` command for `timeout` to run
if ! command -v openbook >/dev/null; then
    mkdir -p /tmp/openbook-bin
    printf '#!/bin/sh\nexec python3 -c %s "$@"\n' \
        "'import sys; from openbook.cli.main import app; sys.argv[0] = \"openbook\"; app()'" >/tmp/openbook-bin/openbook
    chmod +x /tmp/openbook-bin/openbook
    export PATH=/tmp/openbook-bin:$PATH
fi

# peak_gpu_memory LABEL COMMAND...: run COMMAND while sampling the GPU's used memory (nvidia-smi: the
# whole device, the allocator's cache and any other library's reserve included); print the peak, and
# append it to $GPU_SUMMARY when that is set
peak_gpu_memory() {
    local label=$1; shift
    command -v nvidia-smi >/dev/null || { "$@"; return; }
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >/tmp/gpu-memory.csv &
    local sampler=$! status=0
    "$@" || status=$?
    kill $sampler 2>/dev/null || true
    wait $sampler 2>/dev/null || true
    local peak; peak=$(sort -n /tmp/gpu-memory.csv | tail -1)
    echo "peak GPU memory used ($label): $peak MiB (exit $status)"
    [ -z "${GPU_SUMMARY:-}" ] || echo "nvidia-smi peak, $label: $peak MiB (exit $status)" >>"$GPU_SUMMARY"
    return $status
}
