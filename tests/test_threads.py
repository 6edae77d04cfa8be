"""The BLAS thread guard: the count inside, the count restored, from many threads."""

import threading

import pytest

from robnp.threads import blas_libraries, blas_threads, single_blas_thread

pytestmark = pytest.mark.skipif(not blas_libraries(), reason="no OpenBLAS found to control")


def counts():
    return [library.get() for library in blas_libraries()]


def test_the_count_is_one_inside_and_restored_after():
    before = counts()
    with single_blas_thread:
        assert counts() == [1] * len(before)
        with single_blas_thread:  # nested
            assert counts() == [1] * len(before)
        assert counts() == [1] * len(before)
    assert counts() == before


def test_guards_open_in_many_threads_at_once_leave_no_trace():
    """Threads enter and leave in every interleaving; while any guard is open the
    count is 1, and once all have left it is what it was."""
    before = counts()
    for library in blas_libraries():
        library.set(2)
    try:
        seen, barrier = [], threading.Barrier(8)

        @single_blas_thread
        def work():
            barrier.wait()
            for _ in range(200):
                with single_blas_thread:
                    seen.append(tuple(counts()))

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert set(seen) == {(1,) * len(before)}
        assert counts() == [2] * len(before)
    finally:
        for library, count in zip(blas_libraries(), before):
            library.set(count)


def test_another_count_while_a_guard_is_open_is_refused():
    with single_blas_thread:
        with pytest.raises(RuntimeError, match="blas_threads"):
            with blas_threads(2):
                pass
