"""Tests of the cutpoint Python package: the binding without a launcher,
and a NumPy heat job under a real `cutpoint run`, undisturbed and with a
rank SIGKILLed mid-run (both digests equal).

Needs CUTPOINT_BIN (the cutpoint command) and CUTPOINT_LIB (libcutpoint.so);
`go test ./cmd/libcutpoint` sets both.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cutpoint

HEAT = Path(__file__).resolve().parent.parent / "examples" / "heat.py"
BIN = os.environ.get("CUTPOINT_BIN", "")

needs_bin = pytest.mark.skipif(not BIN, reason="CUTPOINT_BIN not set")


def test_join_without_launcher_names_the_variable(monkeypatch):
    for k in list(os.environ):
        if k.startswith("CUTPOINT_") and k != "CUTPOINT_LIB":
            monkeypatch.delenv(k)
    with pytest.raises(cutpoint.CutpointError) as e:
        cutpoint.Rank()
    assert e.value.code == cutpoint.ERROR
    assert "CUTPOINT_NATS" in str(e.value)


def test_protect_rejects_non_contiguous():
    a = np.zeros((4, 4))[:, ::2]
    with pytest.raises(cutpoint.InvalidArgument):
        cutpoint._buffer_of(a, "x")
    ro = np.zeros(4)
    ro.flags.writeable = False
    with pytest.raises(cutpoint.InvalidArgument):
        cutpoint._buffer_of(ro, "x")


def run(tmp_path, name, *extra):
    d = tmp_path / name
    d.mkdir()
    # 1024 columns: the gather's 96 KiB blocks are larger than recv's first
    # buffer, so the TOO_SMALL path (message kept, buffer grown) runs.
    args = [BIN, "run", "--ranks", "4", "--store", str(d / "store"), "--heartbeat-interval", "100ms", *extra,
            "--", sys.executable, str(HEAT), "1024", "12", "3000"]
    env = dict(os.environ, CUTPOINT_CONFIG="/dev/null", PYTHONPATH=os.pathsep.join(sys.path))
    p = subprocess.run(args, cwd=d, env=env, capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stderr[-4000:]
    last = p.stdout.strip().splitlines()[-1]
    assert last.startswith("result ") and len(last) == 7 + 64, (last, p.stderr[-4000:])
    return last[7:], p.stderr


@needs_bin
def test_heat_job_killed_mid_run_ends_with_undisturbed_digest(tmp_path):
    plain, _ = run(tmp_path, "plain")
    hurt, log = run(tmp_path, "hurt", "--every-steps", "100", "--kill", "2@1200")
    assert "fault injection: SIGKILL" in log and "recovery-finished" in log, log[-4000:]
    assert hurt == plain
