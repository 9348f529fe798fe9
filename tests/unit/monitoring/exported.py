"""What the operator and the trainer really export, and a small PromQL reader.

Dashboards and alerts may only name metrics that ``stylegan_operator.controller.metrics`` exports.
The names are collected from a live registry (a :class:`RunMetrics` and a
:class:`TrainerMetrics` fed with realistic samples, then ``generate_latest``), never from a
hand-kept list, so a renamed metric fails the monitoring tests at once.

:func:`run_sample` builds those samples. (The integration tests in
tests/integration/monitoring scrape the real operator instead.)
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families

from stylegan_operator.controller.metrics import RunMetrics, RunSample, TrainerMetrics
from stylegan_operator.cost.budget import Projection
from stylegan_operator.cost.spend import SpendSnapshot, TypeSpend

V100 = "nvidia-tesla-v100"
V100_PRICE_USD = 2.48
JPY_PER_USD = 109.0

# PromQL words that are neither functions nor metrics.
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
             "group_right", "bool", "offset", "inf", "nan"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_IDENTIFIER = re.compile(r"(?<![\w.:$])[a-zA-Z_:][\w:]*")
_CLOSING = {")": "(", "]": "[", "}": "{"}


def run_sample(
    namespace: str,
    run: str,
    *,
    hours: float,
    gpus: int = 8,
    kimg: float = 1200.0,
    target_kimg: float = 25000.0,
    phase: str = "Running",
    budget_usd: float | None = 5000.0,
    restarts: int = 1,
    currency: str = "JPY",
    checkpoint_age_s: float | None = 1200.0,
) -> RunSample:
    """A run that has held ``gpus`` V100s for ``hours``, priced like the DESIGN.md reference.

    Its newest checkpoint was written ``checkpoint_age_s`` before the wall clock (None: no
    checkpoint yet), so a live Prometheus sees it as fresh.
    """
    gpu_seconds = hours * 3600.0 * gpus
    cost_usd = gpu_seconds / 3600.0 * V100_PRICE_USD
    rate = JPY_PER_USD if currency == "JPY" else 1.0
    burn_usd = gpus * V100_PRICE_USD if phase == "Running" else 0.0
    spend = SpendSnapshot(
        gpu_seconds=gpu_seconds,
        node_seconds=gpu_seconds / gpus,
        cost_usd=cost_usd,
        cost=cost_usd * rate,
        currency=currency,
        burn_rate_usd_per_hour=burn_usd,
        burn_rate_per_hour=burn_usd * rate,
        by_type={V100: TypeSpend(V100, gpu_seconds, gpu_seconds / gpus, cost_usd,
                                 V100_PRICE_USD)},
        running_pods=1 if phase == "Running" else 0,
    )
    remaining_s = (target_kimg - kimg) * 34.0  # ~34 s/kimg: config-f 256x256 on 8 V100s
    projection = Projection(
        remaining_seconds=remaining_s,
        eta=datetime(2024, 5, 1, tzinfo=UTC),
        projected_cost=cost_usd + remaining_s / 3600.0 * burn_usd,
        remaining_cost=remaining_s / 3600.0 * burn_usd,
    )
    return RunSample(
        namespace=namespace, run=run, phase=phase, spend=spend, currency=currency,
        exchange_rate=rate, projection=projection, budget_usd=budget_usd, kimg=kimg,
        target_kimg=target_kimg, restarts=restarts, preemptions=restarts + 1,
        lost_work_cost_usd=0.4 * restarts * V100_PRICE_USD,
        last_checkpoint_time=(None if checkpoint_age_s is None
                              else datetime.now(UTC) - timedelta(seconds=checkpoint_age_s)),
    )


def trainer_update(metrics: TrainerMetrics, kimg: float) -> None:
    """Feed the trainer gauges one tick's worth of numbers."""
    metrics.update(kimg=kimg,
                   losses={"G": 2.1 + kimg * 1e-4, "D": 0.6, "r1": 0.05, "pl": 0.3},
                   augment_p=0.12, gpu_memory_bytes=9.5e9)


def exported_metric_names() -> set[str]:
    """Every sample name the operator's and the trainer's registries expose."""
    run_metrics, trainer = RunMetrics(), TrainerMetrics()
    run_metrics.update(run_sample("team-a", "faces", hours=2.0))
    trainer_update(trainer, kimg=1200.0)
    names: set[str] = set()
    for text in (run_metrics.exposition(), trainer.exposition()):
        for family in text_string_to_metric_families(text.decode()):
            names.update(sample.name for sample in family.samples)
    return names


def unbalanced(expr: str) -> str | None:
    """Why the brackets of ``expr`` do not pair up (strings ignored), or None when they do."""
    stack: list[str] = []
    for position, char in enumerate(_STRING.sub('""', expr)):
        if char in "([{":
            stack.append(char)
        elif char in _CLOSING:
            if not stack or stack[-1] != _CLOSING[char]:
                return f"unexpected {char!r} at {position}"
            stack.pop()
    return f"unclosed {''.join(stack)!r}" if stack else None


def metric_names_in(expr: str) -> set[str]:
    """The metric names an expression selects (not its functions, keywords or labels)."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    # Label lists of by/without/on/ignoring/group_*.
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        word = match.group()
        following = text[match.end():].lstrip()
        if following.startswith("(") or word.lower() in _KEYWORDS:
            continue  # a function call or an operator word
        names.add(word)
    return names
