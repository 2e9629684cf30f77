"""An MPI-mode job in Python for TestMPIPythonJob: launched by mpirun (no
MPI calls of its own: its ranks exchange nothing, so every step is
quiescent), it protects a NumPy array, evolves it deterministically and
calls checkpoint_here at every step. Rank 0 reports the SHA-256 of its
final array.

Usage: mpi_job.py STEPS [PACE_S]  (PACE_S: seconds to sleep after each
step, so that the job lasts long enough to be killed after a cut)
"""

import hashlib
import sys
import time

import numpy as np

import cutpoint


def main() -> int:
    steps = int(sys.argv[1])
    pace = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    with cutpoint.Rank(total_steps=steps, mpi=True) as r:
        u = np.arange(4096, dtype=np.float64) + r.rank
        r.protect("u", u)
        step = r.start()
        while step < steps:
            u *= 0.999
            u += 0.001 * ((step % 7) + r.rank)
            step += 1
            if pace > 0:
                time.sleep(pace)
            r.checkpoint_here(step)
        r.finish(hashlib.sha256(u.tobytes()).digest() if r.rank == 0 else None)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except cutpoint.Stopped as e:
        sys.exit(e.exit_code)
