"""Participant classification through a frozen EEG→fMRI synthesis model (after Calhas 2023, the
EEG-to-fMRI package's classification extension).

The fitted synthesis model is frozen: :func:`encoder_features` runs its EEG path over every
sample window and returns the EEG latent (models with ``encode_eeg``) or the synthesized volume
(the others). A linear head is trained on those window features with one of Calhas' two
objectives:

- ``crossentropy`` (the likelihood variant): multinomial logistic regression;
- ``contrastive``: a linear projection trained with a margin contrastive loss on sample pairs
  (same participant group pulled together, different groups pushed at least ``margin`` apart);
  a window is assigned the group whose training centroid is nearest in the projection.

A participant's prediction is the group its windows favour on average. :func:`cross_validate_groups`
holds out whole participants (every window of a participant shares its label, so window-level
folds would leak it), and its permutation test permutes the labels of participants, not of
windows, through :func:`scipy.stats.permutation_test`.

EEG is z-scored per participant before it reaches the model, so the mean of any *linear* function
of a window is the same for every participant: a linear synthesis model (``ridge``) passes no
group difference on, and only the non-linearity of a deep encoder can turn a difference in the
EEG's covariance into a difference of feature means.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, confusion_matrix
from torch.utils.data import DataLoader

from ..data.windows import RunArrays

OBJECTIVES = ("crossentropy", "contrastive")


def encoder_features(fitted: Any, runs: Sequence[RunArrays], samples: pd.DataFrame, *,
                     batch_size: int = 64) -> np.ndarray:
    """Frozen-encoder features ``(n_samples, d)`` of ``samples`` of ``runs``.

    The model's EEG latent, flattened: ``encode_eeg`` or ``encode`` where the model has one,
    the input of the final read-out layer of a sequential network (``mlp``'s last hidden
    layer), else the synthesized volume in the normalised target units. Participants the model
    has no statistics for are normalised with their own (as in prediction).
    """
    ds = fitted.calibrated(runs, samples, None).dataset(runs, samples)
    net = fitted.model.to("cpu").eval()
    encode = _encoder(net)
    out = []
    with torch.no_grad():
        for batch in DataLoader(ds, batch_size=batch_size, shuffle=False):
            out.append(encode(batch["x"]).reshape(len(batch["x"]), -1).float().numpy())
    return np.concatenate(out).astype(np.float64)


def _encoder(net: torch.nn.Module) -> Any:
    for name in ("encode_eeg", "encode"):
        if callable(getattr(net, name, None)):
            return getattr(net, name)
    seq = getattr(net, "net", None)
    if isinstance(seq, torch.nn.Sequential) and isinstance(seq[-1], torch.nn.Linear):
        return seq[:-1]
    return net


class Reducer:
    """Label-free part of the head: z-scoring of every feature, then the first ``components``
    principal components (fitted on training windows; 0 keeps every feature). It keeps thousands
    of voxel features from swamping a few participants, and, needing no labels, is fitted once
    per fold and shared by every permutation."""

    def __init__(self, components: int = 16) -> None:
        self.components = components

    def fit(self, x: np.ndarray) -> "Reducer":
        self.mean = x.mean(axis=0)
        self.std = x.std(axis=0)
        self.std[self.std == 0] = 1.0
        z = (x - self.mean) / self.std
        k = min(self.components, x.shape[1], x.shape[0] - 1) if self.components else 0
        self.components_ = None
        if k:
            # Eigenvectors of the feature covariance: with many more windows than features this
            # is the PCA at a fraction of an SVD of the window matrix (scikit-learn's
            # "covariance_eigh" solver, absent from the oldest supported release).
            vals, vecs = np.linalg.eigh(z.T @ z)
            self.components_ = vecs[:, np.argsort(vals)[::-1][:k]].T
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.mean) / self.std
        return z @ self.components_.T if self.components_ is not None else z

    def state(self) -> dict[str, Any]:
        return {"scale_mean": self.mean, "scale_std": self.std, "components": self.components_}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "Reducer":
        """The fitted reducer :meth:`state` describes (as read back from a model file)."""
        comps = state.get("components")
        red = cls(0 if comps is None else len(comps))
        red.mean = np.asarray(state["scale_mean"], dtype=np.float64)
        red.std = np.asarray(state["scale_std"], dtype=np.float64)
        red.components_ = None if comps is None else np.asarray(comps, dtype=np.float64)
        return red


class LinearHead:
    """A linear classifier of reduced window features.

    Parameters
    ----------
    objective
        ``crossentropy`` or ``contrastive`` (module docstring).
    c
        Inverse L2 strength of the logistic regression (classes weighted to balance, so that
        holding out a participant does not tilt the intercept towards the other class).
    dim, margin, epochs
        Contrastive projection size, margin and full-batch Adam steps.
    seed
        Seeds the contrastive projection's initialisation and the pair sampling.
    """

    def __init__(self, objective: str = "crossentropy", *, c: float = 1.0, dim: int = 8,
                 margin: float = 1.0, epochs: int = 150, seed: int = 0) -> None:
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        self.objective, self.c = objective, c
        self.dim, self.margin, self.epochs, self.seed = dim, margin, epochs, seed

    def fit(self, z: np.ndarray, y: np.ndarray) -> "LinearHead":
        """Fit on reduced window features ``z`` ``(n, k)`` and integer labels ``y`` ``(n,)``."""
        self.classes_ = np.unique(y)
        if self.objective == "crossentropy":
            self.clf = LogisticRegression(C=self.c, max_iter=200, class_weight="balanced",
                                          solver="newton-cholesky")
            self.clf.fit(z, y)
            self.coef, self.intercept = self.clf.coef_, self.clf.intercept_
        else:
            self.weight = _contrastive_projection(z, y, self.dim, self.margin, self.epochs,
                                                  self.seed)
            proj = z @ self.weight
            self.centroids = np.stack([proj[y == c].mean(0) for c in self.classes_])
        return self

    def scores(self, z: np.ndarray) -> np.ndarray:
        """Per-window class scores ``(n, n_classes)`` (higher = more likely), columns in
        ``classes_`` order: log-probabilities, or minus the squared distance to each centroid."""
        if self.objective == "crossentropy":
            return _log_proba(z @ self.coef.T + self.intercept)
        proj = z @ self.weight
        return -((proj[:, None, :] - self.centroids[None]) ** 2).sum(-1)

    def state(self) -> dict[str, Any]:
        """Arrays and settings of the fitted head (for a safetensors model file)."""
        out: dict[str, Any] = {"objective": self.objective,
                               "classes": self.classes_.astype(np.int64)}
        if self.objective == "crossentropy":
            out.update(coef=self.coef, intercept=self.intercept)
        else:
            out.update(projection=self.weight, centroids=self.centroids)
        return out

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "LinearHead":
        """The fitted head :meth:`state` describes: it scores exactly as the head that wrote it."""
        head = cls(str(state["objective"]))
        head.classes_ = np.asarray(state["classes"], dtype=np.int64)
        if head.objective == "crossentropy":
            head.coef = np.asarray(state["coef"], dtype=np.float64)
            head.intercept = np.asarray(state["intercept"], dtype=np.float64)
        else:
            head.weight = np.asarray(state["projection"], dtype=np.float64)
            head.centroids = np.asarray(state["centroids"], dtype=np.float64)
        return head


def _log_proba(decision: np.ndarray) -> np.ndarray:
    """Class log-probabilities of logistic-regression decision values (scikit-learn's
    convention: one column means two classes, the column scoring the second), computed from the
    saved coefficients so a loaded head reproduces the fitted one bit for bit."""
    if decision.shape[1] == 1:
        d = decision[:, 0]
        return np.stack([-np.logaddexp(0.0, d), -np.logaddexp(0.0, -d)], axis=1)
    return decision - np.logaddexp.reduce(decision, axis=1, keepdims=True)


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 of a network's weights (names, dtypes, shapes and bytes, in name order): the
    classifier card records its encoder's, so applying it with other weights is refused."""
    h = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        t = value.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


