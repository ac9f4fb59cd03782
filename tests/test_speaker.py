"""The §41.2 speaker-embedding model: unit-norm embeddings that do not depend on padding, a
tiny model that tells two voices apart on utterances it never heard, input checks, and the
meta device."""
import time

import numpy as np
import pytest
import torch

from mmcourse.data import speech
from mmcourse.models import (SpeakerConfig, SpeakerEncoder, cosine_similarity,
                             speaker_features, speaker_similarity)

torch.set_num_threads(1)
META = torch.device("meta")
TEXTS = ["a small red circle", "a big blue star", "there are two shapes",
         "the green square is above the circle", "a large yellow triangle",
         "a small purple cross", "the red star is left of the square", "there are four shapes",
         "a big orange circle"]


def tiny(seed: int = 0, **kw) -> SpeakerEncoder:
    torch.manual_seed(seed)
    return SpeakerEncoder(SpeakerConfig(num_speakers=2, channels=32, embedding_dim=32, **kw))


@pytest.fixture(scope="module")
def voices() -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(0)
    return {v: speech.speak_many(TEXTS, v, rng=rng, rate=(140, 220))[0]
            for v in ("en-us+m1", "en-us+m2")}  # two male voices of one accent


def test_embeddings_are_unit_norm_and_independent_of_padding(voices):
    model = tiny().eval()
    waves = voices["en-us+m1"][:3]
    together = model.embed(waves, 16_000)
    assert together.shape == (3, 32)
    assert torch.allclose(together.norm(dim=-1), torch.ones(3), atol=1e-5)
    alone = torch.cat([model.embed([w], 16_000) for w in waves])
    assert torch.allclose(together, alone, atol=1e-5)  # padding in a batch changes nothing
    louder = model.embed([w * 0.25 for w in waves], 16_000)  # 12 dB quieter: the same voice
    assert torch.allclose(together, louder, atol=1e-4)
    features, mask = speaker_features(waves, 16_000, n_mels=40)
    assert features.shape[:2] == (3, 40) and mask.sum(1).tolist() == [
        1 + len(w) // 160 for w in waves]
    assert features.masked_select(~mask[:, None]).eq(0).all()


def test_a_tiny_model_separates_two_voices_it_was_trained_on(voices):
    start = time.perf_counter()
    model = tiny()
    train = [(w, k) for k, ws in enumerate(voices.values()) for w in ws[:6]]
    features, mask = model.features([w for w, _ in train], 16_000)
    labels = torch.tensor([k for _, k in train])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(30):
        loss = model.loss(features, mask, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert time.perf_counter() - start < 10 and loss.item() < 0.1
    model.eval()
    heldout = [w for ws in voices.values() for w in ws[6:]]  # sentences never heard
    similarity = cosine_similarity(model.embed(heldout, 16_000), model.embed(heldout, 16_000))
    same = torch.tensor([[i // 3 == j // 3 and i != j for j in range(6)] for i in range(6)])
    different = torch.tensor([[i // 3 != j // 3 for j in range(6)] for i in range(6)])
    for row in range(6):  # each utterance is nearer its own voice than the other one
        assert similarity[row][same[row]].mean() > similarity[row][different[row]].mean()
    assert similarity[same].mean() > similarity[different].mean() + 0.3  # 0.89 and 0.26 here
    pairs = speaker_similarity(model, heldout[:3], heldout[3:], 16_000)
    assert pairs.shape == (3,) and (pairs < similarity[same].mean()).all()


def test_cosine_similarity_shapes():
    a, b = torch.randn(3, 4), torch.randn(5, 4)
    sim = cosine_similarity(a, b)
    assert sim.shape == (3, 5)
    assert torch.allclose(sim[1, 2], torch.nn.functional.cosine_similarity(a[1], b[2], dim=0))
    assert cosine_similarity(a[0], a[0]).shape == (1, 1)
    with pytest.raises(ValueError, match="same E"):
        cosine_similarity(a, torch.randn(5, 3))


def test_bad_inputs_and_configs():
    model = tiny()
    wave = np.zeros(1600, dtype=np.float32)
    with pytest.raises(ValueError, match="sample_rate must be the model's 16000 Hz"):
        model.embed([wave], 22_050)
    with pytest.raises(ValueError, match=r"waveforms\[1\] must be a non-empty"):
        model.embed([wave, np.zeros(0)], 16_000)
    with pytest.raises(ValueError, match="at least one utterance"):
        model.embed([], 16_000)
    with pytest.raises(ValueError, match="sample_rate must be a positive"):
        speaker_features([wave], 0)
    with pytest.raises(ValueError, match="features of shape"):
        model(torch.zeros(2, 39, 10))
    with pytest.raises(ValueError, match="one reference per waveform"):
        speaker_similarity(model, [wave], [wave, wave], 16_000)
    with pytest.raises(ValueError, match="kernel_sizes"):
        SpeakerConfig(num_speakers=2, kernel_sizes=(4, 3), dilations=(1, 2))
    with pytest.raises(ValueError, match="margin"):
        SpeakerConfig(num_speakers=2, margin=1.0)


def test_forward_and_features_run_on_the_meta_device():
    model = tiny().to(META)
    features, mask = model.features([torch.zeros(3200), torch.zeros(1600)], 16_000)
    assert features.device == mask.device == META and features.shape == (2, 40, 21)
    embeddings = model(features, mask)
    assert embeddings.device == META and embeddings.shape == (2, 32)
    assert model.loss(features, mask, torch.tensor([0, 1]).to(META)).device == META
