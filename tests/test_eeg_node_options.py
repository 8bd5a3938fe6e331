"""Each EEG node hashes only the options it reads: an STFT option re-runs only the spectral node."""

from __future__ import annotations

import h5py
from test_eeg_workflow import N_VOL, TR, _eeg_file, eeglab_bids  # noqa: F401  (fixture)

from bids_eeg2fmri.config import Config
from bids_eeg2fmri.interfaces.eeg import CleanEEG, EEGSpectral


def _run(root, out, work, stft_window: float) -> dict[str, float]:
    from bids_eeg2fmri.workflows.eeg import init_eeg_preproc_wf

    config = Config.from_sources({"output_dir": str(out), "bids_dir": str(root),
                                  "stft_window": stft_window})
    wf = init_eeg_preproc_wf(config=config, metadata={"RepetitionTime": TR,
                                                      "NumberOfVolumes": N_VOL,
                                                      "PowerLineFrequency": 60})
    wf.base_dir = str(work)
    wf.inputs.inputnode.eeg_file = str(_eeg_file(root))
    wf.run()
    node_dir = work / "eeg_preproc_wf"
    # A node that re-runs rewrites its result file; a cached one leaves it alone.
    return {n: (node_dir / n / f"result_{n}.pklz").stat().st_mtime_ns
            for n in ("clean_eeg", "eeg_spectral")}


def test_changing_the_stft_window_reruns_only_the_spectral_node(eeglab_bids, tmp_path):  # noqa: F811
    out, work = tmp_path / "out", tmp_path / "work"
    first = _run(eeglab_bids, out, work, 1.0)
    second = _run(eeglab_bids, out, work, 0.5)
    assert second["clean_eeg"] == first["clean_eeg"]
    assert second["eeg_spectral"] != first["eeg_spectral"]
    h5 = out / "sub-01" / "eeg" / "sub-01_task-rest_desc-stft_spectrogram.h5"
    with h5py.File(h5) as f:
        assert f["spectrogram"].shape[3] > 3  # 0.5 s frames: more of them per 2 s TR than 1 s
    assert "stft_window" in EEGSpectral.OPTIONS and "stft_window" not in CleanEEG.OPTIONS
