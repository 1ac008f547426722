"""Carbon report of a federated run: compute measured by CodeCarbon at each node, communication estimated.

Compute: one :class:`ComputeMeter` per node process wraps a CodeCarbon ``OfflineEmissionsTracker`` (no network
call, the grid intensity comes from CodeCarbon's own per-country table) and measures blocks of work with
CodeCarbon's task API. Communication: CodeCarbon does not model networks, so bytes are converted with the
Aslan et al. (2018) factor, extrapolated to the year of the run. :func:`carbon_report` sums both into the
fields of the project standards, section 6.2 (per node, per round, totals, normalisations, assumptions).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import numbers
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

NETWORK_KWH_PER_GB_2015 = 0.06
NETWORK_FACTOR_SOURCE = (
    "Aslan, Mayers, Koomey & France (2018), 'Electricity intensity of Internet data transmission: untangling "
    "the estimates', J. Ind. Ecol. 22(4):785-798, doi:10.1111/jiec.12630: 0.06 kWh/GB in 2015, halving about "
    "every 2 years"
)
BYTES_PER_GB = 1e9  # decimal gigabyte
CAR_KG_CO2E_PER_KM = 0.2
CAR_FACTOR_SOURCE = (
    "ADEME Base Carbone: an average petrol or diesel passenger car emits about 0.2 kgCO2e per vehicle-km "
    "(rounded; the exact value depends on the car type and the database version)"
)
MEASURED_PREFIXES = ("RAPL", "power counters")


def network_kwh_per_gb(year: int) -> float:
    """Network electricity per GB transferred in ``year``: 0.06 kWh/GB in 2015, halved every 2 years.

    Source: Aslan et al. (2018), see ``NETWORK_FACTOR_SOURCE``. Their series ends in 2015; every later value is
    an extrapolation of their trend, not a measurement, and reports must state the value used. For 2026 it is
    0.06 / 2**5.5, about 0.00133 kWh/GB.

    >>> network_kwh_per_gb(2015), network_kwh_per_gb(2017)
    (0.06, 0.03)
    >>> round(network_kwh_per_gb(2026), 6)
    0.001326
    """
    if isinstance(year, bool) or not isinstance(year, numbers.Integral) or year < 2015:
        raise ValueError(f"year must be an integer from 2015 on (the last year of Aslan et al. 2018), got {year!r}")
    return NETWORK_KWH_PER_GB_2015 * 0.5 ** ((year - 2015) / 2)


def _non_negative(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def communication_record(bytes_up: int, bytes_down: int, *, year: int, intensity_g_per_kwh: float) -> dict:
    """Energy and emissions of sending ``bytes_up`` and receiving ``bytes_down`` over the Internet.

    >>> r = communication_record(10**9, 10**9, year=2015, intensity_g_per_kwh=56.039)
    >>> r["gb"], r["kwh"], round(r["kg_co2e"], 8)
    (2.0, 0.12, 0.00672468)
    """
    up, down = _non_negative("bytes_up", bytes_up), _non_negative("bytes_down", bytes_down)
    intensity = _non_negative("intensity_g_per_kwh", intensity_g_per_kwh)
    factor = network_kwh_per_gb(year)
    gb = (up + down) / BYTES_PER_GB
    kwh = gb * factor
    return {
        "bytes_up": up, "bytes_down": down, "gb": gb, "kwh": kwh, "kg_co2e": kwh * intensity / 1000,
        "intensity_g_per_kwh": intensity, "year": int(year), "kwh_per_gb": factor,
        "factor_note": f"{factor:.6f} kWh/GB for {year}, extrapolated from 0.06 kWh/GB in 2015 (halving every 2 years)",
        "factor_source": NETWORK_FACTOR_SOURCE,
    }


def cpu_power_method(mode: str | None, *, model: str | None, tdp_w: float | None, tdp_in_table: bool) -> str:
    """How CodeCarbon obtains CPU power, from its CPU tracking mode and the TDP it uses.

    >>> cpu_power_method("intel_rapl", model="Xeon", tdp_w=None, tdp_in_table=False)[:4]
    'RAPL'
    >>> cpu_power_method("cpu_load", model="AMD EPYC", tdp_w=8, tdp_in_table=False)[:12]
    'TDP fallback'
    >>> cpu_power_method("cpu_load", model="Unknown", tdp_w=85, tdp_in_table=False)[:17]
    'constant fallback'
    """
    if mode == "intel_rapl":
        return "RAPL energy counters (whole CPU package, not only this process)"
    if mode in ("windows_emi", "intel_power_gadget", "apple_powermetrics"):
        return f"power counters ({mode})"
    if mode == "cpu_load":
        load = "x this process's CPU load (codecarbon cpu_load mode)"
        if tdp_in_table:
            return f"TDP table: {model}, {tdp_w:g} W {load}"
        if tdp_w == 85:
            return f"constant fallback: 85 W (codecarbon's default CPU power) {load}"
        return (f"TDP fallback: CPU {model!r} not in codecarbon's TDP table, codecarbon's default of 4 W per "
                f"thread gives {tdp_w:g} W {load}")
    if mode == "constant":
        return f"constant fallback: {tdp_w:g} W x 50% (codecarbon constant mode)"
    return f"codecarbon CPU mode {mode!r}"


@dataclass(frozen=True)
class ComputeRecord:
    """One measured block of compute at a node (energies in kWh, emissions in kgCO2e)."""

    label: str
    duration_s: float
    cpu_energy_kwh: float
    ram_energy_kwh: float
    energy_kwh: float  # CPU + RAM + GPU
    emissions_kg: float
    cpu_power_w: float  # mean over the block: CPU energy / duration
    method: str
    gpu_energy_kwh: float
    country_iso_code: str
    intensity_g_per_kwh: float
    intensity_source: str

    def as_dict(self) -> dict:
        """A JSON-serialisable copy; add a ``"round"`` key before passing it to :func:`carbon_report`."""
        return asdict(self)


@dataclass
class Measurement:
    """What ``ComputeMeter.measure`` yields; ``record`` is set when the block ends."""

    label: str
    record: ComputeRecord | None = None


class ComputeMeter:
    """Energy of blocks of compute at one node, measured by CodeCarbon offline; create one per process.

    Creating the meter detects the hardware (about 2 s); each ``with meter.measure(label):`` block then costs a
    few milliseconds. Call :meth:`close` at the end (or use the meter as a context manager).
    """

    def __init__(self, country_iso_code: str = "FRA", *, measure_power_secs: float = 1.0,
                 tracking_mode: str = "process") -> None:
        import codecarbon
        from codecarbon import OfflineEmissionsTracker
        from codecarbon.core.emissions import Emissions
        from codecarbon.core.units import Energy
        from codecarbon.emissions_tracker import BaseEmissionsTracker
        from codecarbon.external.geography import GeoMetadata
        from codecarbon.input import DataSource

        mix = DataSource().get_global_energy_mix_data()
        code = country_iso_code.upper() if isinstance(country_iso_code, str) else country_iso_code
        if code not in mix:
            raise ValueError(
                f"unknown country code {country_iso_code!r}: CodeCarbon's offline data "
                f"(codecarbon {codecarbon.__version__}, global_energy_mix.json) has no such country; pass an "
                "ISO 3166-1 alpha-3 code such as 'FRA' for France")
        if tracking_mode not in ("process", "machine"):
            raise ValueError(f"tracking_mode must be 'process' or 'machine', got {tracking_mode!r}")
        if not measure_power_secs > 0:
            raise ValueError(f"measure_power_secs must be > 0, got {measure_power_secs!r}")
        logging.getLogger("codecarbon").setLevel(logging.ERROR)  # before the tracker logs its first lines
        options: dict[str, Any] = dict(
            country_iso_code=code, log_level="error", measure_power_secs=measure_power_secs,
            tracking_mode=tracking_mode, project_name="fedsante", pue=1.0, allow_multiple_runs=True,
            force_carbon_intensity_g_co2e_kwh=None, electricitymaps_api_token=None)  # config files cannot go online
        if "output_methods" in inspect.signature(BaseEmissionsTracker.__init__).parameters:
            options["output_methods"] = []  # codecarbon >= 3.3: save_to_file is deprecated
        else:
            options["save_to_file"] = False
        self._tracker = OfflineEmissionsTracker(**options)
        self.hardware: dict = self._tracker.get_detected_hardware()  # the ~2 s detection, now, not in a block
        self.country_iso_code: str = code
        self.country_name: str = mix[code].get("country_name", code)
        self.codecarbon_version: str = codecarbon.__version__
        geo = GeoMetadata(country_iso_code=code, country_name=self.country_name)
        kg_per_kwh = Emissions(DataSource()).get_private_infra_emissions(Energy.from_energy(kWh=1.0), geo)
        self.intensity_g_per_kwh: float = round(kg_per_kwh * 1000, 9)  # 56.039, not 56.03900000000001
        self.intensity_source = f"codecarbon {codecarbon.__version__} (Our World in Data {mix[code].get('year')})"
        self.tracking_mode, self.measure_power_secs = tracking_mode, measure_power_secs
        self.method: str = self._cpu_method()
        self.records: list[ComputeRecord] = []
        self._active = False
        self._closed = False

    def _cpu_method(self) -> str:
        cpus = [h for h in self._tracker._hardware if type(h).__name__ == "CPU"]
        if not cpus:
            chips = [type(h).__name__ for h in self._tracker._hardware]
            return f"no CodeCarbon CPU tracker; hardware measured: {', '.join(chips) or 'none'}"
        cpu = cpus[0]
        mode, model, tdp = getattr(cpu, "_mode", None), getattr(cpu, "_model", None), getattr(cpu, "_tdp", None)
        in_table = False
        if mode in ("cpu_load", "constant") and model:
            with contextlib.suppress(Exception):  # codecarbon internals: an unknown answer means "not in table"
                from codecarbon.core import cpu as cc_cpu
                from codecarbon.core.hardware_cache import get_cached_tdp
                in_table = get_cached_tdp(cc_cpu)._get_cpu_power_from_registry(model) is not None
        return cpu_power_method(mode, model=model, tdp_w=tdp, tdp_in_table=in_table)

    @contextlib.contextmanager
    def measure(self, label: str) -> Iterator[Measurement]:
        """Measure the energy of the ``with`` block; the record is also appended to ``self.records``.

        A block that raises is still recorded (its energy was spent), then the error propagates.
        """
        if self._closed:
            raise RuntimeError("this ComputeMeter is closed; create a new one")
        if self._active:
            raise RuntimeError(f"cannot measure {label!r} inside another measured block: blocks cannot nest")
        if not isinstance(label, str) or not label:
            raise ValueError(f"label must be a non-empty string, got {label!r}")
        measurement = Measurement(label)
        self._active = True
        self._tracker.start_task(label)
        try:
            yield measurement
        finally:
            self._active = False
            data = self._tracker.stop_task()
            if data is None:
                raise RuntimeError(f"CodeCarbon did not measure block {label!r} (its task was not started)")
            measurement.record = self._record(label, data)
            self.records.append(measurement.record)

    def _record(self, label: str, data: Any) -> ComputeRecord:
        duration, cpu_kwh = float(data.duration), float(data.cpu_energy)
        return ComputeRecord(
            label=label, duration_s=duration, cpu_energy_kwh=cpu_kwh, ram_energy_kwh=float(data.ram_energy),
            energy_kwh=float(data.energy_consumed), emissions_kg=float(data.emissions),
            # codecarbon's cpu_power field averages over the tracker's whole life: derive the block's own mean
            cpu_power_w=cpu_kwh * 3.6e6 / duration if duration > 0 else 0.0,
            method=self.method, gpu_energy_kwh=float(data.gpu_energy), country_iso_code=self.country_iso_code,
            intensity_g_per_kwh=self.intensity_g_per_kwh, intensity_source=self.intensity_source)

    def close(self) -> None:
        """Stop CodeCarbon's tracker; calling it again does nothing."""
        if not self._closed:
            self._closed = True
            self._tracker.stop()

    def __enter__(self) -> ComputeMeter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def carbon_report(per_node: Mapping[str, Sequence[Mapping[str, Any]]],
                  bytes_per_node: Mapping[str, tuple[int, int]], *, intensity_g_per_kwh: float,
                  intensity_source: str, year: int, n_patients: int) -> dict:
    """Sum per-node compute records (dicts with ``round``, ``energy_kwh``, ``emissions_kg``) and communication.

    Compute emissions are the records' own (CodeCarbon's intensity at each node); communication uses
    ``intensity_g_per_kwh``. Totals are split into compute and communication, per round and per 1,000 patients.

    >>> recs = {"a": [{"round": 1, "energy_kwh": 0.002, "emissions_kg": 0.000112}],
    ...         "b": [{"round": 1, "energy_kwh": 0.001, "emissions_kg": 0.000056}]}
    >>> r = carbon_report(recs, {"a": (10**6, 10**6), "b": (10**6, 10**6)}, intensity_g_per_kwh=56.0,
    ...                   intensity_source="codecarbon 3.3.2 (Our World in Data 2023)", year=2017, n_patients=500)
    >>> r["per_round"], r["communication"]["kwh"]
    ([{'round': 1, 'kwh': 0.003, 'kg_co2e': 0.000168}], 0.00012)
    """
    intensity = _non_negative("intensity_g_per_kwh", intensity_g_per_kwh)
    network_kwh_per_gb(year)  # validates the year
    if isinstance(n_patients, bool) or not isinstance(n_patients, numbers.Integral) or n_patients <= 0:
        raise ValueError(f"n_patients must be a positive integer, got {n_patients!r}")
    if not per_node:
        raise ValueError("no compute records: per_node is empty; measure at least one block with ComputeMeter")
    nodes: dict[str, dict] = {}
    rounds: dict[int, list[tuple[float, float]]] = {}
    methods: dict[str, str] = {}
    for node, records in per_node.items():
        if not records:
            raise ValueError(f"node {node!r} has no compute records: pass its records or leave the node out")
        kwh, kg = [], []
        for i, rec in enumerate(records):
            missing = [k for k in ("round", "energy_kwh", "emissions_kg") if k not in rec]
            if missing:
                raise ValueError(f"record {i} of node {node!r} lacks {missing}: use ComputeRecord.as_dict() "
                                 "and add the round number under 'round'")
            if isinstance(rec["round"], bool) or not isinstance(rec["round"], numbers.Integral) or rec["round"] < 0:
                raise ValueError(f"record {i} of node {node!r}: 'round' must be an integer >= 0, got {rec['round']!r}")
            e = _non_negative(f"energy_kwh of record {i} of node {node!r}", rec["energy_kwh"])
            m = _non_negative(f"emissions_kg of record {i} of node {node!r}", rec["emissions_kg"])
            kwh.append(e)
            kg.append(m)
            rounds.setdefault(int(rec["round"]), []).append((e, m))
            if rec.get("method"):
                methods[str(node)] = rec["method"]
        node_rounds = sorted({int(rec["round"]) for rec in records})
        nodes[str(node)] = {"kwh": math.fsum(kwh), "kg_co2e": math.fsum(kg), "rounds": node_rounds,
                            "n_rounds": len(node_rounds), "n_records": len(records)}
    unknown = sorted(set(map(str, bytes_per_node)) - set(nodes))
    if unknown:
        raise ValueError(f"bytes_per_node names nodes without compute records: {unknown}")
    comm_nodes = {}
    for node, pair in bytes_per_node.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"bytes_per_node[{node!r}] must be a pair (bytes_up, bytes_down), got {pair!r}")
        comm_nodes[str(node)] = communication_record(*pair, year=year, intensity_g_per_kwh=intensity)
    factor = network_kwh_per_gb(year)
    comm = {"per_node": comm_nodes, "gb": math.fsum([c["gb"] for c in comm_nodes.values()]),
            "kwh": math.fsum([c["kwh"] for c in comm_nodes.values()]),
            "kg_co2e": math.fsum([c["kg_co2e"] for c in comm_nodes.values()]), "kwh_per_gb": factor, "year": int(year),
            "factor_note": f"{factor:.6f} kWh/GB for {year}, extrapolated from 0.06 kWh/GB in 2015",
            "factor_source": NETWORK_FACTOR_SOURCE, "intensity_g_per_kwh": intensity}
    per_round = [{"round": r, "kwh": math.fsum([e for e, _ in v]), "kg_co2e": math.fsum([m for _, m in v])}
                 for r, v in sorted(rounds.items())]
    compute_kwh = math.fsum([n["kwh"] for n in nodes.values()])
    compute_kg = math.fsum([n["kg_co2e"] for n in nodes.values()])
    total_kwh, total_kg = compute_kwh + comm["kwh"], compute_kg + comm["kg_co2e"]
    totals = {"compute_kwh": compute_kwh, "compute_kg_co2e": compute_kg, "communication_kwh": comm["kwh"],
              "communication_kg_co2e": comm["kg_co2e"], "kwh": total_kwh, "kg_co2e": total_kg,
              "n_rounds": len(per_round), "per_round_kwh": total_kwh / len(per_round),
              "per_round_kg_co2e": total_kg / len(per_round), "n_patients": int(n_patients),
              "per_1000_patients_kwh": total_kwh * 1000 / n_patients,
              "per_1000_patients_kg_co2e": total_kg * 1000 / n_patients}
    km = total_kg / CAR_KG_CO2E_PER_KM
    equivalence = {"car_km": km, "car_kg_co2e_per_km": CAR_KG_CO2E_PER_KM, "source": CAR_FACTOR_SOURCE,
                   "text": f"about {km:.3g} km by an average car ({CAR_KG_CO2E_PER_KM} kgCO2e/km, ADEME)"}
    estimated = sorted(n for n, m in methods.items() if not m.startswith(MEASURED_PREFIXES))
    return {"intensity": {"g_per_kwh": intensity, "source": intensity_source}, "per_node": nodes,
            "per_round": per_round, "communication": comm, "totals": totals, "equivalence": equivalence,
            "methods": methods, "assumptions": _assumptions(methods, estimated, intensity_source, comm)}


def _assumptions(methods: dict[str, str], estimated: list[str], intensity_source: str, comm: dict) -> list[str]:
    if estimated:
        cpu = (f"TDP fallback used: CPU power estimated from a TDP and the CPU load, not measured, at nodes "
               f"{estimated} ({'; '.join(sorted({methods[n] for n in estimated}))})")
    elif methods:
        cpu = "CPU power measured by hardware energy counters (RAPL or equivalent) at every node"
    else:
        cpu = "CPU power method unknown: the records do not say how CodeCarbon obtained it"
    return [
        cpu,
        "RAM power from CodeCarbon's heuristic (about 5 W per DIMM, inferred from memory size), not measured",
        "PUE 1.0: the machine-room overhead (cooling, power supply) at each site is unknown and not counted",
        f"Grid intensity is an annual country average ({intensity_source}), not real-time",
        f"Network energy: {comm['factor_note']} ({NETWORK_FACTOR_SOURCE})",
        "Excluded: embodied (manufacturing) emissions of the hardware, storage, data preparation (ETL), "
        "idle time between rounds, and any machine whose blocks were not measured",
    ]
