"""Volume-marker recognition, repair and checks against the BOLD run."""

from __future__ import annotations

import logging

import mne
import numpy as np
import pytest

from bids_eeg2fmri.eeg import triggers
from bids_eeg2fmri.errors import DataError, ExitCode

SFREQ = 1000.0
TR = 2.16
N_VOL = 60
FILE = "/data/sub-01/eeg/sub-01_task-rest_eeg.vhdr"


def _truth(start: float = 3.2, sfreq: float = SFREQ, tr: float = TR, n: int = N_VOL) -> np.ndarray:
    return np.round((start + np.arange(n) * tr) * sfreq).astype(np.int64)


def _find(samples, names="Response/R128", *, n_times=None, sfreq=SFREQ, extra=(), **kw):
    desc = [names] * len(samples) + [d for d, _ in extra]
    onsets = list(np.asarray(samples) / sfreq) + [t for _, t in extra]
    n_times = n_times or int((max(samples) / sfreq + TR + 5) * sfreq)
    kw.setdefault("tr", TR)
    kw.setdefault("n_volumes", N_VOL)
    return triggers.find_volume_onsets(np.array(desc), np.array(onsets), sfreq=sfreq,
                                       n_times=n_times, path=FILE, **kw)


@pytest.mark.parametrize("name", ["R128", "Response/R128", "Scan Start", "TR", "Volume", "V",
                                  "Stimulus/R 128"])
def test_vendor_marker_names_are_recognised_exactly(name):
    truth = _truth()
    # distractors: stimulus markers every 1.3 s that must not be taken for volume triggers
    distract = [("Stimulus/S  1", t) for t in np.arange(0.5, 120, 1.3)]
    got = _find(truth, name, extra=distract)
    np.testing.assert_array_equal(got.samples, truth)
    assert got.marker == name and got.source == "markers" and got.repairs == []


def test_auto_prefers_the_marker_spaced_by_the_tr():
    truth = _truth()
    # slice markers 'V' at TR/30 also match a vendor name but not the TR spacing
    slices = [("V", t) for t in np.arange(3.2, 3.2 + N_VOL * TR, TR / 30)]
    got = _find(truth, "R128", extra=slices)
    assert got.marker == "R128"
    np.testing.assert_array_equal(got.samples, truth)
    # an explicit --volume-marker is matched exactly / after normalisation
    got = _find(truth, "Response/R128", marker="R128")
    np.testing.assert_array_equal(got.samples, truth)
    got = _find(truth, "MyTrigger", marker="MyTrigger")
    np.testing.assert_array_equal(got.samples, truth)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_deletions_duplicates_and_strays_are_repaired_and_logged(seed, caplog):
    rng = np.random.default_rng(seed)
    truth = _truth()
    # delete 5 interior triggers, never two adjacent, never the first or last
    deleted = []
    while len(deleted) < 5:
        k = int(rng.integers(1, N_VOL - 1))
        if all(abs(k - d) > 1 for d in deleted):
            deleted.append(k)
    kept = np.delete(truth, deleted)
    dup_src = rng.choice(kept, 4, replace=False)
    duplicates = np.concatenate([dup_src[:2], dup_src[2:] + 2])  # exact and 2 samples later
    strays = rng.choice(kept[:-1], 2, replace=False) + int(0.45 * TR * SFREQ)
    noisy = rng.permutation(np.concatenate([kept, duplicates, strays]))
    with caplog.at_level(logging.INFO, logger="bids_eeg2fmri.eeg"):
        got = _find(noisy)
    np.testing.assert_array_equal(got.samples, truth)
    assert sum("interpolated" in r for r in got.repairs) == 5
    assert sum("duplicate" in r for r in got.repairs) == 4
    assert sum("stray" in r for r in got.repairs) == 2
    assert sum(FILE in rec.getMessage() for rec in caplog.records) == 11


def test_adjacent_missing_and_non_integer_spacing():
    # 256 Hz and TR 2.1 s: 537.6 samples per volume, onsets rounded to samples
    truth = _truth(start=1.0, sfreq=256.0, tr=2.1, n=40)
    kept = np.delete(truth, [10, 11, 25])
    got = triggers.find_volume_onsets(np.array(["R128"] * kept.size), kept / 256.0, sfreq=256.0,
                                      n_times=int(90 * 256), tr=2.1, n_volumes=40, path=FILE)
    np.testing.assert_array_equal(got.samples, truth)


def _expect_data_error(match, **kw):
    with pytest.raises(DataError, match=match) as exc:
        kw.pop("call")(**kw)
    assert exc.value.code == ExitCode.DATA == 65
    assert exc.value.path == FILE and FILE in str(exc.value)


