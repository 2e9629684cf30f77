"""cutpoint for Python: one rank of a cutpoint job.

A cutpoint job is N rank processes started by a launcher
(``cutpoint run --ranks N -- python3 job.py``). Each rank joins the job,
protects the arrays that hold its state, starts, and loops: exchange
messages, compute a step, call :meth:`Rank.safe_point`. The coordinator takes
consistent cuts at safe points while the job runs; when a rank is lost it is
respawned from the latest committed cut and every other rank rolls back in
place: its protected arrays are overwritten with the cut's contents, the call
that noticed raises :class:`RolledBack`, and the job calls
:meth:`Rank.safe_point`, which returns the step to go on from::

    import cutpoint, numpy as np

    with cutpoint.Rank(peers=[...], total_steps=steps) as r:
        u = np.zeros(n)
        r.protect("u", u)
        step = r.start()
        while True:
            try:
                while step < steps:
                    exchange(r, u)                  # r.send / r.recv
                    compute(u)
                    step = r.safe_point(step + 1)
                r.finish(digest(u))                 # rank 0's is printed
                break
            except cutpoint.RolledBack:
                step = r.safe_point(step)

This module is a ctypes binding of libcutpoint (cutpoint.h, the reference
for every call's contract). The library is loaded from ``$CUTPOINT_LIB``, from
next to this package, or by name (``libcutpoint.so`` on the loader's path).

Thread safety is the library's: :meth:`Rank.send` and :meth:`Rank.recv` may
run on several threads (one receiver per peer); :meth:`Rank.start`,
:meth:`Rank.safe_point` and :meth:`Rank.finish` on one. The GIL is released
during every call into the library.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from typing import Any, Iterable, Optional, Sequence

__all__ = [
    "Rank",
    "CutpointError",
    "RolledBack",
    "Stopped",
    "Fenced",
    "NotStarted",
    "ProtectAfterStart",
    "Closed",
    "InvalidArgument",
    "NoCUDA",
    "load_library",
    "ABI_VERSION",
]

#: The version of cutpoint.h this binding was written against.
ABI_VERSION = 1

# Status codes of cutpoint.h.
OK = 0
ROLLED_BACK = 1
STOPPED = 2
FENCED = 3
NOT_STARTED = 4
PROTECT_AFTER_START = 5
CLOSED = 6
INVALID = 7
TOO_SMALL = 8
NO_CUDA = 9
ERROR = 10


class CutpointError(Exception):
    """A failing libcutpoint call: ``code`` is the cutpoint.h status,
    the message the library's description of what went wrong."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class RolledBack(CutpointError):
    """The job was rolled back to a committed cut (rank.ErrRolledBack):
    return to the loop and call :meth:`Rank.safe_point`."""


class Stopped(CutpointError):
    """The coordinator stopped the job (rank.ErrStopped); exit the process
    with ``exit_code``."""

    def __init__(self, code: int, message: str, exit_code: int) -> None:
        super().__init__(code, message)
        self.exit_code = exit_code


class Fenced(Stopped):
    """This process was replaced by a newer one (rank.ErrFenced): exit at
    once."""


class NotStarted(CutpointError):
    """send, recv, safe_point or finish before start."""


class ProtectAfterStart(CutpointError):
    """protect after start."""


class Closed(CutpointError):
    """The rank was closed."""


class InvalidArgument(CutpointError, ValueError):
    """A bad argument (unknown rank, element size, name...)."""


class NoCUDA(CutpointError):
    """CUDA device buffers need the cuda build of libcutpoint."""


_ERRORS = {
    ROLLED_BACK: RolledBack,
    NOT_STARTED: NotStarted,
    PROTECT_AFTER_START: ProtectAfterStart,
    CLOSED: Closed,
    INVALID: InvalidArgument,
    NO_CUDA: NoCUDA,
}

_lib: Optional[ctypes.CDLL] = None
_lib_lock = threading.Lock()


def load_library(path: Optional[str] = None) -> ctypes.CDLL:
    """Load libcutpoint (once per process) and declare its functions.

    ``path`` overrides the search: ``$CUTPOINT_LIB``, ``libcutpoint.so``
    next to this package, then the loader's path.
    """
    global _lib
    with _lib_lock:
        if _lib is not None:
            return _lib
        candidates = []
        if path:
            candidates.append(path)
        elif os.environ.get("CUTPOINT_LIB"):
            candidates.append(os.environ["CUTPOINT_LIB"])
        else:
            here = os.path.join(os.path.dirname(__file__), "libcutpoint.so")
            if os.path.exists(here):
                candidates.append(here)
            found = ctypes.util.find_library("cutpoint")
            if found:
                candidates.append(found)
            candidates.append("libcutpoint.so")
        errors = []
        for c in candidates:
            try:
                lib = ctypes.CDLL(c)
                break
            except OSError as e:
                errors.append(f"{c}: {e}")
        else:
            raise OSError(
                "cutpoint: cannot load libcutpoint (build it with `make lib`, "
                "then set CUTPOINT_LIB or LD_LIBRARY_PATH): " + "; ".join(errors)
            )
        _declare(lib)
        if lib.cutpoint_abi_version() < ABI_VERSION:
            raise OSError(f"cutpoint: libcutpoint ABI {lib.cutpoint_abi_version()} older than {ABI_VERSION}")
        _lib = lib
        return lib


