"""Train the neural speech codec of §41.2 for longer than a notebook can, and save it to
data/codec-shapes.safetensors (weights and codebooks in int8 and float16, see
``mmcourse.models.save_codec``; configuration, recipe and the scores below as metadata).

§41.2 builds ``mmcourse.models.Codec`` (EnCodec, checked against ``transformers``) and trains a
small one for a few hundred steps; this script trains the codec that §41.2's VALL-E speaks
through. The recipe: ``config()`` (16 kHz, a hop of 320 samples: 50 frames a second; 8 codebooks
of 256 codes, so 400 bits a second per codebook; causal, weight-normalised convolutions as in
EnCodec 24 kHz, with 16 base filters) trained on random half-second windows of ``N_TRAIN``
utterances of ``mmcourse.asr.speech_corpus`` (train voices, English and French, clean), 8
windows a batch; loss = the multi-scale mel-spectrogram loss (``losses.multiscale_mel_loss``,
windows of 64-2048 samples) + 0.1 x the mean absolute error of the waveform + the commitment
loss; quantiser dropout (each batch uses the first 1..8 codebooks), k-means initialisation,
EMA codebooks, dead-code restarts; no adversarial loss (the discriminators would triple the
cost; their absence is audible as a breathy, whispered quality). AdamW, warm-up and cosine
decay by ``mmcourse.train.fit``, one CPU thread. (The linear-frequency
``losses.multiscale_spectral_loss`` gave a less intelligible codec: STOI 0.67 after 2500
steps, against 0.71 after 1500 with the mel loss.)

Scores, measured on the stored float16 weights on ``N_HELDOUT`` utterances of held-out voices
saying held-out sentences, with the first 1, 2, 4 and 8 codebooks: STOI (``pystoi``, 0-1) and the
log-mel distance in dB (``mmcourse.audio.mel_distance``), and the WER of the §41.1 recogniser
(data/whisper-shapes.safetensors) on the decoded speech and on the original.

Usage: python scripts/make_codec.py [--steps 12000] [--out PATH] [--rescore]
Deterministic for a fixed number of threads. tests/test_codec_checkpoint.py reloads the shipped
file and recomputes its scores. Licence: MIT, as the repository (weights we trained on generated
speech).
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmcourse import asr, train, tts, utils  # noqa: E402
from mmcourse.metrics import wer  # noqa: E402
from mmcourse.losses import multiscale_mel_loss  # noqa: E402
from mmcourse.models import Codec, CodecConfig  # noqa: E402
from mmcourse.models.codec import load_codec, save_codec  # noqa: E402

OUT = ROOT / "data" / "codec-shapes.safetensors"
N_TRAIN, N_HELDOUT, SEED, STEPS = 2000, 100, 0, 12000
WINDOW, BATCH, LEVELS = 8000, 8, (1, 2, 4, 8)


def config() -> CodecConfig:
    """The shipped codec's sizes."""
    return CodecConfig(sampling_rate=16_000, num_filters=16, hidden_size=64,
                       upsampling_ratios=(8, 5, 4, 2), num_lstm_layers=2, codebook_size=256,
                       num_quantizers=8, quantizer_dropout=True)


class Windows:
    """``step -> (BATCH, 1, WINDOW)``: random half-second windows of the training speech (short
    utterances zero-padded), drawn with their own generator so that a run is reproducible."""

    def __init__(self, waves: list[np.ndarray], seed: int = SEED) -> None:
        self.waves, self.rng = waves, np.random.default_rng(seed)

    def __call__(self, step: int) -> torch.Tensor:
        out = np.zeros((BATCH, 1, WINDOW), dtype=np.float32)
        for row in range(BATCH):
            wave = self.waves[self.rng.integers(len(self.waves))]
            start = self.rng.integers(max(len(wave) - WINDOW, 0) + 1)
            piece = wave[start: start + WINDOW]
            out[row, 0, : len(piece)] = piece
        return torch.from_numpy(out)