def _contrastive_projection(z: np.ndarray, y: np.ndarray, dim: int, margin: float, epochs: int,
                            seed: int, lr: float = 0.05) -> np.ndarray:
    """Linear ``W`` minimising the margin contrastive loss over a fixed random set of window
    pairs, ``same·d² + (1 − same)·max(0, margin − d)²`` with ``d = ‖(z_i − z_j) W‖`` (Hadsell et
    al. 2006, the loss of Calhas' contrastive classifier), by ``epochs`` full-batch Adam steps
    on the analytic gradient (a few hundred pairs of 16 features: numpy beats any solver's
    call overhead, which matters inside the permutation test)."""
    rng = np.random.default_rng(seed)
    n_pairs = min(512, len(z) * 2)
    i, j = rng.integers(len(z), size=(2, n_pairs))
    diff = z[i] - z[j]
    same = y[i] == y[j]
    w = rng.normal(size=(z.shape[1], dim)) / np.sqrt(z.shape[1])
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t in range(1, epochs + 1):
        proj = diff @ w
        d = np.sqrt((proj ** 2).sum(1)) + 1e-12
        gap = np.clip(margin - d, 0, None)
        coef = np.where(same, 2.0, -2.0 * gap / d) / n_pairs
        grad = diff.T @ (coef[:, None] * proj)
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad ** 2
        w -= lr * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    return w


