"""A short, self-contained HTML report of a federated study (Jinja2; no external assets)."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

_env = Environment(loader=PackageLoader("fedsante.reports", "templates"), autoescape=select_autoescape())


def render_report(results: dict) -> str:
    return _env.get_template("study.html").render(r=results)


def write_report(path: Path, results: dict) -> None:
    path.write_text(render_report(results), encoding="utf-8")
