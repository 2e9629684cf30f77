"""A heat-diffusion job in Python on cutpoint (NumPy, 5-point Jacobi).

The global grid of COLS x (ROWS * world) cells is split into horizontal
bands, one per rank; each step a rank sends its first and last rows to the
ranks above and below, receives their rows into its ghost rows, and updates
its band. Rank 0 gathers the final grid and hands its SHA-256 to the
launcher, which prints it as ``result <hex>``: the same with or without
ranks killed mid-run.

    cutpoint run --ranks 4 -- python3 heat.py COLS ROWS STEPS
"""

import hashlib
import os
import sys

import numpy as np

import cutpoint


def initial(cols: int, rows: int, row0: int, grows: int) -> np.ndarray:
    """The band's initial field with its ghost border: a hot north wall
    (400), 300 elsewhere on the boundary, a hot square in the interior."""
    u = np.full((rows + 2, cols + 2), 300.0)
    gy = np.arange(row0 - 1, row0 + rows + 1)[:, None]
    gx = np.arange(-1, cols + 1)[None, :]
    hot = (gx >= cols // 4) & (gx < cols // 2) & (gy >= grows // 4) & (gy < grows // 2)
    u[hot] = 500.0
    if row0 == 0:
        u[0, :] = 400.0
    return u


def rewind(r: cutpoint.Rank, step: int) -> int:
    """After RolledBack: the safe point restores the cut and returns its
    step (retried if another rollback interrupts it)."""
    while True:
        try:
            return r.safe_point(step)
        except cutpoint.RolledBack:
            pass


def main() -> int:
    cols, rows, steps = (int(a) for a in sys.argv[1:4])
    alpha = 0.2
    me, world = int(os.environ["CUTPOINT_RANK"]), int(os.environ["CUTPOINT_WORLD"])
    up = me - 1 if me > 0 else -1
    down = me + 1 if me < world - 1 else -1
    peers = {p for p in (up, down, 0) if p >= 0 and p != me} if me else set(range(1, world))
    try:
        with cutpoint.Rank(peers=sorted(peers), total_steps=steps) as r:
            u = [initial(cols, rows, me * rows, world * rows) for _ in range(2)]
            r.protect_ring("u", u)  # the state after step s is u[s % 2]
            step = r.start()
            while True:
                try:
                    while step < steps:
                        cur, nxt = u[step % 2], u[(step + 1) % 2]
                        if up >= 0:
                            r.send(up, cur[1].tobytes())
                        if down >= 0:
                            r.send(down, cur[rows].tobytes())
                        if up >= 0:
                            cur[0] = np.frombuffer(r.recv(up), dtype=np.float64)
                        if down >= 0:
                            cur[rows + 1] = np.frombuffer(r.recv(down), dtype=np.float64)
                        c = cur[1:-1, 1:-1]
                        lap = ((cur[:-2, 1:-1] + cur[2:, 1:-1]) + (cur[1:-1, 2:] + cur[1:-1, :-2])) - 4 * c
                        nxt[1:-1, 1:-1] = c + alpha * lap
                        step = r.safe_point(step + 1)
                    band = np.ascontiguousarray(u[step % 2][1:-1, 1:-1])
                    if me != 0:
                        r.send(0, band.tobytes())
                        r.finish()
                    else:
                        h = hashlib.sha256(band.tobytes())
                        for k in range(1, world):
                            h.update(r.recv(k))
                        r.finish(h.digest())
                    return 0
                except cutpoint.RolledBack:
                    step = rewind(r, step)
    except cutpoint.Stopped as e:  # Fenced too
        print(f"heat.py: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
