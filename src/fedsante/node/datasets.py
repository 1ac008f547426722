"""The datasets a node holds: its registry (``<data dir>/datasets.toml``), the bundled ones, and cohorts.

A node config names its dataset (``dataset = "trial"``): one registered at this node with
``fedsante node dataset add``, else a bundled hospital. :func:`build_cohort` reads it with DuckDB and
compiles it for a study and this node's mapping; the result is cached in the process so that the
tasks of a run do not re-read the file. Row counts and raw values stay here: only
:func:`catalogue_summary` (names and column types, no value, no count) may be published.

>>> combine_mapping(["age=AGE_YRS"]).get("age").column
'AGE_YRS'
"""

from __future__ import annotations

import json
import tomllib
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from fedsante.data.bundled import bundled_datasets
from fedsante.data.cohort import Cohort, compile_cohort
from fedsante.data.mapping import Mapping, MappingProblem, load_mapping, mapping_problems, parse_map_option
from fedsante.data.sources import ColumnSummary, DatasetDeclaration, RawTable, describe, read_table
from fedsante.data.study import StudySchema
from fedsante.common.errors import ConfigError, field_problems
from fedsante.federation.messages import MAX_CATALOGUE_COLUMNS, CatalogueDataset

if TYPE_CHECKING:
    from fedsante.node.config import NodeConfig

CACHE_SIZE = 8


class DatasetRegistry:
    """The datasets registered at a node: ``[[dataset]]`` entries of a TOML file, re-read on every use."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def all(self) -> dict[str, DatasetDeclaration]:
        """The registered declarations by name (relative paths resolved against the file's folder)."""
        try:
            table = tomllib.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"Dataset registry {self.path} is not valid UTF-8 TOML ({exc}). Fix the syntax, "
                              "or register the datasets again with 'fedsante node dataset add'.") from None
        declarations = {}
        for i, entry in enumerate(table.get("dataset", [])):
            try:
                decl = DatasetDeclaration.model_validate(entry).resolved(self.path.parent)
            except ValidationError as exc:
                problems = field_problems(exc, prefix=f"dataset.{i}.")
                raise ConfigError(f"Dataset registry {self.path} is invalid: {'; '.join(problems)}.",
                                  errors=problems) from None
            declarations[decl.name] = decl
        return declarations

    def get(self, name: str) -> DatasetDeclaration | None:
        """The declaration of ``name``, or None."""
        return self.all().get(name)

    def add(self, decl: DatasetDeclaration, *, replace: bool = False) -> RawTable:
        """Register ``decl`` after reading its file (a bad file raises its DataError, nothing is written).

        Returns the table read, for the operator's own screen.
        """
        entries = self.all()
        if decl.name in entries and not replace:
            raise ConfigError(f"Dataset {decl.name!r} is already registered in {self.path} "
                              f"(path {entries[decl.name].path}). Pass --replace to replace it, "
                              "or choose another name.")
        decl = decl.resolved(Path.cwd())
        raw = read_table(decl)
        entries[decl.name] = decl
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(dump_registry(list(entries.values())), encoding="utf-8")
        tmp.replace(self.path)
        return raw


def dump_registry(declarations: list[DatasetDeclaration]) -> str:
    """The TOML text of a registry (every setting written, so the file says what is read)."""
    lines = ["# Datasets registered at this node. Edit with 'fedsante node dataset add'.", ""]
    for decl in declarations:
        lines.append("[[dataset]]")
        for key, value in decl.model_dump().items():
            lines.append(f"{key} = {json.dumps(value, ensure_ascii=False)}")  # str and list[str]: valid TOML
        lines.append("")
    return "\n".join(lines)


def registry(cfg: NodeConfig) -> DatasetRegistry:
    """The registry of the node of ``cfg``."""
    return DatasetRegistry(cfg.datasets_path)


def resolve_dataset(cfg: NodeConfig) -> DatasetDeclaration:
    """The declaration of the node's dataset: registered here, else bundled; or ``dataset_path``'s CSV."""
    if cfg.dataset_path is not None:
        try:
            return DatasetDeclaration(name=cfg.dataset_path.stem, path=str(cfg.dataset_path), format="csv")
        except ValidationError:
            raise ConfigError(
                f"The file name of dataset_path {cfg.dataset_path} does not make a dataset name (lower-case letters, "
                "digits, '-' or '_', starting with a letter). Rename the file, or register it with "
                "'fedsante node dataset add NAME --path FILE' and set 'dataset = \"NAME\"'.") from None
    name = cfg.dataset or ""
    registered = registry(cfg).all()
    if name in registered:
        return registered[name]
    bundled = bundled_datasets()
    if name in bundled:
        return bundled[name]
    raise ConfigError(
        f"Dataset {name!r} is neither registered at node {cfg.node_id} "
        f"(registered: {', '.join(sorted(registered)) or 'none'}) nor bundled (bundled: {', '.join(sorted(bundled))}). "
        f"Register it with 'fedsante node dataset add {name} --path FILE --config ...', or fix 'dataset'.")


