"""Placing a segmented EEG export inside its BOLD run through the run's raw recording."""

from __future__ import annotations

import numpy as np
import pytest

from bids_eeg2fmri.errors import DataError
from bids_eeg2fmri.eeg import segments, triggers

TR, N_VOL = 1.0, 30
RAW_LEAD = 3.7  # seconds of raw recording before the first volume
TOL = 3 / 200


def _raw_markers(discarded: int = 0):
    """Volume triggers (``discarded`` extra leading ones) and irregular block markers."""
    vols = RAW_LEAD + np.arange(-discarded, N_VOL) * TR
    blocks = RAW_LEAD + np.array([2.0, 9.3, 17.1, 24.6])
    desc = ["Response/R128"] * vols.size + ["Stimulus/S 99", "Stimulus/S  2"] * 2
    desc += ["New Segment/"]
    on = np.r_[vols, blocks, 0.0]
    return np.array(desc, dtype=object), on


def _export(raw_desc, raw_on, start: float, stop: float, jitter: float = 0.0, seed: int = 0):
    """What Analyzer keeps of the raw's markers in [start, stop) at 200 Hz, plus its own."""
    rng = np.random.default_rng(seed)
    inside = (raw_on >= start) & (raw_on < stop) & ~np.char.startswith(
        raw_desc.astype(str), "New Segment")
    on = np.round((raw_on[inside] - start) * 200) / 200 + rng.uniform(-jitter, jitter,
                                                                     inside.sum())
    desc = list(raw_desc[inside]) + ["Pulse Artifact/R"] * 5 + ["New Segment/"]
    on = np.r_[on, np.linspace(0.3, 4.1, 5), 0.0]
    return np.array(desc, dtype=object), on


def test_align_finds_the_shift_when_both_ends_lie_inside_the_run():
    raw_desc, raw_on = _raw_markers()
    start = RAW_LEAD + 2.0  # cut at the first block marker ...
    stop = RAW_LEAD + 25.5  # ... and before the last volume
    ex_desc, ex_on = _export(raw_desc, raw_on, start, stop, jitter=0.004)
    found = segments.align_markers(ex_desc, ex_on, raw_desc, raw_on, tolerance=TOL)
    assert found.shift == pytest.approx(start, abs=TOL)
    assert found.matched == found.compared  # volumes and block markers all land
    # the export's volume markers cannot say it: both ends are inside the run
    vol = np.sort(ex_on[ex_desc == "Response/R128"])
    samples = np.round(vol * 200).astype(int)
    with pytest.raises(DataError, match="starts and ends inside"):
        triggers.partial_first_volume(samples, int((stop - start) * 200), samples_per_tr=200,
                                      n_volumes=N_VOL)
    raw_vols = RAW_LEAD + np.arange(N_VOL) * TR
    assert segments.volume_at(vol[0] + found.shift, raw_vols, 0, tolerance=TOL) == 2


def test_align_refuses_when_only_periodic_markers_are_shared():
    raw_desc, raw_on = _raw_markers()
    periodic = raw_desc == "Response/R128"
    raw_desc, raw_on = raw_desc[periodic], raw_on[periodic]
    ex_desc, ex_on = _export(raw_desc, raw_on, RAW_LEAD + 5.0, RAW_LEAD + 20.5)
    with pytest.raises(DataError, match="ambiguous"):
        segments.align_markers(ex_desc, ex_on, raw_desc, raw_on, tolerance=TOL)


def test_align_refuses_markers_of_another_recording():
    raw_desc, raw_on = _raw_markers()
    # one block pair matches the raw; the rest were never in it
    ex_desc = np.array(["Stimulus/S 99", "Stimulus/S  2"] + ["Stimulus/S 99"] * 4, dtype=object)
    ex_on = np.array([0.0, 7.3, 40.0, 41.0, 42.0, 43.0])
    with pytest.raises(DataError, match="matches only"):
        segments.align_markers(ex_desc, ex_on, raw_desc, raw_on, tolerance=TOL)
    with pytest.raises(DataError, match="share no marker"):
        segments.align_markers(np.array(["Scanner/Scan Start"]), [0.0], raw_desc, raw_on,
                               tolerance=TOL)


