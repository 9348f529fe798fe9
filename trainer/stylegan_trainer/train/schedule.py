"""The loop's timetable: when a tick is reported, when a snapshot is due, and when to stop.

The Trainer's ``run()`` (loop.py) asks these after every step. A tick is reported on the first
step, every ``tick_kimg`` and on the way out; a snapshot every ``snapshot_kimg`` (counted from
kimg 0, so a resumed run keeps the same snapshot points) and on the way out. Stopping is asked
by SIGTERM or the time bound; ranks agree on stopping with one tiny all-reduce per step, so
nobody is left waiting in a collective.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

import torch

from stylegan_trainer.report.progress import TickReport, cpu_memory_bytes, peak_gpu_memory_bytes
from stylegan_trainer.train.distributed import DistContext, all_reduce_max


class TickClock:
    """Where the current tick began, when the next snapshot is due, and the ticks' timings."""

    def __init__(self, cur_nimg: int, tick_kimg: float, snapshot_kimg: float, start: float) -> None:
        self.start = start  # when run() began, for the report's total time
        self.tick_kimg = tick_kimg
        self.snapshot_nimg = round(snapshot_kimg * 1000)
        self.next_snapshot = (cur_nimg // self.snapshot_nimg + 1) * self.snapshot_nimg
        self.tick_start_nimg, self.tick_start = cur_nimg, time.monotonic()
        self.tick_end = self.tick_start
        self.first_tick, self.maintenance = True, 0.0

    def tick_due(self, cur_nimg: int) -> bool:
        """The first step ends a tick, and so does every ``tick_kimg`` after it."""
        return self.first_tick or cur_nimg >= self.tick_start_nimg + self.tick_kimg * 1000

    def end_tick(self) -> None:
        self.tick_end = time.monotonic()

    def report(
        self,
        tick: int,
        cur_nimg: int,
        total_nimg: int,
        stats: dict[str, float],
        device: torch.device,
        augment_p: float,
    ) -> TickReport:
        """The figures of the tick that just ended (call :meth:`end_tick` first)."""
        done_nimg = max(cur_nimg - self.tick_start_nimg, 1)
        sec_per_tick = self.tick_end - self.tick_start
        return TickReport(
            tick=tick,
            kimg=cur_nimg / 1000,
            total_kimg=total_nimg / 1000,
            time_s=self.tick_end - self.start,
            sec_per_tick=sec_per_tick,
            sec_per_kimg=sec_per_tick / done_nimg * 1000,
            maintenance_s=self.maintenance,
            cpumem_gb=cpu_memory_bytes() / 2**30,
            gpumem_gb=peak_gpu_memory_bytes(device) / 2**30,
            augment_p=augment_p,
            stats=stats,
        )

    def snapshot_due(self, cur_nimg: int) -> bool:
        return cur_nimg >= self.next_snapshot

    def snapshot_taken(self, cur_nimg: int) -> None:
        self.next_snapshot = (cur_nimg // self.snapshot_nimg + 1) * self.snapshot_nimg

    def start_tick(self, cur_nimg: int) -> None:
        """The next tick begins; the time since :meth:`end_tick` counts as maintenance."""
        self.first_tick = False
        self.tick_start_nimg, self.tick_start = cur_nimg, time.monotonic()
        self.maintenance = self.tick_start - self.tick_end


class StopRequest:
    """The stop flag (SIGTERM sets it) and the ranks' agreement on stopping."""

    def __init__(self) -> None:
        self._signal = threading.Event()

    def set(self) -> None:
        self._signal.set()

    def install_sigterm(self) -> Callable[[], None]:
        """SIGTERM sets the flag (main thread only); returns what restores the old handler."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, lambda signum, frame: self.set())
        return lambda: signal.signal(signal.SIGTERM, previous)

    def agree(self, deadline: float | None, ctx: DistContext) -> tuple[bool, bool]:
        """(stop requested, time is up), agreed by every rank with one all-reduce."""
        timed_out = deadline is not None and time.monotonic() >= deadline
        flags = torch.tensor([float(self._signal.is_set()), float(timed_out)])
        if ctx.distributed:
            flags = all_reduce_max(flags.to(ctx.device)).cpu()
        return bool(flags[0]), bool(flags[1])
