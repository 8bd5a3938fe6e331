"""The loading one-liners of docs/outputs.md run on a small participant-level output."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from derivsdata import write_outputs

pytest.importorskip("xarray")
pytest.importorskip("h5netcdf")

DOC = Path(__file__).resolve().parents[1] / "docs" / "outputs.md"
N_VOL, N_NON_STEADY = 40, 2


def _loading_block() -> str:
    text = DOC.read_text().split("## Loading the outputs", 1)[1]
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)


@pytest.mark.slow
def test_docs_one_liners_load_every_participant_file(tmp_path):
    out = tmp_path / "out"
    write_outputs(out, res=2, n_volumes=N_VOL, n_non_steady=N_NON_STEADY)
    code = _loading_block()
    assert 'out = "out"' in code
    ns: dict = {}
    exec(compile(code.replace('out = "out"', f"out = {str(out)!r}"), str(DOC), "exec"), ns)
    assert ns["img"].shape[-1] == N_VOL and ns["mask"].ndim == 3
    assert len(ns["confounds"]) == N_VOL and list(ns["sample_mask"]) == list(
        range(N_NON_STEADY, N_VOL))
    assert any(c.startswith("a_comp_cor") for c in ns["confounds"].columns)
    assert "trans_x_derivative1_power2" in ns["motion"].columns and "csf" in ns["motion"].columns
    assert len(ns["table"]) == N_VOL
    assert ns["signals"].shape[0] == N_VOL - N_NON_STEADY
    assert ns["raw"].info["nchan"] == 4 and ns["bids_raw"].info["line_freq"] == 50.0
    assert ns["spec"].dims == ("volume", "channel", "frequency", "frame")
    assert list(ns["spec"]["channel"].values) == ["Fz", "Cz", "Pz", "Oz"]
    assert len(ns["bandpower"]) == N_VOL
    assert "raw" in ns["description"]["DatasetLinks"]