def test_volume_at_refuses_a_time_between_volumes():
    with pytest.raises(DataError, match="no raw volume marker"):
        segments.volume_at(2.5, np.arange(10.0), 0, tolerance=TOL)
    assert segments.volume_at(3.004, np.arange(10.0), 4, tolerance=TOL) == 7


def _locator(ex_desc, ex_on, raw_desc, raw_on, calls):
    """A locate() as clean_eeg builds it, on in-memory raw markers (5 kHz clock)."""
    def locate(t):
        calls.append(t)
        found = segments.align_markers(ex_desc, ex_on, raw_desc, raw_on, tolerance=TOL)
        vols = triggers.find_volume_onsets(raw_desc, raw_on, sfreq=5000.0,
                                           n_times=int(60 * 5000), tr=TR, n_volumes=N_VOL,
                                           discarded_by_scanner=2)
        first = segments.volume_at(t + found.shift, vols.times, vols.first_volume,
                                   tolerance=TOL)
        return first, {"Method": "aligned", "ShiftSeconds": found.shift}
    return locate


def test_find_volume_onsets_places_an_export_through_the_raw_and_its_discarded_markers():
    raw_desc, raw_on = _raw_markers(discarded=2)
    start, stop = RAW_LEAD + 2.0, RAW_LEAD + 25.5
    ex_desc, ex_on = _export(raw_desc, raw_on, start, stop)
    calls = []
    locate = _locator(ex_desc, ex_on, raw_desc, raw_on, calls)
    got = triggers.find_volume_onsets(ex_desc, ex_on, sfreq=200.0,
                                      n_times=int((stop - start) * 200), tr=TR,
                                      n_volumes=N_VOL, locate=locate,
                                      path="x_eeg_pp.vhdr")
    assert len(calls) == 1
    assert got.first_volume == 2  # the two discarded triggers do not count
    assert got.samples.size == 24
    assert got.placement["Method"] == "aligned"


def test_find_volume_onsets_says_how_to_resolve_a_failed_alignment():
    raw_desc, raw_on = _raw_markers()
    start, stop = RAW_LEAD + 2.0, RAW_LEAD + 25.5
    ex_desc, ex_on = _export(raw_desc, raw_on, start, stop)

    def unreadable(t):
        raise DataError("the raw recording r_eeg.vhdr is not readable (OSError): fetch the raw "
                        "EEG of the run")

    with pytest.raises(DataError, match="starts and ends inside.*fetch the raw EEG"):
        triggers.find_volume_onsets(ex_desc, ex_on, sfreq=200.0,
                                    n_times=int((stop - start) * 200), tr=TR, n_volumes=N_VOL,
                                    locate=unreadable, path="x_eeg_pp.vhdr")
    # one end inside the run: the recording's ends still place it when alignment fails
    ex_desc, ex_on = _export(raw_desc, raw_on, start, RAW_LEAD + N_VOL * TR + 2)
    got = triggers.find_volume_onsets(ex_desc, ex_on, sfreq=200.0,
                                      n_times=int((N_VOL * TR) * 200), tr=TR,
                                      n_volumes=N_VOL, locate=unreadable)
    assert got.first_volume == 2
    assert "start or end" in got.placement["Method"]


def test_raw_locator_names_an_unfetched_raw_recording(tmp_path):
    import mne

    export = mne.io.RawArray(np.zeros((1, 2000)), mne.create_info(["Cz"], 200.0, "eeg"),
                             verbose=False)
    broken = tmp_path / "sub-01_task-x_eeg.vhdr"
    broken.symlink_to(tmp_path / ".git" / "annex" / "objects" / "missing")  # DataLad, not got
    locate = segments.raw_locator(export, broken, tr=TR, n_volumes=N_VOL)
    with pytest.raises(DataError, match="not readable.*fetch the raw EEG of the run"):
        locate(0.5)