def _declare(lib: ctypes.CDLL) -> None:
    i64, i32, sz, vp, cp, c_int = (
        ctypes.c_int64,
        ctypes.c_int32,
        ctypes.c_size_t,
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_int,
    )
    p64, p32, psz = ctypes.POINTER(i64), ctypes.POINTER(i32), ctypes.POINTER(sz)
    sigs = {
        "cutpoint_abi_version": ([], c_int),
        "cutpoint_status_string": ([c_int], cp),
        "cutpoint_last_error": ([], cp),
        "cutpoint_join": ([p32, sz, i64, p64], c_int),
        "cutpoint_identity": ([i64, p32, p32], c_int),
        "cutpoint_protect_host": ([i64, cp, vp, sz, c_int], c_int),
        "cutpoint_protect_host_ring": ([i64, cp, ctypes.POINTER(vp), sz, sz, c_int], c_int),
        "cutpoint_protect_cuda": ([i64, cp, ctypes.c_uint64, sz, c_int], c_int),
        "cutpoint_start": ([i64, p64], c_int),
        "cutpoint_send": ([i64, i32, vp, sz], c_int),
        "cutpoint_recv": ([i64, i32, vp, sz, psz], c_int),
        "cutpoint_safe_point": ([i64, i64, p64], c_int),
        "cutpoint_finish": ([i64, vp, sz], c_int),
        "cutpoint_exit_code": ([i64], c_int),
        "cutpoint_stats": ([i64, p64, p64], c_int),
        "cutpoint_close": ([i64], c_int),
    }
    for name, (args, res) in sigs.items():
        f = getattr(lib, name)
        f.argtypes = args
        f.restype = res
    # ABI 2 (MPI mode): declared when the library has them.
    for name, (args, res) in {
        "cutpoint_join_mpi": ([i64, p64], c_int),
        "cutpoint_checkpoint_here": ([i64, i64], c_int),
    }.items():
        f = getattr(lib, name, None)
        if f is not None:
            f.argtypes = args
            f.restype = res


def _buffer_of(arr: Any, what: str) -> tuple[int, int, int]:
    """(address, bytes, element size) of a writable C-contiguous array."""
    try:
        iface = arr.__array_interface__
    except AttributeError:
        raise InvalidArgument(INVALID, f"{what}: want a NumPy array (or an object with __array_interface__), got {type(arr).__name__}") from None
    if not getattr(arr, "flags", None) or not arr.flags["C_CONTIGUOUS"] or not arr.flags["WRITEABLE"]:
        raise InvalidArgument(INVALID, f"{what}: the array must be C-contiguous and writeable (state is restored in place)")
    addr, readonly = iface["data"]
    if readonly:
        raise InvalidArgument(INVALID, f"{what}: read-only array")
    return addr, arr.nbytes, arr.itemsize


