"""The one typed configuration object of a run.

Values come from three layers, later ones winning: the defaults below, a TOML file given with
``--config``, and the command-line flags. Field names are unique across sections, so a flag's
destination name says which field it sets. The resolved configuration is saved with every run
(``logs/config-<time>-<pid>.toml``, one per invocation) and can be fed back with
``--config`` to repeat it.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from .errors import UsageError

ANALYSIS_LEVELS = ("participant", "group")
#: What the deep models early-stop (and shrink) on: time blocks of the training runs, or the
#: training participants held out one at a time (training/inner.py).
VALIDATION_REGIMES = ("time", "participant")
DEFAULT_BANDS = {"delta": (1.0, 4.0), "theta": (4.0, 8.0), "alpha": (8.0, 13.0), "beta": (13.0, 30.0)}


@dataclass
class ExecutionConfig:
    """Where data come from and go to, and how the run is executed."""

    bids_dir: Path | None = None
    output_dir: Path | None = None
    analysis_level: str = "participant"
    participant_label: list[str] = field(default_factory=list)
    session_label: list[str] = field(default_factory=list)
    task_label: list[str] = field(default_factory=list)
    bids_filter_file: Path | None = None
    bids_database_dir: Path | None = None
    work_dir: Path | None = None
    nprocs: int = 0
    omp_nthreads: int = 0
    mem_gb: float = 0.0
    skip_bids_validation: bool = False
    stop_on_first_crash: bool = False
    random_seed: int = 0
    device: str = "auto"
    model_dir: Path | None = None
    dry_run: bool = False
    debug: bool = False


@dataclass
class FMRIConfig:
    """fMRI preprocessing options (participant level)."""

    fmri_derivatives: Path | None = None
    dummy_scans: int | None = None
    slice_time_ref: float = 0.5
    hmc: str = "torch"
    registration: str = "syn"
    use_t1w: bool = False
    output_res: int = 2
    fwhm: float = 0.0
    high_pass: float = 0.0
    model_res: int = 4
    model_ready: bool = False


@dataclass
class EEGConfig:
    """EEG preprocessing options (participant level)."""

    eeg_derivatives: Path | None = None
    min_eeg_coverage: float = 0.5
    volume_marker: str = "auto"
    assume_eeg_bold_sync: float | None = None
    gradient_correction: str = "auto"
    bcg_correction: str = "auto"
    eeg_l_freq: float = 1.0
    eeg_h_freq: float = 30.0
    notch: bool = True
    eeg_sfreq: float = 250.0
    stft_window: float = 1.0
    stft_overlap: float = 0.5
    stft_taper: str = "hann"
    stft_scale: str = "log-power"
    stft_context: int = 0
    # Frame length in TRs (> 0 overrides stft_window) and the kept band (0: 0 Hz / eeg_h_freq),
    # so that a paper's TR-locked STFT (--protocol calhas2023) can be asked for at any TR.
    stft_window_trs: float = 0.0
    stft_fmin: float = 0.0
    stft_fmax: float = 0.0
    eeg_output_format: str = "brainvision"
    bands: dict[str, list[float]] = field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_BANDS.items()})


DIRECTIONS = ("eeg2fmri", "fmri2eeg", "both")
CV_REGIMES = ("loso", "kfold", "blocked", "split", "shuffled")


@dataclass
class GroupConfig:
    """Group-level training and cross-validation options."""

    direction: str = "both"
    models: list[str] = field(default_factory=list)
    cv: str = "loso"
    cv_folds: int = 5
    target: str = "regions"
    atlas: str = "harvard-oxford"
    window_s: float = 20.0
    epochs: int = 60
    batch_size: int = 32
    fd_threshold: float = 0.0
    resume: bool = False
    finetune: bool = False
    regions: list[str] = field(default_factory=list)
    window_trs: int = 50
    horizon_trs: int = 5
    weight_decay: float = 0.01
    eeg_features: str = "spectrogram"
    eeg_channels: str = "common"
    fmri_input: str = "regions"
    pca_components: int = 20
    single_region: bool = False
    single_region_regions: list[str] = field(default_factory=list)
    single_region_model: str = "ridge"
    single_region_test: str = "ttest"
    # Issue 15 (Calhas 2023): classification through the frozen synthesis model, attribution.
    classify: str = ""
    classify_model: str = ""
    classify_objective: str = "crossentropy"
    classify_permutations: int = 200
    attribution: bool = False
    attribution_region: str = ""
    attribution_steps: int = 32
    # Evaluation and training options (docs/evaluation.md; checked by evaluation.protocols).
    target_domain: str = "fluctuations"
    intensity_grid: str = "model"
    protocol: str = ""
    allow_leaky_split: bool = False
    lr: float = 0.0
    patience: int = 10
    validation: str = "time"
    hrf_lag: float = 0.0
    model_size: str = "small"
    # Bricman & Borst 2021's raw EEG input (--eeg-features raw)
    raw_eeg_band: list[float] = field(default_factory=lambda: [1.0, 30.0])
    raw_eeg_sfreq: float = 64.0
    raw_window_s: float = 30.0
    # The poster's segment models (fMRI→EEG whole-run reconstruction)
    reconstruct: str = "sliding"
    segments: int = 5


@dataclass
class Config:
    """The whole configuration of one invocation, in sections."""

    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    fmri: FMRIConfig = field(default_factory=FMRIConfig)
    eeg: EEGConfig = field(default_factory=EEGConfig)
    group: GroupConfig = field(default_factory=GroupConfig)

    # ------------------------------------------------------------------ building
    @classmethod
    def section_of(cls) -> dict[str, str]:
        """Map every field name to the name of the section that holds it."""
        owners: dict[str, str] = {}
        for sec in fields(cls):
            for f in fields(sec.default_factory()):  # type: ignore[misc]
                owners[f.name] = sec.name
        return owners

    @classmethod
    def from_sources(cls, cli: dict[str, Any] | None = None,
                     config_file: str | os.PathLike | None = None) -> "Config":
        """Build the configuration from defaults, a TOML file and command-line values.

        Parameters
        ----------
        cli
            Values given on the command line, keyed by field name; only given flags appear.
        config_file
            Optional TOML file with ``[execution]``, ``[fmri]`` and ``[eeg]`` tables.

        Returns
        -------
        Config
            The merged, type-checked configuration.

        Raises
        ------
        UsageError
            For unreadable files, unknown keys and values of the wrong type or range.
        """
        config = cls()
        if config_file is not None:
            config.update(load_toml(config_file), source=os.fspath(config_file))
        owners = cls.section_of()
        for name, value in (cli or {}).items():
            if name not in owners:
                raise UsageError(f"unknown option {name!r}")
            config._set(owners[name], name, value, source="command line")
        from .evaluation.protocols import apply_protocol

        apply_protocol(config, given=set(cli or {}))
        config.validate()
        return config

    def update(self, table: dict[str, Any], source: str) -> None:
        """Apply a nested ``{section: {field: value}}`` table, checking names and types."""
        for sec_name, values in table.items():
            if not hasattr(self, sec_name) or not isinstance(values, dict):
                raise UsageError(f"unknown section [{sec_name}]", path=source)
            for name, value in values.items():
                self._set(sec_name, name, value, source=source)

    def _set(self, sec_name: str, name: str, value: Any, source: str) -> None:
        section = getattr(self, sec_name)
        hints = get_type_hints(type(section))
        if name not in hints:
            raise UsageError(f"unknown setting {name!r} in [{sec_name}]", path=source)
        setattr(section, name, _coerce(value, hints[name], f"{sec_name}.{name}", source))

    # ---------------------------------------------------------------- checking
    def validate(self) -> None:
        """Check ranges and choices; raise :class:`UsageError` naming the setting."""
        ex, fm, ee = self.execution, self.fmri, self.eeg
        _choice("execution.device", ex.device, ("auto", "cpu", "cuda"))
        _choice("fmri.hmc", fm.hmc, ("torch", "ants"))
        _choice("fmri.registration", fm.registration, ("syn", "syn-quick", "affine"))
        _choice("fmri.output_res", fm.output_res, (1, 2, 3, 4))
        _choice("fmri.model_res", fm.model_res, (1, 2, 3, 4))
        _choice("eeg.gradient_correction", ee.gradient_correction, ("auto", "aas", "off"))
        _choice("eeg.bcg_correction", ee.bcg_correction, ("auto", "obs", "off"))
        for name, value in (("execution.nprocs", ex.nprocs), ("execution.omp_nthreads", ex.omp_nthreads),
                            ("execution.mem_gb", ex.mem_gb), ("fmri.fwhm", fm.fwhm),
                            ("fmri.high_pass", fm.high_pass), ("execution.random_seed", ex.random_seed)):
            if value < 0:
                raise UsageError(f"{name} must be >= 0, got {value}")
        if fm.dummy_scans is not None and fm.dummy_scans < 0:
            raise UsageError(f"fmri.dummy_scans must be >= 0, got {fm.dummy_scans}")
        if not 0.0 <= fm.slice_time_ref <= 1.0:
            raise UsageError(f"fmri.slice_time_ref must lie in [0, 1], got {fm.slice_time_ref}")
        if not 0 < ee.eeg_l_freq < ee.eeg_h_freq:
            raise UsageError(f"EEG band-pass needs 0 < l_freq < h_freq, got "
                             f"{ee.eeg_l_freq}-{ee.eeg_h_freq} Hz")
        if ee.eeg_sfreq < 2 * ee.eeg_h_freq:
            raise UsageError(f"eeg.eeg_sfreq {ee.eeg_sfreq} Hz is below twice the high cut-off "
                             f"{ee.eeg_h_freq} Hz")
        if ee.stft_window <= 0 or not 0 <= ee.stft_overlap < 1:
            raise UsageError("eeg.stft_window must be > 0 s and eeg.stft_overlap in [0, 1)")
        _choice("eeg.stft_scale", ee.stft_scale, ("log-power", "magnitude"))
        top = ee.stft_fmax or ee.eeg_h_freq
        if ee.stft_fmin < 0 or ee.stft_fmax < 0 or not ee.stft_fmin < top <= ee.eeg_sfreq / 2:
            raise UsageError(f"eeg.stft_fmin and stft_fmax must be >= 0 with stft_fmin < stft_fmax "
                             f"(0: eeg_h_freq) <= eeg_sfreq / 2 = {ee.eeg_sfreq / 2:g} Hz; got "
                             f"{ee.stft_fmin}, {ee.stft_fmax}")
        if not 0 <= ee.stft_window_trs <= ee.stft_context + 1:
            # A frame longer than the segment (the volume's TR plus its context) cannot be cut.
            raise UsageError(f"eeg.stft_window_trs must lie in [0, stft_context + 1 = "
                             f"{ee.stft_context + 1}] TRs; got {ee.stft_window_trs}")
        _choice("eeg.eeg_output_format", ee.eeg_output_format, ("brainvision", "fif"))
        if not 0 < ee.min_eeg_coverage <= 1:
            raise UsageError(f"eeg.min_eeg_coverage must lie in (0, 1], got {ee.min_eeg_coverage}")
        if ee.stft_context < 0:
            raise UsageError(f"eeg.stft_context must be >= 0 TRs, got {ee.stft_context}")
        _check_taper(ee.stft_taper)
        for band, edges in ee.bands.items():
            if len(edges) != 2 or not 0 <= edges[0] < edges[1]:
                raise UsageError(f"eeg.bands.{band} must be [low, high] with 0 <= low < high")
        gr = self.group
        _choice("group.direction", gr.direction, DIRECTIONS)
        _choice("group.cv", gr.cv, CV_REGIMES)
        _choice("group.target", gr.target, ("voxels", "regions"))
        _choice("group.validation", gr.validation, VALIDATION_REGIMES)
        _choice("group.atlas", gr.atlas, ("harvard-oxford", "aal"))
        for name, value in (("group.cv_folds", gr.cv_folds), ("group.epochs", gr.epochs),
                            ("group.batch_size", gr.batch_size), ("group.window_trs", gr.window_trs),
                            ("group.horizon_trs", gr.horizon_trs)):
            if value < 1:
                raise UsageError(f"{name} must be >= 1, got {value}")
        if gr.window_s <= 0 or gr.fd_threshold < 0:
            raise UsageError("group.window_s must be > 0 s and group.fd_threshold >= 0 mm")
        if gr.horizon_trs > gr.window_trs:
            raise UsageError(f"group.horizon_trs ({gr.horizon_trs}) must not exceed "
                             f"group.window_trs ({gr.window_trs})")
        if gr.weight_decay < 0:
            raise UsageError(f"group.weight_decay must be >= 0, got {gr.weight_decay}")
        _choice("group.single_region_test", gr.single_region_test, ("ttest", "permutation"))
        _choice("group.fmri_input", gr.fmri_input, ("regions", "pca"))
        _choice("group.eeg_features", gr.eeg_features, ("spectrogram", "bands", "raw"))
        _choice("group.reconstruct", gr.reconstruct, ("sliding", "segments"))
        if gr.segments < 2:
            raise UsageError(f"group.segments must be >= 2, got {gr.segments}")
        band = list(gr.raw_eeg_band)
        if len(band) != 2 or not 0 <= band[0] < band[1] < gr.raw_eeg_sfreq / 2 \
                or gr.raw_window_s <= 0:
            raise UsageError(f"group.raw_eeg_band {band} Hz must be [low, high] below half "
                             f"group.raw_eeg_sfreq {gr.raw_eeg_sfreq} Hz, and raw_window_s > 0")
        _choice("group.eeg_channels", gr.eeg_channels, ("common", "interpolate"))
        if gr.pca_components < 1:
            raise UsageError(f"group.pca_components must be >= 1, got {gr.pca_components}")
        if gr.single_region and gr.fmri_input == "pca":
            raise UsageError("group.single_region compares atlas regions; it needs "
                             "--fmri-input regions")
        if gr.single_region and gr.direction == "eeg2fmri":
            raise UsageError("group.single_region analyses the fMRI→EEG direction; use "
                             "--direction fmri2eeg or both")
        _check_calhas_options(gr)
        from .evaluation.protocols import validate_evaluation

        validate_evaluation(gr, level=ex.analysis_level)
        ex.participant_label = normalise_labels(ex.participant_label, "sub")
        ex.session_label = normalise_labels(ex.session_label, "ses")
        ex.task_label = normalise_labels(ex.task_label, "task")

    # ----------------------------------------------------------------- saving
    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Return the configuration as a nested dict of TOML-compatible values."""
        return {sec.name: {k: _plain(v) for k, v in dataclasses.asdict(getattr(self, sec.name)).items()
                           if v is not None}
                for sec in fields(self)}

    def to_toml(self) -> str:
        """Serialise to TOML text that :meth:`from_sources` reads back to an equal object."""
        return dump_toml(self.to_dict())


