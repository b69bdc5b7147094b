"""How many threads the kernels run on: the free cores, not all of them.

On a busy machine (a shared workstation, a CI runner, another training job), threads that cannot all run spin at
the kernels' barriers: with one of 2 cores taken, 2 threads trained at 0.58x of what one thread does alone
(issue 15). Two levers:

* waiting threads sleep instead of spinning: GNU OpenMP (numba's default threading layer where available) reads
  OMP_WAIT_POLICY when it starts, so it is set to "passive" at import unless the user set it. A kernel call is tens
  of milliseconds, so waking the threads (microseconds) costs nothing measurable when the machine is idle.
* each kernel call uses only the cores nobody else is running on: the usable cores (os.sched_getaffinity) minus the
  runnable tasks of other processes at this moment (the kernel's count in /proc/loadavg minus this process's
  running threads), at least one. Evaluated per call, so a run picks its threads up again when the other job ends.

The batch is still split into the same fixed chunks (engine.n_chunks_for: from the usable cores, not from the
threads chosen), so results do not depend on the load, only on the machine, as before.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "passive")     # before numba starts its OpenMP threads

_policy: dict = {"threads": "auto"}


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity; os.cpu_count where that is not available)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def own_running_threads() -> int:
    """Threads of this process running or runnable right now (state R in /proc/self/task/*/stat), at least 1 (the
    caller): kernel threads still finishing the last call are not someone else's load."""
    count = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 1
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/stat") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        count += state == "R"
    return max(1, count)


def other_runnable_tasks(path: str = "/proc/loadavg", own: int | None = None) -> int | None:
    """Tasks of other processes runnable right now: field 4 of /proc/loadavg ('running/total') minus this
    process's running threads (`own`, default own_running_threads()); None where the file does not exist (not
    Linux)."""
    try:
        with open(path) as handle:
            running = int(handle.read().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return None
    return max(0, running - (own_running_threads() if own is None else own))


def free_cores() -> int:
    """Usable cores minus the other runnable tasks, at least 1 (all usable cores where the load is unknown)."""
    cores = usable_cores()
    others = other_runnable_tasks()
    return cores if others is None else max(1, cores - others)


def set_thread_policy(threads: int | str = "auto") -> None:
    """'auto' (default): each kernel call runs on free_cores() threads; an int: always that many (the bench's 1 vs
    2 thread scaling)."""
    if threads != "auto" and not (isinstance(threads, int) and threads >= 1):
        raise ValueError(f"threads: {threads!r}, expected 'auto' or an integer >= 1")
    _policy["threads"] = threads


def thread_policy() -> int | str:
    return _policy["threads"]


def use_kernel_threads() -> int:
    """Set numba's thread count for the next kernel call from the policy (capped at the threads numba started);
    returns it."""
    import numba
    wanted = free_cores() if _policy["threads"] == "auto" else _policy["threads"]
    threads = max(1, min(int(wanted), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(threads)
    return threads
