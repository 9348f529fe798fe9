"""Cost accounting: prices, pod lifetimes -> GPU-seconds and money, ledger, projection."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stylegan_operator.cost.budget import (
    BUDGET_OK,
    BUDGET_OVER,
    BUDGET_PROJECTED_OVER,
    budget_state,
    lost_work_cost,
    project,
)
from stylegan_operator.cost.ledger import SpendLedger
from stylegan_operator.cost.metering import pod_usage
from stylegan_operator.cost.pricing import (
    DEFAULT_CATALOG,
    CostError,
    PriceCatalog,
    canonical_gpu_type,
    format_duration,
    format_money,
    format_progress,
)
from stylegan_operator.cost.spend import RunPricing, pod_gpu_seconds

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
ACCEL = "cloud.google.com/gke-accelerator"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def make_pod(
    uid: str,
    *,
    gpus: int | str = 1,
    gpu_type: str | None = "nvidia-tesla-v100",
    bound: datetime | None = None,
    started: datetime | None = None,
    finished: datetime | None = None,
    phase: str = "Running",
    deletion: datetime | None = None,
    node: str | None = None,
    cpu: str | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A pod as the API's JSON would show it."""
    limits: dict[str, Any] = {}
    if gpus:
        limits["nvidia.com/gpu"] = gpus
    if cpu:
        limits["cpu"] = cpu
    selector = dict(labels or {})
    if gpu_type:
        selector[ACCEL] = gpu_type
    conditions = []
    if bound is not None:
        conditions.append(
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": iso(bound)}
        )
    else:
        conditions.append(
            {"type": "PodScheduled", "status": "False", "lastTransitionTime": iso(NOW)}
        )
    state: dict[str, Any] = {"waiting": {"reason": "ContainerCreating"}}
    if finished is not None:
        state = {"terminated": {"exitCode": 0, "finishedAt": iso(finished)}}
    elif started is not None:
        state = {"running": {"startedAt": iso(started)}}
    status: dict[str, Any] = {"phase": phase, "conditions": conditions}
    if started is not None:
        status["startTime"] = iso(started)
    if bound is not None:
        status["containerStatuses"] = [{"name": "trainer", "state": state}]
    metadata: dict[str, Any] = {"uid": uid, "name": f"pod-{uid}"}
    if deletion is not None:
        metadata["deletionTimestamp"] = iso(deletion)
    spec: dict[str, Any] = {
        "nodeSelector": selector,
        "containers": [{"name": "trainer", "resources": {"limits": limits}}],
    }
    if node:
        spec["nodeName"] = node
    return {"metadata": metadata, "spec": spec, "status": status}


def hours(h: float) -> timedelta:
    return timedelta(hours=h)


# ----------------------------------------------------------------------------- catalog


def test_defaults_carry_the_reference_v100_price_and_a_source_for_every_type() -> None:
    assert DEFAULT_CATALOG.unit_price("V100") == 2.48
    for key, price in DEFAULT_CATALOG.prices.items():
        assert price.source, key
        assert price.spot <= price.on_demand, key


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("V100", "nvidia-tesla-v100"),
        ("nvidia-tesla-v100", "nvidia-tesla-v100"),
        ("Tesla-V100-SXM2-16GB", "nvidia-tesla-v100"),
        ("A100", "nvidia-tesla-a100"),
        ("NVIDIA-A100-SXM4-80GB", "nvidia-a100-80gb"),
        ("NVIDIA H100 80GB HBM3", "nvidia-h100-80gb"),
        ("h100", "nvidia-h100-80gb"),
        ("L4", "nvidia-l4"),
        ("Tesla T4", "nvidia-tesla-t4"),
        ("cpu", "cpu"),
        ("MI300X", "mi300x"),
    ],
)
def test_gpu_type_names_resolve_to_catalog_keys(name: str, key: str) -> None:
    assert canonical_gpu_type(name) == key


