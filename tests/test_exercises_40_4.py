"""The hidden cases of §40.4's exercises accept right answers and reject near misses."""
import torch

from mmcourse.exercises import check
from mmcourse.models.llama import apply_rotary, rotary_cos_sin


def _rope_interleaved(x, positions, theta):
    d = x.shape[-1]
    halves = torch.cat([torch.arange(0, d, 2), torch.arange(1, d, 2)])  # interleaved -> halves
    cos, sin = rotary_cos_sin(positions[None], d, theta, x.dtype)
    return apply_rotary(x[..., halves], cos, sin)[..., torch.argsort(halves)]


def test_rope_accepts_the_permuted_package_rotation_and_rejects_the_halves_convention():
    assert check("40.4.rope", _rope_interleaved, verbose=False)

    def halves(x, positions, theta):  # transformers' convention, not the paper's
        cos, sin = rotary_cos_sin(positions[None], x.shape[-1], theta, x.dtype)
        return apply_rotary(x, cos, sin)

    assert not check("40.4.rope", halves, verbose=False)
    assert not check("40.4.rope", lambda x, p, t: x, verbose=False)


def test_repeat_kv():
    assert check("40.4.repeat_kv", lambda kv, g: kv.repeat_interleave(g, dim=1), verbose=False)
    assert not check("40.4.repeat_kv", lambda kv, g: kv.repeat(1, g, 1, 1), verbose=False)
