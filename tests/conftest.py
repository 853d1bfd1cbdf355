"""Fixtures shared by several test modules."""
import pytest


@pytest.fixture
def one_cpu_thread():
    """Tiny networks: one torch thread, as the runs use (and immune to a busy second core)."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
