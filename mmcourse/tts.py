"""Teaching VALL-E to speak: phonemes from eSpeak, training examples that pair an utterance with
an acoustic prompt of the same voice, padded batches, and the two models' losses.

VALL-E reads phonemes rather than letters, so that it need not learn English spelling. eSpeak
NG, which speaks the synthetic world, also writes its IPA::

    phonemize("a small red circle")  ->  ɐ | s m ˈ ɔː l | ɹ ˈ ɛ d | s ˈ ɜː k əl

one symbol per phone, stress marks as symbols of their own, ``|`` between words. Each accent
writes its own phones (``ɹ`` in ``en-us``, ``r`` in ``en-gb-scotland``), so the vocabulary is
built from the accents it will read.

Built in §41.2.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mmcourse.asr import length_buckets
from mmcourse.data import speech

PAD, BOS, EOS, WORD = "<pad>", "<bos>", "<eos>", "|"
SPECIAL_SYMBOLS: tuple[str, ...] = (PAD, BOS, EOS, WORD)  #: ids 0, 1, 2, 3 of every vocabulary
STRESS: tuple[str, ...] = ("ˈ", "ˌ")  #: primary and secondary stress


def phoneme_symbols(ipa: str) -> list[str]:
    """Split eSpeak's IPA, written with ``separator="_"`` (``"ɐ s_m_ˈɔː_l"``), into symbols:
    ``["ɐ", "|", "s", "m", "ˈ", "ɔː", "l"]``: words joined by ``|``, a stress mark split from
    its vowel, the empty pieces eSpeak leaves at pauses (``"__"``) dropped. Built in §41.2."""
    if not isinstance(ipa, str):
        raise ValueError(f"ipa must be a string, got {type(ipa).__name__}")
    words = []
    for word in ipa.split():
        symbols = []
        for piece in filter(None, word.split("_")):
            while piece[:1] in STRESS and len(piece) > 1:
                symbols.append(piece[0])
                piece = piece[1:]
            symbols.append(piece)
        words.append(symbols)
    return [s for k, w in enumerate(words) for s in ([WORD] if k else []) + w]


def phonemize(text: str, voice: str = "en-us") -> list[str]:
    """The phoneme symbols ``voice`` speaks for ``text`` (see :func:`phoneme_symbols`).
    Built in §41.2."""
    return phoneme_symbols(speech.phonemes(text, voice, separator="_"))


def join_phonemes(symbols: Sequence[str]) -> str:
    """Symbols back to eSpeak's unseparated IPA: ``join_phonemes(phonemize(text, voice)) ==
    speech.phonemes(text, voice)``. Built in §41.2."""
    return "".join(" " if s == WORD else s for s in symbols if s not in (PAD, BOS, EOS))


class PhonemeVocabulary:
    """Phoneme symbols <-> ids: ``<pad>`` 0, ``<bos>`` 1, ``<eos>`` 2, ``|`` 3 (between words),
    then the phones in sorted order. Built in §41.2."""

    def __init__(self, phones: Sequence[str]) -> None:
        bad = [p for p in phones if not isinstance(p, str) or not p or p != p.strip()
               or any(c.isspace() or c == "_" for c in p) or p in SPECIAL_SYMBOLS]
        if bad:
            raise ValueError(f"phones must be non-empty strings without spaces or '_', other "
                             f"than {SPECIAL_SYMBOLS}; got {bad[:5]}")
        self.symbols: list[str] = list(SPECIAL_SYMBOLS) + sorted(set(phones))
        self.index = {s: i for i, s in enumerate(self.symbols)}
        self.pad_id, self.bos_id, self.eos_id, self.word_id = range(4)

    @classmethod
    def from_texts(cls, texts: Sequence[str], voices: Sequence[str] = ("en-us",)
                   ) -> PhonemeVocabulary:
        """The phones of every text spoken by every voice (about 1 ms per pair)."""
        if isinstance(voices, str):
            voices = [voices]
        if len(texts) == 0 or len(voices) == 0:
            raise ValueError("texts and voices must each hold at least one entry")
        return cls({s for v in voices for t in texts for s in phonemize(t, v)}
                   - set(SPECIAL_SYMBOLS))

    def __len__(self) -> int:
        return len(self.symbols)

    def encode(self, phonemes: str | Sequence[str], add_bos_eos: bool = False) -> list[int]:
        """Ids of a list of symbols, or of eSpeak IPA written with ``"_"`` between phones;
        framed by ``<bos>`` and ``<eos>`` if ``add_bos_eos``."""
        symbols = phoneme_symbols(phonemes) if isinstance(phonemes, str) else list(phonemes)
        unknown = sorted({s for s in symbols if s not in self.index})
        if unknown:
            raise ValueError(f"phonemes has symbols outside the vocabulary: {unknown} (build the "
                             f"vocabulary from the accents that will be read)")
        ids = [self.index[s] for s in symbols]
        return [self.bos_id, *ids, self.eos_id] if add_bos_eos else ids

    def decode(self, ids: Sequence[int] | torch.Tensor) -> list[str]:
        """The symbols of ``ids``, ``<pad>``, ``<bos>`` and ``<eos>`` dropped."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < len(self.symbols)]
        if bad:
            raise ValueError(f"ids must lie in [0, {len(self.symbols)}), got {bad[:5]}")
        return [self.symbols[i] for i in ids if i > self.eos_id]  # '|' (3) stays

    def to_json(self) -> str:
        return json.dumps({"phones": self.symbols[len(SPECIAL_SYMBOLS):]}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> PhonemeVocabulary:
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("phones"), list):
            raise ValueError("text must be the JSON written by PhonemeVocabulary.to_json")
        return cls(data["phones"])


