"""Device choice: one GPU per torchrun process, a clear error when there are fewer GPUs than processes."""

from __future__ import annotations

import pytest
import torch

from tlcli.engine.device import resolve_device
from tlcli.console.errors import UsageError


@pytest.fixture
def one_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


def test_each_torchrun_process_gets_the_gpu_of_its_local_rank(one_gpu, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name", ["auto", "cuda"])
def test_more_processes_than_gpus_is_a_usage_error_naming_the_fix(one_gpu, monkeypatch, name):
    # Seen on a 1-GPU machine: `torchrun --nproc-per-node 2` gave rank 1 "CUDA error: invalid device ordinal".
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(UsageError, match=r"--nproc-per-node 1 .*--device cpu"):
        resolve_device(name)
