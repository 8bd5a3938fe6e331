#!/usr/bin/env bash
# Install the lowest allowed versions (ci/constraints-min.txt) in a separate venv and run a smoke
# test: the import, the CLI's --version and the fast numerical tests. Needs PyPI (or a mirror);
# torch comes from TORCH_SPEC like the Makefile's install.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${MIN_VENV:-.venv-min}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "$TORCH_SPEC"
"$VENV/bin/python" -m pip install --quiet -c ci/constraints-min.txt ".[test]"
"$VENV/bin/bids-eeg2fmri" --version
"$VENV/bin/python" -m pytest -x -q -m "not slow" tests/test_config.py \
    tests/test_fmri_dummy_confounds.py tests/test_eeg_spectral.py tests/test_metrics.py \
    tests/test_confounds_nilearn.py tests/test_spectrogram_netcdf.py \
    tests/test_non_steady_volumes.py tests/test_windows.py
