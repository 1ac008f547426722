"""fedsante.reports.carbon: a real CodeCarbon meter (offline), the network factor and the report's arithmetic."""

from __future__ import annotations

import json
import logging
import math
import time

import codecarbon
import numpy as np
import pytest
from codecarbon.input import DataSource

from fedsante.reports.carbon import (CAR_KG_CO2E_PER_KM, NETWORK_FACTOR_SOURCE, ComputeMeter, carbon_report,
                                     communication_record, network_kwh_per_gb)


def codecarbon_country(code: str) -> dict:
    """CodeCarbon's own offline entry for a country (intensity in g/kWh and its year)."""
    return DataSource().get_global_energy_mix_data()[code]


@pytest.fixture(scope="module")
def meter():
    started = time.perf_counter()
    m = ComputeMeter("FRA", measure_power_secs=1)
    m.creation_s = time.perf_counter() - started
    yield m
    m.close()


def workload(seconds: float = 0.25) -> float:
    """Matrix products for about ``seconds``; returns the time spent."""
    a = np.random.default_rng(0).random((250, 250))
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        a = a @ a
        a /= np.abs(a).max()
    return time.perf_counter() - start


def test_a_reused_meter_measures_two_blocks(meter: ComputeMeter) -> None:
    # Execute: two blocks with the same meter, timed from outside
    blocks = []
    for label in ("round 1", "round 2"):
        started = time.perf_counter()
        with meter.measure(label) as block:
            work = workload()
        blocks.append((block.record, time.perf_counter() - started, work))

    # Assert
    country = codecarbon_country("FRA")
    assert meter.intensity_g_per_kwh == pytest.approx(country["carbon_intensity"], rel=1e-12)
    if codecarbon.__version__ == "3.3.2":
        assert meter.intensity_g_per_kwh == 56.039  # docs standards section 6.1
    assert meter.records[-2:] == [r for r, _, _ in blocks]
    for (record, wall, work), label in zip(blocks, ("round 1", "round 2")):
        assert record.label == label and record.country_iso_code == "FRA"
        assert record.intensity_g_per_kwh == meter.intensity_g_per_kwh
        assert record.intensity_source == f"codecarbon {codecarbon.__version__} (Our World in Data {country['year']})"
        for value in (record.cpu_energy_kwh, record.ram_energy_kwh, record.energy_kwh, record.emissions_kg,
                      record.cpu_power_w):
            assert math.isfinite(value) and value > 0
        assert record.energy_kwh == pytest.approx(
            record.cpu_energy_kwh + record.ram_energy_kwh + record.gpu_energy_kwh, rel=1e-9)
        # CodeCarbon's own emissions are the energy times the intensity recorded
        assert record.emissions_kg == pytest.approx(record.energy_kwh * record.intensity_g_per_kwh / 1000, rel=1e-9)
        assert work <= record.duration_s <= wall
        assert wall - work < 1.0  # no new hardware detection: the meter is reused
        assert record.method.startswith(("RAPL", "power counters", "TDP table", "TDP fallback", "constant fallback"))
        assert json.loads(json.dumps(record.as_dict())) == record.as_dict()
    assert logging.getLogger("codecarbon").level >= logging.ERROR


def test_a_block_that_raises_is_recorded_and_blocks_cannot_nest(meter: ComputeMeter) -> None:
    n = len(meter.records)
    with pytest.raises(ZeroDivisionError):
        with meter.measure("failing"):
            1 / 0
    assert len(meter.records) == n + 1 and meter.records[-1].label == "failing"

    with meter.measure("outer"):
        with pytest.raises(RuntimeError, match="cannot nest"):
            with meter.measure("inner"):
                pass
    assert meter.records[-1].label == "outer"


def test_unknown_country_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match=r"'XYZ'.*ISO 3166-1 alpha-3.*'FRA'"):
        ComputeMeter("XYZ")


def test_a_closed_meter_refuses_blocks() -> None:
    closed = ComputeMeter("FRA")  # hardware detection is cached by CodeCarbon for the process
    closed.close()
    closed.close()
    with pytest.raises(RuntimeError, match="closed"):
        with closed.measure("late"):
            pass


def test_network_factor_halves_every_two_years() -> None:
    assert network_kwh_per_gb(2015) == 0.06
    assert network_kwh_per_gb(2017) == 0.03
    assert network_kwh_per_gb(2026) == pytest.approx(0.06 / 2 ** 5.5, rel=1e-12)
    assert network_kwh_per_gb(2026) == pytest.approx(0.001326, abs=5e-7)
    record = communication_record(0, 0, year=2026, intensity_g_per_kwh=56.039)
    assert record["factor_note"].startswith("0.001326 kWh/GB for 2026, extrapolated")
    assert "Aslan" in record["factor_source"]
    with pytest.raises(ValueError, match="2015"):
        network_kwh_per_gb(2010)


def hand_made() -> tuple[dict, dict]:
    per_node = {
        "chu-a": [{"round": 0, "energy_kwh": 0.001, "emissions_kg": 0.001 * 56.039 / 1000, "method": "RAPL x"},
                  {"round": 1, "energy_kwh": 0.004, "emissions_kg": 0.004 * 56.039 / 1000, "method": "RAPL x"},
                  {"round": 1, "energy_kwh": 0.002, "emissions_kg": 0.002 * 56.039 / 1000, "method": "RAPL x"}],
        "chu-b": [{"round": 1, "energy_kwh": 0.003, "emissions_kg": 0.0006, "method": "TDP fallback: 8 W"},
                  {"round": 2, "energy_kwh": 0.005, "emissions_kg": 0.001, "method": "TDP fallback: 8 W"}],
    }
    return per_node, {"chu-a": (3 * 10**8, 10**9), "chu-b": (2 * 10**8, 5 * 10**8)}