_RAW: OrderedDict[tuple, RawTable] = OrderedDict()
_COHORTS: OrderedDict[tuple, Cohort] = OrderedDict()
_SUMMARIES: OrderedDict[tuple, CatalogueEntry] = OrderedDict()


def _file_key(decl: DatasetDeclaration) -> tuple:
    path = Path(decl.path)
    stat = path.stat() if path.is_file() else None
    return (str(path.resolve()), stat.st_mtime_ns if stat else None, stat.st_size if stat else None,
            decl.model_dump_json())


def _remember(cache: OrderedDict, key: tuple, value):
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > CACHE_SIZE:
        cache.popitem(last=False)
    return value


def load_raw(decl: DatasetDeclaration) -> RawTable:
    """``read_table(decl)``, cached by file path, modification time, size and declaration."""
    key = _file_key(decl)
    if key in _RAW:
        _RAW.move_to_end(key)
        return _RAW[key]
    return _remember(_RAW, key, read_table(decl))


def build_cohort(cfg: NodeConfig, study: StudySchema, mapping: Mapping) -> Cohort:
    """The node's dataset compiled for ``study`` with ``mapping`` (DataError on any mapping problem).

    Cached by (file, modification time, size, study hash, mapping): the tasks of a run share it.
    """
    decl = resolve_dataset(cfg)
    key = (*_file_key(decl), study.sha256(), mapping.model_dump_json())
    if key in _COHORTS:
        _COHORTS.move_to_end(key)
        return _COHORTS[key]
    return _remember(_COHORTS, key, compile_cohort(load_raw(decl), study, mapping, dataset=decl.name))


def clear_cache() -> None:
    """Forget every cached table and cohort."""
    _RAW.clear()
    _COHORTS.clear()
    _SUMMARIES.clear()


def mapping_check(cfg: NodeConfig, study: StudySchema, mapping: Mapping) -> list[MappingProblem]:
    """Every problem of ``mapping`` on this node's dataset for ``study`` (LOCAL: names raw values)."""
    return mapping_problems(load_raw(resolve_dataset(cfg)), study, mapping)


def format_problem(problem: MappingProblem) -> str:
    """One line naming the file, column, value and count (for the operator's screen only).

    >>> format_problem(MappingProblem("t.csv", "ethnicity", "Race", "Black", 2, "map it"))
    "t.csv, column 'Race', value 'Black' (2 rows): map it"
    """
    value = "(column absent)" if problem.value is None else f"value {problem.value!r}"
    return f"{problem.file}, column {problem.column!r}, {value} ({problem.count} rows): {problem.message}"


def combine_mapping(map_options: list[str] | None = None, mapping_file: str | Path | None = None) -> Mapping:
    """A mapping from a ``[map]`` file and ``--map`` options; an option wins over the file for its variable."""
    entries = {m.variable: m for m in load_mapping(mapping_file).variables} if mapping_file else {}
    for text in map_options or []:
        entry = parse_map_option(text)
        entries[entry.variable] = entry
    return Mapping(variables=list(entries.values()))


@dataclass(frozen=True)
class CatalogueEntry:
    """What a node may publish of a dataset: no row value and no count."""

    name: str
    description: str
    format: str
    columns: tuple[ColumnSummary, ...]

    def as_dict(self) -> dict:
        return {**asdict(self), "columns": [asdict(c) for c in self.columns]}


def catalogue_summary(cfg: NodeConfig) -> CatalogueEntry:
    """The node's dataset as the desk's catalogue may show it (names and column types only).

    Cached like the table it summarises (file, modification time, size, declaration).
    """
    decl = resolve_dataset(cfg)
    key = _file_key(decl)
    if key in _SUMMARIES:
        _SUMMARIES.move_to_end(key)
        return _SUMMARIES[key]
    return _remember(_SUMMARIES, key, CatalogueEntry(name=decl.name, description=decl.description,
                                                     format=decl.format, columns=tuple(describe(load_raw(decl)))))


def catalogue_entries(cfg: NodeConfig) -> list[CatalogueDataset]:
    """The catalogue entries the node's profile publishes, within the desk's bounds (else ConfigError)."""
    summary = catalogue_summary(cfg)
    try:
        return [CatalogueDataset.model_validate(summary.as_dict())]
    except ValidationError as exc:
        problems = field_problems(exc)
        raise ConfigError(
            f"The desk's catalogue cannot take dataset {summary.name!r} as it is: {'; '.join(problems[:5])}. "
            f"It takes at most {MAX_CATALOGUE_COLUMNS} columns, names of 1 to 100 characters and a description "
            "of at most 500; register a file with fewer or shorter columns, or shorten the description "
            "('fedsante node dataset add ... --replace').", errors=problems) from None
