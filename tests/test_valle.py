"""VALL-E's two codec language models (§41.2): shapes, masks, the cache, sampling, stage
conditioning, a tiny model that learns two utterances by heart, and runs on the meta device.
There is no reference implementation in transformers, so the checks are properties."""
import time

import pytest
import torch

from mmcourse.models import (AdaptiveLayerNorm, VALLEAR, VALLENAR, VALLEConfig, sample_logits,
                             synthesize)

torch.set_num_threads(1)
META = torch.device("meta")
K, N = 16, 3  # codes per codebook, codebooks


def config(**kw) -> VALLEConfig:
    sizes = dict(num_quantizers=N, codebook_size=K, phoneme_vocab_size=12, d_model=32,
                 num_heads=2, num_layers=2, ffn_dim=64, max_phonemes=24, max_frames=40)
    return VALLEConfig(**{**sizes, **kw})


def models(seed: int = 0) -> tuple[VALLEAR, VALLENAR]:
    torch.manual_seed(seed)
    return VALLEAR(config()).eval(), VALLENAR(config()).eval()


def inputs(seed: int = 0, b: int = 2, p: int = 5, tp: int = 4, t: int = 7):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(4, 12, (b, p), generator=g), torch.randint(0, K, (b, N, tp), generator=g),
            torch.randint(0, K, (b, N, t), generator=g))


def test_shapes_and_losses():
    ar, nar = models()
    phonemes, prompt, target = inputs()
    assert ar(phonemes, prompt, target).shape == (2, 8, K + 1)  # T codes and <eos>
    assert torch.equal(ar(phonemes, prompt[:, 0], target[:, 0]), ar(phonemes, prompt, target))
    assert nar(phonemes, prompt, target, 2).shape == (2, 7, K)
    assert nar(phonemes, prompt, target, torch.tensor([1, 2])).shape == (2, 7, K)
    for loss in (ar.loss(phonemes, prompt, target), nar.loss(phonemes, prompt, target)):
        assert loss.dim() == 0 and torch.isfinite(loss)
    no_prompt = prompt[..., :0]  # plain TTS: no acoustic prompt at all
    assert ar(phonemes, no_prompt, target).shape == (2, 8, K + 1)
    assert nar(phonemes, no_prompt, target, 1).shape == (2, 7, K)


def test_ar_is_causal_over_codes():
    ar, _ = models()
    phonemes, prompt, target = inputs()
    before = ar(phonemes, prompt, target)
    changed = target.clone()
    changed[:, 0, 4] = (changed[:, 0, 4] + 1) % K
    changed[:, 1:] = 0  # the AR model reads the first codebook only
    after = ar(phonemes, prompt, changed)
    assert torch.allclose(before[:, :5], after[:, :5], atol=1e-6)  # position t predicts code t
    assert not torch.allclose(before[:, 5:], after[:, 5:], atol=1e-3)
    later_phoneme = phonemes.clone()
    later_phoneme[:, -1] = 4 if int(phonemes[0, -1]) != 4 else 5
    assert not torch.allclose(before[:, :1], ar(later_phoneme, prompt, target)[:, :1])


def test_padding_changes_nothing():
    ar, nar = models()
    long, short = inputs(1, b=1, p=6, tp=5, t=8), inputs(2, b=1, p=3, tp=2, t=4)
    pad = lambda x, n: torch.nn.functional.pad(x, (0, n))  # noqa: E731
    phonemes = torch.cat([long[0], pad(short[0], 3)])
    prompt, target = torch.cat([long[1], pad(short[1], 3)]), torch.cat([long[2], pad(short[2], 4)])
    masks = (torch.arange(6) < torch.tensor([[6], [3]]), torch.arange(5) < torch.tensor([[5], [2]]),
             torch.arange(8) < torch.tensor([[8], [4]]))
    batched = ar(phonemes, prompt, target, *masks)
    assert torch.allclose(batched[1, :5], ar(*short)[0], atol=1e-5)
    assert torch.allclose(batched[0], ar(*long)[0], atol=1e-5)
    mean = (ar.loss(*long) * 9 + ar.loss(*short) * 5) / 14  # 8 + 1 and 4 + 1 labels
    assert torch.allclose(ar.loss(phonemes, prompt, target, *masks), mean, atol=1e-5)
    batched = nar(phonemes, prompt, target, 2, *masks)
    assert torch.allclose(batched[1, :4], nar(*short, 2)[0], atol=1e-5)