def test_carbon_report_sums_and_normalises() -> None:
    # Prepare
    per_node, sizes = hand_made()

    # Execute
    report = carbon_report(per_node, sizes, intensity_g_per_kwh=56.039, year=2026, n_patients=400,
                           intensity_source="codecarbon 3.3.2 (Our World in Data 2023)")

    # Assert: per node and per round
    a, b = report["per_node"]["chu-a"], report["per_node"]["chu-b"]
    assert a["kwh"] == pytest.approx(0.007) and a["rounds"] == [0, 1] and a["n_records"] == 3
    assert b["kg_co2e"] == pytest.approx(0.0016) and b["rounds"] == [1, 2]
    assert [(r["round"], r["kwh"]) for r in report["per_round"]] == [
        (0, pytest.approx(0.001)), (1, pytest.approx(0.009)), (2, pytest.approx(0.005))]
    assert report["per_round"][1]["kg_co2e"] == pytest.approx(0.006 * 56.039 / 1000 + 0.0006)

    # communication: GB x factor, kWh x intensity
    comm, factor = report["communication"], network_kwh_per_gb(2026)
    assert comm["gb"] == pytest.approx(2.0)
    assert comm["kwh"] == pytest.approx(2.0 * factor)
    assert comm["kg_co2e"] == pytest.approx(comm["kwh"] * 56.039 / 1000)
    assert comm["per_node"]["chu-a"]["gb"] == pytest.approx(1.3)
    assert comm["kwh_per_gb"] == factor and comm["factor_source"] == NETWORK_FACTOR_SOURCE

    # totals and normalisations
    t = report["totals"]
    compute_kg = 0.007 * 56.039 / 1000 + 0.0016
    assert t["compute_kwh"] == pytest.approx(0.015) and t["compute_kg_co2e"] == pytest.approx(compute_kg)
    assert t["kwh"] == pytest.approx(0.015 + comm["kwh"])
    assert t["kg_co2e"] == pytest.approx(compute_kg + comm["kg_co2e"])
    assert t["n_rounds"] == 3 and t["per_round_kg_co2e"] == pytest.approx(t["kg_co2e"] / 3)
    assert t["per_1000_patients_kwh"] == pytest.approx(t["kwh"] * 1000 / 400)
    assert t["per_1000_patients_kg_co2e"] == pytest.approx(t["kg_co2e"] * 2.5)

    # lay equivalence and assumptions
    eq = report["equivalence"]
    assert eq["car_kg_co2e_per_km"] == CAR_KG_CO2E_PER_KM == 0.2 and "ADEME" in eq["source"]
    assert eq["car_km"] == pytest.approx(t["kg_co2e"] / 0.2)
    text = " ".join(report["assumptions"])
    assert "TDP fallback used" in text and "['chu-b']" in text
    for word in ("PUE 1.0", "annual", "embodied", "storage", "data preparation", "0.001326 kWh/GB"):
        assert word in text
    assert json.loads(json.dumps(report)) == report


def test_carbon_report_with_measured_records(meter: ComputeMeter) -> None:
    with meter.measure("fit") as block:
        workload(0.05)
    record = {**block.record.as_dict(), "round": 1}
    report = carbon_report({"chu-a": [record]}, {"chu-a": (10**6, 10**6)}, year=2026, n_patients=100,
                           intensity_g_per_kwh=meter.intensity_g_per_kwh, intensity_source=meter.intensity_source)
    assert report["totals"]["compute_kwh"] == record["energy_kwh"]
    assert report["methods"]["chu-a"] == meter.method


@pytest.mark.parametrize(("per_node", "sizes", "message"), [
    ({}, {}, "no compute records"),
    ({"chu-a": []}, {}, "node 'chu-a' has no compute records"),
    ({"chu-a": [{"round": 1, "energy_kwh": 0.1}]}, {}, r"lacks \['emissions_kg'\]"),
    ({"chu-a": [{"round": 1, "energy_kwh": -0.1, "emissions_kg": 0}]}, {}, "energy_kwh .* >= 0"),
    ({"chu-a": [{"round": "one", "energy_kwh": 0.1, "emissions_kg": 0}]}, {}, "'round' must be an integer"),
    ({"chu-a": [{"round": 1, "energy_kwh": 0.1, "emissions_kg": 0}]}, {"chu-a": (-1, 0)}, "bytes_up .* >= 0"),
    ({"chu-a": [{"round": 1, "energy_kwh": 0.1, "emissions_kg": 0}]}, {"chu-z": (1, 0)}, "chu-z"),
])
def test_carbon_report_refuses_bad_input(per_node: dict, sizes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        carbon_report(per_node, sizes, intensity_g_per_kwh=56.039, intensity_source="x", year=2026, n_patients=10)


def test_communication_refuses_negative_bytes_and_bad_patients() -> None:
    with pytest.raises(ValueError, match="bytes_down"):
        communication_record(10, -5, year=2026, intensity_g_per_kwh=56.039)
    records = {"chu-a": [{"round": 1, "energy_kwh": 0.1, "emissions_kg": 0.0}]}
    with pytest.raises(ValueError, match="n_patients"):
        carbon_report(records, {}, intensity_g_per_kwh=56.039, intensity_source="x", year=2026, n_patients=0)