def test_catalog_from_helm_values_merges_over_defaults() -> None:
    catalog = PriceCatalog.from_dict(
        {
            "cost": {
                "currency": "eur",
                "exchangeRates": {"EUR": 0.9},
                "prices": {
                    "V100": {"onDemand": 3.0},
                    "nvidia-l4": 0.7,
                    "mi300x": {"onDemand": 4.0, "nodeOnDemand": 1.5},
                },
            }
        }
    )
    assert catalog.currency == "EUR"
    assert catalog.unit_price("nvidia-tesla-v100") == 3.0
    assert catalog.unit_price("V100", spot=True) == 0.74  # untouched field kept
    assert catalog.unit_price("L4", spot=True) == 0.7  # short form: one price for both
    assert catalog.unit_price("mi300x", spot=True) == 4.0  # new type: spot = on-demand
    assert catalog.node_price("mi300x") == 1.5
    assert catalog.convert(10.0, "EUR") == pytest.approx(9.0)
    assert catalog.unit_price("A100") == DEFAULT_CATALOG.unit_price("A100")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"prices": {"V100": 0}}, "cost.prices['V100']"),
        ({"prices": {"V100": {"onDemand": -1}}}, "onDemand"),
        ({"prices": {"V100": {"spot": float("nan")}}}, "spot"),
        ({"prices": {"new-gpu": {"spot": 1.0}}}, "onDemand: required"),
        ({"exchangeRates": {"JPY": 0}}, "cost.exchangeRates['JPY']"),
        ({"currency": "XYZ"}, "unknown currency"),
        ({"currency": "dollars"}, "3-letter"),
        ({"pricez": {}}, "cost: unknown key 'pricez'; valid: currency, exchangeRates, prices"),
    ],
)
def test_bad_catalog_values_name_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(CostError, match=field.replace("[", r"\[").replace("]", r"\]")):
        PriceCatalog.from_dict(data)


def test_unknown_gpu_type_without_a_price_names_field_and_known_types() -> None:
    pod = make_pod("x", gpu_type="mi300x", bound=NOW - hours(1))
    with pytest.raises(CostError) as info:
        pod_gpu_seconds([pod], NOW)
    message = str(info.value)
    assert "spec.resources.gpuType" in message
    assert "nvidia-tesla-v100" in message and "mi300x" in message


def test_a_run_price_override_covers_unknown_types_and_converts_its_currency() -> None:
    pod = make_pod("x", gpus=2, gpu_type="mi300x", bound=NOW - hours(3))
    pricing = RunPricing.from_spec(
        DEFAULT_CATALOG, "mi300x", {"pricePerGpuHour": 436, "currency": "JPY"}
    )
    snap = pod_gpu_seconds([pod], NOW, pricing)
    assert snap.cost_usd == pytest.approx(2 * 3 * 436 / 109)
    assert snap.currency == "JPY"
    assert snap.cost == pytest.approx(2 * 3 * 436)


def test_the_node_price_override_and_a_pydantic_style_spec_are_read() -> None:
    class FakeCostSpec:
        def model_dump(self) -> dict[str, Any]:
            return {"price_per_gpu_hour": 2.0, "price_per_node_hour": 0.5, "currency": "USD"}

    pricing = RunPricing.from_spec(DEFAULT_CATALOG, "V100", FakeCostSpec())
    pod = make_pod("n", gpus=4, bound=NOW - hours(2))
    assert pod_gpu_seconds([pod], NOW, pricing).cost_usd == pytest.approx(2 * (4 * 2.0 + 0.5))


@pytest.mark.parametrize(
    "spec",
    [
        {"pricePerGpuHour": 0},
        {"pricePerGpuHour": -2.0},
        {"pricePerNodeHour": -1},
        {"currency": "ABC"},
    ],
)
def test_bad_run_cost_spec_is_refused(spec: dict[str, Any]) -> None:
    with pytest.raises(CostError, match="spec.cost"):
        RunPricing.from_spec(DEFAULT_CATALOG, "V100", spec)


