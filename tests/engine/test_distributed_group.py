"""The torchrun process group is formed once per process and kept across fits (seeds, pseudo-label rounds).

CI saw `finetune --seeds 1,2` under torchrun fail with gloo's "Connection refused": each seed's fit ended the
group and the next formed a new one, which reads torchrun's store keys left by the first (a stale address).
"""

from __future__ import annotations

import atexit

from tlcli.engine import distributed


class _FakeDist:
    def __init__(self):
        self.formed = self.ended = 0

    def is_initialized(self):
        return self.formed > self.ended

    def init_process_group(self, backend):
        assert not self.is_initialized(), "a second group formed while one exists"
        self.formed += 1

    def destroy_process_group(self):
        self.ended += 1

    def get_rank(self):
        return 1

    def get_world_size(self):
        return 2


def test_two_fits_share_one_group_that_ends_at_exit(monkeypatch):
    fake, at_exit = _FakeDist(), []
    monkeypatch.setattr(distributed, "dist", fake)
    monkeypatch.setattr(atexit, "register", at_exit.append)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")

    first, second = distributed.setup("cpu"), distributed.setup("cpu")

    assert first == second == distributed.DistInfo(rank=1, world=2, local_rank=1)
    assert (fake.formed, fake.ended) == (1, 0), "the group must outlive each fit"
    assert len(at_exit) == 1
    at_exit[0]()
    assert (fake.formed, fake.ended) == (1, 1)


def test_a_single_process_forms_no_group(monkeypatch):
    fake = _FakeDist()
    monkeypatch.setattr(distributed, "dist", fake)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.setup("cpu") == distributed.DistInfo() and fake.formed == 0
