"""The design study's budget comparison: the best row under a cap is chosen on validation
(never test), rows over the cap or of other families are ignored, and the verdict compares
test means within the larger std."""
import math

from benchmarks.design_study import best_under, comparison, markdown


def _row(method, family, params, val, test, std=0.01):
    return {"method": method, "family_name": family, "family": family, "label": method,
            "adapter_params": params, "val_acc_at_lr": val, "test_acc_mean": test,
            "test_acc_std": std, "n_seeds": 3}


ROWS = [
    _row("h-small", "hamming", 1000, 0.60, 0.61),
    _row("h-big-test", "hamming", 1500, 0.58, 0.70),    # best on test, not on validation
    _row("h-large", "hamming", 5000, 0.66, 0.67),
    _row("road", "road", 1400, 0.62, 0.63, std=0.03),
    _row("fft", "fourierft", 4000, 0.68, 0.69),
    _row("lora", "lora", 900, 0.99, 0.99),              # not a peer of the comparison
]


def test_the_best_row_under_a_cap_is_chosen_on_validation():
    assert best_under(ROWS, 1600, ("hamming",))["method"] == "h-small"
    assert best_under(ROWS, 1600, ("road", "fourierft"))["method"] == "road"
    assert best_under(ROWS, 999, ("hamming",)) is None
    assert best_under(ROWS, 10_000, ("hamming",))["method"] == "h-large"


def test_the_verdict_uses_the_larger_std():
    c1600, c10k = comparison(ROWS, (1600, 10_000))
    # 0.61 against 0.63: 2 points below, within RoAd's 3-point std
    assert c1600["verdict"].startswith("within 1 std") and "-2.0 points" in c1600["verdict"]
    # 0.67 against 0.69, both std 1 point: below
    assert c10k["verdict"].startswith("below")
    lone = comparison([ROWS[0]], (1600,))[0]
    assert lone["verdict"] == "-" and lone["peer"] is None


def test_the_report_names_each_cap_and_row():
    text = markdown([dict(r, probe_recall1=math.nan, probe_drift=math.nan,
                          probe_base_recall1=math.nan) for r in ROWS], ROWS)
    for r in ROWS:
        assert f"| {r['method']} |" in text
    assert "| 1,600 | h-small (1,000) | 61.0 ± 1.0 | road (1,400) | 63.0 ± 3.0 |" in text


def test_the_default_sweep_table_gaps_are_validation_gaps():
    """One line per layout found on both benchmarks; its gaps are validation accuracy minus
    the best validation accuracy there (test accuracy, which disagrees here, is not used)."""
    from benchmarks.design_study import default_sweep
    text = [_row("hamming-12-bs32", "hamming", 3024, 0.70, 0.60),
            _row("hamming-12-bs16", "hamming", 2880, 0.68, 0.75),
            _row("hamming-123-bs16", "hamming", 1728, 0.65, 0.65)]      # no vision twin
    vision = [_row("vision-hamming-12-bs32", "hamming", 1008, 0.50, 0.40),
              _row("vision-hamming-12-bs16", "hamming", 960, 0.52, 0.52)]
    lines = default_sweep(text, vision)
    body = [line for line in lines if line.startswith("| {")]
    assert [line.split(" | ")[1] for line in body] == ["16", "32"]
    assert body[0].split(" | ")[4:6] == ["-2.0", "75.0 ± 1.0"]     # text: 0.68 - 0.70
    assert body[0].split(" | ")[7] == "+0.0" and body[1].split(" | ")[7] == "-2.0"
    assert default_sweep(text[2:], vision) == []