# ---------------------------------------------------------------- speakers


def speaker_pitch(voice: str) -> int:
    """The one eSpeak pitch (35-65) at which :func:`speaker_corpus` speaks ``voice``: a fixed
    function of its name, so that a voice is one speaker everywhere in the book.
    Built in §41.2."""
    speech.voice_split(voice)  # a ValueError for an unknown voice
    return 35 + sum(ord(c) * (k + 1) for k, c in enumerate(voice)) % 31


def speaker_corpus(n: int, split: str = "train", seed: int = 0, language: str = "en",
                   rate: tuple[int, int] = (140, 200)) -> list:
    """``n`` ShapesWorld sentences (of the split's scenes, as :func:`mmcourse.asr.speech_corpus`)
    spoken by voices of ``split``, each voice always at its own :func:`speaker_pitch`: a voice
    is a *speaker*, whose every utterance can prompt another. Speaking rates vary per utterance
    within ``rate``; no noise. Returns :class:`mmcourse.asr.Utterance`\\ s. Deterministic in its
    arguments. Built in §41.2."""
    from mmcourse.asr import SAMPLE_RATE, Utterance
    from mmcourse.data.french import bilingual_captions
    from mmcourse.data.shapes import ShapesWorld

    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout'; got {split!r}")
    if n <= 0:
        raise ValueError(f"n must be a positive number of utterances; got {n}")
    world, scenes = ShapesWorld(seed=seed), "train" if split == "train" else "test"
    rng = np.random.default_rng([seed, 0 if split == "train" else 1, 412])
    out = []
    for k in range(n):
        pairs = bilingual_captions(world.scene(k % world.split_size(scenes), scenes).objects)
        english, french = pairs[int(rng.integers(len(pairs)))]
        text, translation = (english, french) if language == "en" else (french, english)
        voice = speech.random_voice(rng, split, language)
        r = int(rng.integers(rate[0], rate[1] + 1))
        wave, _ = speech.synthesize(text, voice, r, speaker_pitch(voice), SAMPLE_RATE)
        out.append(Utterance(text, translation, language, voice, r, None, wave))
    return out


# ---------------------------------------------------------------- examples and batches


def _codes(codes, name: str) -> torch.Tensor:
    """Codes (n, T), or (1, n, T) as ``Codec.encode`` gives for one utterance, as (n, T)."""
    codes = torch.as_tensor(codes)
    if codes.dim() == 3 and codes.shape[0] == 1:
        codes = codes[0]
    if codes.dim() != 2 or codes.is_floating_point() or codes.shape[1] == 0:
        raise ValueError(f"expected integer {name} of shape (n, frames) or (1, n, frames) with "
                         f"frames >= 1, got {tuple(codes.shape)} {codes.dtype}")
    return codes.long()