@dataclass
class ClassificationResult:
    """Cross-validated classification of participants.

    Attributes
    ----------
    participants
        One row per participant: ``participant``, ``label``, ``predicted``, ``fold`` and the mean
        window score of every class (``score_<label>``).
    balanced_accuracy, window_balanced_accuracy
        Participant-level and window-level balanced accuracy of the held-out predictions.
    chance
        Chance level of the balanced accuracy, ``1 / n_classes``.
    p_value, n_permutations, null
        Permutation test of the participant-level balanced accuracy (participant labels
        permuted) and its null distribution.
    confusion
        Participants, rows true and columns predicted, in :attr:`classes` order.
    """

    participants: pd.DataFrame
    classes: list[str]
    balanced_accuracy: float
    window_balanced_accuracy: float
    chance: float
    p_value: float
    n_permutations: int
    confusion: np.ndarray
    null: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def summary(self) -> dict[str, Any]:
        """The scores as one flat record (the TSV row and the model card's ``cv``)."""
        return {"n_participants": int(len(self.participants)), "classes": ", ".join(self.classes),
                "balanced_accuracy": self.balanced_accuracy,
                "window_balanced_accuracy": self.window_balanced_accuracy, "chance": self.chance,
                "p_value": self.p_value, "n_permutations": self.n_permutations}


def participant_folds(participants: np.ndarray, labels: np.ndarray, k: int) -> list[np.ndarray]:
    """Held-out participant indices of ``k`` folds, each class spread over the folds (sorted
    by class then name, dealt round-robin), so every training set holds every class when each
    class has at least two participants. ``k`` ≥ the number of participants gives leave-one-out."""
    order = np.lexsort((participants, labels))
    k = min(k, len(participants))
    return [np.sort(order[i::k]) for i in range(k)]


