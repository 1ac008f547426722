"""The desk's privacy checks when a run starts: calibration to the approval, exact runs only when allowed."""

from __future__ import annotations

import pytest

from conftest import make_governed
from fedsante.algorithms.logreg import LogReg
from fedsante.desk.runs import _params, privacy_summary
from fedsante.common.errors import Forbidden
from fedsante.algorithms.logreg.params import LogRegParams


LOGREG = LogReg()


def test_unset_noise_is_calibrated_to_spend_the_approved_budget(tmp_path) -> None:
    document = make_governed(tmp_path).approval.document
    params = _params(LOGREG, document, {}, 4)
    summary = privacy_summary(params, document)
    assert params.calibrated and 0.99 <= summary["epsilon"] <= summary["approved_epsilon"] == 1.0
    assert summary["ledger"][-1]["release"] == "run (larger side)"


def test_exact_runs_need_the_desk_setting(tmp_path) -> None:
    governed = make_governed(tmp_path)
    document = governed.document(parameters=LogRegParams(privacy="none").model_dump(exclude_none=True))
    with pytest.raises(Forbidden, match="privacy 'none' is not allowed at this desk"):
        _params(LOGREG, document, {}, 4)
    assert _params(LOGREG, document, {}, 4, allow_exact=True).privacy == "none"


def test_an_approval_without_a_budget_cannot_run(tmp_path) -> None:
    document = make_governed(tmp_path).document(epsilon=None)
    with pytest.raises(Forbidden, match="fixes no privacy budget"):
        _params(LOGREG, document, {}, 4)