def _check_calhas_options(gr: GroupConfig) -> None:
    """Classification and attribution options (issue 15)."""
    _choice("group.classify_objective", gr.classify_objective,
            ("crossentropy", "contrastive", "both"))
    if gr.classify_permutations < 0 or gr.attribution_steps < 2:
        raise UsageError("group.classify_permutations must be >= 0 and group.attribution_steps "
                         ">= 2")
    if (gr.classify or gr.attribution) and gr.direction == "fmri2eeg":
        raise UsageError("--classify and --attribution read the EEG→fMRI models; use "
                         "--direction eeg2fmri or both")


def normalise_labels(labels: list[str], prefix: str) -> list[str]:
    """Strip a BIDS entity prefix (``sub-01`` → ``01``), dropping duplicates but keeping order.

    Parameters
    ----------
    labels
        Labels as typed by the user, with or without the ``<prefix>-`` lead.
    prefix
        The entity key, e.g. ``"sub"``.

    Returns
    -------
    list of str
        Bare labels.

    Raises
    ------
    UsageError
        If a label is empty or holds characters BIDS labels may not contain.
    """
    out: list[str] = []
    for raw in labels:
        label = str(raw).strip()
        if label.startswith(prefix + "-"):
            label = label[len(prefix) + 1:]
        if not label or not label.isalnum():
            raise UsageError(f"invalid {prefix} label {raw!r}: BIDS labels are letters and digits only")
        if label not in out:
            out.append(label)
    return out


