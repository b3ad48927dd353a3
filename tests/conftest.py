"""Suite-wide settings.  CI runs `pytest -n 2` on 2 cores: one intra-op thread per worker,
otherwise two multi-threaded workers oversubscribe the cores and tiny ops slow down 50x."""
import torch

torch.set_num_threads(1)
