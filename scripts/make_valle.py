"""Train the VALL-E of §41.2 (text to speech as language modelling over the §41.2 codec's
codes) for longer than a notebook can, and save it to data/valle-shapes.safetensors (float16
weights of both models; configuration, phoneme vocabulary, recipe and scores as metadata).

Data: ``N_TRAIN`` utterances of ``mmcourse.tts.speaker_corpus`` (the 90 English training
voices, each at its own pitch, train scenes), their eSpeak phonemes (``tts.phonemize``, always
in ``en-us``: the accent must come from the prompt) and their codes from the shipped codec
(data/codec-shapes.safetensors, 8 codebooks of 256 at 50 frames a second). Each training
example pairs an utterance with a prompt: another utterance of its voice, cut to at most
``MAX_PROMPT`` frames at a random place (``tts.VALLEBatches``).

Recipe: the autoregressive model (``VALLEAR``: codebook 1, then ``<eos>``) and the
non-autoregressive one (``VALLENAR``: codebooks 2-8, one per pass) are trained one after the
other with AdamW, warm-up and cosine decay (``mmcourse.train.fit``), ``BATCH`` examples a
batch, one CPU thread.

Scores, on the stored float16 weights: ``N_EVAL`` held-out sentences (test scenes) spoken by
VALL-E in the voices of held-out speakers (unseen accents and variants), each prompted by
another utterance of that speaker; the AR model samples with ``SAMPLING``. The WER of the
§41.1 recogniser (data/whisper-shapes.safetensors) on the generated speech, beside its WER on
the real recordings and on the real recordings passed through the codec (the best VALL-E can
do with this codec).

Usage: python scripts/make_valle.py [--ar-steps N] [--nar-steps N] [--out PATH]
Deterministic for a fixed number of threads. tests/test_valle_checkpoint.py reloads the shipped
file and checks its scores. Licence: MIT, as the repository.
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

from mmcourse import asr, hub, train, tts, utils  # noqa: E402
from mmcourse.metrics import wer  # noqa: E402
from mmcourse.models import VALLEAR, VALLEConfig, VALLENAR, load_codec, synthesize  # noqa: E402

OUT = ROOT / "data" / "valle-shapes.safetensors"
N_TRAIN, N_HELDOUT, N_EVAL, SEED = 4000, 300, 100, 0
AR_STEPS, NAR_STEPS, BATCH, MAX_PROMPT = 3000, 1200, 16, 150
SAMPLING = {"temperature": 1.0, "top_k": 20}


def config(vocab: tts.PhonemeVocabulary, codec_config) -> VALLEConfig:
    """The shipped models' sizes."""
    return VALLEConfig(num_quantizers=codec_config.num_quantizers,
                       codebook_size=codec_config.codebook_size, phoneme_vocab_size=len(vocab),
                       d_model=128, num_heads=4, num_layers=4, ffn_dim=512, max_phonemes=128,
                       max_frames=400)


@torch.no_grad()
def encode(codec, utterances) -> list[torch.Tensor]:
    """The codes (n, T) of every utterance, all codebooks."""
    return [codec.encode(torch.from_numpy(u.waveform)[None, None])[0] for u in utterances]


def evaluation_set(vocab: tts.PhonemeVocabulary, codec):
    """``N_EVAL`` (utterance, prompt codes, phoneme ids) of held-out speakers; the prompt is
    another utterance of the same speaker."""
    corpus = tts.speaker_corpus(N_HELDOUT, "heldout", seed=SEED)
    voices = [u.voice for u in corpus]
    rows = []
    for i, u in enumerate(corpus):
        if voices.count(u.voice) < 2:
            continue
        prompt = corpus[tts.pick_prompt(voices, i)]
        rows.append((u, encode(codec, [prompt])[0][:, :MAX_PROMPT],
                     vocab.encode(tts.phonemize(u.text))))
        if len(rows) == N_EVAL:
            break
    return rows


