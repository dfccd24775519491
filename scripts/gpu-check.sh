#!/usr/bin/env bash
# gpu-check.sh — check greenq's GPU energy receipt against nvidia-smi on a real GPU.
#
# What it does, on a machine with an NVIDIA GPU, its driver, and python3 with PyTorch:
#   1. builds bin/greenq with cgo (so the worker has NVML), unless GREENQ_BIN names one;
#   2. starts `greenq dev` (embedded Redis, API, planner, one worker per demo region);
#   3. samples `nvidia-smi --query-gpu=power.draw` every 500 ms in the background;
#   4. submits a PyTorch matrix-multiply loop (~60 s on GPU 0) with a tight deadline,
#      so the planner releases it at once, and waits for it (`greenq status ID --wait -o json`);
#   5. prints the job's receipt (energy, source, model, utilisation) next to the energy
#      obtained by integrating nvidia-smi's power readings over the job's own run interval;
#   6. runs the same load under `greenq meter --gpus 0` (the wrapper a Slurm node or a pod
#      runs) next to `nvidia-smi --query-gpu=power.draw -lms 1000` over the same minute,
#      and prints both energies and their ratio as the "## GPU energy check" table of
#      BENCHMARKS.md.
#
# Usage:   scripts/gpu-check.sh            (from anywhere inside the repository)
# Env:     GREENQ_BIN=path        use this binary instead of building one
#          GPU_CHECK_SECONDS=60   how long the matmul loop runs
#          GPU_CHECK_MATRIX=8192  matrix size (fp16); lower it on small GPUs
#          GREENQ_API_URL=...     where `greenq dev` serves (default http://127.0.0.1:8080)
#          GREENQ_DEV_ARGS="..."  extra arguments for `greenq dev`
#          KEEP=1                 keep the work directory (logs, samples, job JSON)
#          GPU_CHECK_ONLY=meter   run the greenq meter check (step 6) only, without greenq dev
# Exit:    0 when the check ran (the figures are printed, not judged), 1 on any failure.
# Output:  the last block is a Markdown table row ready for BENCHMARKS.md.

set -euo pipefail

