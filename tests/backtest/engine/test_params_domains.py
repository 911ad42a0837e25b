"""Every model parameter has one stated domain, and no value outside it becomes a Params (issue 14)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from backtest.engine.params import DEFAULT_DOMAIN, DOMAINS, Params
from loaders.errors import UserError

NUMERIC = [f.name for f in dataclasses.fields(Params) if f.type == "float"]
HOSTILE = ["nan", "inf", "-inf", "1e400", "-1", "0", "1e308", "1e-300", "abc"]


def test_every_numeric_parameter_states_its_domain():
    assert NUMERIC, "Params has float fields"
    missing = [k for k in NUMERIC if k not in DOMAINS]
    assert not missing, f"add a DOMAINS row for {missing}"
    assert set(DOMAINS) <= set(NUMERIC), "a DOMAINS row names no parameter"
    for key in NUMERIC:
        assert DOMAINS[key].holds(getattr(Params(), key)), f"the default of {key} is outside its domain"
    assert math.isfinite(DEFAULT_DOMAIN.hi)


@pytest.mark.parametrize("key", NUMERIC)
@pytest.mark.parametrize("raw", HOSTILE)
def test_hostile_values_are_refused_or_inside_the_domain(key, raw):
    try:
        p = Params.from_overrides({key: raw})
    except UserError as e:
        msg = str(e)
        assert msg.startswith(f"--set {key}=") and "\n" not in msg
        return
    v = getattr(p, key)
    assert DOMAINS[key].holds(v), f"{key}={raw} accepted as {v}"


@pytest.mark.parametrize(
    "overrides,needle",
    [
        ({"funding_ref": "0"}, "funding_ref=0.0: must be a finite number >= 1e-06"),
        ({"taker_ref": "0"}, "taker_ref=0.0: must be a finite number >= 0.0001"),
        ({"oi_volume_ratio": "1e308"}, "<= 100"),
        ({"open_volume_share": "1e308"}, "<= 1 "),
        ({"size_usd": "nan 100000 2000000"}, "size_usd=nan 100000 2e\\+06: every entry"),
        ({"size_usd": "1e13 100000 2000000"}, "every entry must be a finite number > 0 and <= 1e\\+12"),
        ({"lev_median": "inf"}, "lev_median=inf"),
        ({"lev_sigma": "0"}, "lev_sigma=0"),
    ],
)
def test_issue_cases_name_the_bound(overrides, needle):
    with pytest.raises(UserError, match=needle):
        Params.from_overrides(overrides)


def test_model_doc_lists_every_domain():
    from pathlib import Path

    from backtest.engine.params import domains_table

    doc = (Path(__file__).resolve().parents[3] / "docs" / "MODEL.md").read_text(encoding="utf-8")
    assert domains_table() in doc, "regenerate the domains table in docs/MODEL.md §10"
