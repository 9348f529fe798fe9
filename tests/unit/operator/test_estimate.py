"""`stylegan estimate`: published figures reproduced exactly, assumptions marked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from stylegan_operator.cli.estimate_command import estimate_cmd
from stylegan_operator.cost.calibration import CALIBRATION, load_benchmark, parse_published_time
from stylegan_operator.cost.estimate import (
    EstimateRequest,
    estimate,
    estimate_from_benchmark,
    readme_rows,
)
from stylegan_operator.cost.pricing import CostError, PriceCatalog


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(estimate_cmd, list(args))
    return result.exit_code, result.output


def test_default_reproduces_the_stylegan2_readme_config_f_times_and_cost() -> None:
    code, out = run()
    assert code == 0, out
    assert "69d 23h" in out  # 1 V100
    assert "9d 18h" in out  # 8 V100s
    assert "4,642.56 USD" in out  # 8 GPUs x 234 h x 2.48 USD
    assert "1,872.0" in out  # GPU-hours


def test_yen_at_109_per_dollar() -> None:
    code, out = run("--gpus", "8", "--currency", "JPY")
    assert code == 0, out
    assert "506,039 JPY" in out
    assert "9d 18h" in out


def test_config_f_256_on_8_gpus() -> None:
    code, out = run("--resolution", "256", "--gpus", "8")
    assert code == 0, out
    assert "4d 18h" in out and "256x256" in out


def test_table_prints_the_readme_rows() -> None:
    code, out = run("--table")
    assert code == 0, out
    for text in ("69d 23h", "36d 4h", "18d 14h", "9d 18h", "4d 18h", "13d 0h", "4,642.56"):
        assert text in out
    rows = readme_rows()
    assert len(rows) == 24
    assert all(r.basis == "published" for r in rows)


def test_the_pure_estimate_is_exact() -> None:
    row = estimate(EstimateRequest(gpus_per_node=8, currency="JPY"))
    assert row.seconds == 234 * 3600
    assert row.gpu_hours == 1872
    assert round(row.cost_usd, 2) == 4642.56
    assert round(row.cost, 2) == 506039.04
    assert (row.basis, row.source, row.time) == ("published", "sg2-readme", "9d 18h")


def test_published_strings_parse_to_the_seconds_they_say() -> None:
    assert parse_published_time("69d 23h") == (69 * 24 + 23) * 3600
    assert parse_published_time("4h 05m") == 4 * 3600 + 5 * 60
    for point in CALIBRATION:
        assert point.sec_per_kimg > 0
        if point.published:
            assert point.seconds == pytest.approx(point.sec_per_kimg * point.kimg)


def test_a_kimg_between_rows_uses_the_nearest_published_run_length() -> None:
    row = estimate(EstimateRequest(kimg=5000, gpus_per_node=8))
    # The 10000-kimg row (3d 22h = 94 h) is nearer than the 25000 one.
    assert row.seconds == pytest.approx(94 * 3600 / 10000 * 5000)


def test_gpu_counts_between_and_beyond_published_ones_are_marked() -> None:
    times = {n: estimate(EstimateRequest(gpus_per_node=n)).seconds for n in (1, 2, 3, 4, 8)}
    three = estimate(EstimateRequest(gpus_per_node=3))
    assert three.basis == "interpolated"
    assert times[4] < times[3] < times[2]
    # Linear in 1/gpus between 2 (868 h) and 4 (446 h).
    assert times[3] == pytest.approx((868 + (446 - 868) * (1 / 3 - 1 / 2) / (1 / 4 - 1 / 2)) * 3600)
    sixteen = estimate(EstimateRequest(gpus_per_node=8, nodes=2))
    assert sixteen.basis == "extrapolated"
    assert times[8] / 2 < sixteen.seconds < times[8]
    assert sixteen.seconds == pytest.approx(times[8] / 2 / 0.95)
    assert any("several nodes" in n for n in sixteen.notes)


def test_gpus_without_figures_are_scaled_from_v100_and_say_so() -> None:
    v100 = estimate(EstimateRequest(gpus_per_node=8))
    a100 = estimate(EstimateRequest(gpus_per_node=8, gpu_type="A100"))
    assert "scaled" in a100.basis
    assert a100.seconds == pytest.approx(v100.seconds * 14.57 / 17.55)
    h100 = estimate(EstimateRequest(gpus_per_node=8, gpu_type="H100"))
    assert "scaled" in h100.basis and h100.seconds < a100.seconds
    assert any("assumption" in n for n in h100.notes)
    code, out = run("--gpu", "L4", "--gpus", "8")
    assert code == 0 and "scaled" in out and "assumption" in out


def test_published_a100_rows_are_used_as_is() -> None:
    row = estimate(EstimateRequest(preset="paper256", gpu_type="A100", gpus_per_node=8))
    assert row.basis == "published"
    assert row.seconds == pytest.approx(2.47 * 25000)
    auto = estimate(EstimateRequest(preset="auto", resolution=512, gpus_per_node=4))
    assert auto.source == "ada-pt-readme" and auto.time == "5d 17h"
    forced = estimate(
        EstimateRequest(preset="auto", resolution=512, gpus_per_node=4, source="sg3-configs")
    )
    assert forced.seconds == pytest.approx(18.12 * 25000)


def test_spot_price_override_catalog_and_overhead(tmp_path: Path) -> None:
    spot = estimate(EstimateRequest(gpus_per_node=8, spot=True))
    assert spot.cost_usd == pytest.approx(1872 * 0.74)
    mine = estimate(EstimateRequest(gpus_per_node=8, price_per_gpu_hour_usd=1.0))
    assert mine.cost_usd == pytest.approx(1872) and mine.price_source == "--price"
    slower = estimate(EstimateRequest(gpus_per_node=8, overhead=0.05))
    assert slower.seconds == pytest.approx(234 * 3600 * 1.05)
    values = tmp_path / "values.yaml"
    values.write_text("cost:\n  prices:\n    V100: {onDemand: 3.0, nodeOnDemand: 1.0}\n")
    code, out = run("--gpus", "8", "--catalog", str(values), "-o", "json")
    assert code == 0, out
    data = json.loads(out)["rows"][0]
    assert data["cost_usd"] == pytest.approx(234 * (8 * 3.0 + 1.0))


def test_json_output_carries_every_row_field() -> None:
    code, out = run("-o", "json", "--gpu", "A100", "--currency", "EUR")
    assert code == 0, out
    rows = json.loads(out)["rows"]
    assert [r["gpus"] for r in rows] == [1, 2, 4, 8]
    for row in rows:
        assert {
            "time",
            "seconds",
            "gpu_hours",
            "cost",
            "cost_usd",
            "currency",
            "basis",
            "notes",
            "source",
            "price_per_gpu_hour_usd",
        } <= set(row)
        assert row["currency"] == "EUR"


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (("--preset", "cifar"), "--from-benchmark"),
        (("--preset", "stylegan2", "--resolution", "512"), "no published figure"),
        (("--preset", "paper256", "--resolution", "512"), "--resolution"),
        (("--gpu", "cpu"), "--from-benchmark"),
        (("--gpu", "MI300X"), "--gpu"),
        (("--currency", "XYZ"), "--currency"),
        (("--price", "0"), "--price"),
        (("--kimg", "-5"), "--kimg"),
    ],
)
def test_bad_input_exits_64_naming_the_option(args: tuple[str, ...], text: str) -> None:
    code, out = run(*args)
    assert code == 64, out
    assert text in out


def test_help_documents_the_assumptions() -> None:
    code, out = run("--help")
    assert code == 0
    for text in ("interpolated", "extrapolated", "scaled", "assumption", "2.48"):
        assert text in out


def _bench(tmp_path: Path, **fields: object) -> Path:
    data = {
        "sec_per_kimg": 20.0,
        "device": "NVIDIA H100 80GB HBM3",
        "resolution": 256,
        "preset": "paper256",
        "gpus": 1,
        **fields,
    }
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(data))
    return path


def test_a_benchmark_file_drives_the_estimate(tmp_path: Path) -> None:
    point = load_benchmark(_bench(tmp_path))
    assert (point.gpu_type, point.preset, point.resolution) == ("nvidia-h100-80gb", "paper256", 256)
    one = estimate_from_benchmark(point, EstimateRequest(gpu_type="H100", kimg=1000))
    assert one.basis == "measured" and one.seconds == pytest.approx(20_000)
    eight = estimate_from_benchmark(point, EstimateRequest(gpu_type="H100", gpus_per_node=8))
    assert eight.basis == "extrapolated"
    assert eight.sec_per_kimg == pytest.approx(20.0 / (8 * 0.95**3))
    v100 = estimate_from_benchmark(point, EstimateRequest(gpu_type="V100"))
    assert "scaled" in v100.basis and v100.seconds > one.seconds * 25
    code, out = run("--from-benchmark", str(_bench(tmp_path)), "--gpu", "H100", "--gpus", "1")
    assert code == 0, out
    assert "measured" in out


def test_a_cpu_benchmark_prices_vcpus_but_never_converts_to_gpus(tmp_path: Path) -> None:
    path = _bench(tmp_path, device="cpu", sec_per_kimg=1200.0, resolution=32, preset="small")
    point = load_benchmark(path)
    row = estimate_from_benchmark(point, EstimateRequest(gpu_type="cpu", kimg=10))
    assert row.seconds == pytest.approx(12000)
    with pytest.raises(CostError, match="CPU and GPU"):
        estimate_from_benchmark(point, EstimateRequest(gpu_type="V100", kimg=10))


@pytest.mark.parametrize(
    "content",
    ["not json", json.dumps({"device": "cpu"}), json.dumps({"sec_per_kimg": -1, "resolution": 32})],
)
def test_a_bad_benchmark_file_is_named(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bench.json"
    path.write_text(content)
    code, out = run("--from-benchmark", str(path))
    assert code == 64
    assert "--from-benchmark" in out


def test_catalog_currency_is_the_default_display_currency() -> None:
    catalog = PriceCatalog.from_dict({"currency": "JPY"})
    row = estimate(EstimateRequest(gpus_per_node=8), catalog)
    assert row.currency == "JPY" and round(row.cost) == 506039