def test_money_and_durations_print_like_the_reference() -> None:
    assert format_money(8 * 234 * 2.48, "USD") == "4,642.56 USD"
    assert format_money(DEFAULT_CATALOG.convert(4642.56, "JPY"), "JPY") == "506,039 JPY"
    assert format_duration(234 * 3600) == "9d 18h"
    assert format_duration((69 * 24 + 23) * 3600) == "69d 23h"
    assert format_duration(4 * 3600 + 5 * 60) == "4h 05m"
    assert format_duration(90) == "1m 30s"
    with pytest.raises(CostError):
        format_money(float("nan"), "USD")
    with pytest.raises(CostError):
        format_duration(-1)


def test_progress_is_the_share_of_the_target_held_within_0_and_100_percent() -> None:
    assert format_progress(5123.4, 25000) == "20.5%"
    assert format_progress(0, 25000) == "0.0%"
    assert format_progress(25004, 25000) == "100.0%"  # a last tick past the target
    with pytest.raises(CostError):
        format_progress(10, 0)


# ----------------------------------------------------------------------------- measured spend


def test_mixed_pods_cost_what_their_lifetimes_say() -> None:
    pods = [
        # 8 V100s bound at 10:00 and finished at 12:00 (now): 2 h.
        make_pod(
            "v",
            gpus=8,
            bound=NOW - hours(2),
            started=NOW - hours(1.9),
            finished=NOW - hours(0),
            phase="Succeeded",
        ),
        # A failed A100 attempt: 4 GPUs for 30 min, an hour ago.
        make_pod(
            "a",
            gpus=4,
            gpu_type="nvidia-tesla-a100",
            bound=NOW - hours(1.5),
            started=NOW - hours(1.45),
            finished=NOW - hours(1.0),
            phase="Failed",
        ),
        # A T4 still running for 1 h.
        make_pod(
            "t",
            gpus="1",
            gpu_type="nvidia-tesla-t4",
            bound=NOW - hours(1),
            started=NOW - hours(0.99),
        ),
        # Bound 15 min ago, image still pulling: the node is rented.
        make_pod("l", gpus=1, gpu_type="nvidia-l4", bound=NOW - hours(0.25), phase="Pending"),
        # Never bound: costs nothing.
        make_pod("p", gpus=8, bound=None, phase="Pending"),
    ]
    snap = pod_gpu_seconds(pods, NOW)
    expected_usd = 8 * 2 * 2.48 + 4 * 0.5 * 2.939 + 1 * 1 * 0.35 + 1 * 0.25 * 0.56004
    assert snap.cost_usd == pytest.approx(expected_usd, rel=0.01)
    assert snap.gpu_seconds == pytest.approx((16 + 2 + 1 + 0.25) * 3600, rel=0.01)
    assert snap.node_seconds == pytest.approx((2 + 0.5 + 1 + 0.25) * 3600, rel=0.01)
    assert snap.by_type["nvidia-tesla-a100"].unit_seconds == pytest.approx(2 * 3600)
    assert set(snap.by_type) == {
        "nvidia-tesla-v100",
        "nvidia-tesla-a100",
        "nvidia-tesla-t4",
        "nvidia-l4",
    }
    # Burning now: the running T4 and the pending-but-bound L4.
    assert snap.burn_rate_usd_per_hour == pytest.approx(0.35 + 0.56004)
    assert snap.running_pods == 2
    status = snap.to_status()
    assert status["gpuHours"] == pytest.approx(19.25, rel=0.01)
    assert status["currency"] == "USD"


def test_start_time_is_used_when_there_is_no_scheduled_condition() -> None:
    pod = make_pod("s", gpus=2, bound=None, started=NOW - hours(1))
    pod["status"]["conditions"] = []
    usage = pod_usage(pod, NOW)
    assert usage is not None and usage.unit_seconds == pytest.approx(7200)


def test_a_terminating_pod_costs_until_its_deletion_time_and_never_past_now() -> None:
    ended = make_pod("d", bound=NOW - hours(2), started=NOW - hours(2), deletion=NOW - hours(1))
    assert pod_usage(ended, NOW).seconds == pytest.approx(3600)  # type: ignore[union-attr]
    grace = make_pod("g", bound=NOW - hours(2), started=NOW - hours(2), deletion=NOW + hours(1))
    usage = pod_usage(grace, NOW)
    assert usage is not None and usage.seconds == pytest.approx(7200) and usage.running