def test_cached_generation_matches_the_whole_sequence():
    ar, _ = models()
    phonemes, prompt, _ = inputs(b=1)
    codes = ar.generate(phonemes, prompt, 12, generator=torch.Generator().manual_seed(0),
                        min_frames=12)
    assert codes.shape == (1, 12) and codes.unique().numel() > 2
    logits = ar(phonemes, prompt, codes)[:, :-1]  # teacher-forced on the generated codes
    logits[..., ar.eos] = -torch.inf  # as min_frames did
    g = torch.Generator().manual_seed(0)  # the same draws, one step at a time
    again = torch.stack([sample_logits(logits[:, t], generator=g) for t in range(12)], 1)
    assert torch.equal(again, codes)
    greedy = ar.generate(phonemes, prompt, 12, temperature=0)
    assert torch.equal(ar(phonemes, prompt, greedy)[:, :-1].argmax(-1), greedy)


def rigged(eos_always: bool) -> VALLEAR:
    """An AR model whose last layer norm outputs one fixed vector, which the <eos> row of the
    output layer meets with a large (or very negative) score."""
    ar, _ = models()
    with torch.no_grad():
        ar.norm.weight.zero_()
        ar.norm.bias.copy_(torch.randn(32))
        ar.code_embed.weight[ar.eos] = (1 if eos_always else -1) * 10 * ar.norm.bias
    return ar


def test_generation_stops_at_eos_and_respects_max_frames():
    phonemes, prompt, _ = inputs(b=1)
    eager = rigged(eos_always=True)
    assert eager.generate(phonemes, prompt, 10, temperature=0).shape == (1, 0)
    assert eager.generate(phonemes, prompt, 10, temperature=0, min_frames=3).shape == (1, 3)
    endless = rigged(eos_always=False)
    assert endless.generate(phonemes, prompt, 9).shape == (1, 9)
    with pytest.raises(ValueError, match="max_frames"):
        endless.generate(phonemes, prompt, 40)  # the config's positions end at 39


def test_sampling_is_seeded_and_top_k_one_is_greedy():
    ar, _ = models()
    phonemes, prompt, _ = inputs(b=1)

    def run(seed, **kw):
        return ar.generate(phonemes, prompt, 15, generator=torch.Generator().manual_seed(seed),
                           min_frames=15, **kw)

    assert torch.equal(run(0), run(0)) and not torch.equal(run(0), run(1))
    greedy = ar.generate(phonemes, prompt, 15, temperature=0, min_frames=15)
    assert torch.equal(run(3, top_k=1), greedy) and torch.equal(run(4, top_p=1e-6), greedy)