say() { printf '\n== %s\n' "$*"; }
die() { printf '\ngpu-check: FAILED: %s\n' "$*" >&2; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SECONDS_RUN=${GPU_CHECK_SECONDS:-60}
MATRIX=${GPU_CHECK_MATRIX:-8192}
API=${GREENQ_API_URL:-http://127.0.0.1:8080}
export GREENQ_API_URL=$API
WORK=$(mktemp -d "${TMPDIR:-/tmp}/greenq-gpu-check.XXXXXX")
DEV_PID="" SMI_PID=""

cleanup() {
	local rc=$?
	if [[ -n $SMI_PID ]]; then kill "$SMI_PID" 2>/dev/null || true; fi
	if [[ -n $DEV_PID ]]; then
		kill -TERM "$DEV_PID" 2>/dev/null || true
		for _ in $(seq 1 100); do kill -0 "$DEV_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$DEV_PID" 2>/dev/null || true
	fi
	if [[ $rc -ne 0 && -f $WORK/dev.log ]]; then
		echo "--- last 40 lines of greenq dev's log ($WORK/dev.log):" >&2
		tail -n 40 "$WORK/dev.log" >&2 || true
	fi
	if [[ ${KEEP:-0} == 1 || $rc -ne 0 ]]; then
		echo "work directory kept: $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "1/6 checking the machine"
command -v nvidia-smi >/dev/null || die "nvidia-smi not found: this check needs an NVIDIA GPU and its driver"
nvidia-smi -i 0 --query-gpu=name,driver_version,power.limit,power.draw --format=csv \
	|| die "nvidia-smi cannot read GPU 0"
command -v python3 >/dev/null || die "python3 not found"
python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' \
	|| die "python3 cannot use the GPU through PyTorch (pip install torch, with CUDA)"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "device", torch.cuda.get_device_name(0))'
command -v curl >/dev/null || die "curl not found"

say "2/6 the greenq binary"
BIN=${GREENQ_BIN:-}
if [[ -z $BIN ]]; then
	BIN=$ROOT/bin/greenq
	command -v go >/dev/null || die "go not found: install Go or set GREENQ_BIN to a prebuilt binary"
	command -v gcc >/dev/null || command -v cc >/dev/null \
		|| die "no C compiler: NVML needs cgo (install gcc) or set GREENQ_BIN to a cgo build"
	echo "building $BIN with CGO_ENABLED=1 (NVML)"
	CGO_ENABLED=1 go build -o "$BIN" ./cmd/greenq || die "go build failed"
fi
[[ -x $BIN ]] || die "$BIN is not an executable"
if command -v go >/dev/null && go version -m "$BIN" 2>/dev/null | grep -q 'CGO_ENABLED=0'; then
	echo "WARNING: $BIN was built without cgo: the worker cannot use NVML and will only estimate"
fi

# The load both checks run: fp16 matmuls on GPU 0 for SECONDS_RUN seconds.
PY="import time, torch
n = $MATRIX
a = torch.randn(n, n, device='cuda', dtype=torch.float16)
b = torch.randn_like(a)
torch.cuda.synchronize()
t0 = time.time(); k = 0
while time.time() - t0 < $SECONDS_RUN:
    for _ in range(10):
        c = a @ b
    torch.cuda.synchronize(); k += 10
el = time.time() - t0
print(f'matmuls={k} seconds={el:.1f} tflops={2 * n**3 * k / el / 1e12:.1f}', flush=True)"

# meter_check runs the load under `greenq meter` while nvidia-smi samples
# GPU 0's power.draw every second, and prints both energies over the
# meter's own interval, and their ratio, as a Markdown table.
meter_check() {
	say "greenq meter against nvidia-smi power.draw (1 s samples, GPU 0)"
	# shellcheck disable=SC2054 # the commas belong to nvidia-smi's arguments
	local smi=(nvidia-smi -i 0 --query-gpu=timestamp,power.draw --format=csv,noheader,nounits -lms 1000)
	if command -v stdbuf >/dev/null; then smi=(stdbuf -oL "${smi[@]}"); fi
	"${smi[@]}" >"$WORK/meter-power.csv" 2>"$WORK/meter-power.err" &
	SMI_PID=$!
	sleep 2
	kill -0 "$SMI_PID" 2>/dev/null || die "nvidia-smi sampling stopped: $(cat "$WORK/meter-power.err")"
	"$BIN" meter --gpus 0 --interval 1s --out "$WORK/meter.json" -- python3 -c "$PY" \
		|| die "greenq meter -- python3 (the load) failed"
	sleep 2 # a sample after the end
	kill "$SMI_PID" 2>/dev/null || true
	wait "$SMI_PID" 2>/dev/null || true
	SMI_PID=""
	[[ -s $WORK/meter.json ]] || die "greenq meter wrote no reading"
	python3 - "$WORK/meter.json" "$WORK/meter-power.csv" <<'PY'
import json, re, sys, time
from datetime import datetime, timezone

reading = json.load(open(sys.argv[1]))
def rfc3339(s):
    s = re.sub(r"(\.\d{6})\d+", r"\1", s).replace("Z", "+00:00")
    return datetime.fromisoformat(s).timestamp()
start, end = rfc3339(reading["start"]), rfc3339(reading["end"])
samples = []
for line in open(sys.argv[2]):
    parts = [p.strip() for p in line.split(",")]
    try:
        t = time.mktime(datetime.strptime(parts[0], "%Y/%m/%d %H:%M:%S.%f").timetuple()) \
            + float("0." + parts[0].rsplit(".", 1)[1])
        samples.append((t, float(parts[1])))
    except (ValueError, IndexError):
        continue
if len(samples) < 4:
    sys.exit("gpu-check: FAILED: too few nvidia-smi samples; see meter-power.csv")
def power_at(t):
    for (t0, w0), (t1, w1) in zip(samples, samples[1:]):
        if t0 <= t <= t1:
            return w0 if t1 == t0 else w0 + (w1 - w0) * (t - t0) / (t1 - t0)
    return None
pts = [(start, power_at(start))] + [(t, w) for t, w in samples if start < t < end] + [(end, power_at(end))]
pts = [(t, w) for t, w in pts if w is not None]
smi_wh = sum((t1 - t0) * (w0 + w1) / 2 for (t0, w0), (t1, w1) in zip(pts, pts[1:])) / 3600
meter_wh = reading.get("gpu_energy_kwh", 0) * 1000
ratio = meter_wh / smi_wh if smi_wh else float("nan")
print()
print("## GPU energy check")
print()
print("| date | GPU | seconds | greenq meter Wh (source) | nvidia-smi power.draw Wh (1 s samples) | meter / nvidia-smi |")
print("|---|---|---|---|---|---|")
print(f"| {datetime.now(timezone.utc):%Y-%m-%d} | {reading.get('gpu_model') or '?'} | {end - start:.1f} | "
      f"{meter_wh:.3f} ({reading.get('energy_source')}) | {smi_wh:.3f} | {ratio:.3f} |")
if reading.get("energy_source") == "estimate":
    print("\nNOTE: the meter estimated (no NVML: a build without cgo, or the driver library did not load).")
PY
}

if [[ ${GPU_CHECK_ONLY:-} == meter ]]; then
	meter_check
	echo
	echo "gpu-check: done"
	exit 0
fi

say "3/6 starting greenq dev (log: $WORK/dev.log)"
curl -fsS "$API/healthz" >/dev/null 2>&1 && die "something already serves $API; stop it or set GREENQ_API_URL"
# shellcheck disable=SC2086 # GREENQ_DEV_ARGS is a list of arguments
"$BIN" dev ${GREENQ_DEV_ARGS:-} >"$WORK/dev.log" 2>&1 &
DEV_PID=$!
for i in $(seq 1 120); do
	curl -fsS "$API/healthz" >/dev/null 2>&1 && break
	kill -0 "$DEV_PID" 2>/dev/null || die "greenq dev exited early"
	[[ $i == 120 ]] && die "greenq dev did not serve $API/healthz within 60 s"
	sleep 0.5
done
echo "greenq dev is up at $API"
grep -iE 'nvml|energy|estimate' "$WORK/dev.log" | head -5 || true

say "4/6 sampling nvidia-smi power every 500 ms (GPU 0)"
# shellcheck disable=SC2054 # the commas belong to nvidia-smi's arguments
SMI=(nvidia-smi -i 0 --query-gpu=timestamp,power.draw --format=csv,noheader,nounits -lms 500)
# Line-buffer so no sample is lost when the sampler is stopped.
if command -v stdbuf >/dev/null; then SMI=(stdbuf -oL "${SMI[@]}"); fi
"${SMI[@]}" >"$WORK/power.csv" 2>"$WORK/power.err" &
SMI_PID=$!
sleep 3 # a few idle samples before the job, for the idle figure
kill -0 "$SMI_PID" 2>/dev/null || die "nvidia-smi sampling stopped: $(cat "$WORK/power.err")"

say "5/6 submitting a ${SECONDS_RUN}s PyTorch matmul loop (${MATRIX}x${MATRIX} fp16)"
# A deadline just past the run makes the job urgent: the planner releases it at once.
"$BIN" submit --name gpu-check --deadline "$((SECONDS_RUN + 90))s" --duration "$((SECONDS_RUN + 5))s" \
	--gpus 1 -o json -- python3 -c "$PY" >"$WORK/submit.json" || die "submit failed: $(cat "$WORK/submit.json")"
ID=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
d = d[0] if isinstance(d, list) else d.get("job", d)
print(d["id"])' "$WORK/submit.json") || die "no job id in $(cat "$WORK/submit.json")"
echo "job $ID submitted; waiting for it (greenq status $ID --wait)"
timeout $((SECONDS_RUN + 600)) "$BIN" status "$ID" --wait -o json >"$WORK/wait.out" 2>&1 \
	|| die "waiting for job $ID failed: $(tail -c 2000 "$WORK/wait.out")"
# The final record, on its own (--wait may have printed progress too).
"$BIN" status "$ID" -o json >"$WORK/job.json" || die "greenq status $ID failed"
sleep 1 # one more sample after the end
kill "$SMI_PID" 2>/dev/null || true
wait "$SMI_PID" 2>/dev/null || true
SMI_PID=""
"$BIN" logs "$ID" >"$WORK/job.log" 2>&1 || true

say "6/6 receipt against nvidia-smi"
python3 - "$WORK/job.json" "$WORK/power.csv" "$WORK/job.log" <<'PY'
import json, re, sys, time
from datetime import datetime, timezone

job_path, power_path, log_path = sys.argv[1:4]
doc = json.load(open(job_path))
job = doc.get("job", doc) if isinstance(doc, dict) else doc
state = job.get("state")
run, rc = job.get("run") or {}, job.get("receipt") or {}
print(f"job {job.get('id')} state={state} region={run.get('region')} worker={run.get('worker')}")
try:
    print("job output:", open(log_path).read().strip()[-300:])
except OSError:
    pass
if state != "succeeded":
    sys.exit(f"gpu-check: FAILED: the job ended {state}: {job.get('error')}")
if not rc:
    sys.exit("gpu-check: FAILED: the job has no receipt")

def rfc3339(s):
    # Go writes up to 9 fractional digits; older Pythons take at most 6.
    s = re.sub(r"(\.\d{6})\d+", r"\1", s).replace("Z", "+00:00")
    return datetime.fromisoformat(s).timestamp()

start, end = rfc3339(run["started_at"]), rfc3339(run["finished_at"])
samples = []
for line in open(power_path):
    parts = [p.strip() for p in line.split(",")]
    if len(parts) < 2:
        continue
    try:
        # nvidia-smi prints local time, e.g. 2026/11/28 18:40:01.123
        t = time.mktime(datetime.strptime(parts[0], "%Y/%m/%d %H:%M:%S.%f").timetuple()) \
            + float("0." + parts[0].rsplit(".", 1)[1])
        w = float(parts[1])
    except ValueError:
        continue  # "[N/A]" or a torn line
    samples.append((t, w))
if len(samples) < 4:
    sys.exit("gpu-check: FAILED: too few nvidia-smi samples; see power.csv")
idle = [w for t, w in samples if t < start - 0.5]
# Trapezoid over [start, end], interpolating at the edges.
def power_at(t):
    for (t0, w0), (t1, w1) in zip(samples, samples[1:]):
        if t0 <= t <= t1:
            return w0 if t1 == t0 else w0 + (w1 - w0) * (t - t0) / (t1 - t0)
    return None
pts = [(start, power_at(start))] + [(t, w) for t, w in samples if start < t < end] + [(end, power_at(end))]
pts = [(t, w) for t, w in pts if w is not None]
joules = sum((t1 - t0) * (w0 + w1) / 2 for (t0, w0), (t1, w1) in zip(pts, pts[1:]))
covered = pts[-1][0] - pts[0][0] if len(pts) > 1 else 0
smi_kwh = joules / 3.6e6
gpu_kwh = rc.get("gpu_energy_kwh", 0.0)
dur = end - start
print()
print(f"run interval            {dur:8.1f} s   (nvidia-smi covers {covered:.1f} s with {len(pts)} points)")
print(f"receipt GPU energy      {gpu_kwh * 1000:8.3f} Wh  source={rc.get('energy_source')} model={rc.get('gpu_model')}")
print(f"nvidia-smi power.draw   {smi_kwh * 1000:8.3f} Wh  (trapezoid over 500 ms samples)")
if smi_kwh > 0:
    print(f"receipt / nvidia-smi    {gpu_kwh / smi_kwh:8.3f}")
print(f"mean power              receipt {gpu_kwh * 3.6e6 / dur if dur else 0:7.1f} W   nvidia-smi {joules / covered if covered else 0:7.1f} W"
      + (f"   idle before {sum(idle) / len(idle):.1f} W" if idle else ""))
print(f"GPU utilisation (mean)  {rc.get('gpu_utilization_pct', 0):.0f} %   memory used {rc.get('gpu_memory_used_mib', 0):.0f} MiB")
print(f"total energy            {rc.get('energy_kwh', 0) * 1000:8.3f} Wh  (GPU + CPU {rc.get('cpu_energy_kwh', 0) * 1000:.3f} + RAM {rc.get('ram_energy_kwh', 0) * 1000:.3f}; cpu source={rc.get('cpu_energy_source')})")
print(f"carbon                  {rc.get('gco2', 0):.3f} gCO2e = {rc.get('energy_kwh', 0):.6f} kWh x PUE {rc.get('pue')} x {rc.get('intensity_gco2_per_kwh', 0):.1f} g/kWh ({rc.get('intensity_source')}, {rc.get('signal')})")
print(f"baseline / saved        {rc.get('baseline_gco2', 0):.3f} / {rc.get('saved_gco2', 0):.3f} gCO2e")
print()
print("BENCHMARKS.md row:")
print("| date | GPU | run s | receipt Wh (source) | nvidia-smi Wh | ratio |")
print(f"| {datetime.now(timezone.utc):%Y-%m-%d} | {rc.get('gpu_model')} | {dur:.1f} | {gpu_kwh * 1000:.3f} ({rc.get('energy_source')}) | {smi_kwh * 1000:.3f} | {gpu_kwh / smi_kwh if smi_kwh else float('nan'):.3f} |")
if rc.get("energy_source") == "estimate":
    print("\nNOTE: the receipt is an estimate: the worker did not use NVML (built without cgo, or the driver library did not load; see dev.log).")
PY

meter_check
echo
echo "gpu-check: done"
