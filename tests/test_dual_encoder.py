"""mmcourse.models.DualEncoder: shapes, normalisation, padding, temperature, image towers,
training."""
from __future__ import annotations

import math

import pytest
import torch

from mmcourse.losses import contrastive_loss
from mmcourse.models import DualEncoder, DualEncoderConfig, ViT


def tiny(**kw) -> DualEncoderConfig:
    base = dict(vocab_size=20, max_length=10, image_size=16, width=16, mlp_dim=32, embed_dim=8,
                image_layers=2, text_layers=1, patch_size=4)
    return DualEncoderConfig(**(base | kw))


@pytest.mark.parametrize("tower", ["cnn", "vit"])
def test_forward_gives_unit_embeddings_and_the_scale(tower):
    torch.manual_seed(0)
    model = DualEncoder(tiny(image_tower=tower)).eval()
    assert isinstance(model.image_tower, ViT) == (tower == "vit")
    images, ids = torch.rand(3, 3, 16, 16), torch.randint(1, 20, (3, 6))
    image_emb, text_emb, scale = model(images, ids)
    assert image_emb.shape == text_emb.shape == (3, 8)
    assert torch.allclose(image_emb.norm(dim=1), torch.ones(3))
    assert torch.allclose(text_emb.norm(dim=1), torch.ones(3))
    assert scale.item() == pytest.approx(1 / 0.07, rel=1e-5)


def test_padding_does_not_change_the_text_embedding():
    torch.manual_seed(0)
    model = DualEncoder(tiny()).eval()
    ids = torch.tensor([[3, 4, 5]])
    padded = torch.tensor([[3, 4, 5, 0, 0, 0, 0]])
    assert torch.allclose(model.encode_text(ids), model.encode_text(padded), atol=1e-6)
    other = torch.tensor([[3, 4, 5, 6, 0, 0, 0]])
    assert not torch.allclose(model.encode_text(ids), model.encode_text(other), atol=1e-4)


def test_temperature_is_learnable_or_fixed_and_clamped():
    learn = DualEncoder(tiny(temperature=0.5))
    assert learn.log_logit_scale.requires_grad and learn.logit_scale.item() == pytest.approx(2.0)
    fixed = DualEncoder(tiny(temperature=0.001, learn_temperature=False))
    assert not fixed.log_logit_scale.requires_grad
    assert fixed.logit_scale.item() == pytest.approx(100.0)  # clamped as in CLIP
    assert fixed.log_logit_scale.item() == pytest.approx(math.log(1000), rel=1e-6)


def test_a_few_steps_of_contrastive_training_lower_the_loss():
    torch.manual_seed(0)
    model = DualEncoder(tiny())
    images, ids = torch.rand(8, 3, 16, 16), torch.randint(1, 20, (8, 5))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = contrastive_loss(*model(images, ids))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("kwargs, message", [
    (dict(image_tower="resnet"), "unknown image_tower 'resnet'"),
    (dict(pad_id=20), r"pad_id must be a token id in \[0, 20\)"),
    (dict(width=18, num_heads=4), "width must be divisible by num_heads"),
    (dict(temperature=0.0), "temperature must be positive"),
])
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny(**kwargs)


def test_input_errors_say_what_was_expected():
    model = DualEncoder(tiny())
    expected = r"expected images of shape \(B, 3, 16, 16\), got \(2, 3, 32, 32\)"
    with pytest.raises(ValueError, match=expected):
        model.encode_image(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"N <= 10"):
        model.encode_text(torch.ones(2, 11, dtype=torch.long))
