"""Tests of mmcourse.models.llama against transformers' LlamaForCausalLM (tiny random configs, offline)."""
import pytest
import torch
import transformers

from mmcourse.models import LlamaConfig, LlamaLM

CONFIGS = [  # (hidden, layers, heads, kv heads, rope_theta, tied)
    (32, 1, 4, 4, 10000.0, False),  # multi-head attention
    (64, 2, 8, 2, 500000.0, True),  # grouped-query attention, tied head
    (48, 3, 6, 3, 100.0, False),
    (32, 2, 4, 1, 10000.0, True),  # multi-query attention
]


def _hf(hidden: int, layers: int, heads: int, kv_heads: int, theta: float, tied: bool, seed: int = 0):
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=97,
        hidden_size=hidden,
        intermediate_size=2 * hidden + 6,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        rope_parameters={"rope_type": "default", "rope_theta": theta},
        tie_word_embeddings=tied,
        rms_norm_eps=1e-5,
        attn_implementation="eager",
    )
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():  # random norm weights, so that a mixed-up norm would show
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    return model


def _padded_batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    ids = torch.randint(0, 97, (3, 7))
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[1, 5:] = 0  # right-padded
    mask[2, :3] = 0  # left-padded
    return ids, mask


@pytest.mark.parametrize("spec", CONFIGS)
def test_logits_match_transformers(spec):
    hf = _hf(*spec)
    ours = LlamaLM.from_transformers(hf)
    assert ours.config.tie_word_embeddings == spec[-1]
    assert (ours.lm_head.weight is ours.embed_tokens.weight) == spec[-1]
    ids, mask = _padded_batch()
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)  # what ours uses: positions over real tokens
    with torch.no_grad():
        theirs = hf(input_ids=ids, attention_mask=mask, position_ids=position_ids).logits
        mine = ours(ids, attention_mask=mask).logits
    assert mine.shape == (3, 7, 97)
    real = mask.bool()
    torch.testing.assert_close(mine[real], theirs[real], atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # no mask: plain causal model
        torch.testing.assert_close(ours(ids).logits, hf(input_ids=ids).logits, atol=1e-5, rtol=1e-5)


def test_left_padding_equals_unpadded():
    ours = LlamaLM.from_transformers(_hf(*CONFIGS[1]))
    ids, mask = _padded_batch()
    with torch.no_grad():
        padded = ours(ids[2:], attention_mask=mask[2:]).logits[0, 3:]
        alone = ours(ids[2:, 3:]).logits[0]
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=1e-5)


def test_inputs_embeds_path():
    hf = _hf(*CONFIGS[1])
    ours = LlamaLM.from_transformers(hf)
    ids, _ = _padded_batch()
    embeds = torch.randn(3, 7, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(inputs_embeds=ours.embed_tokens(ids)).logits, ours(ids).logits)
        torch.testing.assert_close(
            ours(inputs_embeds=embeds).logits, hf(inputs_embeds=embeds).logits, atol=1e-5, rtol=1e-5
        )


@pytest.mark.parametrize("spec", CONFIGS[1:3])
def test_cache_step_by_step_equals_full_forward(spec):
    ours = LlamaLM.from_transformers(_hf(*spec))
    ids, mask = _padded_batch()
    mask[1] = 1  # left padding only: new tokens go at the right end
    with torch.no_grad():
        full = ours(ids, attention_mask=mask).logits
        out = ours(ids[:, :4], attention_mask=mask[:, :4], use_cache=True)  # a 4-token prompt, then one at a time
        steps, past = [out.logits], out.past_key_values
        for t in range(4, 7):
            out = ours(ids[:, t : t + 1], attention_mask=mask[:, : t + 1], past_key_values=past, use_cache=True)
            steps.append(out.logits)
            past = out.past_key_values
    assert past[0][0].shape == (3, ours.config.num_key_value_heads, 7, ours.config.head_dim)
    real = mask.bool()
    torch.testing.assert_close(torch.cat(steps, dim=1)[real], full[real], atol=1e-5, rtol=1e-5)


def test_generate_matches_transformers():
    hf = _hf(*CONFIGS[1])
    hf.generation_config.eos_token_id = None
    hf.generation_config.pad_token_id = 0
    ours = LlamaLM.from_transformers(hf)
    ids, mask = _padded_batch()
    mask[1] = 1  # generation needs left padding
    with torch.no_grad():
        theirs = hf.generate(input_ids=ids, attention_mask=mask, max_new_tokens=8, do_sample=False)
    mine = ours.generate(ids, max_new_tokens=8, attention_mask=mask)
    assert mine.shape == (3, 15)
    assert torch.equal(mine, theirs)
    assert torch.equal(ours.generate(ids[:1], 0), ids[:1])


def test_bad_config_and_shapes_raise():
    with pytest.raises(ValueError, match="num_key_value_heads"):
        LlamaConfig(num_attention_heads=6, num_key_value_heads=4, hidden_size=48)
    with pytest.raises(ValueError, match="hidden_size"):
        LlamaConfig(hidden_size=30, num_attention_heads=4)
    with pytest.raises(ValueError, match="even head_dim"):
        LlamaConfig(hidden_size=12, num_attention_heads=4, num_key_value_heads=2)
    model = LlamaLM(LlamaConfig())
    ids = torch.randint(0, 256, (2, 5))
    with pytest.raises(ValueError, match="exactly one"):
        model()
    with pytest.raises(ValueError, match="exactly one"):
        model(ids, inputs_embeds=torch.randn(2, 5, 64))
    with pytest.raises(ValueError, match=r"input_ids of shape \(B, L\)"):
        model(ids[0])
    with pytest.raises(ValueError, match="inputs_embeds of shape"):
        model(inputs_embeds=torch.randn(2, 5, 32))
    with pytest.raises(ValueError, match="attention_mask of shape"):
        model(ids, attention_mask=torch.ones(2, 4))
    past = model(ids, use_cache=True).past_key_values
    with pytest.raises(ValueError, match="attention_mask of shape"):
        model(ids[:, :1], attention_mask=torch.ones(2, 1), past_key_values=past)
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate(ids, -1)


def test_from_transformers_rejects_other_models():
    with pytest.raises(TypeError, match="LlamaForCausalLM"):
        LlamaLM.from_transformers(torch.nn.Linear(2, 2))
    hf = _hf(*CONFIGS[0])
    hf.config.mlp_bias = True
    with pytest.raises(ValueError, match="mlp_bias"):
        LlamaLM.from_transformers(hf)
