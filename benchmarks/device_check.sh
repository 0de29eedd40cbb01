#!/usr/bin/env bash
# The GPU check, one command (a few minutes on one NVIDIA GPU; every step has a time limit, 8 minutes in all):
#
#     bash benchmarks/device_check.sh [RESULTS_FILE]
#
#   1. the cuda-marked tests of the core, every adapter and the bench (pytest -m cuda; they skip without a GPU);
#   2. benchmarks/loss_speed.py --device cuda, short;
#   3. benchmarks/early_exit_throughput.py --device cuda, short (snnTorch and Norse, spikemax_g, 2 epochs);
#   4. spikemax-bench --quick --device cuda.
#
# It installs nothing beyond what CI installs: it runs in .venv, the virtualenv of the README's test command (line 3
# of README.md), and creates it with that command (without its final pytest) if it is missing. PYTHON=... runs
# another interpreter. A step that fails is recorded and the next one runs; the script exits non-zero if any step
# failed. It writes one JSON file, RESULTS_FILE or docs/results/device_check/<device-name>.json: the device name
# (torch.cuda.get_device_name()), torch's version and CUDA build, and per step its command, exit code, duration,
# the tail of its log and its key numbers (test counts per package, speed ratios, accuracies).
#
# Without a CUDA device it stops at once with exit code 2 and says so. DEVICE_CHECK_DEVICE=cpu rehearses the
# script itself on a CPU (the same steps with --device cpu; the cuda-marked tests then skip).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
device="${DEVICE_CHECK_DEVICE:-cuda}"
case "$device" in
  cuda | cpu) ;;
  *) echo "device_check: DEVICE_CHECK_DEVICE must be cuda or cpu, got '$device'" >&2; exit 2 ;;
esac

if [ -z "${PYTHON:-}" ]; then
  if [ ! -x .venv/bin/python ]; then
    setup="$(sed -n 3p README.md)"
    case "$setup" in
      *"python3 -m venv .venv"*"&& python -m pytest") ;;
      *) echo "device_check: README.md line 3 should be the test command (venv ... && python -m pytest), got: $setup" >&2
         exit 2 ;;
    esac
    echo "::: creating .venv with the README's test command, without its pytest: ${setup% && python -m pytest}"
    (eval "${setup% && python -m pytest}")
  fi
  PYTHON="$root/.venv/bin/python"
fi

if [ "$device" = cuda ] && ! "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "device_check: no CUDA device: $("$PYTHON" -c 'import torch; print("torch", torch.__version__, "(CUDA build", torch.version.cuda, end=")")') sees none (torch.cuda.is_available() is False). This check needs an NVIDIA GPU and a CUDA build of torch; nothing was run." >&2
  exit 2
fi

device_name="$("$PYTHON" -c "import torch; print(torch.cuda.get_device_name() if '$device' == 'cuda' else 'cpu')")"
slug="$(printf '%s' "$device_name" | tr '[:upper:]' '[:lower:]' | tr -cs 'a-z0-9' '-' | sed 's/^-//; s/-$//')"
results="${1:-docs/results/device_check/${slug:-device}.json}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
: > "$work/steps.tsv"
echo "::: device check on $device_name ($device); results -> $results"

# run_step NAME LIMIT_SECONDS COMMAND...: runs it under `timeout`, logs to $work/NAME.log, records exit code and
# duration; never aborts the script (set -e does not reach a command followed by ||).
run_step() {
  local name="$1" limit="$2" start end rc=0
  shift 2
  echo "::: $name (limit ${limit} s): $*"
  start="$(date +%s.%N)"
  timeout "$limit" "$@" > "$work/$name.log" 2>&1 || rc=$?
  end="$(date +%s.%N)"
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$rc" "$start" "$end" "$*" >> "$work/steps.tsv"
  tail -n 3 "$work/$name.log" | sed 's/^/    /'
  echo "::: $name: exit code $rc"
}

cuda_tests=(tests/spikemax_plugins tests/spikemax_snntorch tests/spikemax_norse tests/spikemax_spikingjelly
            tests/spikemax_sinabs tests/spikemax_neurobench tests/spikemax_bench)
run_step cuda_tests 180 "$PYTHON" -m pytest -m cuda -q -p no:cacheprovider -rs --junitxml="$work/cuda_tests.xml" \
  "${cuda_tests[@]}"