def test_client_to_dict_snake_case_with_datetimes_matches_raw_json() -> None:
    raw = make_pod(
        "k",
        gpus=4,
        bound=NOW - hours(3),
        started=NOW - hours(3),
        finished=NOW - hours(1),
        phase="Succeeded",
        node="n1",
    )
    snake = {
        "metadata": {"uid": "k", "name": "pod-k", "deletion_timestamp": None},
        "spec": {
            "node_name": "n1",
            "node_selector": {ACCEL: "nvidia-tesla-v100"},
            "containers": [{"resources": {"limits": {"nvidia.com/gpu": "4"}}}],
            "init_containers": None,
        },
        "status": {
            "phase": "Succeeded",
            "start_time": NOW - hours(3),
            "conditions": [
                {"type": "PodScheduled", "status": "True", "last_transition_time": NOW - hours(3)},
            ],
            "container_statuses": [
                {"state": {"terminated": {"finished_at": NOW - hours(1)}, "running": None}}
            ],
        },
    }
    assert pod_gpu_seconds([snake], NOW) == pod_gpu_seconds([raw], NOW)


def test_the_nodes_real_labels_win_over_the_selector_and_mark_spot() -> None:
    pod = make_pod("n", gpus=8, bound=NOW - hours(1), node="gpu-node-1")
    labels = {
        "gpu-node-1": {
            "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB",
            "cloud.google.com/gke-spot": "true",
        }
    }
    pod["spec"]["nodeSelector"] = {}
    usage = pod_usage(pod, NOW, node_labels=labels)
    assert usage is not None
    assert (usage.gpu_type, usage.spot) == ("nvidia-a100-80gb", True)
    snap = pod_gpu_seconds([pod], NOW, RunPricing(node_labels=labels))
    assert snap.cost_usd == pytest.approx(8 * DEFAULT_CATALOG.unit_price("A100-80GB", spot=True))


def test_spot_selector_and_node_price_are_applied() -> None:
    catalog = PriceCatalog.from_dict({"prices": {"V100": {"nodeOnDemand": 0.5, "nodeSpot": 0.2}}})
    pod = make_pod("s", gpus=4, bound=NOW - hours(2), labels={"cloud.google.com/gke-spot": "true"})
    snap = pod_gpu_seconds([pod], NOW, RunPricing(catalog=catalog))
    assert snap.cost_usd == pytest.approx(2 * (4 * 0.74 + 0.2))


def test_init_containers_and_cpu_pods_are_priced_by_what_is_reserved() -> None:
    pod = make_pod("i", gpus=2, bound=NOW - hours(1))
    pod["spec"]["initContainers"] = [{"resources": {"limits": {"nvidia.com/gpu": 4}}}]
    assert pod_usage(pod, NOW).units == 4  # type: ignore[union-attr]
    cpu = make_pod("c", gpus=0, gpu_type=None, cpu="1500m", bound=NOW - hours(2))
    snap = pod_gpu_seconds([cpu], NOW)
    assert snap.gpu_seconds == 0
    assert snap.by_type["cpu"].unit_seconds == pytest.approx(1.5 * 7200)
    assert snap.cost_usd == pytest.approx(1.5 * 2 * DEFAULT_CATALOG.unit_price("cpu"))


@pytest.mark.parametrize("cpu", ["1500m", "1.5", "15e-1", "1500000u"])
def test_every_spelling_of_a_quantity_reads_the_same(cpu: str) -> None:
    """Limits are read by the kubernetes client's parse_quantity, exponents and all."""
    pod = make_pod("c", gpus=0, gpu_type=None, cpu=cpu, bound=NOW - hours(1))
    assert pod_usage(pod, NOW).units == pytest.approx(1.5)  # type: ignore[union-attr]


