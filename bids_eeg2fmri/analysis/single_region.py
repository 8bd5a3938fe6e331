"""Single-region analysis (the seed's Figure 4): which region adds what to which EEG band.

For every region *j* of a subset, a model is trained on the non-grey-matter series plus region *j*
and compared with the same model trained on the non-GM series alone. Both are cross-validated over
subjects (every subject is held out once), so each subject contributes one held-out accuracy per
configuration and band cell (``<band>_<group>``: band power of a channel group). The improvement
``r(non-GM + j) − r(non-GM)`` is tested across subjects — a paired t-test, or an exact sign-flip
permutation test of the mean — and the p-values of all region × cell tests are corrected together
with Benjamini–Hochberg. A cell is significant when its FDR-adjusted p-value is below ``alpha`` and
the mean improvement is positive.

It trains ``1 + len(regions)`` cross-validations, so it is an explicit option taking a region
subset, and regions run in parallel (``workers`` processes).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..bids.derivatives import atomic_path, atomic_write_text
from ..data.windows import DataSpec, RunArrays, SequenceSpec
from ..errors import UsageError
from ..training.core import cross_validate
from ..training.options import TrainConfig
from ..training.scores import POOLED_SPECTROGRAM_SCORES

TESTS = ("ttest", "permutation")


def bh_fdr(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (NaNs are kept and not counted).

    :func:`scipy.stats.false_discovery_control` (``method="bh"``), which refuses NaN.
    """
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(p[ok], method="bh")
    return out


# Random sign patterns when the exact distribution (2^n patterns) would be larger than this.
PERMUTATIONS = 20_000


def paired_pvalue(diff: np.ndarray, test: str = "ttest") -> tuple[float, float]:
    """Two-sided p-value that the mean of paired differences is zero; returns ``(stat, p)``.

    ``ttest``: one-sample t-test of the differences (= paired t-test). ``permutation``:
    :func:`scipy.stats.permutation_test` of the mean under sign flips — exact over all ``2^n``
    patterns while ``2^n <= 20 000``, else 20 000 random ones, whose p-value counts the observed
    pattern (never 0).
    """
    diff = np.asarray(diff, dtype=float)
    diff = diff[np.isfinite(diff)]
    if diff.size < 2:
        return float("nan"), float("nan")
    if test == "ttest":
        if np.allclose(diff, diff[0]):
            return float("inf") if diff[0] else 0.0, 0.0 if diff[0] else 1.0
        res = stats.ttest_1samp(diff, 0.0)
        return float(res.statistic), float(res.pvalue)
    if test == "permutation":
        res = stats.permutation_test((diff,), np.mean, permutation_type="samples", vectorized=True,
                                     n_resamples=PERMUTATIONS, alternative="two-sided", random_state=0)
        return float(diff.mean()), float(res.pvalue)
    raise UsageError(f"unknown test {test!r}; choose from {', '.join(TESTS)}")


@dataclass
class SingleRegionResult:
    """Per-subject accuracies and the region × cell statistics."""

    scores: pd.DataFrame       # subject, config ('non-GM' or region), cell, r
    table: pd.DataFrame        # region, cell, mean/sem improvement, stat, p, q, significant, rank

    def improvement(self) -> pd.DataFrame:
        """Mean improvement, regions × cells."""
        return self.table.pivot(index="region", columns="cell", values="mean_improvement")

    def significant(self) -> pd.DataFrame:
        return self.table.pivot(index="region", columns="cell", values="significant")

    def ranking(self, cell: str) -> list[str]:
        """Regions ordered by mean improvement in ``cell``, best first."""
        sub = self.table[self.table["cell"] == cell].sort_values("mean_improvement",
                                                                 ascending=False)
        return sub["region"].tolist()


def _subset(runs: Sequence[RunArrays], spec: DataSpec, cols: list[int]) -> tuple[list[RunArrays], DataSpec]:
    names = spec.region_names or [str(i) for i in range(spec.n_bold)]
    sub_runs = [RunArrays(eeg=r.eeg, bold=np.asarray(r.bold[:])[:, cols], subject=r.subject,
                          run=r.run, retained=r.retained, eeg_valid=r.eeg_valid, fd=r.fd,
                          eeg_truth=r.eeg_truth) for r in runs]
    sub_spec = DataSpec(spec.channels, spec.frequencies, spec.n_frames, spec.tr, "regions",
                        len(cols), region_names=[names[c] for c in cols])
    return sub_runs, sub_spec


def _score_config(label: str, runs: Sequence[RunArrays], spec: DataSpec, cols: list[int],
                  kwargs: dict[str, Any]) -> pd.DataFrame:
    """Held-out per-subject r of every cell for the model trained on regions ``cols``."""
    import torch

    torch.set_num_threads(1)  # one thread per worker process: workers are the parallelism
    sub_runs, sub_spec = _subset(runs, spec, cols)
    cv = cross_validate(sub_runs, sub_spec, [kwargs["model"]], direction="fmri2eeg",
                        regime=kwargs["regime"],
                        k=kwargs["k"], window=kwargs["window"], train_config=kwargs["train_config"],
                        hparams=kwargs["hparams"], early_stopping=False, bands=kwargs["bands"],
                        groups=kwargs["groups"], seed=kwargs["seed"])
    per = cv.per_subject
    cells = [c[2:] for c in per.columns if c.startswith("r_")
             and c not in POOLED_SPECTROGRAM_SCORES and not c.startswith("r_truth_")]
    long = per.melt(id_vars=["subject"], value_vars=[f"r_{c}" for c in cells], var_name="cell",
                    value_name="r")
    long["cell"] = long["cell"].str[2:]
    long["config"] = label
    return long[["subject", "config", "cell", "r"]]


