"""Independent, seeded compression tasks run in local processes or on a Ray cluster.

A task is a module-level function and its arguments, all picklable (arrays and
bytes, never a live Keras model), and it seeds itself: the same task gives the
same result in this process, in a worker process or on a Ray node, so a table
does not depend on where its rows were computed. Results come back in task
order. Worker processes are spawned, not forked: TensorFlow's threads do not
survive a fork.
"""
from __future__ import annotations

import os
import socket
from typing import Callable, Sequence

from tinycomp.errors import InputDataError


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def run_tasks(fn: Callable, tasks: Sequence[tuple], workers: int = 1, ray_address: str | None = None,
              done: Callable[[int, object], None] = lambda i, r: None) -> list:
    """[fn(*t) for t in tasks], computed `workers` at a time (or by Ray), calling
    done(index, result) as each finishes (for a progress bar)."""
    if workers < 1:
        raise InputDataError(f"--workers must be at least 1, got {workers}")
    if ray_address is not None:
        return _on_ray(fn, tasks, ray_address, done)
    if workers == 1 or len(tasks) <= 1:
        results = []
        for i, t in enumerate(tasks):
            results.append(fn(*t))
            done(i, results[-1])
        return results
    import concurrent.futures as cf
    import multiprocessing

    results = [None] * len(tasks)
    with cf.ProcessPoolExecutor(min(workers, len(tasks)), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(fn, *t): i for i, t in enumerate(tasks)}
        for future in cf.as_completed(futures):
            i = futures[future]
            results[i] = future.result()
            done(i, results[i])
    return results


JOIN_TIMEOUT = 10.0  # seconds for the cluster's address to answer


def check_ray_address(address: str, timeout: float = JOIN_TIMEOUT) -> None:
    """Refuse a HOST:PORT (or ray://HOST:PORT) nothing answers on within
    `timeout`: ray.init retries an unreachable address for minutes. "local"
    and "auto" are Ray's own to resolve."""
    target = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return
    host = host.strip("[]")  # an IPv6 literal
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        why = (f"no answer within {timeout:g} s" if isinstance(exc, TimeoutError)
               else (exc.strerror or str(exc) or type(exc).__name__).lower())
        raise InputDataError(f"cannot join the Ray cluster at {address}: {why} on {host}:{port}") from None


def _on_ray(fn: Callable, tasks: Sequence[tuple], address: str, done) -> list:
    try:
        import ray
    except ImportError:
        raise InputDataError("--ray needs Ray: pip install 'tinycomp[ray]'") from None
    check_ray_address(address)
    joined = not ray.is_initialized()
    if joined:
        try:
            ray.init(address=address, log_to_driver=False, include_dashboard=False)
        except Exception as exc:  # an unreachable address, a version mismatch
            raise InputDataError(f"cannot join the Ray cluster at {address}: {' '.join(str(exc).split())[:200]}") \
                from None
    try:
        return _gather(ray, ray.remote(fn), tasks, done)
    finally:
        if joined:
            ray.shutdown()  # leave the cluster (a "local" one stops with it)


def _gather(ray, remote, tasks: Sequence[tuple], done) -> list:
    refs = [remote.remote(*t) for t in tasks]
    index = {ref: i for i, ref in enumerate(refs)}
    results, pending = [None] * len(refs), list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        i = index[ready[0]]
        results[i] = ray.get(ready[0])
        done(i, results[i])
    return results
