"""Single-region analysis: non-GM + one region vs non-GM alone, across subjects, FDR-corrected."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import _torch_threads  # noqa: F401  (one thread)
from fmri2eeg_sim import NON_GM, simulate

from bids_eeg2fmri.analysis.single_region import bh_fdr, paired_pvalue, single_region_analysis
from bids_eeg2fmri.data.windows import SequenceSpec
from bids_eeg2fmri.errors import UsageError
from bids_eeg2fmri.training import TrainConfig

WINDOW = SequenceSpec(window=20, horizon=5)
# Per-band accuracy (the seed's Figure 4): band power over all channels; R1 drives alpha, R2 beta.
DRIVER = {"alpha_all": "R1", "beta_all": "R2"}


def _bh_reference(p):
    """BH by its definition: reject the k smallest with p_(k) <= k q / m; q-values by scanning q."""
    m = len(p)
    order = np.sort(p)
    return np.array([min(1.0, min(order[j] * m / (j + 1) for j in range(m) if order[j] >= pi))
                     for pi in p])


def test_bh_fdr_and_paired_tests():
    p = np.array([0.001, 0.04, 0.03, 0.2, 0.011, 0.9])
    np.testing.assert_allclose(bh_fdr(p), _bh_reference(p))
    assert np.isnan(bh_fdr(np.array([np.nan, 0.1]))[0])
    d = np.array([0.2, 0.25, 0.18, 0.3, 0.22])
    assert paired_pvalue(d, "ttest")[1] == pytest.approx(stats.ttest_1samp(d, 0).pvalue)
    # Exact sign flips: all positive among 5 subjects -> p = 2 / 32.
    assert paired_pvalue(d, "permutation")[1] == pytest.approx(2 / 32)
    with pytest.raises(UsageError, match="unknown test"):
        paired_pvalue(d, "wilcoxon")


def test_permutation_pvalue_beyond_16_subjects_is_never_zero_and_matches_exact():
    # All 20 differences positive: the observed pattern counts, so p >= 1 / (R + 1), not 0.
    p = paired_pvalue(np.linspace(0.1, 0.3, 20), "permutation")[1]
    assert 0 < p <= 2 / 20_001 + 1e-12
    # 18 mixed differences: the Monte Carlo p-value agrees with the exact one over 2^18 patterns.
    import itertools

    d = np.random.default_rng(5).normal(0.3, 1.0, 18)
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
    exact = np.mean(np.abs(signs @ d) >= abs(d.sum()) - 1e-12)
    assert paired_pvalue(d, "permutation")[1] == pytest.approx(exact, abs=0.01)


@pytest.fixture(scope="module")
def data():
    return simulate(n_subjects=6, n_volumes=200, seed=4)


def test_driving_region_ranks_first_and_significant(data, tmp_path):
    runs, spec, info = data
    res = single_region_analysis(runs, spec, non_gm=NON_GM, regions=["R1", "R2", "R3", "R4"],
                                 model="ridge", window=WINDOW, k=6, bands=info["bands"],
                                 groups={"all": spec.channels}, workers=2, out_dir=tmp_path)
    for cell, region in DRIVER.items():
        assert res.ranking(cell)[0] == region
        row = res.table[(res.table.cell == cell) & (res.table.region == region)].iloc[0]
        assert row.significant and row.mean_improvement > 0.3, row
    undriven = res.table[res.table.region.isin(["R3", "R4"])]
    assert not undriven["significant"].any(), undriven
    # A driving region adds nothing to the band it does not drive.
    assert not res.table[(res.table.region == "R1") & (res.table.cell == "beta_all")].significant.any()
    table = pd.read_csv(tmp_path / "single_region.tsv", sep="\t")
    assert {"region", "cell", "mean_improvement", "p", "q", "significant", "rank"} <= set(table)
    assert (tmp_path / "single_region.svg").read_text().lstrip().startswith("<?xml")


def test_parallel_equals_serial_and_bad_input(data):
    runs, spec, info = data
    kw = dict(non_gm=NON_GM, regions=["R1"], model="ridge", window=WINDOW, k=6,
              bands={"alpha": (8.0, 13.0)}, groups={"occipital": ["O1", "O2"]}, test="permutation")
    serial = single_region_analysis(runs, spec, workers=1, **kw)
    parallel = single_region_analysis(runs, spec, workers=2, **kw)
    pd.testing.assert_frame_equal(serial.table, parallel.table)
    with pytest.raises(UsageError, match="unknown or reference regions"):
        single_region_analysis(runs, spec, non_gm=NON_GM, regions=["R9"])
    with pytest.raises(UsageError, match="no 'WM' column"):
        single_region_analysis(runs, spec, non_gm="WM")


@pytest.mark.slow
def test_single_region_with_the_rnn(data):
    runs, spec, info = data
    res = single_region_analysis(
        runs, spec, non_gm=NON_GM, regions=["R1", "R2", "R3", "R4"], model="rnn-seq2seq",
        window=WINDOW, k=6, train_config=TrainConfig(epochs=15, lr=5e-3, weight_decay=0.5,
                                                     progress=False),
        bands=info["bands"], groups={"all": spec.channels}, workers=2)
    for cell, region in DRIVER.items():
        assert res.ranking(cell)[0] == region
        assert res.significant().loc[region, cell]
    assert not res.table[res.table.region.isin(["R3", "R4"])]["significant"].any(), res.table