def test_a_gpu_pod_with_no_type_anywhere_names_the_field() -> None:
    pod = make_pod("u", gpus=1, gpu_type=None, bound=NOW - hours(1))
    with pytest.raises(CostError, match="spec.resources.gpuType"):
        pod_gpu_seconds([pod], NOW)
    assert pod_gpu_seconds([pod], NOW, RunPricing(gpu_type="T4")).cost_usd == pytest.approx(0.35)


def test_bad_quantities_and_times_name_the_field() -> None:
    pod = make_pod("q", gpus="lots", bound=NOW - hours(1))
    with pytest.raises(CostError, match=r"spec.containers\[0\].resources.limits"):
        pod_gpu_seconds([pod], NOW)
    pod = make_pod("t", bound=NOW - hours(1))
    pod["status"]["conditions"][0]["lastTransitionTime"] = "yesterday"
    with pytest.raises(CostError, match="PodScheduled"):
        pod_gpu_seconds([pod], NOW)


# ----------------------------------------------------------------------------- ledger


def test_the_ledger_never_counts_a_pod_twice_and_keeps_deleted_pods() -> None:
    pricing = RunPricing()
    ledger = SpendLedger()
    finished = make_pod("f", gpus=8, bound=NOW - hours(5), finished=NOW - hours(4), phase="Failed")
    running = make_pod("r", gpus=8, bound=NOW - hours(3), started=NOW - hours(3))
    first = ledger.observe([finished, running], NOW - hours(1), pricing)
    assert first.gpu_seconds == pytest.approx(8 * (1 + 2) * 3600)
    again = ledger.observe([finished, running], NOW - hours(1), pricing)
    assert again.cost_usd == pytest.approx(first.cost_usd)
    # Both pods are gone (old attempt garbage-collected, running one deleted unseen):
    # the finished one stays counted, the running one counts up to when it was last seen.
    later = ledger.observe([], NOW, pricing)
    assert later.gpu_seconds == pytest.approx(8 * (1 + 2) * 3600)
    assert later.burn_rate_usd_per_hour == 0
    # Seeing the finished pod again (a late listing) changes nothing.
    assert ledger.observe([finished], NOW, pricing).cost_usd == pytest.approx(later.cost_usd)


def test_a_pod_seen_terminating_counts_to_its_deletion_time_once_gone() -> None:
    pricing = RunPricing()
    ledger = SpendLedger()
    pod = make_pod(
        "g", gpus=2, bound=NOW - hours(2), started=NOW - hours(2), deletion=NOW + hours(0.5)
    )
    ledger.observe([pod], NOW, pricing)
    gone = ledger.observe([], NOW + hours(2), pricing)
    assert gone.gpu_seconds == pytest.approx(2 * 2.5 * 3600)


def test_close_before_delete_is_exact() -> None:
    pricing = RunPricing()
    ledger = SpendLedger()
    pod = make_pod("c", gpus=4, bound=NOW - hours(1), started=NOW - hours(1))
    ledger.observe([pod], NOW - hours(0.5), pricing)
    ledger.close(pod, NOW, pricing)
    snap = ledger.observe([], NOW + hours(3), pricing)
    assert snap.gpu_seconds == pytest.approx(4 * 3600)


def test_the_ledger_survives_a_json_round_trip_through_the_status() -> None:
    pricing = RunPricing(currency="GBP")
    ledger = SpendLedger()
    pods = [
        make_pod("a", gpus=8, bound=NOW - hours(6), finished=NOW - hours(5), phase="Failed"),
        make_pod(
            "b", gpus=8, bound=NOW - hours(4), started=NOW - hours(4), deletion=NOW + hours(1)
        ),
        make_pod("c", gpus=8, bound=NOW - hours(2), started=NOW - hours(2)),
    ]
    before = ledger.observe(pods, NOW, pricing)
    status = json.loads(json.dumps(ledger.to_status()))
    assert len(json.dumps(status)) < 2000  # small enough for a status field
    restored = SpendLedger.from_status(status)
    assert restored == ledger
    after = restored.observe(pods, NOW, pricing)
    assert after == before
    assert after.currency == "GBP" and after.cost == pytest.approx(after.cost_usd * 0.79)
    # The operator restarts while pod "c" vanished: it still counts up to when last seen.
    assert SpendLedger.from_status(status).observe(pods[:2], NOW, pricing).gpu_seconds == (
        pytest.approx(before.gpu_seconds)
    )


