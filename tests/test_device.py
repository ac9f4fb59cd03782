"""Everything computes where the model lives (BOOK.md §4): checked on the CPU with the device forced.

PyTorch's ``meta`` device stands in for a GPU: a model moved there holds no numbers, and any
operation that meets a tensor left on the CPU fails with a device error, exactly where it would
fail on CUDA. Forward passes run there whole; helpers that read numbers back (``.tolist()``) are
checked with stand-in models that record where their inputs arrive.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from mmcourse import train, utils, vqa
from mmcourse.data.lm_text import WordTokenizer
from mmcourse.data.shapes import ShapesWorld, to_tensor
from mmcourse.metrics import retrieval_scores
from mmcourse.models import (CLIP, LLaVA, CLIPConfig, FlamingoVLM, MLPProjector,
                             QFormerConnector)
from test_vlm import _tiny_parts  # the tiny tower and LM of the VLM tests

META = torch.device("meta")


def test_device_is_forced_by_the_environment(monkeypatch):
    monkeypatch.setenv("MMCOURSE_DEVICE", "cpu")
    assert utils.device() == torch.device("cpu")
    assert utils.device("cpu").type == "cpu"  # an explicit choice wins too
    monkeypatch.setenv("MMCOURSE_DEVICE", "tpu")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        utils.device()


def test_to_device_reaches_every_tensor_of_a_batch():
    @dataclasses.dataclass
    class Batch:
        pixels: torch.Tensor
        names: list[str]

    batch = {"a": (torch.ones(2), [Batch(torch.zeros(1), ["x"])]), "n": 3}
    moved = utils.to_device(batch, META)
    assert moved["a"][0].device == META and moved["a"][1][0].pixels.device == META
    assert moved["a"][1][0].names == ["x"] and moved["n"] == 3
    same = torch.ones(3)
    assert utils.to_device(same, "cpu") is same  # nothing is copied on the CPU


def test_model_device_is_where_the_parameters_are():
    assert utils.model_device(nn.Linear(2, 2).to(META)) == META
    assert utils.model_device(nn.ReLU()) == torch.device("cpu")


def test_fit_moves_each_batch_to_the_models_device(monkeypatch):
    arrived = []

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(1))

    def loss_fn(model, batch):
        arrived.append(batch[0].device)
        return (model.w ** 2).sum()

    monkeypatch.setattr(train, "model_device", lambda model: META)
    train.fit(Probe(), [(torch.ones(2),)], loss_fn, steps=2, progress=False)
    assert arrived == [META, META]


class _RecordingLM(nn.Module):
    """Stands in for a VLM whose parameters are on the meta device: records where its inputs
    arrive and returns CPU logits, so that a helper can read its answers."""

    def __init__(self, vocab: int):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1, device=META))
        self.vocab, self.devices = vocab, []

    def forward(self, input_ids, attention_mask=None, vision_features=None):
        self.devices += [t.device for t in (input_ids, attention_mask, vision_features)
                         if t is not None]
        return type("Out", (), {"logits": torch.zeros(*input_ids.shape, self.vocab)})()


def test_vqa_helpers_feed_the_model_on_its_device():
    world = ShapesWorld(seed=0)
    scenes = [world.scene(i, "test") for i in range(3)]
    tokenizer = WordTokenizer.from_texts([q.question + " " + q.answer for s in scenes
                                          for q in s.qa] + ["question : answer"])
    model = _RecordingLM(len(tokenizer.vocab))
    features = torch.zeros(3, 4, 8)  # made on the CPU, as vqa.tower_features' caller may
    scores, predictions = vqa.score_vqa(model, tokenizer, scenes, features, image_tokens=4)
    assert model.devices and set(model.devices) == {META}
    assert len(predictions) == sum(len(s.qa) for s in scenes) and 0 <= scores["overall"] <= 1


def _tiny_clip() -> CLIP:
    torch.manual_seed(0)
    return CLIP(CLIPConfig.tiny(vocab_size=30, eos_token_id=29, max_length=12, image_size=32))


def test_clip_runs_whole_on_another_device():
    clip = _tiny_clip().to(META)
    images = to_tensor([ShapesWorld(seed=0, image_size=32).scene(0).image]).to(META)
    ids = torch.randint(1, 29, (2, 12)).to(META)
    out = clip(clip.pixel_values(images), ids)
    assert out.logits_per_image.device == META and tuple(out.logits_per_image.shape) == (1, 2)
    features = vqa.tower_features(clip, [ShapesWorld(seed=0, image_size=32).scene(1)])
    assert features.device == META  # the helper sent the images where the tower is


@pytest.mark.parametrize("connector", ["mlp", "qformer"])
def test_llava_parts_run_whole_on_another_device(connector):
    # LLaVA's own forward counts the placeholders (a number read back), so its parts run here:
    # the tower, the connector and the language model with its key/value cache
    tower, lm = _tiny_parts()
    conn = MLPProjector(32, 48) if connector == "mlp" else QFormerConnector(
        32, 48, num_queries=16, dim=16, num_heads=2)
    vlm = LLaVA(tower, conn, lm, image_token_id=49).to(META)
    visual = vlm.connector(vlm.vision_features(torch.randn(2, 3, 16, 16).to(META)))
    assert visual.device == META and tuple(visual.shape) == (2, 16, 48)
    ids = torch.tensor([[3, 4, 5, 6], [0, 0, 7, 8]]).to(META)
    cached = vlm.language_model(ids, attention_mask=(ids != 0).long(), use_cache=True)
    assert cached.logits.device == META and tuple(cached.logits.shape) == (2, 4, 50)


def test_flamingo_resampler_runs_on_another_device():
    tower, lm = _tiny_parts()
    vlm = FlamingoVLM(tower, lm, image_token_id=49, num_latents=3).to(META)
    media = vlm.media(vlm.vision_features(torch.randn(2, 3, 16, 16).to(META)), 2)
    assert media.device == META  # the Perceiver Resampler's latents per image


def test_retrieval_scores_accept_a_similarity_on_the_models_device():
    # the diagonal's indices are made where the similarity lives (a CUDA matrix needs CUDA ones)
    similarity = torch.eye(4) + 0.1
    assert retrieval_scores(similarity)["image->text R@1"] == 1.0



def test_audio_features_are_computed_where_the_waveform_is():
    from mmcourse.audio import log_mel_spectrogram, mfcc

    waveform = torch.zeros(2, 16_000).to(META)
    log_mel = log_mel_spectrogram(waveform, top_db=None)
    assert log_mel.device == META and tuple(log_mel.shape) == (2, 80, 101)
    assert mfcc(log_mel).device == META


def test_whisper_runs_whole_on_another_device():
    from mmcourse.models import Whisper, WhisperConfig

    torch.manual_seed(0)
    model = Whisper(WhisperConfig(vocab_size=30, num_mel_bins=8, d_model=16,
                                  max_source_positions=10, max_target_positions=12)).to(META)
    features, ids = torch.zeros(2, 8, 20).to(META), torch.ones(2, 3, dtype=torch.long).to(META)
    first = model(input_features=features, decoder_input_ids=ids)
    step = model(encoder_outputs=model.encoder(features), decoder_input_ids=ids[:, :1],
                 cache=first.cache)
    assert first.logits.device == step.logits.device == META