def test_sample_logits_filters():
    logits = torch.tensor([[0.0, 3.0, 2.9, -1.0]]).repeat(200, 1)
    g = torch.Generator().manual_seed(0)
    assert set(sample_logits(logits, top_k=2, generator=g).tolist()) == {1, 2}
    assert set(sample_logits(logits, top_p=0.5, generator=g).tolist()) == {1}
    assert set(sample_logits(logits, top_p=0.9, generator=g).tolist()) == {1, 2}
    assert torch.equal(sample_logits(logits, temperature=0), torch.ones(200).long())
    for bad in (dict(temperature=-1), dict(top_k=0), dict(top_p=0.0), dict(top_p=1.5)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            sample_logits(logits, **bad)


def test_nar_reads_its_stage_and_only_the_codebooks_below_it():
    _, nar = models()
    phonemes, prompt, target = inputs()
    norm = AdaptiveLayerNorm(8)
    x = torch.randn(2, 3, 8)
    with torch.no_grad():
        norm.proj.weight.normal_()
    assert not torch.allclose(norm(x, torch.randn(1, 8).expand(2, 8)),
                              norm(x, torch.randn(1, 8).expand(2, 8)))
    base = nar(phonemes, prompt, target, 1)
    upper = target.clone()
    upper[:, 1:] = (upper[:, 1:] + 5) % K  # codebooks 1 and 2: not read when predicting 1
    assert torch.allclose(nar(phonemes, prompt, upper, 1), base, atol=1e-6)
    assert not torch.allclose(nar(phonemes, prompt, upper, 2), nar(phonemes, prompt, target, 2))
    # the stage enters through AdaLN: a different stage embedding, the same everything else
    with torch.no_grad():
        nar.stage_embed.weight[0] += 1.0
    assert not torch.allclose(nar(phonemes, prompt, target, 1), base, atol=1e-4)
    nar.loss(phonemes, prompt, target, codebook=1).backward()
    assert nar.stage_embed.weight.grad[0].abs().sum() > 0
    assert nar.stage_embed.weight.grad[1].abs().sum() == 0  # stage 2 was not used


def test_tiny_models_learn_two_utterances_by_heart():
    torch.manual_seed(0)
    start = time.perf_counter()
    ar, nar = VALLEAR(config()), VALLENAR(config())
    phonemes = torch.tensor([[4, 5, 6, 7, 0], [8, 9, 10, 11, 6]])
    phoneme_mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]).bool()
    g = torch.Generator().manual_seed(5)
    target = torch.randint(0, K, (2, N, 8), generator=g)
    target_mask = torch.arange(8) < torch.tensor([[8], [6]])
    prompt = torch.randint(0, K, (2, N, 3), generator=g)
    for model in (ar, nar):
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        for _ in range(150):
            loss = model.loss(phonemes, prompt, target, phoneme_mask, None, target_mask)
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert loss.item() < 0.05, (type(model).__name__, loss.item())
    assert time.perf_counter() - start < 10
    ar.eval(), nar.eval()
    for i, frames in enumerate((8, 6)):
        codes = synthesize(ar, nar, phonemes[i, : 4 + i], prompt[i], max_frames=20,
                           temperature=0)
        assert codes.shape == (1, N, frames) and torch.equal(codes[0], target[i, :, :frames])


def test_forward_passes_run_on_the_meta_device():
    ar, nar = models()
    ar, nar = ar.to(META), nar.to(META)
    phonemes, prompt, target = (x.to(META) for x in inputs())
    mask = torch.ones(2, 7, dtype=torch.bool).to(META)
    logits = ar(phonemes, prompt, target, target_mask=mask)
    assert logits.device == META and logits.shape == (2, 8, K + 1)
    assert ar.loss(phonemes, prompt, target, target_mask=mask).device == META
    assert nar(phonemes, prompt, target, 1, target_mask=mask).device == META
    assert nar.loss(phonemes, prompt, target, target_mask=mask).device == META


def test_bad_configs_and_inputs():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        config(d_model=30, num_heads=4)
    with pytest.raises(ValueError, match="codebook_size must be positive"):
        config(codebook_size=0)
    with pytest.raises(ValueError, match="num_quantizers >= 2"):
        VALLENAR(config(num_quantizers=1))
    ar, nar = models()
    phonemes, prompt, target = inputs()
    with pytest.raises(ValueError, match="phonemes of shape"):
        ar(phonemes[0], prompt, target)
    with pytest.raises(ValueError, match="at least one phoneme"):
        ar(phonemes[:, :0], prompt, target)
    with pytest.raises(ValueError, match="max_phonemes=24"):
        ar(torch.ones(2, 25).long(), prompt, target)
    with pytest.raises(ValueError, match="max_frames=40"):
        ar(phonemes, prompt, torch.zeros(2, 40).long())
    with pytest.raises(ValueError, match="batch sizes"):
        ar(phonemes, prompt[:1], target)
    with pytest.raises(ValueError, match="target_mask"):
        ar(phonemes, prompt, target, target_mask=torch.ones(2, 6).bool())
    with pytest.raises(ValueError, match="codebook must be from 1 to 2"):
        nar(phonemes, prompt, target, 0)
    with pytest.raises(ValueError, match="all 3 codebooks"):
        nar(phonemes, prompt[:, :2], target, 1)
    with pytest.raises(ValueError, match="same codec"):
        synthesize(ar, VALLENAR(config(num_quantizers=2)), phonemes[0], prompt[0])