def single_region_analysis(runs: Sequence[RunArrays], spec: DataSpec, *, non_gm: str = "non-GM",
                           regions: Sequence[str] | None = None, model: str = "ridge",
                           window: SequenceSpec | None = None, regime: str = "kfold", k: int = 5,
                           train_config: TrainConfig | None = None,
                           hparams: dict[str, dict[str, Any]] | None = None,
                           bands: dict[str, tuple[float, float]] | None = None,
                           groups: dict[str, list[str]] | None = None, test: str = "ttest",
                           alpha: float = 0.05, workers: int = 1, seed: int = 0,
                           out_dir: str | os.PathLike | None = None) -> SingleRegionResult:
    """Run the analysis of the module docstring.

    Parameters
    ----------
    runs, spec
        Region BOLD (whose ``spec.region_names`` include ``non_gm``) and spectrograms.
    non_gm
        Name of the non-grey-matter series, the reference every configuration includes.
    regions
        Region subset to test (default: every region except ``non_gm``).
    model, window, regime, k, train_config, hparams, bands, groups, seed
        As :func:`bids_eeg2fmri.training.core.cross_validate` (whose subject folds give one
        held-out score per subject).
    test
        ``ttest`` (paired t-test across subjects) or ``permutation`` (exact sign flips).
    alpha
        FDR level.
    workers
        Processes running configurations in parallel (1: in this process).
    out_dir
        Writes ``single_region.tsv`` and ``single_region.svg``.

    Returns
    -------
    SingleRegionResult
    """
    names = list(spec.region_names or [])
    if non_gm not in names:
        raise UsageError(f"the region series have no {non_gm!r} column (regions: "
                         f"{', '.join(names[:8])}…); build them with a non-grey-matter part")
    regions = [n for n in names if n != non_gm] if regions is None else list(regions)
    unknown = [r for r in regions if r not in names or r == non_gm]
    if unknown:
        raise UsageError(f"unknown or reference regions in the subset: {', '.join(unknown)}")
    if test not in TESTS:
        raise UsageError(f"unknown test {test!r}; choose from {', '.join(TESTS)}")
    if workers < 1:
        raise UsageError(f"workers must be >= 1, got {workers}")
    ref = names.index(non_gm)
    kwargs = {"model": model, "regime": regime, "k": k, "window": window or SequenceSpec(),
              "train_config": train_config, "hparams": hparams, "bands": bands, "groups": groups,
              "seed": seed}
    configs = [(non_gm, [ref])] + [(r, [ref, names.index(r)]) for r in regions]
    if workers == 1:
        parts = [_score_config(label, runs, spec, cols, kwargs) for label, cols in configs]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_score_config, label, runs, spec, cols, kwargs)
                       for label, cols in configs]
            parts = [f.result() for f in futures]
    scores = pd.concat(parts, ignore_index=True)
    wide = scores.pivot_table(index=["subject", "cell"], columns="config", values="r")
    records = []
    for region in regions:
        for cell in scores["cell"].unique():
            d = (wide[region] - wide[non_gm]).xs(cell, level="cell").to_numpy()
            stat, p = paired_pvalue(d, test)
            records.append({"region": region, "cell": cell, "n_subjects": int(np.isfinite(d).sum()),
                            "mean_improvement": float(np.nanmean(d)),
                            "sem_improvement": float(stats.sem(d, nan_policy="omit")),
                            "stat": stat, "p": p})
    table = pd.DataFrame.from_records(records)
    table["q"] = bh_fdr(table["p"].to_numpy())
    table["significant"] = (table["q"] < alpha) & (table["mean_improvement"] > 0)
    table["rank"] = table.groupby("cell")["mean_improvement"].rank(ascending=False, method="min")
    table["rank"] = table["rank"].astype(int)
    result = SingleRegionResult(scores, table)
    if out_dir is not None:
        out = Path(out_dir)
        atomic_write_text(out / "single_region.tsv",
                          table.to_csv(sep="\t", index=False, na_rep="n/a", float_format="%.6g"))
        plot_single_region(result, out / "single_region.svg")
    return result


def plot_single_region(result: SingleRegionResult, path: str | os.PathLike) -> Path:
    """Heat map of mean improvement (regions × cells); ``*`` marks FDR-significant cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    imp = result.improvement()
    sig = result.significant().reindex(index=imp.index, columns=imp.columns).fillna(False)
    lim = float(np.nanmax(np.abs(imp.to_numpy()))) or 1.0
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * imp.shape[1], 1.0 + 0.45 * imp.shape[0]))
    im = ax.imshow(imp.to_numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(imp.shape[1]), imp.columns, rotation=45, ha="right")
    ax.set_yticks(range(imp.shape[0]), imp.index)
    for i, j in zip(*np.nonzero(sig.to_numpy().astype(bool))):
        ax.text(j, i, "*", ha="center", va="center", fontsize=14, color="k")
    fig.colorbar(im, ax=ax, label="Δr (non-GM + region − non-GM)")
    ax.set_title("Single-region improvement (* FDR-significant)")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "svg")
    plt.close(fig)
    return Path(path)
