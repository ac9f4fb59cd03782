"""The small BLIP (mmcourse.models.blip), §40.7: shared weights, masks, negatives, losses."""
import math

import pytest
import torch

from mmcourse.losses import contrastive_loss
from mmcourse.models import (BLIP, BLIPConfig, load_blips, mine_negatives, pool_image_tokens,
                             save_blips)


def _model(seed=0):
    torch.manual_seed(seed)
    return BLIP(BLIPConfig(vocab_size=12, eos_token_id=11, image_dim=8, dim=16, num_layers=2,
                           num_heads=2, mlp_dim=32, max_length=10, embed_dim=8)).eval()


def _batch(B=4, L=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(B, 5, 8, generator=g)
    ids = torch.randint(2, 10, (B, L), generator=g)
    ids[:, 0] = 10  # <bos>
    mask = torch.ones_like(ids)
    for row, n in enumerate(range(L, L - B, -1)):
        ids[row, n - 1], ids[row, n:], mask[row, n:] = 11, 0, 0
    return image, ids, mask


def test_shapes_and_the_three_modes_share_all_but_self_attention():
    model = _model()
    image, ids, mask = _batch()
    assert model.image_embed(image).shape == (4, 8) and model.text_embed(ids, mask).shape == (4, 8)
    assert model.itm_logits(image, ids, mask).shape == (4, 2)
    assert model.lm_logits(image, ids, mask).shape == (4, 7, 12)
    assert model.token_embed.num_embeddings == 14  # + [ENC], [DEC]
    layer = model.layers[0]
    assert layer.self_attn is not layer.decoder_self_attn
    names = {n.split(".")[2] for n, _ in model.named_parameters() if n.startswith("layers.")}
    assert names == {"norm_self", "self_attn", "norm_decoder_self", "decoder_self_attn",
                     "norm_cross", "cross_attn", "norm_mlp", "mlp"}


def test_padding_the_image_does_not_matter_to_itc_text_and_padding_is_ignored():
    model = _model()
    image, ids, mask = _batch()
    alone = model.text_embed(ids[-1:, :4], mask[-1:, :4])  # the shortest text, unpadded
    assert torch.allclose(model.text_embed(ids, mask)[-1:], alone, atol=1e-6)
    assert torch.allclose(model.itm_logits(image, ids, mask)[-1:],
                          model.itm_logits(image[-1:], ids[-1:, :4], mask[-1:, :4]), atol=1e-5)


def test_decoder_is_causal_and_the_encoder_is_not():
    model = _model()
    image, ids, mask = _batch()
    changed = ids.clone()
    changed[:, 3] = 2 + (ids[:, 3] - 1) % 8  # another word at position 3
    before, after = model.lm_logits(image, ids, mask), model.lm_logits(image, changed, mask)
    assert torch.allclose(before[:, :3], after[:, :3], atol=1e-6)
    assert not torch.allclose(before[:, 3:], after[:, 3:], atol=1e-4)
    assert not torch.allclose(model.itm_logits(image, ids, mask),
                              model.itm_logits(image, changed, mask), atol=1e-5)


def test_mine_negatives():
    sim = torch.tensor([[5.0, 4.0, -9.0], [0.0, 1.0, 0.0], [9.0, -9.0, 0.0]])
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([mine_negatives(sim, generator=g) for _ in range(300)])  # (300, 3)
    assert (draws != torch.arange(3)).all()  # never the positive
    assert (draws[:, 0] == 1).float().mean() > 0.99 and (draws[:, 2] == 0).float().mean() > 0.99
    random = torch.stack([mine_negatives(sim, hard=False, generator=g) for _ in range(300)])
    assert 0.35 < (random[:, 0] == 1).float().mean() < 0.65
    exclude = torch.tensor([[False, True, False], [False, False, False], [False, False, False]])
    assert (mine_negatives(sim, exclude, generator=g)[0] == 2).item()
    with pytest.raises(ValueError, match="no candidate"):
        mine_negatives(sim[:1, :1])


def test_losses_and_a_few_steps_of_training():
    model = _model().train()
    image, ids, mask = _batch(B=6, seed=1)
    losses = model.losses(image, ids, mask, generator=torch.Generator().manual_seed(0))
    assert set(losses) == {"itc", "itm", "lm"}
    itc = contrastive_loss(model.image_embed(image), model.text_embed(ids, mask), 1 / 0.07)
    assert abs(losses["itc"].item() - itc.item()) < 1e-5
    assert abs(losses["itm"].item() - math.log(2)) < 0.1
    assert abs(losses["lm"].item() - math.log(12)) < 0.2
    assert set(model.losses(image, ids, mask, use=("lm",))) == {"lm"}
    with pytest.raises(ValueError, match="expected some of"):
        model.losses(image, ids, mask, use=("mlm",))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for step in range(60):
        loss = model.losses(image, ids, mask, use=("lm",))["lm"]
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first
    model.eval()
    out = model.generate(image[:2], bos_id=10, max_length=8)
    assert out.shape[0] == 2 and out.shape[1] <= 8 and (out[:, 0] == 10).all()
    assert (out[0, 1: int(mask[0].sum())] == ids[0, 1: int(mask[0].sum())]).all()


def test_bad_inputs():
    model = _model()
    image, ids, mask = _batch()
    with pytest.raises(ValueError, match="image tokens"):
        model.image_embed(image[0])
    with pytest.raises(ValueError, match="one shape"):
        model.text_embed(ids, mask[:, :3])
    with pytest.raises(ValueError, match="eos_token_id"):
        BLIPConfig(vocab_size=5, eos_token_id=5)


def test_groups_keep_negatives_out_of_the_positives_group():
    model = _model()
    image, ids, mask = _batch(B=4)
    groups = torch.tensor([0, 0, 1, 1])  # 0 and 1 alike, 2 and 3 alike
    seen = set()
    for seed in range(20):  # with groups, every negative comes from the other group
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            sim = model.log_scale.exp() * model.image_embed(image) @ model.text_embed(ids, mask).T
        banned = groups[:, None] == groups[None, :]
        draws = mine_negatives(sim, banned, generator=g)
        assert (groups[draws] != groups).all()
        seen |= set(draws.tolist())
    assert seen == {0, 1, 2, 3}
    loss = model.losses(image, ids, mask, use=("itm",), groups=groups)["itm"]
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="groups"):
        model.losses(image, ids, mask, use=("itm",), groups=groups[:3])
    with pytest.raises(ValueError, match="no candidate"):
        model.losses(image, ids, mask, use=("itm",), groups=torch.zeros(4, dtype=torch.long))


