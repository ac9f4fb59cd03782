"""Train the speaker-embedding model of §41.2, which judges whose voice VALL-E speaks with,
and save it to data/speaker-shapes.safetensors (float16 weights; configuration, training
voices, recipe and scores as metadata).

The model is ``mmcourse.models.SpeakerEncoder`` (an x-vector: dilated convolutions over
log-mels, attentive statistics pooling, an AM-softmax over the training voices). It trains on
``N_TRAIN`` utterances of ``mmcourse.tts.speaker_corpus`` (the 90 English training voices,
each at its own pitch; train scenes), cut to random windows of 1-3 s, 64 a batch, with AdamW,
warm-up and cosine decay (``mmcourse.train.fit``) on one CPU thread.

Scores, measured on the stored float16 weights: the equal error rate of verification trials
(every pair of ``N_HELDOUT`` utterances by the 70 *held-out* English voices, which the model
never heard: the unseen accents and variants) with the cosine of the embeddings as the score;
the mean cosine of same-voice and of different-voice pairs; and the voice-classification
accuracy on held-out sentences of the training voices.

Usage: python scripts/make_speaker.py [--steps 2000] [--out PATH]
Deterministic for a fixed number of threads. tests/test_speaker_checkpoint.py reloads the
shipped file and recomputes its scores. Licence: MIT, as the repository.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmcourse import train, tts, utils  # noqa: E402
from mmcourse.data import speech  # noqa: E402
from mmcourse.metrics import equal_error_rate  # noqa: E402
from mmcourse.models import SpeakerConfig, SpeakerEncoder, speaker_features  # noqa: E402
from mmcourse.models.speaker import load_speaker, save_speaker, speaker_loss  # noqa: E402

OUT = ROOT / "data" / "speaker-shapes.safetensors"
N_TRAIN, N_HELDOUT, N_CHECK, SEED, STEPS, BATCH = 4000, 300, 300, 0, 2000, 64
SAMPLE_RATE = 16_000
VOICES = tuple(v for v in speech.TRAIN_VOICES
               if v.split("+")[0] in speech.LANGUAGES["en"])  # the 90 English training voices


def config() -> SpeakerConfig:
    """The shipped model's sizes."""
    return SpeakerConfig(num_speakers=len(VOICES), n_mels=40, channels=128,
                         kernel_sizes=(5, 3, 3, 1), dilations=(1, 2, 3, 1), embedding_dim=64)


class Crops:
    """``step -> (features, mask, labels)``: BATCH utterances drawn at random, each cut to a
    random window of 1-3 s (the whole utterance when shorter)."""

    def __init__(self, waves: list[np.ndarray], labels: list[int], seed: int = SEED) -> None:
        self.waves, self.labels, self.rng = waves, labels, np.random.default_rng(seed)

    def __call__(self, step: int) -> tuple[torch.Tensor, ...]:
        pieces, labels = [], []
        for i in self.rng.integers(len(self.waves), size=BATCH):
            wave, length = self.waves[i], int(self.rng.integers(16_000, 48_001))
            start = int(self.rng.integers(max(len(wave) - length, 0) + 1))
            pieces.append(wave[start: start + length])
            labels.append(self.labels[i])
        features, mask = speaker_features(pieces, SAMPLE_RATE, config().n_mels)
        return features, mask, torch.tensor(labels)


def heldout_trials(model: SpeakerEncoder) -> dict[str, float]:
    """EER and mean cosines over every pair of the held-out voices' utterances."""
    corpus = tts.speaker_corpus(N_HELDOUT, "heldout", seed=SEED)
    emb = model.embed([u.waveform for u in corpus], SAMPLE_RATE)
    cos = (emb @ emb.T).numpy()
    voices = np.array([u.voice for u in corpus])
    upper = np.triu_indices(len(corpus), k=1)
    same = (voices[:, None] == voices[None])[upper]
    eer, _ = equal_error_rate(cos[upper], same)
    return {"eer": eer, "cos_same": float(cos[upper][same].mean()),
            "cos_different": float(cos[upper][~same].mean()),
            "heldout_voices": int(len(set(voices)))}


def train_accuracy(model: SpeakerEncoder) -> float:
    """Voice classification on held-out sentences (test scenes) of the training voices."""
    corpus = [u for u in tts.speaker_corpus(N_CHECK, "train", seed=SEED + 1)]
    emb = model.embed([u.waveform for u in corpus], SAMPLE_RATE)
    predicted = model.logits(emb).argmax(-1)
    truth = torch.tensor([VOICES.index(u.voice) for u in corpus])
    return float((predicted == truth).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    utils.seed_everything(SEED)
    start = time.time()
    corpus = tts.speaker_corpus(N_TRAIN, "train", seed=SEED)
    labels = [VOICES.index(u.voice) for u in corpus]
    model = SpeakerEncoder(config())
    history = train.fit(model, Crops([u.waveform for u in corpus], labels), speaker_loss,
                        steps=args.steps, lr=2e-3, warmup=100, desc="speaker")
    minutes = (time.time() - start) / 60
    notes = {"command": utils.script_command("make_speaker.py", sys.argv[1:], OUT),
             "steps": args.steps, "minutes": round(minutes, 1), "threads": 1,
             "machine": platform.processor() or platform.machine(), "n_train": N_TRAIN,
             "batch": BATCH,
             "loss_every_50": [round(sum(history.loss[k: k + 50]) / 50, 4)
                               for k in range(0, len(history.loss), 50)]}
    save_speaker(args.out, model, VOICES, notes)
    stored, _, _ = load_speaker(args.out)  # the scores of the float16 weights
    notes["scores"] = {**heldout_trials(stored), "train_voice_accuracy": train_accuracy(stored)}
    save_speaker(args.out, stored, VOICES, notes)
    print(f"{args.out.name}: {notes['scores']} in {minutes:.1f} min")


if __name__ == "__main__":
    main()