run_step loss_speed 90 "$PYTHON" benchmarks/loss_speed.py --device "$device" --repeats 20 --step-rounds 5 \
  --out "$work/loss_speed"
run_step early_exit_throughput 100 "$PYTHON" benchmarks/early_exit_throughput.py --device "$device" \
  --frameworks snntorch,norse --losses spikemax_g --repeats 2 --rounds 3 --epochs 2 --single 32 --slots 32,128 \
  --out "$work/early_exit_throughput"
run_step spikemax_bench 100 "$PYTHON" -m spikemax_bench --quick --device "$device" --out "$work/bench"

"$PYTHON" - "$work" "$results" "$device" "$device_name" <<'EOF'
"""Collect the steps' exit codes, durations, log tails and key numbers into one JSON file."""
import json
import platform
import sys
import xml.etree.ElementTree as ElementTree
from collections import Counter
from pathlib import Path

import torch

work, results, device, device_name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]


def read_json(path):
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def cuda_tests():
    path = work / "cuda_tests.xml"
    if not path.is_file():
        return None
    counts = {}
    for case in ElementTree.parse(path).iter("testcase"):
        package = case.get("classname", "").split(".")[1] if "." in case.get("classname", "") else "?"
        outcome = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
        counts.setdefault(package, Counter())[outcome] += 1
    total = sum(counts.values(), Counter())
    return {"total": dict(total), "by_package": {name: dict(count) for name, count in sorted(counts.items())}}


def loss_speed():
    document = read_json(work / "loss_speed" / "results.json")
    if document is None:
        return None
    return {
        "ratios": [{"shape": [shape["shape"][key] for key in "TBC"], "comparison": item["comparison"],
                    "median": item["median"], "target": item["target"], "met": item["met"]}
                   for shape in document["shapes"] for item in shape["comparisons"]],
        "training_step": [{"framework": item["framework"], "loss_share": item["share"], "met": item["met"]}
                          for item in document["training_step"]],
    }


def early_exit_throughput():
    document = read_json(work / "early_exit_throughput" / "results.json")
    if document is None:
        return None
    return [{"framework": cell["framework"], "loss": cell["loss"], "exit_fraction": cell["exit_fraction"],
             "accuracy_full_window": cell["accuracy_full_window"], "accuracy_early_exit": cell["accuracy_early_exit"],
             "decisions_checked": all(cell["decisions_checked"].values()),
             "ratio_to_full_window": cell["ratio_to_full_window"]} for cell in document["cells"]]


def spikemax_bench():
    document = read_json(work / "bench" / "results.json")
    if document is None:
        return None
    return [{"framework": record["framework"], "loss": record["loss"],
             "test_accuracy": [seed["test"]["accuracy"] for seed in record["seeds"]]} for record in document["records"]]


key_output = {"cuda_tests": cuda_tests, "loss_speed": loss_speed, "early_exit_throughput": early_exit_throughput,
              "spikemax_bench": spikemax_bench}
steps = []
for line in (work / "steps.tsv").read_text(encoding="utf-8").splitlines():
    name, code, start, end, command = line.split("\t", 4)
    log = (work / f"{name}.log").read_text(encoding="utf-8", errors="replace").splitlines()
    try:
        key = key_output[name]()
    except (KeyError, TypeError, ValueError) as error:  # a step that wrote half its results
        key = {"unreadable": f"{type(error).__name__}: {error}"}
    steps.append({"name": name, "command": command, "exit_code": int(code),
                  "seconds": round(float(end) - float(start), 1), "timed_out": int(code) in (124, 137),
                  "key_output": key, "log_tail": log[-15:]})
document = {
    "device": device,
    "device_name": device_name,
    "torch": torch.__version__,
    "torch_cuda": torch.version.cuda,
    "python": platform.python_version(),
    "passed": all(step["exit_code"] == 0 for step in steps),
    "steps": steps,
}
results.parent.mkdir(parents=True, exist_ok=True)
results.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
for step in steps:
    print(f"{step['name']:22s} exit {step['exit_code']:3d}  {step['seconds']:6.1f} s")
print(f"wrote {results}")
EOF

failed="$(awk -F '\t' '$2 != 0 {print $1}' "$work/steps.tsv" | paste -sd ' ' -)"
if [ -n "$failed" ]; then
  echo "device_check: failed steps: $failed (details in $results)" >&2
  exit 1
fi
echo "device_check: every step passed on $device_name"
