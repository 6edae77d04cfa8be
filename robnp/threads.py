"""Control of the BLAS thread pool around robnp's kernels.

robnp's matrix products are small (a minibatch of 256 rows times a layer of at most
a few hundred units). At those sizes OpenBLAS's threaded path costs far more than
it gains: on a 2-core machine a 256 x 64 x 64 product took 2.8 ms with two threads
and 38 microseconds with one (see benchmarks/RESULTS.md). Running every kernel with
one BLAS thread also makes results independent of the machine's core count.
Parallelism in robnp comes from running independent tasks in separate processes
(``robnp sweep --jobs``).

This module finds the OpenBLAS libraries loaded in the process (NumPy's and SciPy's,
the latter being the one Numba-compiled code calls) and sets their thread count
through OpenBLAS's own ``*_set_num_threads`` entry points. Where none is found
(another BLAS, or an unusual platform), :func:`blas_threads` does nothing; the
environment variables ``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` then remain the
way to choose.
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from contextlib import ContextDecorator
from functools import lru_cache

__all__ = ["blas_threads", "blas_libraries", "single_blas_thread"]

_PREFIXES = ("openblas", "scipy_openblas")
_SUFFIXES = ("", "64_")


def _loaded_library_paths() -> list[str]:
    paths = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.rstrip("\n").split(" ")[-1]
                if "openblas" in os.path.basename(path).lower() and path not in paths:
                    paths.append(path)
    except OSError:
        # No /proc (macOS, Windows): look where NumPy and SciPy wheels keep their BLAS.
        import numpy
        import scipy

        for package in (numpy, scipy):
            root = os.path.dirname(package.__file__)
            for pattern in ("*.libs/*openblas*", ".dylibs/*openblas*", "../*.libs/*openblas*",
                            "../scipy_openblas*/lib/*openblas*"):
                paths.extend(glob.glob(os.path.join(root, pattern)))
    return paths


class _OpenBLAS:
    def __init__(self, path, get, set_):
        self.path = path
        self._get = get
        self._set = set_

    def get(self) -> int:
        return int(self._get())

    def set(self, n: int) -> None:
        self._set(int(n))


@lru_cache(maxsize=1)
def blas_libraries() -> tuple[_OpenBLAS, ...]:
    """The OpenBLAS libraries loaded in this process whose thread count can be set."""
    # Numba-compiled np.dot calls SciPy's BLAS: make sure it is loaded before looking.
    import scipy.linalg.cython_blas  # noqa: F401

    found = []
    for path in _loaded_library_paths():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in _PREFIXES:
            for suffix in _SUFFIXES:
                get = getattr(library, f"{prefix}_get_num_threads{suffix}", None)
                set_ = getattr(library, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and set_ is not None:
                    get.restype = ctypes.c_int
                    set_.argtypes = [ctypes.c_int]
                    found.append(_OpenBLAS(path, get, set_))
                    break
            else:
                continue
            break
    return tuple(found)


class blas_threads(ContextDecorator):
    """Limit every loaded OpenBLAS to ``n`` threads inside a ``with`` block or a
    decorated function; the previous counts are restored on exit.

    The setting is process-wide, so the guard counts the blocks that are open in any
    Python thread of the process (a worker of a Dask cluster runs tasks in several,
    and robnp's own chunked kernels call guarded functions from several): the first
    to enter sets the count, the last to leave restores it, and a block that opens
    while another is open runs with the count already set. Blocks open at once must
    ask for the same ``n``.
    """

    _lock = threading.Lock()
    _open = 0
    _n: int | None = None
    _saved: list[tuple[_OpenBLAS, int]] = []

    def __init__(self, n: int = 1):
        self.n = n

    def __enter__(self):
        cls = blas_threads
        with cls._lock:
            if cls._open == 0:
                cls._saved = [(library, library.get()) for library in blas_libraries()]
                for library, current in cls._saved:
                    if current != self.n:
                        library.set(self.n)
                cls._n = self.n
            elif cls._n != self.n:
                raise RuntimeError(f"blas_threads({self.n}) entered while "
                                   f"blas_threads({cls._n}) is open")
            cls._open += 1
        return self

    def __exit__(self, *exc):
        cls = blas_threads
        with cls._lock:
            cls._open -= 1
            if cls._open == 0:
                for library, previous in cls._saved:
                    if previous != cls._n:
                        library.set(previous)
                cls._saved, cls._n = [], None
        return False


#: Decorator/context used around every public entry point that runs kernels.
single_blas_thread = blas_threads(1)
