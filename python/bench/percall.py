"""Per-call cost of the Python binding against the C ABI, in one rank.

Run as the only rank of a job whose cuts never come (so every safe point
is one where nothing is taken), from the repository root after `make lib`:

    PYTHONPATH=python/src CUTPOINT_LIB=$PWD/bin/lib/libcutpoint.so \\
      bin/cutpoint run --ranks 1 --interval 1h -- \\
      python3 python/bench/percall.py OUT.txt

Each figure is timed twice in the same process on the same rank: a loop in
Python over the binding (``Rank.safe_point``, ``Rank.send`` +
``Rank.recv``), and the same loop in C over cutpoint.h (libcutpoint's
internal ``cutpoint__bench_*`` loops, which cmd/libcutpoint's Go
benchmarks use too), so the difference is what Python and ctypes add.
Send and receive go over the rank's self-channel: the call path and the
library, not the network. Results go to OUT.txt, one line per repetition
in `go test -bench` form (ns/op), the fastest of them being the figure.
"""

from __future__ import annotations

import ctypes
import sys
import time

import numpy as np

import cutpoint

REPS = 5
BUDGET_NS = 300_000_000  # per repetition, as -benchtime 300ms


def timed(fn, n: int) -> float:
    """ns per iteration of fn(n)."""
    t = time.perf_counter_ns()
    fn(n)
    return (time.perf_counter_ns() - t) / n


def bench(name: str, fn, out) -> None:
    """Grow n until one run takes BUDGET_NS, then REPS runs of that n."""
    n = 100
    while True:
        per = timed(fn, n)
        if per * n >= BUDGET_NS / 10:
            break
        n *= 10
    n = max(100, int(BUDGET_NS / per))
    for _ in range(REPS):
        per = timed(fn, n)
        line = f"{name}\t{n}\t{per:.1f} ns/op"
        print(line, file=out, flush=True)
        print(line, file=sys.stderr, flush=True)


def main() -> int:
    path = sys.argv[1]
    with cutpoint.Rank() as r, open(path, "w") as out:
        state = np.zeros(1024)
        r.protect("state", state)
        step = r.start()
        lib = r._lib
        lib.cutpoint__bench_safe_points.argtypes = [ctypes.c_int64, ctypes.c_int64, ctypes.c_int64]
        lib.cutpoint__bench_send_recv.argtypes = [ctypes.c_int64, ctypes.c_int32, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int64]
        h, me = r._h, r.rank
        print(f"# python {sys.version.split()[0]}, numpy {np.__version__}, one rank under cutpoint run (no cut due)", file=out)

        def py_safe(n: int) -> None:
            nonlocal step
            sp = r.safe_point
            s = step
            for _ in range(n):
                s = sp(s + 1)
            step = s

        def c_safe(n: int) -> None:
            nonlocal step
            rc = lib.cutpoint__bench_safe_points(h, step + 1, n)
            if rc != 0:
                raise cutpoint.CutpointError(rc, "bench_safe_points")
            step += n

        bench("SafePoint/python", py_safe, out)
        bench("SafePoint/c", c_safe, out)
        for size in (64, 64 << 10):
            msg = bytes(size)
            cbuf = ctypes.create_string_buffer(size)

            def py_sr(n: int, msg=msg) -> None:
                send, recv = r.send, r.recv
                for _ in range(n):
                    send(me, msg)
                    recv(me)

            def py_sr_into(n: int, msg=msg, buf=bytearray(size)) -> None:
                send, recv_into = r.send, r.recv_into
                for _ in range(n):
                    send(me, msg)
                    recv_into(me, buf)

            def c_sr(n: int, size=size, cbuf=cbuf) -> None:
                rc = lib.cutpoint__bench_send_recv(h, me, cbuf, size, n)
                if rc != 0:
                    raise cutpoint.CutpointError(rc, "bench_send_recv")

            bench(f"SendRecv/python/{size}B", py_sr, out)
            bench(f"SendRecv/python-recv_into/{size}B", py_sr_into, out)
            bench(f"SendRecv/c/{size}B", c_sr, out)
        r.finish(b"")
    return 0


if __name__ == "__main__":
    sys.exit(main())