def test_a_bad_status_ledger_is_refused() -> None:
    with pytest.raises(CostError, match="status.costLedger"):
        SpendLedger.from_status({"v": 99})
    with pytest.raises(CostError, match="totals"):
        SpendLedger.from_status({"v": 1, "totals": {"x": [1, 2, -3, 4]}})
    assert SpendLedger.from_status(None) == SpendLedger()


def test_a_pod_that_ends_closes_no_earlier_than_it_was_last_priced_running() -> None:
    """finishedAt has whole seconds and the kubelet reports it late: while the operator
    still saw the pod running it priced it to the microsecond, past its finishedAt."""
    pricing = RunPricing()
    ledger = SpendLedger()
    bound = NOW - hours(1)
    running = make_pod("p", gpus=8, bound=bound, started=bound)
    last_seen = NOW + timedelta(seconds=2, microseconds=900_000)
    before = ledger.observe([running], last_seen, pricing)
    assert before.gpu_seconds == pytest.approx(8 * 3602.9)
    ended = make_pod("p", gpus=8, bound=bound, finished=NOW, phase="Succeeded")
    after = ledger.observe([ended], last_seen + timedelta(seconds=5), pricing)
    assert after.cost_usd >= before.cost_usd
    assert after.gpu_seconds == pytest.approx(8 * 3602.9)  # closed at last_seen, not NOW
    assert after.burn_rate_usd_per_hour == 0 and not ledger.open
    # Counted once: listed again, then gone, then through an operator restart.
    again = ledger.observe([ended], last_seen + hours(1), pricing)
    gone = SpendLedger.from_status(json.loads(json.dumps(ledger.to_status()))).observe(
        [], last_seen + hours(2), pricing)
    assert again.cost_usd == after.cost_usd == gone.cost_usd


def test_a_pod_that_ran_past_its_last_sighting_closes_at_its_own_end() -> None:
    pricing = RunPricing()
    ledger = SpendLedger()
    bound = NOW - hours(1)
    ledger.observe([make_pod("p", gpus=2, bound=bound, started=bound)], NOW, pricing)
    ended = make_pod("p", gpus=2, bound=bound, finished=NOW + hours(0.5), phase="Failed")
    assert ledger.observe([ended], NOW + hours(2), pricing).gpu_seconds == pytest.approx(
        2 * 1.5 * 3600)


def test_close_before_delete_never_goes_below_the_last_observation() -> None:
    pricing = RunPricing()
    ledger = SpendLedger()
    pod = make_pod("c", gpus=4, bound=NOW - hours(1), started=NOW - hours(1))
    seen = ledger.observe([pod], NOW, pricing)
    ledger.close(pod, NOW - timedelta(seconds=3), pricing)  # a clock a little behind
    assert ledger.observe([], NOW + hours(1), pricing).cost_usd == pytest.approx(seen.cost_usd)


# ----------------------------------------------------------------------------- projection


def test_projection_is_remaining_kimg_times_sec_per_kimg_at_current_nodes() -> None:
    got = project(5000, 25000, 17.55, 1, 8, 2.48, 100.0, now=NOW)
    seconds = 20000 * 17.55
    assert got.remaining_seconds == pytest.approx(seconds)
    assert got.eta == NOW + timedelta(seconds=seconds)
    assert got.projected_cost == pytest.approx(100 + seconds / 3600 * 8 * 2.48)
    # Measured on 1 node, now 2: half the time, the same GPU-hours.
    two = project(5000, 25000, 17.55, 2, 8, 2.48, 100.0, now=NOW, measured_nodes=1)
    assert two.remaining_seconds == pytest.approx(seconds / 2)
    assert two.projected_cost == pytest.approx(got.projected_cost)


