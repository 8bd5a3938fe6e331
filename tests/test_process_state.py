"""Steps must not change what later steps in the same worker process compute (resume determinism).

nilearn caches the MNI152 template (``functools.lru_cache``) and thresholds that cached array for
its brain mask. Normalising the template in place (registration loads it) changed the brain mask,
and so the resampled BOLD, its mask and DVARS, of every later step in the same worker: a resumed
run, whose steps land in other workers, differed from an uninterrupted one.
"""

from __future__ import annotations

import numpy as np
from nilearn.datasets import load_mni152_template

from bids_eeg2fmri.fmri.masking import template_mask_on_grid
from bids_eeg2fmri.resources.templates import (load_mask, load_template, load_tissue_probability,
                                               template_grid)


def test_loading_the_templates_leaves_nilearn_s_cached_template_alone():
    cached = np.array(load_mni152_template(resolution=2).dataobj, copy=True)
    mask = np.asarray(load_mask("brain", 2).dataobj).copy()
    shape, affine = template_grid(3)
    grid_mask = template_mask_on_grid(shape, affine)
    for res in (1, 2):
        template = load_template(res)
        assert np.isclose(float(np.asarray(template.dataobj).max()), 1.0)
        load_tissue_probability("gm", res)
    assert np.array_equal(np.asarray(load_mni152_template(resolution=2).dataobj), cached)
    assert np.array_equal(np.asarray(load_mask("brain", 2).dataobj), mask)
    assert np.array_equal(template_mask_on_grid(shape, affine), grid_mask)
