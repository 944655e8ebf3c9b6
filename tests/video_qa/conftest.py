"""One torch thread: the CI box has 2 cores shared by many processes, and tiny models run faster
single-threaded than fighting over cores."""

import torch

torch.set_num_threads(1)
