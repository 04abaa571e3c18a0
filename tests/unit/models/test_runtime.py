"""Matrix-product precision: TensorFloat-32 on CUDA exactly when a run asks for `precision: tf32`."""

import torch

from xstilts.config.schema import Precision
from xstilts.models.runtime import configure_matmul


def test_tf32_is_switched_on_for_cuda_runs_that_ask_for_it_and_off_otherwise():
    before = torch.backends.cuda.matmul.allow_tf32
    try:
        configure_matmul(torch.device("cuda"), Precision.TF32)
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        configure_matmul(torch.device("cpu"), Precision.FP32)  # a CPU run leaves the CUDA switch alone
        assert torch.backends.cuda.matmul.allow_tf32
        for precision in (Precision.FP32, Precision.BF16):
            configure_matmul(torch.device("cuda"), precision)
            assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = before