def load_toml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a TOML configuration file, turning every failure into a :class:`UsageError`."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise UsageError("configuration file not found", path=path) from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read configuration file: {exc}", path=path) from None


def dump_toml(table: dict[str, dict[str, Any]]) -> str:
    """Write a nested table of TOML-compatible values as TOML text (:func:`tomli_w.dumps`)."""
    import tomli_w

    return tomli_w.dumps(table)


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _check_taper(name: str) -> None:
    from scipy.signal import get_window

    try:
        get_window(name, 16)
    except ValueError:
        raise UsageError(f"eeg.stft_taper {name!r} is not a scipy.signal window name") from None


def _choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise UsageError(f"{name} must be one of {', '.join(map(str, allowed))}; got {value!r}")


def _coerce(value: Any, hint: Any, name: str, source: str) -> Any:
    """Convert ``value`` to the annotated type, raising a UsageError that names the setting."""
    args = get_args(hint)
    if type(None) in args:
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
        args = get_args(hint)
    origin = get_origin(hint) or hint
    try:
        if origin is bool:
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            if not isinstance(value, bool):
                raise TypeError
            return value
        if origin is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            return int(value)
        if origin is float:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if origin is str:
            if not isinstance(value, str):
                raise TypeError
            return value
        if origin is Path:
            return Path(os.fspath(value)).expanduser()
        if origin is list:
            items = [value] if isinstance(value, (str, int)) else list(value)
            return [_coerce(v, args[0], name, source) for v in items]
        if origin is dict:
            if not isinstance(value, dict):
                raise TypeError
            return {str(k): _coerce(v, args[1], f"{name}.{k}", source) for k, v in value.items()}
    except (TypeError, ValueError):
        raise UsageError(f"{name} expects {getattr(hint, '__name__', hint)}, got {value!r}",
                         path=source) from None
    raise TypeError(f"unsupported configuration type {hint!r} for {name}")
