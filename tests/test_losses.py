"""mmcourse.losses.contrastive_loss against its definition and transformers.CLIPModel (offline)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mmcourse.losses import contrastive_loss


def unit(n: int, d: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=1)


def test_equals_the_written_out_formula():
    img, txt = unit(7, 5, 0), unit(7, 5, 1)
    scale = 12.5
    logits = scale * img @ txt.T
    rows, columns = logits.log_softmax(1).diagonal(), logits.log_softmax(0).diagonal()
    by_hand = -(rows.mean() + columns.mean()) / 2
    assert torch.allclose(contrastive_loss(img, txt, scale), by_hand, atol=1e-6)


def test_equal_logits_give_log_batch_size_and_perfect_pairs_give_almost_zero():
    img = unit(8, 8, 2)
    assert contrastive_loss(img, img, 0.0).item() == pytest.approx(math.log(8), abs=1e-6)
    eye = torch.eye(8)
    assert contrastive_loss(eye, eye, 100.0).item() < 1e-6


def test_is_symmetric_and_accepts_a_tensor_scale():
    img, txt = unit(6, 4, 3), unit(6, 4, 4)
    scale = torch.tensor(3.0, requires_grad=True)
    a, b = contrastive_loss(img, txt, scale), contrastive_loss(txt, img, scale)
    assert torch.allclose(a, b, atol=1e-6)
    a.backward()
    assert scale.grad is not None and torch.isfinite(scale.grad)


def test_matches_transformers_clip_loss():
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(
        text_config=dict(vocab_size=50, hidden_size=16, intermediate_size=24, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=12, bos_token_id=48,
                         eos_token_id=49),
        vision_config=dict(image_size=16, patch_size=8, hidden_size=16, intermediate_size=24,
                           num_hidden_layers=1, num_attention_heads=2),
        projection_dim=8, logit_scale_init_value=1.5)).eval()
    with torch.no_grad():
        out = model(input_ids=torch.randint(0, 48, (5, 7)), pixel_values=torch.randn(5, 3, 16, 16),
                    return_loss=True)
        ours = contrastive_loss(out.image_embeds, out.text_embeds, model.logit_scale.exp())
    assert (ours - out.loss).abs().item() < 1e-6


@pytest.mark.parametrize("img, txt, scale, message", [
    (torch.randn(4, 3), torch.randn(5, 3), 1.0, "expected one text per image"),
    (torch.randn(4), torch.randn(4), 1.0, r"expected image_emb and text_emb of shape \(B, D\)"),
    (torch.randn(4, 3), torch.randn(4, 3), torch.ones(2), "expected a scalar logit_scale"),
])
def test_errors_say_what_was_expected(img, txt, scale, message):
    with pytest.raises(ValueError, match=message):
        contrastive_loss(img, txt, scale)
