"""EEG→fMRI models; importing this package registers them (in this order)."""

from . import ridge, mlp, cnn, transformer, topo_attention, transformer_cnn, unet  # noqa: F401,E501  (registers)
