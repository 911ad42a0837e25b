"""Parameter sets the tests pin explicitly, so a change of the calibrated defaults cannot silently
change what a hand-computed scenario checks."""

#: The execution law and surplus rule before December 2026 (MODEL §5.3, §5.4, §6): sigma from the
#: last-price range, no depth collapse, no resolution bridge, all leftover margin to the fund, no
#: regrowth. Scenarios written for that law (and the sweep's synthetic crash, which needs bad debt)
#: pin it; tests/backtest/engine/test_model_terms.py checks the newer terms by hand.
LEGACY_LAW = {
    "impact_y": 1.0,
    "impact_range": "last",
    "impact_kappa": 0.0,
    "impact_beta": 0.0,
    "surplus_mode": "margin",
    "oi_regrow_s": 0.0,
}
