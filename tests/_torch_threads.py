"""One CPU thread for torch and BLAS in the learning-core tests (the machine is shared)."""

import torch

torch.set_num_threads(1)
try:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
except ImportError:  # numpy then uses its default thread count; results are unchanged
    threadpool_limits = None