def codec_loss(model: Codec, batch: torch.Tensor) -> torch.Tensor:
    """What the codec minimises: mel spectra at 6 resolutions, the waveform, the commitment."""
    out = model(batch)
    return (multiscale_mel_loss(out.audio_values, batch, model.config.sampling_rate)
            + 0.1 * F.l1_loss(out.audio_values, batch) + out.commitment_loss)


def heldout() -> list[asr.Utterance]:
    """The evaluation set: held-out voices (unseen accents and variants), held-out sentences."""
    return asr.speech_corpus(N_HELDOUT, "heldout", seed=SEED)


def evaluate(model: Codec, utterances: list[asr.Utterance], levels: tuple[int, ...] = LEVELS,
             recognise: bool = True) -> dict[str, float]:
    """Mean STOI and log-mel distance (dB) with the first n codebooks, for each n in levels;
    with ``recognise``, also the WER of the §41.1 recogniser on the decoded speech
    (``wer_n``) and on the original (``wer_original``), pooled over both languages."""
    scores, decoded = tts.codec_quality(model, [u.waveform for u in utterances], levels)
    if recognise:
        whisper, tokenizer, _ = asr.load_whisper(ROOT / "data" / "whisper-shapes.safetensors")
        sets = {"original": [u.waveform for u in utterances], **decoded}
        for name, waves in sets.items():
            refs, hyps = [], []
            for language in asr.LANGUAGES:
                index = [i for i, u in enumerate(utterances) if u.language == language]
                out = asr.transcribe(whisper, tokenizer, [waves[i] for i in index],
                                     language=language)
                refs += [asr.normalize(utterances[i].text) for i in index]
                hyps += [asr.normalize(o.text) for o in out]
            scores[f"wer_{name}"] = wer(refs, hyps)[0]
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--rescore", action="store_true",
                        help="only score the file at --out again (e.g. after a change to the "
                             "evaluation) and store the new scores in it")
    args = parser.parse_args()
    if args.rescore:
        torch.set_num_threads(1)
        return rescore(args.out)
    torch.set_num_threads(1)
    utils.seed_everything(SEED)
    start = time.time()
    corpus = asr.speech_corpus(N_TRAIN, "train", seed=SEED)
    model = Codec(config())
    evalset = heldout()[:20]

    partial = args.out.with_suffix(".partial.safetensors")  # the latest weights, for a crash

    def checkpoint(m: Codec) -> dict[str, float]:
        save_codec(partial, m, {})
        scores = evaluate(m, evalset, levels=(1, 8), recognise=False)
        print(scores, flush=True)
        return scores

    history = train.fit(model, Windows([u.waveform for u in corpus]), codec_loss,
                        steps=args.steps, lr=1e-3, warmup=200, eval_every=1000, desc="codec",
                        eval_fn=checkpoint)
    minutes = (time.time() - start) / 60
    notes = {"command": utils.script_command("make_codec.py", sys.argv[1:], OUT),
             "steps": args.steps, "minutes": round(minutes, 1), "threads": 1,
             "machine": platform.processor() or platform.machine(), "n_train": N_TRAIN,
             "window": WINDOW, "batch": BATCH,
             "loss_every_50": [round(sum(history.loss[k: k + 50]) / 50, 4)
                               for k in range(0, len(history.loss), 50)],
             "evals_on_20": [(s, e) for s, e in history.evals]}
    save_codec(args.out, model, notes)
    rescore(args.out, notes)
    partial.unlink(missing_ok=True)
    print(f"trained in {minutes:.1f} min")


def rescore(path: Path, notes: dict | None = None) -> None:
    """Score the stored float16 weights (see the module's docstring) and save them again with
    the scores in their notes."""
    model, stored_notes = load_codec(path)
    notes = stored_notes if notes is None else notes
    save_codec(path, model, notes)  # in today's storage format (int8 / float16)
    stored, _ = load_codec(path)
    notes["scores"] = evaluate(stored, heldout())
    save_codec(path, stored, notes)  # the same numbers: a stored weight quantises to itself
    print(f"{path.name}: {notes['scores']}")


if __name__ == "__main__":
    main()