def test_projection_before_a_speed_is_known_and_after_the_end() -> None:
    unknown = project(0, 25000, None, 1, 8, 2.48, 5.0)
    assert (unknown.remaining_seconds, unknown.eta, unknown.projected_cost) == (None, None, 5.0)
    done = project(26000, 25000, 10.0, 1, 8, 2.48, 50.0, now=NOW)
    assert done.remaining_seconds == 0 and done.projected_cost == 50.0


@pytest.mark.parametrize(
    "args",
    [
        (-1, 100, 1.0, 1, 1, 1.0, 0.0),
        (0, 0, 1.0, 1, 1, 1.0, 0.0),
        (0, 100, float("nan"), 1, 1, 1.0, 0.0),
        (0, 100, 1.0, 0, 1, 1.0, 0.0),
        (0, 100, 1.0, 1, 1, 0.0, 0.0),
        (0, 100, 1.0, 1, 1, 1.0, -5.0),
    ],
)
def test_projection_refuses_bad_numbers(args: tuple[Any, ...]) -> None:
    with pytest.raises(CostError):
        project(*args)


def test_budget_states() -> None:
    assert budget_state(10, 50, 100) == BUDGET_OK
    assert budget_state(10, 150, 100) == BUDGET_PROJECTED_OVER
    assert budget_state(100, 150, 100) == BUDGET_OVER
    assert budget_state(10, None, 100) == BUDGET_OK
    assert budget_state(10, 1e9, None) == BUDGET_OK
    for bad in (0, -1, float("inf")):
        with pytest.raises(CostError, match="spec.cost.budget"):
            budget_state(1, 2, bad)


def test_lost_work_is_kimg_since_checkpoint_times_speed_times_price() -> None:
    assert lost_work_cost(40, 17.55, 8, 2.48) == pytest.approx(40 * 17.55 / 3600 * 8 * 2.48)
    with_nodes = lost_work_cost(40, 10, 16, 2.0, price_per_node_hour=1.0, nodes=2)
    assert with_nodes == pytest.approx(400 / 3600 * (32 + 2))


# ----------------------------------------------------------------------------- properties

_moments = st.integers(min_value=-30 * 86400, max_value=86400).map(
    lambda s: NOW + timedelta(seconds=s)
)


@st.composite
def random_pods(draw: st.DrawFn) -> dict[str, Any]:
    bound = draw(st.one_of(st.none(), _moments))
    finished = draw(st.one_of(st.none(), _moments))
    deletion = draw(st.one_of(st.none(), _moments))
    return make_pod(
        draw(st.text("abcdef0123456789", min_size=1, max_size=6)),
        gpus=draw(st.integers(min_value=0, max_value=16)),
        gpu_type=draw(st.sampled_from(["V100", "nvidia-tesla-a100", "nvidia-h100-80gb", "L4"])),
        bound=bound,
        started=draw(st.one_of(st.none(), _moments)),
        finished=finished,
        phase=draw(st.sampled_from(["Pending", "Running", "Succeeded", "Failed", "Unknown"])),
        deletion=deletion,
        cpu=draw(st.sampled_from([None, "250m", "2"])),
        labels=draw(st.sampled_from([{}, {"cloud.google.com/gke-spot": "true"}])),
    )


def _all_finite_non_negative(snap: Any) -> bool:
    numbers = [
        snap.gpu_seconds,
        snap.node_seconds,
        snap.cost_usd,
        snap.cost,
        snap.burn_rate_usd_per_hour,
        snap.burn_rate_per_hour,
    ]
    for spend in snap.by_type.values():
        numbers += [spend.unit_seconds, spend.node_seconds, spend.cost_usd]
    return all(math.isfinite(x) and x >= 0 for x in numbers)


@settings(max_examples=150, deadline=None)
@given(st.lists(random_pods(), max_size=8), st.sampled_from(["USD", "EUR", "GBP", "JPY"]))
def test_spend_is_never_nan_or_negative(pods: list[dict[str, Any]], currency: str) -> None:
    snap = pod_gpu_seconds(pods, NOW, RunPricing(currency=currency))
    assert _all_finite_non_negative(snap)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(random_pods(), max_size=5), min_size=1, max_size=4))
