"""Case generation in parallel processes: the phantom and synthesis data sets write each case from its own seed, so
``workers`` processes write the same files as one (``make_dataset(..., workers=N)``; the GPU recipe uses 16 cores).
"""
from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor


def map_cases(fn: Callable, tasks: Iterable, workers: int = 1, desc: str = "cases", progress: bool = True,
              initializer: Callable | None = None, initargs: tuple = ()) -> list:
    """``[fn(task) for task in tasks]``, in order. With ``workers`` > 1 in as many *spawned* processes (a forked
    child of a process that has started CUDA or threads is unsafe); ``initializer(*initargs)`` runs once in each
    process (here too when ``workers`` is 1), e.g. to hand over large read-only inputs once rather than per task.
    Spawned processes import the main module again: a script calling this needs ``if __name__ == "__main__":``
    (``python -m monai.bundle`` and the bundle's command-line modules have it)."""
    tasks = list(tasks)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), desc=desc, unit="case")
    try:
        workers = max(1, min(int(workers), len(tasks)))
        if workers == 1:
            if initializer is not None:
                initializer(*initargs)
            results = []
            for task in tasks:
                results.append(fn(task))
                bar is not None and bar.update()
            return results
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=initializer,
                                 initargs=initargs) as pool:
            results = []
            for result in pool.map(fn, tasks):
                results.append(result)
                bar is not None and bar.update()
            return results
    finally:
        bar is not None and bar.close()
