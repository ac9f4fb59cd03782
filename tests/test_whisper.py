"""The from-scratch Whisper against transformers' WhisperForConditionalGeneration (tiny random
configurations, no download)."""
import pytest
import torch
from transformers import WhisperConfig as HFWhisperConfig
from transformers import WhisperForConditionalGeneration

from mmcourse.models import Whisper, WhisperConfig
from mmcourse.models.whisper import sinusoids


def reference(seed: int = 0, **kw) -> WhisperForConditionalGeneration:
    torch.manual_seed(seed)
    config = HFWhisperConfig(vocab_size=60, num_mel_bins=8, encoder_layers=2, decoder_layers=2,
                             encoder_attention_heads=2, decoder_attention_heads=2, d_model=16,
                             encoder_ffn_dim=32, decoder_ffn_dim=32, max_source_positions=10,
                             max_target_positions=12, decoder_start_token_id=1, pad_token_id=0,
                             eos_token_id=2, bos_token_id=1, **kw)
    return WhisperForConditionalGeneration(config).eval()


@pytest.mark.parametrize("scale_embedding", [False, True])  # transformers ignores the flag
def test_logits_equal_the_reference(scale_embedding):
    theirs = reference(scale_embedding=scale_embedding)
    ours = Whisper.from_transformers(theirs)
    features = torch.randn(3, 8, 20, generator=torch.Generator().manual_seed(1))  # 2 x 10 frames
    ids = torch.randint(3, 60, (3, 7), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = theirs(input_features=features, decoder_input_ids=ids).logits
        got = ours(input_features=features, decoder_input_ids=ids).logits
    assert got.shape == expected.shape == (3, 7, 60)
    assert (got - expected).abs().max() < 1e-5


def test_the_cache_gives_the_same_logits_as_the_whole_sequence():
    ours = Whisper.from_transformers(reference())
    features = torch.randn(2, 8, 20, generator=torch.Generator().manual_seed(3))
    ids = torch.randint(3, 60, (2, 6), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        whole = ours(input_features=features, decoder_input_ids=ids).logits
        audio = ours.encoder(features)
        first = ours(encoder_outputs=audio, decoder_input_ids=ids[:, :4])
        rest = ours(encoder_outputs=audio, decoder_input_ids=ids[:, 4:], cache=first.cache)
    assert (torch.cat([first.logits, rest.logits], 1) - whole).abs().max() < 1e-5


def test_greedy_generation_equals_transformers_generate():
    theirs = reference(seed=1)  # a seed whose random model writes varied tokens
    ours = Whisper.from_transformers(theirs)
    features = 3 * torch.randn(2, 8, 20, generator=torch.Generator().manual_seed(5))
    prompt = torch.tensor([[1, 7], [1, 9]])
    expected = theirs.generate(features, decoder_input_ids=prompt, max_new_tokens=8,
                               do_sample=False, num_beams=1)  # the new tokens only
    tokens = ours.generate(features, prompt, max_new_tokens=8)
    assert torch.equal(tokens[:, :2], prompt) and torch.equal(tokens[:, 2:], expected)
    assert len(set(expected.flatten().tolist())) > 2


def test_positions_and_bad_input():
    table = sinusoids(10, 16)
    assert table.shape == (10, 16) and torch.equal(table[0, 8:], torch.ones(8))
    config = WhisperConfig(vocab_size=20, num_mel_bins=8, d_model=16, max_source_positions=5)
    model = Whisper(config)
    with pytest.raises(ValueError, match="at most 10 mel frames"):
        model(input_features=torch.zeros(1, 8, 12), decoder_input_ids=torch.zeros(1, 1).long())
    with pytest.raises(ValueError, match="input_features of shape"):
        model(input_features=torch.zeros(1, 7, 10), decoder_input_ids=torch.zeros(1, 1).long())
    with pytest.raises(ValueError, match="divisible"):
        WhisperConfig(vocab_size=20, d_model=10, encoder_attention_heads=4)
    with pytest.raises(TypeError, match="WhisperForConditionalGeneration"):
        Whisper.from_transformers(torch.nn.Linear(2, 2))