def test_ledger_spend_never_goes_down_or_turns_nan(listings: list[list[dict[str, Any]]]) -> None:
    pricing = RunPricing()
    ledger = SpendLedger()
    previous = 0.0
    for step, pods in enumerate(listings):
        moment = NOW + timedelta(hours=step)
        snap = ledger.observe(pods, moment, pricing)
        assert _all_finite_non_negative(snap)
        closed = sum(row[2] for row in ledger.totals.values())
        assert closed >= previous - 1e-9
        previous = closed
        ledger = SpendLedger.from_status(json.loads(json.dumps(ledger.to_status())))


@settings(max_examples=150, deadline=None)
@given(
    st.floats(0, 1e6),
    st.floats(1e-3, 1e6),
    st.one_of(st.none(), st.floats(0, 1e5)),
    st.integers(1, 64),
    st.integers(0, 16),
    st.floats(1e-3, 100),
    st.floats(0, 1e7),
)
def test_projection_is_never_nan_or_below_spent(
    done: float,
    total: float,
    speed: float | None,
    nodes: int,
    gpus: int,
    price: float,
    spent: float,
) -> None:
    got = project(done, total, speed, nodes, gpus, price, spent, now=NOW)
    assert math.isfinite(got.projected_cost) and got.projected_cost >= spent
    assert got.remaining_seconds is None or got.remaining_seconds >= 0


def _never_down(before: float, after: float) -> bool:
    return after >= before - 1e-9 * max(1.0, before)


@settings(max_examples=120, deadline=None)
@given(
    bound_s=st.integers(min_value=0, max_value=7200),
    running_gaps=st.lists(st.floats(0.001, 900.0), min_size=1, max_size=5),
    finish_lag=st.floats(-30.0, 30.0),
    ended_gaps=st.lists(st.floats(0.0, 900.0), min_size=1, max_size=3),
    deleted=st.booleans(),
    restarts=st.booleans(),
)
def test_cost_is_monotonic_across_the_running_to_ended_transition(
    bound_s: int,
    running_gaps: list[float],
    finish_lag: float,
    ended_gaps: list[float],
    deleted: bool,
    restarts: bool,
) -> None:
    """Observed running at sub-second moments, then ended with a whole-second finishedAt
    anywhere around the last sighting (a late kubelet report puts it before): the spend
    never drops, and the pod is counted once, up to max(its end, last seen running)."""
    pricing = RunPricing()
    ledger = SpendLedger()
    bound = NOW + timedelta(seconds=bound_s)
    running = make_pod("p", gpus=8, bound=bound, started=bound)
    moment, snaps = bound, []

    def observe(pods: list[dict[str, Any]], at: datetime) -> None:
        nonlocal ledger
        snaps.append(ledger.observe(pods, at, pricing))
        if restarts:  # the operator restarts between reconciles: only the status remains
            ledger = SpendLedger.from_status(json.loads(json.dumps(ledger.to_status())))

    for gap in running_gaps:
        moment += timedelta(seconds=gap)
        observe([running], moment)
    last_seen = moment
    finished = max(bound, last_seen + timedelta(seconds=finish_lag)).replace(microsecond=0)
    ended = make_pod("p", gpus=8, bound=bound, finished=finished, phase="Succeeded")
    first_ended_at = moment + timedelta(seconds=ended_gaps[0])
    for gap in ended_gaps:
        moment += timedelta(seconds=gap)
        observe([ended], moment)
    if deleted:
        observe([], moment + hours(1))

    for before, after in zip(snaps, snaps[1:], strict=False):
        assert _never_down(before.cost_usd, after.cost_usd)
        assert _never_down(before.gpu_seconds, after.gpu_seconds)
    # A terminal pod is never priced past ``now``, hence the min with its first listing.
    end = max(min(max(finished, bound), first_ended_at), last_seen)
    assert snaps[-1].gpu_seconds == pytest.approx(8 * (end - bound).total_seconds())
    assert snaps[-1].burn_rate_usd_per_hour == 0 and not ledger.open