def test_refusals_name_the_file():
    truth = _truth()
    # three consecutive triggers missing: more than the interpolation limit
    _expect_data_error("3 consecutive volume markers are missing", call=_find,
                       samples=np.delete(truth, [20, 21, 22]))
    # markers every second while the BOLD says TR 2.16 s
    _expect_data_error("spacing 1 s is far from", call=_find,
                       samples=_truth(tr=1.0, n=N_VOL), n_times=int(200 * SFREQ))
    # first trigger lost: one marker short, which end is unknown
    _expect_data_error("found 59 volume markers", call=_find, samples=truth[1:])
    # no marker at all and no --assume-eeg-bold-sync
    _expect_data_error("no volume markers", call=_find, samples=truth, names="Stimulus/S  1")
    # markers stop 10 s before the recording does: lost triggers, not a short recording
    _expect_data_error("which volumes they belong to is unknown", call=_find, samples=truth[:40],
                       n_times=int(100 * SFREQ))
    # a segment cut from inside the run at both ends: which volumes is unknown
    seg = truth[10:40] - truth[10] + 100
    _expect_data_error("starts and ends inside the BOLD run", call=_find, samples=seg,
                       n_times=int(seg[-1] + 1000))


def test_partial_coverage_is_aligned_to_the_right_volumes(caplog):
    truth = _truth()
    # export segmented from inside the run (starts 0.3 s before volume 12's marker), to the end
    seg = truth[12:] - truth[12] + 300
    with caplog.at_level(logging.WARNING, logger="bids_eeg2fmri.eeg"):
        got = _find(seg, n_times=int(seg[-1] + 5 * SFREQ))
    assert got.first_volume == 12 and got.samples.size == N_VOL - 12
    np.testing.assert_array_equal(got.samples, seg)
    assert "volumes 12-59 of 60" in got.repairs[-1] and "volumes 12-59" in caplog.text
    # recording that stops during volume 40 (started 3.2 s before the scan)
    got = _find(truth[:41], n_times=int(truth[40] + 0.5 * SFREQ))
    assert got.first_volume == 0 and got.samples.size == 41
    # a recording stopping 0.05 s before the last TR is over keeps every marker
    got = _find(truth, n_times=int(truth[-1] + (TR - 0.05) * SFREQ))
    assert got.first_volume == 0 and got.samples.size == N_VOL and got.repairs == []
    # --assume-eeg-bold-sync with volume 0 before the recording: the inside volumes, numbered
    got = _find([0, 1], names="Stimulus/S  1", assume_sync=-2 * TR - 0.1,
                n_times=int(100 * SFREQ))
    assert got.first_volume == 3 and got.samples[0] == round((TR - 0.1) * SFREQ)


def test_scanner_discarded_volumes_and_assumed_sync(caplog):
    truth = _truth(n=N_VOL + 2)
    got = _find(truth, discarded_by_scanner=2)
    np.testing.assert_array_equal(got.samples, truth[2:])
    assert "discarded by the scanner" in got.repairs[-1]
    with caplog.at_level(logging.WARNING, logger="bids_eeg2fmri.eeg"):
        got = _find(truth[:0].tolist() + [0, 1], names="Stimulus/S  1", assume_sync=3.2,
                    n_times=200_000)
    np.testing.assert_array_equal(got.samples, _truth())
    assert got.source == "assumed-sync" and "assume-eeg-bold-sync" in caplog.text


def test_raw_annotations_are_taken_relative_to_the_first_sample():
    info = mne.create_info(["Cz"], SFREQ, "eeg")
    raw = mne.io.RawArray(np.zeros((1, int(150 * SFREQ))), info, verbose=False)
    raw.set_meas_date(1_700_000_000)
    truth = _truth()
    raw.set_annotations(mne.Annotations(truth / SFREQ, 0, "R128", orig_time=raw.info["meas_date"]))
    raw.crop(tmin=1.0)  # first_samp becomes 1000: onsets must shift by one second
    got = triggers.find_volume_onsets_raw(raw, tr=TR, n_volumes=N_VOL)
    np.testing.assert_array_equal(got.samples, truth - 1000)


def test_a_recording_ending_inside_the_last_tr_drops_only_that_volume():
    from bids_eeg2fmri.eeg.coverage import covered_volumes

    truth = _truth()
    # stops 0.05 s before the last volume's TR is over: less than one STFT frame, not an error
    n_times = int(truth[-1] + (TR - 0.05) * SFREQ)
    samples, first, cov = covered_volumes(truth, 0, n_times=n_times, sfreq=SFREQ, tr=TR,
                                          n_volumes=N_VOL, min_fraction=0.5, path=FILE)
    np.testing.assert_array_equal(samples, truth[:-1])
    assert first == 0 and cov["CoveredVolumes"] == N_VOL - 1
    assert cov["CoveredRange"] == [0, N_VOL - 2] and cov["UncoveredVolumes"] == 1
    # one sample more and the last volume is whole again
    _, _, cov = covered_volumes(truth, 0, n_times=int(truth[-1] + TR * SFREQ), sfreq=SFREQ,
                                tr=TR, n_volumes=N_VOL, min_fraction=0.5)
    assert cov["CoveredVolumes"] == N_VOL
    # the refusal threshold is the user's: 59 of 60 is below 0.99
    _expect_data_error("covers 59 of the 60 BOLD volumes", call=covered_volumes, samples=truth,
                       first_volume=0, n_times=n_times, sfreq=SFREQ, tr=TR, n_volumes=N_VOL,
                       min_fraction=0.99, path=FILE)
