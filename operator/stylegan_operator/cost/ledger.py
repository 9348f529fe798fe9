"""The spend ledger: a run's spend that survives pod deletion and operator restarts.

:class:`SpendLedger` folds each listing of a run's pods into per-type totals and keeps the
pods still running, so that a pod deleted between two reconciles is still counted; it
round-trips through ``status.costLedger``. Separate from ``spend``, which prices one
listing: this is the state kept across listings, and its serialised form.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from stylegan_operator.cost.metering import PodUsage, _get, _time
from stylegan_operator.cost.pricing import CPU, CostError, _finite
from stylegan_operator.cost.spend import RunPricing, SpendSnapshot, _Totals

__all__ = ["SpendLedger"]

LEDGER_VERSION = 1
MAX_COUNTED_UIDS = 2000
"""Closed pods remembered by uid; the oldest are forgotten past this (their pods are long
gone from the API by then, so they cannot be seen, and counted, again)."""


@dataclass
class _OpenPod:
    gpu_type: str
    spot: bool
    units: float
    start: datetime
    seen: datetime
    """Last time the pod was listed running: its usage was priced up to here, so it never
    closes earlier (see :meth:`SpendLedger._close`)."""
    deadline: datetime | None
    """Its deletionTimestamp, when seen terminating."""


@dataclass
class SpendLedger:
    """Spend of a run accumulated across reconciles, serialisable into the run's status.

    * Finished pods are *closed* once, keyed by uid, into per-type totals; a uid never
      counts twice.
    * Running pods are *open*: remembered (type, units, start, last seen) so that a pod
      deleted and gone before the next reconcile still counts up to its deletion time when
      one was seen, else up to the last time it was listed. The operator calls
      :meth:`close` just before it deletes pods itself, which makes its own deletions exact.
    * A pod closes at the later of its own end and the last time it was seen running. While
      it runs it is priced up to ``now`` (to the microsecond), but its end is
      ``finishedAt``, whole seconds, and the kubelet reports it late: closing at
      ``finishedAt`` alone would give back up to a few seconds of burn already reported,
      and a run's cost would drop when a pod ends. The open entry's ``seen`` is what was
      priced, so closing never goes below it (at most the status lag is over-counted).
    * :meth:`to_status` / :meth:`from_status` round-trip through a small JSON mapping, so
      an operator restart loses nothing.

    Do not call :meth:`observe` with a listing that failed: the pods missing from it would
    be closed early.
    """

    totals: dict[str, list[float]] = field(default_factory=dict)
    """gpu_type -> [unit_seconds, node_seconds, cost_usd, last unit price USD]."""
    counted: list[str] = field(default_factory=list)
    open: dict[str, _OpenPod] = field(default_factory=dict)

    def _close(self, uid: str, usage: PodUsage, pricing: RunPricing) -> None:
        if uid in self.counted:
            return
        opened = self.open.pop(uid, None)
        if opened is not None and opened.seen > usage.end:
            usage = replace(usage, end=opened.seen)  # never below what was already reported
        row = self.totals.setdefault(usage.gpu_type, [0.0, 0.0, 0.0, 0.0])
        row[0] += usage.unit_seconds
        row[1] += usage.seconds
        row[2] += pricing.cost_usd(usage)
        row[3] = pricing.unit_price(usage.gpu_type, usage.spot)
        self.counted.append(uid)
        del self.counted[:-MAX_COUNTED_UIDS]

    def close(self, pod: Mapping[str, Any], now: datetime, pricing: RunPricing) -> None:
        """Count a pod as ended at ``now`` (call it before deleting the pod); never earlier
        than the last time :meth:`observe` priced it running."""
        usage = pricing.usage(pod, now)
        if usage is not None:
            ended = replace(usage, end=min(usage.end, now), running=False)
            self._close(ended.uid, ended, pricing)

    def observe(
        self, pods: Iterable[Mapping[str, Any]], now: datetime, pricing: RunPricing
    ) -> SpendSnapshot:
        """Fold the run's current pods in and return the run's whole spend so far."""
        now = _time(now, "now")  # type: ignore[assignment]
        live = _Totals()
        listed: set[str] = set()
        for pod in pods:
            usage = pricing.usage(pod, now)
            if usage is None:
                continue
            listed.add(usage.uid)
            if usage.uid in self.counted:
                continue
            if not usage.running:
                self._close(usage.uid, usage, pricing)
                continue
            deadline = _time(
                _get(_get(pod, "metadata", {}), "deletionTimestamp"), "deletionTimestamp"
            )
            self.open[usage.uid] = _OpenPod(
                usage.gpu_type, usage.spot, usage.units, usage.start, now, deadline
            )
            live.add_usage(usage, pricing)
        for uid in [u for u in self.open if u not in listed]:
            self._close(uid, self._vanished_usage(uid, now), pricing)
        for key, row in self.totals.items():
            live.add(key, row[0], row[1], row[2], row[3])
        return live.snapshot(pricing)

    def _vanished_usage(self, uid: str, now: datetime) -> PodUsage:
        entry = self.open[uid]
        end = min(entry.deadline, now) if entry.deadline else entry.seen
        return PodUsage(
            uid,
            uid,
            entry.gpu_type,
            entry.spot,
            entry.units,
            entry.start,
            max(end, entry.start),
            False,
        )

    def to_status(self) -> dict[str, Any]:
        """A small JSON-safe mapping for ``status.costLedger``."""
        return {
            "v": LEDGER_VERSION,
            "totals": {k: [float(x) for x in row] for k, row in sorted(self.totals.items())},
            "counted": list(self.counted),
            "open": {
                uid: {
                    "type": p.gpu_type,
                    "spot": p.spot,
                    "units": p.units,
                    "start": p.start.isoformat(),
                    "seen": p.seen.isoformat(),
                    **({"deadline": p.deadline.isoformat()} if p.deadline else {}),
                }
                for uid, p in sorted(self.open.items())
            },
        }

    @classmethod
    def from_status(cls, data: Mapping[str, Any] | None) -> SpendLedger:
        """The ledger :meth:`to_status` wrote (an empty one for None)."""
        if not data:
            return cls()
        where = "status.costLedger"
        if not isinstance(data, Mapping) or data.get("v") != LEDGER_VERSION:
            raise CostError(f"{where}: expected a version {LEDGER_VERSION} ledger, got {data!r}")
        totals: dict[str, list[float]] = {}
        for key, row in (data.get("totals") or {}).items():
            if not isinstance(row, list | tuple) or len(row) != 4:
                raise CostError(f"{where}.totals[{key!r}]: expected 4 numbers")
            totals[str(key)] = [
                _finite(x, f"{where}.totals[{key!r}][{i}]") for i, x in enumerate(row)
            ]
        opened: dict[str, _OpenPod] = {}
        for uid, entry in (data.get("open") or {}).items():
            at = f"{where}.open[{uid!r}]"
            start = _time(entry.get("start"), f"{at}.start")
            seen = _time(entry.get("seen"), f"{at}.seen")
            if start is None or seen is None:
                raise CostError(f"{at}: start and seen are required")
            opened[str(uid)] = _OpenPod(
                gpu_type=str(entry.get("type", CPU)),
                spot=bool(entry.get("spot", False)),
                units=_finite(entry.get("units", 0), f"{at}.units"),
                start=start,
                seen=seen,
                deadline=_time(entry.get("deadline"), f"{at}.deadline"),
            )
        counted = [str(u) for u in data.get("counted") or []]
        return cls(totals=totals, counted=counted, open=opened)