def test_pool_image_tokens_keeps_cls_and_averages_the_grid():
    hidden = torch.arange(2 * 65 * 3, dtype=torch.float).view(2, 65, 3)
    out = pool_image_tokens(hidden)
    assert out.shape == (2, 17, 3) and torch.equal(out[:, 0], hidden[:, 0])
    grid = hidden[:, 1:].view(2, 8, 8, 3)
    assert torch.allclose(out[:, 1], grid[:, :2, :2].mean((1, 2)))
    assert torch.allclose(out[:, 16], grid[:, 6:, 6:].mean((1, 2)))
    with pytest.raises(ValueError, match="divisible"):
        pool_image_tokens(hidden[:, :50])


def test_save_and_load_several_blips(tmp_path):
    models = {"a": _model(0), "b": _model(1)}
    save_blips(tmp_path / "b.safetensors", models, ["<pad>", "x"], notes="hi")
    loaded, info = load_blips(tmp_path / "b.safetensors")
    assert list(loaded) == ["a", "b"] and info == {"vocab": ["<pad>", "x"], "notes": "hi"}
    image, ids, mask = _batch()
    for name, model in models.items():
        assert loaded[name].config == model.config and not loaded[name].training
        assert torch.equal(loaded[name].itm_logits(image, ids, mask),
                           model.itm_logits(image, ids, mask))
    with pytest.raises(ValueError, match="without dots"):
        save_blips(tmp_path / "c.safetensors", {"a.b": models["a"]}, [])
