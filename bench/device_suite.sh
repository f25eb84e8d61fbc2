#!/usr/bin/env bash
# The big-machine figures (issue 22), in one run of under 8 minutes on a lent machine with an NVIDIA
# GPU and 16 cores; each step prints its own `bench:` line, collected at the end into
# $OUT/device_suite.txt (or ./device_suite.txt).
#
#   bash bench/device_suite.sh            # on the device machine, from the repository root
#   QUICK=1 bash bench/device_suite.sh    # a CPU smoke run of the same steps (small sizes)
#
# 1. CLIP ViT-B/32 images/s end to end from WebDataset tars (bench/clip_gpu.py: fp16, packed
#    batches, nvJPEG decode on CUDA), beside the model's forward alone. Random weights: the machine
#    has no network and the cost is the architecture's. Goal >= 10,000/s on one H100/H200.
# 2. Download images/s with a 1-core budget vs all cores, on one host, a skewed mix and many hosts
#    (bench/device_download.sh -> bench/download.py --mix; goal >= 12x on 16 cores).
# 3. Extraction pages/s on 1 core vs all cores (bench/extract_cores.py).
# The project is installed first when the machine is bare (scripts/install.sh, the pinned set: the
# PyPI torch wheel carries its CUDA runtime, so the same pin runs on the GPU when one is present).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-.}"
log="$out/device_suite.txt"
: > "$log"
py=.venv/bin/python
if [ ! -x "$py" ]; then
  bash scripts/install.sh >"$out/install.log" 2>&1 || { echo "install failed: see $out/install.log"; exit 1; }
fi
quick="${QUICK:-}"
step() {  # name, timeout_s, command...
  local name="$1" limit="$2"; shift 2
  echo "== $name (limit ${limit}s) $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$log"
  local t0=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee "$out/$name.log" | tail -n 25
  echo "   rc=${PIPESTATUS[0]} wall_s=$((SECONDS - t0))" | tee -a "$log"
  grep '^bench: ' "$out/$name.log" >> "$log" || echo "   (no bench line)" | tee -a "$log"
}
{
  echo "host: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  $py -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
} | tee -a "$log"
if [ -n "$quick" ]; then
  step clip_gpu 300 $py bench/clip_gpu.py --n 64 --batch-size 16 --workers 1
  step download 300 bash bench/device_download.sh 200
  step extract_cores 300 $py bench/extract_cores.py --files 2 --pages 100
else
  step clip_gpu 240 $py bench/clip_gpu.py --n 65536 --batch-size 1024
  step download 200 bash bench/device_download.sh 6000
  step extract_cores 90 $py bench/extract_cores.py --pages 400
fi
echo "== summary" && grep '^bench: \|rc=' "$log"