class _FoldFeatures:
    """Reduced training and test features per held-out participant set, computed once: the
    reduction needs no labels, and the permutations deal the same participants into the same
    folds again and again."""

    def __init__(self, features: np.ndarray, window_part: np.ndarray, components: int) -> None:
        self.features, self.window_part, self.components = features, window_part, components
        self.cache: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def __call__(self, test: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        key = tuple(int(t) for t in test)
        if key not in self.cache:
            is_test = np.isin(self.window_part, test)
            red = Reducer(self.components).fit(self.features[~is_test])
            self.cache[key] = (is_test, red.transform(self.features[~is_test]),
                               red.transform(self.features[is_test]))
        return self.cache[key]


def _cv_scores(fold_features: _FoldFeatures, names: np.ndarray, part_labels: np.ndarray, k: int,
               make_head: Any) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Held-out mean class scores per participant ``(P, n_classes)``, per-window predictions
    and the folds, dealt from ``part_labels`` (so a permutation is cross-validated exactly as
    the true labels are)."""
    window_part = fold_features.window_part
    n_classes = int(part_labels.max()) + 1
    part_scores = np.full((len(part_labels), n_classes), -np.inf)
    window_pred = np.zeros(len(window_part), dtype=int)
    folds = participant_folds(names, part_labels, k)
    for test in folds:
        is_test, z_train, z_test = fold_features(test)
        head = make_head().fit(z_train, part_labels[window_part[~is_test]])
        s = np.full((len(z_test), n_classes), -np.inf)
        s[:, head.classes_] = head.scores(z_test)
        window_pred[is_test] = s.argmax(1)
        test_part = window_part[is_test]
        for p in np.unique(test_part):
            part_scores[p] = s[test_part == p].mean(0)
    return part_scores, window_pred, folds


def cross_validate_groups(features: np.ndarray, window_participant: Sequence[str],
                          labels: dict[str, str], *, objective: str = "crossentropy",
                          folds: int = 10, permutations: int = 200, components: int = 16,
                          seed: int = 0, **head_options: Any) -> ClassificationResult:
    """Classify participants from their windows' features, cross-validated by participant.

    Parameters
    ----------
    features
        ``(n_windows, d)`` frozen-encoder features (:func:`encoder_features`).
    window_participant
        The participant of every window.
    labels
        Participant → group label (every participant of ``window_participant``).
    objective
        ``crossentropy`` or ``contrastive``.
    folds
        Participant folds (leave-one-participant-out when at least the number of participants).
    permutations
        Label permutations of the test; 0 skips it (p-value NaN).
    components
        Principal components of the features the head reads (see :class:`Reducer`).
    seed
        Seeds the folds' head and the permutations.
    head_options
        Passed to :class:`LinearHead`.

    Returns
    -------
    ClassificationResult
    """
    window_participant = np.asarray(window_participant, dtype=str)
    names = np.array(sorted(set(window_participant)))
    classes = sorted({labels[p] for p in names})
    if len(classes) < 2:
        raise ValueError(f"classification needs at least two groups, found {classes}")
    part_labels = np.array([classes.index(labels[p]) for p in names])
    window_part = np.searchsorted(names, window_participant)
    fold_features = _FoldFeatures(features, window_part, components)

    def make_head() -> LinearHead:
        return LinearHead(objective, seed=seed, **head_options)

    def statistic(perm_labels: np.ndarray) -> float:
        scores, _, _ = _cv_scores(fold_features, names, perm_labels, folds, make_head)
        return balanced_accuracy_score(perm_labels, scores.argmax(1))

    scores, window_pred, fold_list = _cv_scores(fold_features, names, part_labels, folds,
                                                make_head)
    predicted = scores.argmax(1)
    observed = balanced_accuracy_score(part_labels, predicted)
    p_value, null = float("nan"), np.zeros(0)
    if permutations:
        # One sample permuted in place ("pairings"): every participant keeps its windows and
        # features and the labels are reassigned among participants. Exact when the number of
        # distinct orderings is at most ``permutations``; otherwise a random sample, with the
        # p-value counting the observed labelling as one of the null draws.
        res = stats.permutation_test((part_labels,), statistic, permutation_type="pairings",
                                     vectorized=False, n_resamples=permutations,
                                     alternative="greater", random_state=seed)
        p_value, null = float(res.pvalue), np.asarray(res.null_distribution)
    table = pd.DataFrame({"participant": names, "label": [classes[i] for i in part_labels],
                          "predicted": [classes[i] for i in predicted],
                          "fold": [next(i for i, f in enumerate(fold_list) if j in f)
                                   for j in range(len(names))]})
    for c, name in enumerate(classes):
        table[f"score_{name}"] = scores[:, c]
    return ClassificationResult(
        table, classes, float(observed),
        float(balanced_accuracy_score(part_labels[window_part], window_pred)),
        1.0 / len(classes), p_value, int(len(null)),
        confusion_matrix(part_labels, predicted, labels=np.arange(len(classes))), null)


def fit_final_head(features: np.ndarray, window_participant: Sequence[str],
                   labels: dict[str, str], classes: Sequence[str], *,
                   objective: str = "crossentropy", components: int = 16, seed: int = 0,
                   **head_options: Any) -> tuple[Reducer, LinearHead]:
    """Reducer and head refitted on every participant's windows (the classifier that is saved)."""
    y = np.array([list(classes).index(labels[p]) for p in window_participant])
    red = Reducer(components).fit(features)
    return red, LinearHead(objective, seed=seed, **head_options).fit(red.transform(features), y)
