"""The bundled datasets and studies, declared with the same mechanism as any node's own data.

>>> sorted(bundled_datasets())
['cleveland', 'hungarian', 'switzerland', 'va']
>>> bundled_study("heart").feature_names()[-2:]
('restecg=1', 'restecg=2')
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from fedsante.data.sources import DatasetDeclaration
from fedsante.data.study import StudySchema, load_study
from fedsante.common.errors import ConfigError


def data_dir() -> Path:
    """The ``fedsante/data`` package folder (bundled paths are relative to it)."""
    return Path(str(resources.files("fedsante.data")))


def bundled_dir() -> Path:
    """The folder of the bundled dataset declarations (``datasets.toml``)."""
    return data_dir() / "bundled"


def bundled_datasets() -> dict[str, DatasetDeclaration]:
    """The bundled dataset declarations by name, with absolute paths."""
    table = tomllib.loads((bundled_dir() / "datasets.toml").read_text(encoding="utf-8"))
    declarations = [DatasetDeclaration.model_validate(d).resolved(data_dir()) for d in table["dataset"]]
    return {d.name: d for d in declarations}


def bundled_study(name: str = "heart") -> StudySchema:
    """A bundled study by name (``data/studies/<name>.toml``)."""
    studies = sorted(p.stem for p in (data_dir() / "studies").glob("*.toml"))
    if name not in studies:
        raise ConfigError(f"Unknown bundled study {name!r}. Bundled studies: {', '.join(studies)}.")
    return load_study(data_dir() / "studies" / f"{name}.toml")