@dataclass
class VALLEExample:
    """One training example: the utterance's ``phonemes`` (P,), its ``codes`` (n, T) and the
    ``prompt`` (n, Tp): codes of another utterance of the same voice. Built in §41.2."""

    phonemes: torch.Tensor
    codes: torch.Tensor
    prompt: torch.Tensor


def valle_example(phoneme_ids: Sequence[int] | torch.Tensor, codes, prompt_codes,
                  max_prompt_frames: int | None = None, rng: np.random.Generator | None = None
                  ) -> VALLEExample:
    """Check and assemble an example. A prompt longer than ``max_prompt_frames`` is cut to
    that many frames: its beginning, or a window at a random place with ``rng``.
    Built in §41.2."""
    phonemes = torch.as_tensor(phoneme_ids, dtype=torch.long)
    if phonemes.dim() != 1 or phonemes.numel() == 0:
        raise ValueError(f"expected phoneme_ids of shape (P,) with P >= 1, got "
                         f"{tuple(phonemes.shape)}")
    codes, prompt = _codes(codes, "codes"), _codes(prompt_codes, "prompt_codes")
    if codes.shape[0] != prompt.shape[0]:
        raise ValueError(f"codes and prompt_codes hold different numbers of codebooks: "
                         f"{codes.shape[0]} and {prompt.shape[0]}")
    if max_prompt_frames is not None:
        if max_prompt_frames < 1:
            raise ValueError(f"max_prompt_frames must be positive, got {max_prompt_frames}")
        spare = max(0, prompt.shape[1] - max_prompt_frames)
        start = 0 if rng is None else int(rng.integers(spare + 1))
        prompt = prompt[:, start: start + max_prompt_frames]
    return VALLEExample(phonemes, codes, prompt)


@dataclass
class VALLEBatch:
    """Padded examples: ``phonemes`` (B, P) (padded with ``<pad>``), ``prompt`` (B, n, Tp)
    and ``target`` (B, n, T) (padded with code 0), each with a bool mask of its real positions
    (B, P), (B, Tp), (B, T). Built in §41.2."""

    phonemes: torch.Tensor
    phoneme_mask: torch.Tensor
    prompt: torch.Tensor
    prompt_mask: torch.Tensor
    target: torch.Tensor
    target_mask: torch.Tensor