class Rank:
    """One rank of a cutpoint job, joined from the launcher's environment.

    ``peers`` lists the ranks this one exchanges messages with (None: every
    other rank); ``total_steps`` is the job's last step if known (no cut is
    taken past it). Use it as a context manager: leaving the block closes
    the rank.

    ``mpi=True`` joins in MPI mode (``cutpoint_join_mpi``): the job keeps
    its own MPI communication (mpi4py, ...), uses no cutpoint channels
    (``peers`` must be None), takes its rank from the MPI launcher, and
    calls :meth:`checkpoint_here` after a barrier at every step.
    """

    def __init__(
        self, peers: Optional[Iterable[int]] = None, total_steps: int = 0, library: Optional[str] = None, mpi: bool = False
    ) -> None:
        self._lib = load_library(library)
        self._h = 0
        self._keep: list[Any] = []  # protected arrays: must outlive the rank
        # recv's buffer, one per thread: threads receiving from different
        # peers must not wait for each other.
        self._local = threading.local()
        h = ctypes.c_int64()
        if mpi:
            if peers is not None:
                raise InvalidArgument(INVALID, "Rank(mpi=True): an MPI-mode rank has no cutpoint channels; peers must be None")
            if self._lib.cutpoint_abi_version() < 2:
                raise OSError(f"cutpoint: MPI mode needs libcutpoint ABI 2, this one is {self._lib.cutpoint_abi_version()}")
            self._check(self._lib.cutpoint_join_mpi(int(total_steps), ctypes.byref(h)))
        else:
            plist = list(peers) if peers is not None else []
            arr = (ctypes.c_int32 * len(plist))(*plist) if plist else None
            self._check(self._lib.cutpoint_join(arr, len(plist), int(total_steps), ctypes.byref(h)))
        self._h = h.value
        r, w = ctypes.c_int32(), ctypes.c_int32()
        self._check(self._lib.cutpoint_identity(self._h, ctypes.byref(r), ctypes.byref(w)))
        #: This rank's number, 0..world-1.
        self.rank: int = r.value
        #: The number of ranks.
        self.world: int = w.value
        # safe_point's bound function and out-parameter, made once: a safe
        # point without a cut is the call a job makes every step, and
        # building a ctypes value and a byref per call costs more than the
        # call into the library. Safe points run on one thread (cutpoint.h's
        # rules), so one out-parameter is enough.
        self._sp = self._lib.cutpoint_safe_point
        self._sp_out = ctypes.c_int64()
        self._sp_ref = ctypes.byref(self._sp_out)
        self._send = self._lib.cutpoint_send

    # -- errors ----------------------------------------------------------

    def _check(self, rc: int) -> None:
        if rc == OK:
            return
        msg = (self._lib.cutpoint_last_error() or b"").decode("utf-8", "replace")
        if not msg:
            msg = (self._lib.cutpoint_status_string(rc) or b"").decode()
        if rc in (STOPPED, FENCED):
            code = self._lib.cutpoint_exit_code(self._h) if self._h else 1
            raise (Fenced if rc == FENCED else Stopped)(rc, msg, code)
        raise _ERRORS.get(rc, CutpointError)(rc, msg)

    # -- state -----------------------------------------------------------

    def protect(self, name: str, array: Any) -> None:
        """Protect a NumPy array (C-contiguous, writeable; any dtype of 1,
        2, 4 or 8 bytes). It is captured at every cut and restored in place
        on a rollback, so it must not be reallocated. Before start only."""
        addr, n, elem = _buffer_of(array, f"protect {name!r}")
        self._check(self._lib.cutpoint_protect_host(self._h, name.encode(), addr, n, elem))
        self._keep.append(array)

    def protect_ring(self, name: str, arrays: Sequence[Any]) -> None:
        """Protect state that lives in one of several arrays chosen by step
        (a double buffer): after step s the state is in arrays[s % len]."""
        bufs = [_buffer_of(a, f"protect {name!r}[{i}]") for i, a in enumerate(arrays)]
        if not bufs or len({(n, e) for _, n, e in bufs}) != 1:
            raise InvalidArgument(INVALID, f"protect {name!r}: want arrays of one size and dtype size")
        ptrs = (ctypes.c_void_p * len(bufs))(*[a for a, _, _ in bufs])
        self._check(self._lib.cutpoint_protect_host_ring(self._h, name.encode(), ptrs, len(bufs), bufs[0][1], bufs[0][2]))
        self._keep.extend(arrays)

    def protect_cuda(self, name: str, array: Any) -> None:
        """Protect a CUDA device array (any object with
        ``__cuda_array_interface__``: CuPy, Numba, PyTorch) on the GPU
        current on this thread, in its primary context (the CUDA runtime's).
        Work writing it must be synchronized before each safe point. Raises
        :class:`NoCUDA` unless libcutpoint is the cuda build
        (``make lib-cuda``)."""
        try:
            iface = array.__cuda_array_interface__
        except AttributeError:
            raise InvalidArgument(INVALID, f"protect_cuda {name!r}: no __cuda_array_interface__") from None
        addr = iface["data"][0]
        shape = iface["shape"]
        itemsize = int(iface["typestr"][2:])
        n = itemsize
        for d in shape:
            n *= d
        if iface.get("strides") not in (None,):
            raise InvalidArgument(INVALID, f"protect_cuda {name!r}: want a C-contiguous array (strides None)")
        self._check(self._lib.cutpoint_protect_cuda(self._h, name.encode(), addr, n, itemsize))
        self._keep.append(array)

    # -- the protocol ------------------------------------------------------

    def start(self) -> int:
        """Restore the state if this process resumes, wait until the job
        runs; returns the step the state is at (0 for a fresh start)."""
        s = ctypes.c_int64()
        self._check(self._lib.cutpoint_start(self._h, ctypes.byref(s)))
        return s.value

    def checkpoint_here(self, step: int) -> None:
        """MPI mode: the quiescent point after ``step``, called on every
        rank at every step after a barrier, with no MPI message in flight.
        A cut due at ``step`` captures the protected arrays here. A lost
        rank ends the MPI world and the launcher relaunches it whole from
        the latest cut, so this never rolls back in place."""
        self._check(self._lib.cutpoint_checkpoint_here(self._h, int(step)))

    def safe_point(self, step: int) -> int:
        """Call after finishing ``step``: a cut may capture the protected
        arrays here, and a rollback restores them. Returns the step to go on
        from (``step``, or the cut's step after a rollback)."""
        rc = self._sp(self._h, int(step), self._sp_ref)
        if rc:
            self._check(rc)
        return self._sp_out.value

    def send(self, to: int, data: Any) -> None:
        """Send bytes (or any C-contiguous buffer, e.g. a NumPy array) to
        rank ``to``. Blocks while the channel's credit window is full."""
        if type(data) is bytes and data:
            # The common case first: ctypes passes a bytes object's own
            # memory, no copy and no memoryview.
            rc = self._send(self._h, to, data, len(data))
            if rc:
                self._check(rc)
            return
        mv = memoryview(data)
        if not mv.c_contiguous:
            raise InvalidArgument(INVALID, "send: the buffer must be C-contiguous")
        mv = mv.cast("B")
        n = mv.nbytes
        if n == 0:
            self._check(self._lib.cutpoint_send(self._h, to, None, 0))
            return
        if isinstance(data, bytes):
            # ctypes passes a bytes object's own memory: no copy.
            self._check(self._lib.cutpoint_send(self._h, to, data, n))
            return
        if mv.readonly:
            c = (ctypes.c_char * n).from_buffer_copy(mv)
        else:
            c = (ctypes.c_char * n).from_buffer(mv)
        self._check(self._lib.cutpoint_send(self._h, to, ctypes.addressof(c), n))

    def recv_into(self, frm: int, buffer: Any) -> int:
        """Receive the next message from rank ``frm`` into a writable
        buffer; returns its size. A message larger than the buffer raises
        CutpointError (code TOO_SMALL) and stays queued."""
        mv = memoryview(buffer).cast("B")
        c = (ctypes.c_char * mv.nbytes).from_buffer(mv)
        n = ctypes.c_size_t()
        self._check(self._lib.cutpoint_recv(self._h, frm, ctypes.addressof(c), mv.nbytes, ctypes.byref(n)))
        return n.value

    def recv(self, frm: int) -> bytes:
        """Receive the next message from rank ``frm`` (waits for one)."""
        # This thread's buffer and length out-parameter, made once.
        st = getattr(self._local, "recv", None)
        if st is None:
            n = ctypes.c_size_t()
            st = self._local.recv = [ctypes.create_string_buffer(64 << 10), n, ctypes.byref(n)]
        buf, n, nref = st
        recv = self._lib.cutpoint_recv
        while True:
            rc = recv(self._h, frm, buf, len(buf), nref)
            if rc == TOO_SMALL:
                # The library kept the message: grow and take it.
                buf = st[0] = ctypes.create_string_buffer(max(n.value, 2 * len(buf)))
                continue
            if rc:
                self._check(rc)
            return ctypes.string_at(buf, n.value)  # copies n bytes, not the buffer

    def finish(self, result: Optional[bytes] = None) -> None:
        """The job is done: ``result`` (rank 0's is printed by the launcher
        as ``result <hex>``) goes to the coordinator; waits for every rank.
        Raises :class:`RolledBack` if a failure elsewhere rolled the job
        back: call :meth:`safe_point` and go on."""
        if result is None:
            self._check(self._lib.cutpoint_finish(self._h, None, 0))
        else:
            b = bytes(result)
            self._check(self._lib.cutpoint_finish(self._h, b, len(b)))

    @property
    def exit_code(self) -> int:
        """The exit code the coordinator asked for (0 before a stop)."""
        return self._lib.cutpoint_exit_code(self._h) if self._h else 0

    def stats(self) -> tuple[int, int]:
        """(cuts captured, rollbacks applied) so far."""
        c, r = ctypes.c_int64(), ctypes.c_int64()
        self._check(self._lib.cutpoint_stats(self._h, ctypes.byref(c), ctypes.byref(r)))
        return c.value, r.value

    def close(self) -> None:
        """Leave the job (idempotent). The protected arrays are released."""
        if self._h:
            h, self._h = self._h, 0
            rc = self._lib.cutpoint_close(h)
            self._keep.clear()
            if rc != OK:
                msg = (self._lib.cutpoint_last_error() or b"").decode("utf-8", "replace")
                raise CutpointError(rc, msg)

    def __enter__(self) -> "Rank":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
