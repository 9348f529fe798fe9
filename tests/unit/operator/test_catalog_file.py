"""The price catalog file and the benchmark file: a bad value is one line naming its key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from stylegan_operator.cli.estimate_command import estimate_cmd
from stylegan_operator.controller.handlers import OperatorConfig
from stylegan_operator.cost.calibration import load_benchmark
from stylegan_operator.cost.pricing import DEFAULT_CATALOG, CostError, PriceCatalog

ENTRY_KEYS = "onDemand, spot, nodeOnDemand, nodeSpot, source"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        # a wrong type, in a nested price key
        ({"prices": {"H100": {"spot": "cheap"}}},
         "cost.prices['H100'].spot: 'cheap' is not a number"),
        ({"prices": {"H100": {"onDemand": True}}},
         "cost.prices['H100'].onDemand: True is not a number"),
        ({"prices": {"H100": {"spot": None}}}, "cost.prices['H100'].spot: None is not a number"),
        ({"prices": {"L4": [1.0]}}, "cost.prices['L4']: [1.0] is not a mapping"),
        ({"prices": ["H100"]}, "cost.prices: ['H100'] is not a mapping"),
        ({"currency": 978}, "cost.currency: expected a 3-letter ISO 4217 code, got 978"),
        # out of range
        ({"prices": {"V100": {"onDemand": 0}}}, "cost.prices['V100'].onDemand: 0 must be > 0"),
        ({"prices": {"V100": {"nodeSpot": -1}}},
         "cost.prices['V100'].nodeSpot: -1 must be at least 0"),
        ({"prices": {"V100": -2.5}}, "cost.prices['V100']: -2.5 must be a finite number > 0"),
        ({"exchangeRates": {"EUR": -1}}, "cost.exchangeRates['EUR']: -1 must be > 0"),
        ({"exchangeRates": {"euro": 1}}, "cost.exchangeRates['euro']: expected a 3-letter"),
        # unknown keys, with the valid ones
        ({"prices": {"H100": {"spotPrice": 3}}},
         f"cost.prices['H100']: unknown key 'spotPrice'; valid: {ENTRY_KEYS}"),
        ({"price": {}}, "cost: unknown key 'price'; valid: currency, exchangeRates, prices"),
    ],
)
def test_a_bad_catalog_value_is_one_line_naming_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(CostError) as info:
        PriceCatalog.from_dict(data)
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def test_the_merge_over_the_defaults_is_kept() -> None:
    catalog = PriceCatalog.from_dict(
        {"prices": {"H100": "9.8", "a100": {"spot": 1.0}, "mi300x": {"onDemand": 4.0}},
         "exchangeRates": None, "currency": "jpy"}  # fmt: skip
    )
    assert catalog.unit_price("H100") == catalog.unit_price("H100", spot=True) == 9.8
    assert catalog.unit_price("A100") == DEFAULT_CATALOG.unit_price("A100")  # kept
    assert catalog.unit_price("A100", spot=True) == 1.0
    assert catalog.unit_price("mi300x", spot=True) == 4.0  # a new type: spot = on-demand
    assert catalog.currency == "JPY" and catalog.rate("JPY") == 109.0
    assert catalog.entry("mi300x").source == "cost.prices['mi300x'] (configured)"
    base = PriceCatalog.from_dict({"prices": {"mi300x": {"onDemand": 4.0, "nodeOnDemand": 1.0}}})
    over = PriceCatalog.from_dict({"prices": {"mi300x": {"spot": 2.0}}}, base=base)
    assert (over.unit_price("mi300x"), over.unit_price("mi300x", spot=True)) == (4.0, 2.0)
    assert over.node_price("mi300x", spot=True) == 1.0


def test_a_new_gpu_type_needs_its_on_demand_price() -> None:
    with pytest.raises(CostError, match=r"^cost.prices\['mi300x'\].onDemand: required for a GPU"):
        PriceCatalog.from_dict({"prices": {"mi300x": {"spot": 1.0}}})


def test_estimate_exits_64_with_one_line_for_a_bad_catalog(tmp_path: Path) -> None:
    catalog = tmp_path / "prices.yaml"
    catalog.write_text(yaml.safe_dump({"cost": {"prices": {"H100": {"spot": "low"}}}}))
    result = CliRunner().invoke(estimate_cmd, ["--catalog", str(catalog)])
    assert result.exit_code == 64, result.output
    assert result.output.strip().splitlines() == [
        "Error: cost.prices['H100'].spot: 'low' is not a number"
    ]


def test_the_operator_refuses_a_bad_prices_file_naming_the_key(tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(yaml.safe_dump({"prices": {"V100": {"onDemand": 2.0, "extra": 1}}}))
    with pytest.raises(CostError, match=r"^cost.prices\['V100'\]: unknown key 'extra'; valid: "):
        OperatorConfig(prices_file=str(prices)).lifecycle_config()


def _bench(tmp_path: Path, **fields: Any) -> Path:
    data = {"sec_per_kimg": 20.0, "resolution": 256, "device": "cuda:0",
            "device_name": "NVIDIA H100 80GB HBM3", "gpus": 1, "threads": 8, **fields}  # fmt: skip
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"sec_per_kimg": "fast"}, "sec_per_kimg: 'fast' is not a number"),
        ({"sec_per_kimg": 0}, "sec_per_kimg: 0 must be > 0"),
        ({"gpus": 0}, "gpus: 0 must be at least 1"),
        ({"resolution": True}, "resolution: True is not a number"),
    ],
)
def test_a_bad_benchmark_file_is_one_line_naming_the_key(
    tmp_path: Path, fields: dict[str, Any], message: str
) -> None:
    path = _bench(tmp_path, **fields)
    with pytest.raises(CostError) as info:
        load_benchmark(path)
    assert str(info.value) == f"--from-benchmark {path}: {message}"


def test_a_cuda_benchmark_is_typed_by_its_device_name(tmp_path: Path) -> None:
    point = load_benchmark(_bench(tmp_path))  # the rest of the output (threads) is ignored
    assert (point.gpu_type, point.gpus, point.sec_per_kimg) == ("nvidia-h100-80gb", 1, 20.0)