def _pad(rows: Sequence[torch.Tensor], value: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows (..., L_i) -> (B, ..., max L) padded on the right with ``value``, and (B, max L)."""
    length = max(r.shape[-1] for r in rows)
    out = torch.full((len(rows), *rows[0].shape[:-1], length), value, dtype=torch.long)
    mask = torch.zeros(len(rows), length, dtype=torch.bool)
    for i, r in enumerate(rows):
        out[i, ..., : r.shape[-1]], mask[i, : r.shape[-1]] = r, True
    return out, mask


def collate_valle(examples: Sequence[VALLEExample], pad_id: int = 0) -> VALLEBatch:
    """Pad examples into one :class:`VALLEBatch` (on the CPU; ``train.fit`` moves it).
    Built in §41.2."""
    if len(examples) == 0:
        raise ValueError("examples must hold at least one VALLEExample")
    if len({e.codes.shape[0] for e in examples}) != 1:
        raise ValueError("every example must have the same number of codebooks")
    phonemes, phoneme_mask = _pad([e.phonemes for e in examples], pad_id)
    prompt, prompt_mask = _pad([e.prompt for e in examples], 0)
    target, target_mask = _pad([e.codes for e in examples], 0)
    return VALLEBatch(phonemes, phoneme_mask, prompt, prompt_mask, target, target_mask)


def pick_prompt(voices: Sequence[str], index: int, rng: np.random.Generator | None = None
                ) -> int:
    """The index of an acoustic prompt for utterance ``index``: another utterance of the same
    voice, drawn with ``rng``, or without it the next one (cyclically). Built in §41.2."""
    if not 0 <= index < len(voices):
        raise ValueError(f"index must lie in [0, {len(voices)}), got {index}")
    same = [j for j, v in enumerate(voices) if v == voices[index] and j != index]
    if not same:
        raise ValueError(f"voice {voices[index]!r} of utterance {index} says nothing else: a "
                         f"prompt needs a second utterance of the voice")
    if rng is None:
        return min(same, key=lambda j: (j - index) % len(voices))
    return same[int(rng.integers(len(same)))]


class VALLEBatches:
    """``step -> VALLEBatch`` for :func:`mmcourse.train.fit`: length-bucketed epochs over
    utterances given as phoneme ids, codes (n, T) and voices; each time an utterance is used
    it gets a fresh prompt (:func:`pick_prompt`), cut to ``max_prompt_frames`` at a random
    place. Built in §41.2."""

    def __init__(self, phonemes: Sequence[Sequence[int]], codes: Sequence[torch.Tensor],
                 voices: Sequence[str], batch_size: int = 16,
                 max_prompt_frames: int | None = None, seed: int = 0) -> None:
        if not len(phonemes) == len(codes) == len(voices) > 0:
            raise ValueError(f"expected one phoneme sequence, one code array and one voice per "
                             f"utterance, got {len(phonemes)}, {len(codes)} and {len(voices)}")
        for i in range(len(voices)):
            pick_prompt(voices, i)  # every voice has a second utterance
        self.phonemes, self.voices = list(phonemes), list(voices)
        self.codes = [_codes(c, f"codes[{i}]") for i, c in enumerate(codes)]
        self.batch_size, self.max_prompt_frames = batch_size, max_prompt_frames
        self.rng = np.random.default_rng(seed)
        self.queue: list[np.ndarray] = []

    def __call__(self, step: int) -> VALLEBatch:
        if not self.queue:
            lengths = [c.shape[1] for c in self.codes]
            self.queue = length_buckets(lengths, self.batch_size, self.rng)
        examples = []
        for i in self.queue.pop():
            j = pick_prompt(self.voices, int(i), self.rng)
            examples.append(valle_example(self.phonemes[i], self.codes[i], self.codes[j],
                                          self.max_prompt_frames, self.rng))
        return collate_valle(examples)


def ar_loss(model: torch.nn.Module, batch: VALLEBatch) -> torch.Tensor:
    """:meth:`VALLEAR.loss <mmcourse.models.VALLEAR.loss>` of a batch, for ``train.fit``.
    Built in §41.2."""
    return model.loss(batch.phonemes, batch.prompt, batch.target, batch.phoneme_mask,
                      batch.prompt_mask, batch.target_mask)


def nar_loss(model: torch.nn.Module, batch: VALLEBatch) -> torch.Tensor:
    """:meth:`VALLENAR.loss <mmcourse.models.VALLENAR.loss>` of a batch (one codebook per row,
    drawn with torch's global generator), for ``train.fit``. Built in §41.2."""
    return model.loss(batch.phonemes, batch.prompt, batch.target, batch.phoneme_mask,
                      batch.prompt_mask, batch.target_mask)


# ---------------------------------------------------------------- judging a codec


def reconstruct(codec: torch.nn.Module, waveform: np.ndarray, num_quantizers: int | None = None
                ) -> np.ndarray:
    """Encode one waveform with the first ``num_quantizers`` codebooks of a
    :class:`mmcourse.models.Codec` (all by default), decode it, and cut it to the input's length.
    Built in §41.2."""
    n = codec.config.num_quantizers if num_quantizers is None else num_quantizers
    return reconstruct_levels(codec, waveform, (n,))[n]


@torch.no_grad()
def reconstruct_levels(codec: torch.nn.Module, waveform: np.ndarray, levels: Sequence[int]
                       ) -> dict[int, np.ndarray]:
    """One waveform decoded from the first n codebooks for each n in ``levels``, encoded once:
    residual quantisation chooses the k-th code without looking at later codebooks, so the
    codes of n codebooks are the first n rows of the codes of all of them. Built in §41.2."""
    from mmcourse.utils import model_device

    wave = np.asarray(waveform, dtype=np.float32)
    if wave.ndim != 1 or wave.size == 0:
        raise ValueError(f"waveform must be a non-empty 1-D array; got shape {wave.shape}")
    x = torch.from_numpy(wave)[None, None].to(model_device(codec))
    codes = codec.encode(x, max(levels))
    return {n: codec.decode(codes[:, :n])[0, 0, : wave.size].float().cpu().numpy()
            for n in levels}


def codec_quality(codec: torch.nn.Module, waveforms: Sequence[np.ndarray],
                  levels: Sequence[int] = (1, 2, 4, 8), sample_rate: int = 16_000
                  ) -> tuple[dict[str, float], dict[int, list[np.ndarray]]]:
    """Mean STOI (``pystoi``; 0-1, higher is more intelligible) and log-mel distance in dB
    (:func:`mmcourse.audio.mel_distance`; lower is closer) of the codec's reconstructions with
    the first n codebooks, for each n in ``levels`` (keys ``stoi_n`` and ``mel_db_n``), and the
    reconstructions themselves ({n: [waveform, ...]}). The codec is put in eval mode (its
    codebooks must not learn from the test set). Built in §41.2."""
    from pystoi import stoi

    from mmcourse.audio import mel_distance

    if len(waveforms) == 0:
        raise ValueError("waveforms must hold at least one utterance")
    codec.eval()
    decoded: dict[int, list[np.ndarray]] = {n: [] for n in levels}
    for w in waveforms:
        for n, d in reconstruct_levels(codec, w, levels).items():
            decoded[n].append(d)
    scores: dict[str, float] = {}
    for n in levels:
        pairs = list(zip(waveforms, decoded[n]))
        scores[f"stoi_{n}"] = float(np.mean([stoi(w, d, sample_rate) for w, d in pairs]))
        scores[f"mel_db_{n}"] = float(np.mean([mel_distance(w, d, sample_rate)
                                               for w, d in pairs]))
    return scores, decoded


# ---------------------------------------------------------------- saving VALL-E


def save_valle(path, ar: torch.nn.Module, nar: torch.nn.Module, vocab: PhonemeVocabulary,
               notes: dict) -> None:
    """Write VALL-E's two models in float16 to one safetensors file (``ar.``/``nar.`` prefixes),
    with their configuration, the phoneme
    vocabulary and ``notes`` (recipe, scores, command) in the metadata. Built in §41.2."""
    from dataclasses import asdict

    from safetensors.torch import save_file

    if asdict(ar.config) != asdict(nar.config):
        raise ValueError("ar and nar must share one VALLEConfig")
    state = {f"{name}.{k}": v.detach().cpu().to(torch.float16).clone()
             for name, model in (("ar", ar), ("nar", nar))
             for k, v in model.state_dict().items()}
    metadata = {"config": json.dumps(asdict(ar.config)), "phonemes": vocab.to_json(),
                "notes": json.dumps(notes), "format": "mmcourse.VALLE"}
    save_file(state, str(path), metadata=metadata)


def load_valle(path) -> tuple[torch.nn.Module, torch.nn.Module, PhonemeVocabulary, dict]:
    """The ``(ar, nar, vocab, notes)`` saved by :func:`save_valle`, in float32 and eval mode,
    on the CPU. Built in §41.2."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from mmcourse.models.valle import VALLEAR, VALLEConfig, VALLENAR

    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    if metadata.get("format") != "mmcourse.VALLE":
        raise ValueError(f"{path} was not written by save_valle")
    config = VALLEConfig(**json.loads(metadata["config"]))
    tensors = load_file(str(path))
    models = []
    for name, cls in (("ar", VALLEAR), ("nar", VALLENAR)):
        model = cls(config)
        state = {k[len(name) + 1:]: v.float() for k, v in tensors.items()
                 if k.startswith(name + ".")}
        model.load_state_dict(state)
        models.append(model.eval())
    vocab = PhonemeVocabulary.from_json(metadata["phonemes"])
    return models[0], models[1], vocab, json.loads(metadata["notes"])