def evaluate(ar: VALLEAR, nar: VALLENAR, codec, rows, sampling: dict, seed: int = SEED
             ) -> dict[str, float]:
    """WER of the §41.1 recogniser on VALL-E's speech, the codec's resynthesis and the real
    recordings of the same sentences."""
    recogniser, tokenizer, _ = asr.load_whisper(hub.book_file("data/whisper-shapes.safetensors"))
    generator = torch.Generator().manual_seed(seed)
    generated, resynthesised = [], []
    with torch.no_grad():
        for u, prompt, phonemes in rows:
            codes = synthesize(ar, nar, phonemes, prompt, max_frames=3 * len(phonemes) + 50,
                               generator=generator, **sampling)
            generated.append(codec.decode(codes)[0, 0].numpy())
            resynthesised.append(tts.reconstruct(codec, u.waveform))
    refs = [asr.normalize(u.text) for u, _, _ in rows]

    def score(waves) -> float:
        out = asr.transcribe(recogniser, tokenizer, waves, language="en")
        return wer(refs, [asr.normalize(o.text) for o in out])[0]

    return {"wer_generated": score(generated), "wer_codec": score(resynthesised),
            "wer_real": score([u.waveform for u, _, _ in rows]),
            "seconds_generated": float(np.mean([len(w) / 16_000 for w in generated])),
            "seconds_real": float(np.mean([len(u.waveform) / 16_000 for u, _, _ in rows]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ar-steps", type=int, default=AR_STEPS)
    parser.add_argument("--nar-steps", type=int, default=NAR_STEPS)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    utils.seed_everything(SEED)
    start = time.time()
    codec, _ = load_codec(hub.book_file("data/codec-shapes.safetensors"))
    corpus = tts.speaker_corpus(N_TRAIN, "train", seed=SEED)
    said = [u.voice for u in corpus]
    corpus = [u for u in corpus if said.count(u.voice) > 1]  # a prompt needs a second one
    vocab = tts.PhonemeVocabulary.from_texts([u.text for u in corpus])
    phonemes = [vocab.encode(tts.phonemize(u.text)) for u in corpus]
    codes, voices = encode(codec, corpus), [u.voice for u in corpus]

    def batches() -> tts.VALLEBatches:
        return tts.VALLEBatches(phonemes, codes, voices, batch_size=BATCH,
                                max_prompt_frames=MAX_PROMPT, seed=SEED)

    ar, nar = VALLEAR(config(vocab, codec.config)), VALLENAR(config(vocab, codec.config))
    ar_history = train.fit(ar, batches(), tts.ar_loss, steps=args.ar_steps, lr=1e-3,
                           warmup=200, desc="VALL-E AR")
    nar_history = train.fit(nar, batches(), tts.nar_loss, steps=args.nar_steps, lr=1e-3,
                            warmup=200, desc="VALL-E NAR")
    minutes = (time.time() - start) / 60

    def every_50(losses: list[float]) -> list[float]:
        return [round(sum(losses[k: k + 50]) / len(losses[k: k + 50]), 4)
                for k in range(0, len(losses), 50)]

    notes = {"command": utils.script_command("make_valle.py", sys.argv[1:], OUT),
             "ar_steps": args.ar_steps, "nar_steps": args.nar_steps,
             "minutes": round(minutes, 1), "threads": 1,
             "machine": platform.processor() or platform.machine(), "n_train": N_TRAIN,
             "batch": BATCH, "max_prompt_frames": MAX_PROMPT, "sampling": SAMPLING,
             "ar_loss_every_50": every_50(ar_history.loss),
             "nar_loss_every_50": every_50(nar_history.loss)}
    tts.save_valle(args.out, ar, nar, vocab, notes)
    ar, nar, vocab, _ = tts.load_valle(args.out)  # the scores of the float16 weights
    notes["scores"] = evaluate(ar, nar, codec, evaluation_set(vocab, codec), SAMPLING)
    tts.save_valle(args.out, ar, nar, vocab, notes)
    print(f"{args.out.name}: {notes['scores']} in {minutes:.1f} min")


if __name__ == "__main__":
    main()
