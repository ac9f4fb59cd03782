"""Teaching a Whisper-style model to recognise speech: the spoken corpus, the multitask token
format, batches, the loss, and decoding (greedy, beam search, sampling with Whisper's fallbacks).

Whisper's decoder is told what to do by a prompt of special tokens::

    <|startoftranscript|> <|en|> <|transcribe|> <|notimestamps|>  a small red circle <|endoftext|>

The language token names the language *spoken*; the model writes it itself when it is not given,
which makes it a language identifier. ``<|transcribe|>`` asks for the words in that language,
``<|translate|>`` for the same sentence in the other one (real Whisper translates only into
English; our world has two languages, so we train both directions). Text is written with a
byte-level BPE trained on the world's sentences, as Whisper's is on the web's.

Built in §41.1; used in §41.2 (the recogniser scores generated speech) and §41.3 (translation).
"""
from __future__ import annotations

import gzip
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from mmcourse.audio import whisper_log_mel
from mmcourse.data import speech
from mmcourse.data.french import bilingual_captions
from mmcourse.data.shapes import ShapesWorld
from mmcourse.utils import model_device

SOT, EOT, NOTIMESTAMPS, NOSPEECH = ("<|startoftranscript|>", "<|endoftext|>", "<|notimestamps|>",
                                    "<|nospeech|>")
LANGUAGES: tuple[str, ...] = ("en", "fr")
TASKS: tuple[str, ...] = ("transcribe", "translate")
SPECIAL_TOKENS: tuple[str, ...] = (EOT, SOT, *(f"<|{lang}|>" for lang in LANGUAGES),
                                   *(f"<|{task}|>" for task in TASKS), NOSPEECH, NOTIMESTAMPS)
IGNORE = -100  #: target value the loss skips
SAMPLE_RATE = 16_000


def _check_choice(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")


class SpeechTokenizer:
    """Byte-level BPE with Whisper's special tokens. ``encode`` gives the ids of a text (a space
    is put before it, as Whisper does), ``decode`` the text of ids (special tokens dropped),
    ``prompt(language, task)`` the start-of-transcript sequence. Built in §41.1."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        missing = [t for t in SPECIAL_TOKENS if tokenizer.token_to_id(t) is None]
        if missing:
            raise ValueError(f"tokenizer lacks the special tokens {missing}")
        self.special_ids = {t: tokenizer.token_to_id(t) for t in SPECIAL_TOKENS}
        self.sot, self.eot = self.special_ids[SOT], self.special_ids[EOT]
        self.language_ids = [self.special_ids[f"<|{lang}|>"] for lang in LANGUAGES]

    @classmethod
    def train(cls, texts: Sequence[str], vocab_size: int = 400) -> SpeechTokenizer:
        """Learn byte-level BPE merges from ``texts`` until the vocabulary (256 bytes, the
        special tokens and the merges) has ``vocab_size`` entries, or no pair repeats."""
        if vocab_size < 256 + len(SPECIAL_TOKENS):
            raise ValueError(f"vocab_size must be at least {256 + len(SPECIAL_TOKENS)} (bytes and "
                             f"special tokens); got {vocab_size}")
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      show_progress=False)
        tok.train_from_iterator(list(texts), trainer)
        return cls(tok)

    @classmethod
    def from_str(cls, text: str) -> SpeechTokenizer:
        return cls(Tokenizer.from_str(text))

    def to_str(self) -> str:
        return self.tokenizer.to_str()

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def token_id(self, token: str) -> int:
        _check_choice("token", token, SPECIAL_TOKENS)
        return self.special_ids[token]

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=True).strip()

    def tokens(self, text: str) -> list[str]:
        """The BPE pieces of ``text`` as readable strings (Ġ marks a leading space)."""
        return self.tokenizer.encode(text, add_special_tokens=False).tokens

    def prompt(self, language: str | None, task: str = "transcribe") -> list[int]:
        """``<|startoftranscript|> <|lang|> <|task|> <|notimestamps|>``; only the first token
        when ``language`` is None (the model is then asked to name the language)."""
        if language is None:
            return [self.sot]
        _check_choice("language", language, LANGUAGES)
        _check_choice("task", task, TASKS)
        return [self.sot, self.special_ids[f"<|{language}|>"], self.special_ids[f"<|{task}|>"],
                self.special_ids[NOTIMESTAMPS]]


_PUNCTUATION = re.compile(r"[,.;:!?]")


def normalize(text: str) -> str:
    """Text as it is scored: lower case, punctuation other than apostrophes and hyphens removed,
    spaces collapsed (a small version of the normaliser Whisper is scored with)."""
    return " ".join(_PUNCTUATION.sub(" ", text.lower()).split())


# ---------------------------------------------------------------- the spoken corpus


@dataclass(frozen=True)
class Utterance:
    """A spoken sentence: what was said (``text``, in ``language``), the same sentence in the
    other language (``translation``), who said it and how fast, and the 16 kHz ``waveform``."""

    text: str
    translation: str
    language: str
    voice: str
    rate: int
    snr_db: float | None
    waveform: np.ndarray

    @property
    def accent(self) -> str:
        return self.voice.split("+")[0]

    @property
    def seconds(self) -> float:
        return len(self.waveform) / SAMPLE_RATE


def speech_corpus(n: int, split: str = "train", seed: int = 0,
                  languages: Sequence[str] = LANGUAGES, rate: tuple[int, int] = (120, 240),
                  pitch: tuple[int, int] = (25, 75), noise: float = 0.0,
                  snr_db: tuple[float, float] = (5.0, 30.0)) -> list[Utterance]:
    """``n`` ShapesWorld sentences spoken by voices of ``split`` ("train" or "heldout").

    Training utterances describe ShapesWorld's train scenes, held-out ones its test scenes, so
    held-out voices also say sentences never heard. Each utterance picks one of its scene's
    (English, French) caption pairs (:func:`mmcourse.data.french.bilingual_captions`), a
    language from ``languages``, a voice of that language, a speaking rate (words per minute)
    and a pitch from the inclusive ranges. With probability ``noise`` white noise is added at an
    SNR drawn uniformly from ``snr_db``. Deterministic in ``(n, split, seed, ...)``.
    Built in §41.1.
    """
    _check_choice("split", split, ("train", "heldout"))
    for lang in languages:
        _check_choice("language", lang, LANGUAGES)
    if n <= 0:
        raise ValueError(f"n must be a positive number of utterances; got {n}")
    world = ShapesWorld(seed=seed)
    scene_split = "train" if split == "train" else "test"
    rng = np.random.default_rng([seed, 0 if split == "train" else 1, 41])
    out = []
    for k in range(n):
        scene = world.scene(k % world.split_size(scene_split), scene_split)
        pairs = bilingual_captions(scene.objects)
        english, french = pairs[int(rng.integers(len(pairs)))]
        language = languages[int(rng.integers(len(languages)))]
        text, translation = (english, french) if language == "en" else (french, english)
        voice = speech.random_voice(rng, split, language)
        r, p = int(rng.integers(rate[0], rate[1] + 1)), int(rng.integers(pitch[0], pitch[1] + 1))
        wave, _ = speech.synthesize(text, voice, r, p, SAMPLE_RATE)
        snr = None
        if rng.random() < noise:
            snr = float(rng.uniform(*snr_db))
            wave = speech.augment(wave, SAMPLE_RATE, rng, noise_snr_db=snr)
        out.append(Utterance(text, translation, language, voice, r, snr, wave))
    return out


def log_mel(waveform: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Whisper's log-mel of one utterance at its own length (rounded up to a whole encoder
    position, 320 samples): (80, frames). Built in §41.1."""
    wave = torch.as_tensor(np.asarray(waveform, dtype=np.float32))
    if wave.ndim != 1 or wave.numel() == 0:
        raise ValueError(f"waveform must be a non-empty 1-D array of samples; got shape "
                         f"{tuple(wave.shape)}")
    length = -(-wave.numel() // 320) * 320
    return whisper_log_mel(wave, num_samples=length)


def pad_features(features: Sequence[torch.Tensor], frames: int | None = None) -> torch.Tensor:
    """Stack log-mels (80, T_i) into (B, 80, T), padding each on the right with its own floor
    (its maximum minus 2, the value Whisper's zero padding to 30 s would give)."""
    frames = frames or max(f.shape[-1] for f in features)
    out = torch.empty(len(features), features[0].shape[0], frames)
    for i, f in enumerate(features):
        out[i] = f.max() - 2.0
        out[i, :, : f.shape[-1]] = f[:, :frames]
    return out


# ---------------------------------------------------------------- batches and the loss


def training_sequence(tokenizer: SpeechTokenizer, utterance: Utterance, task: str = "transcribe"
                      ) -> tuple[list[int], list[int]]:
    """Decoder input and targets for one utterance: the prompt, the text, ``<|endoftext|>``.
    Targets are the inputs shifted by one; the model learns the language token (language
    identification), the text and the end, not the task tokens it is given."""
    _check_choice("task", task, TASKS)
    text = utterance.text if task == "transcribe" else utterance.translation
    tokens = tokenizer.prompt(utterance.language, task) + tokenizer.encode(text) + [tokenizer.eot]
    targets = tokens[1:] + [IGNORE]
    targets[1] = targets[2] = IGNORE  # the task and <|notimestamps|> are given, not learned
    return tokens[:-1], targets[:-1]


def length_buckets(lengths: Sequence[int], batch_size: int, rng: np.random.Generator
                   ) -> list[np.ndarray]:
    """Indices grouped into batches of similar length (less padding), batches in random order:
    a shuffle, then sorting inside windows of 50 batches."""
    order = rng.permutation(len(lengths))
    window = batch_size * 50
    batches = []
    for k in range(0, len(order), window):
        chunk = order[k: k + window]
        chunk = chunk[np.argsort([lengths[i] for i in chunk], kind="stable")]
        batches += [chunk[j: j + batch_size] for j in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


class WhisperBatches:
    """``step -> (features (B, 80, T), tokens (B, L), targets (B, L))`` for :func:`train.fit`:
    length-bucketed epochs over ``utterances`` (log-mels computed once), each utterance asked
    to ``<|translate|>`` with probability ``translate``. Each batch is padded beyond its
    longest clip by a random fraction up to ``extra_padding`` (at most ``max_frames``): a model
    that never sees padding in training (Whisper always does: 30 s) loses its way when a batch
    at inference mixes short and long clips. With a ``ctc_vocab`` each batch also carries
    what :func:`joint_loss` needs: the encoder positions of each clip (B,), the characters of
    the words *spoken* (whatever the task) concatenated, and their counts (B,). Built in §41.1."""

    def __init__(self, tokenizer: SpeechTokenizer, utterances: Sequence[Utterance],
                 batch_size: int = 32, translate: float = 0.0, extra_padding: float = 1.0,
                 max_frames: int = 1000, seed: int = 0,
                 ctc_vocab: CharVocabulary | None = None) -> None:
        self.tokenizer, self.utterances, self.ctc_vocab = tokenizer, list(utterances), ctc_vocab
        self.features = [log_mel(u.waveform) for u in self.utterances]
        self.batch_size, self.translate = batch_size, translate
        self.extra_padding, self.max_frames = extra_padding, max_frames
        self.rng = np.random.default_rng(seed)
        self.queue: list[np.ndarray] = []

    def __call__(self, step: int) -> tuple[torch.Tensor, ...]:
        if not self.queue:
            lengths = [f.shape[-1] for f in self.features]
            self.queue = length_buckets(lengths, self.batch_size, self.rng)
        index = self.queue.pop()
        tasks = ["translate" if self.rng.random() < self.translate else "transcribe"
                 for _ in index]
        longest = max(self.features[i].shape[-1] for i in index)
        frames = 2 * int(longest * (1 + self.rng.uniform(0, self.extra_padding)) / 2)
        batch = collate(self.tokenizer, [self.utterances[i] for i in index],
                        [self.features[i] for i in index], tasks,
                        max(min(frames, self.max_frames), longest))
        if self.ctc_vocab is None:
            return batch
        ids = [self.ctc_vocab.encode(self.utterances[i].text) for i in index]
        positions = torch.tensor([self.features[i].shape[-1] // 2 for i in index])
        return (*batch, positions, torch.tensor([c for row in ids for c in row]),
                torch.tensor([len(row) for row in ids]))


def collate(tokenizer: SpeechTokenizer, utterances: Sequence[Utterance],
            features: Sequence[torch.Tensor], tasks: Sequence[str], frames: int | None = None
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One batch: log-mels padded to ``frames`` (default: the longest) (B, 80, T), decoder
    inputs (B, L) padded with ``<|endoftext|>`` and targets (B, L) padded with ``IGNORE``."""
    pairs = [training_sequence(tokenizer, u, t) for u, t in zip(utterances, tasks)]
    length = max(len(p[0]) for p in pairs)
    tokens = torch.full((len(pairs), length), tokenizer.eot)
    targets = torch.full((len(pairs), length), IGNORE)
    for i, (inp, tgt) in enumerate(pairs):
        tokens[i, : len(inp)], targets[i, : len(tgt)] = torch.tensor(inp), torch.tensor(tgt)
    return pad_features(features, frames), tokens, targets


def whisper_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Next-token cross-entropy of a :class:`mmcourse.models.Whisper` on a batch from
    :class:`WhisperBatches`. Built in §41.1."""
    features, tokens, targets = batch[:3]
    logits = model(input_features=features, decoder_input_ids=tokens).logits
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE)


class WhisperCTC(torch.nn.Module):
    """A Whisper with a linear CTC head on its encoder, for joint CTC-attention training
    (Watanabe et al., 2017): the head is a training aid, dropped afterwards
    (``.whisper`` is an ordinary :class:`mmcourse.models.Whisper`). Built in §41.1."""

    def __init__(self, whisper: torch.nn.Module, vocab: CharVocabulary) -> None:
        super().__init__()
        self.whisper, self.vocab = whisper, vocab
        self.ctc_head = torch.nn.Linear(whisper.config.d_model, len(vocab))

    def forward(self, **kwargs):
        return self.whisper(**kwargs)


def joint_loss(model: WhisperCTC, batch: tuple[torch.Tensor, ...], ctc_weight: float = 0.3
               ) -> torch.Tensor:
    """``(1 - ctc_weight)`` x the decoder's cross-entropy + ``ctc_weight`` x the CTC loss of the
    encoder's head, on a batch from ``WhisperBatches(..., ctc_vocab=...)``. CTC forces every
    encoder position to say which character it hears, monotonically in time; the decoder's
    cross-attention then has well-placed features to find, and learns its alignment sooner."""
    if not 0.0 <= ctc_weight <= 1.0:
        raise ValueError(f"ctc_weight must be in [0, 1]; got {ctc_weight}")
    if len(batch) != 6:
        raise ValueError("joint_loss needs batches from WhisperBatches(..., ctc_vocab=...)")
    features, tokens, targets, positions, chars, counts = batch
    encoded = model.whisper.encoder(features)
    logits = model.whisper(encoder_outputs=encoded, decoder_input_ids=tokens).logits
    attention = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE)
    log_probs = model.ctc_head(encoded).log_softmax(-1).transpose(0, 1)  # (T, B, chars)
    ctc = F.ctc_loss(log_probs, chars, positions, counts, blank=0, zero_infinity=True)
    return (1 - ctc_weight) * attention + ctc_weight * ctc


# ---------------------------------------------------------------- decoding


@dataclass
class Transcript:
    """One decoded utterance: the ``text``, the ``language`` it was decoded as, the mean log-
    probability of its tokens, the gzip compression ratio of its text, and the temperature of
    the attempt that was kept."""

    text: str
    language: str
    avg_logprob: float
    compression_ratio: float
    temperature: float = 0.0


def compression_ratio(text: str) -> float:
    """Length of the UTF-8 text over its gzip-compressed length: above ~2.4 the text repeats
    itself (Whisper's test for a decoder stuck in a loop). Built in §41.1."""
    data = text.encode("utf-8")
    return len(data) / len(gzip.compress(data)) if data else 0.0


def text_mask(tokenizer: SpeechTokenizer) -> torch.Tensor:
    """(vocab,) bool: the tokens a transcript may contain, i.e. every text token and
    ``<|endoftext|>``; the other special tokens are suppressed, as Whisper does."""
    allowed = torch.ones(tokenizer.vocab_size, dtype=torch.bool)
    for token, i in tokenizer.special_ids.items():
        allowed[i] = token == EOT
    return allowed


@torch.no_grad()
def detect_language(model: torch.nn.Module, features: torch.Tensor, tokenizer: SpeechTokenizer,
                    audio: torch.Tensor | None = None) -> torch.Tensor:
    """P(language | audio), (B, len(LANGUAGES)): the decoder's next-token distribution after
    ``<|startoftranscript|>``, restricted to the language tokens. Built in §41.1."""
    device = model_device(model)
    audio = model.encoder(features.to(device)) if audio is None else audio
    start = torch.full((len(audio), 1), tokenizer.sot, device=device)
    logits = model(encoder_outputs=audio, decoder_input_ids=start).logits[:, -1]
    return logits[:, tokenizer.language_ids].softmax(-1)


@torch.no_grad()
def sample(model: torch.nn.Module, audio: torch.Tensor, prompts: torch.Tensor,
           allowed: torch.Tensor, eot: int, max_new_tokens: int = 40, temperature: float = 0.0,
           generator: torch.Generator | None = None) -> tuple[list[list[int]], torch.Tensor]:
    """Decode new tokens after ``prompts`` (B, P) from encoded ``audio`` (B, S, D), greedily at
    ``temperature`` 0, else by sampling from softmax(logits / temperature); only ``allowed``
    tokens. Returns each row's new tokens (without ``eot``) and its summed log-probability
    (``eot`` included), under the distribution decoded from."""
    logits_mask = torch.where(allowed.to(audio.device), 0.0, -math.inf)
    out = model(encoder_outputs=audio, decoder_input_ids=prompts)
    rows = len(prompts)
    tokens = [[] for _ in range(rows)]
    done = torch.zeros(rows, dtype=torch.bool, device=audio.device)
    total = torch.zeros(rows, device=audio.device)
    for _ in range(max_new_tokens):
        logits = out.logits[:, -1] + logits_mask
        if temperature > 0:
            logits = logits / temperature
            probs = logits.softmax(-1)
            nxt = torch.multinomial(probs.cpu(), 1, generator=generator)[:, 0].to(audio.device)
        else:
            nxt = logits.argmax(-1)
        nxt = nxt.masked_fill(done, eot)
        total += torch.where(done, 0.0, logits.log_softmax(-1).gather(1, nxt[:, None])[:, 0])
        for i in torch.nonzero(~done & (nxt != eot)).flatten().tolist():
            tokens[i].append(int(nxt[i]))
        done = done | (nxt == eot)
        if bool(done.all()):
            break
        out = model(encoder_outputs=audio, decoder_input_ids=nxt[:, None], cache=out.cache)
    return tokens, total


def _reorder(cache: list, index: torch.Tensor) -> list:
    return [tuple(t.index_select(0, index) for t in block) for block in cache]


@torch.no_grad()
def beam_search(model: torch.nn.Module, audio: torch.Tensor, prompt: torch.Tensor,
                allowed: torch.Tensor, eot: int, beam_size: int = 5, max_new_tokens: int = 40
                ) -> tuple[list[int], float]:
    """Beam search for one utterance: ``audio`` (1, S, D), ``prompt`` (P,). Keeps the
    ``beam_size`` best unfinished hypotheses by summed log-probability; a hypothesis whose
    ``eot`` is among the step's ``beam_size`` best candidates is finished; stops when
    ``beam_size`` are finished. Returns the finished hypothesis
    with the best mean log-probability per token (Whisper's ranking without a length penalty)
    and that mean. Built in §41.1."""
    if beam_size < 1:
        raise ValueError(f"beam_size must be at least 1; got {beam_size}")
    device = audio.device
    logits_mask = torch.where(allowed.to(device), 0.0, -math.inf)
    out = model(encoder_outputs=audio, decoder_input_ids=prompt[None])
    cache, last = out.cache, out.logits[:, -1]  # (1, V)
    beams: list[list[int]] = [[]]
    scores = torch.zeros(1, device=device)
    finished: list[tuple[float, list[int]]] = []
    for _ in range(max_new_tokens):
        logp = (last + logits_mask).log_softmax(-1) + scores[:, None]  # (beams, V)
        top = logp.flatten().topk(min(2 * beam_size, logp.numel()))
        keep, origin, token = [], [], []
        for rank, (value, flat) in enumerate(zip(top.values.tolist(), top.indices.tolist())):
            b, t = divmod(flat, logp.shape[1])
            if t == eot:  # an ending counts only among the step's best beam_size (as HF does):
                if rank < beam_size:  # else early unlikely endings fill the list and stop the
                    finished.append((value / (len(beams[b]) + 1), beams[b]))  # search early
            else:
                keep.append(value), origin.append(b), token.append(t)
            if len(keep) == beam_size:
                break
        if len(finished) >= beam_size or not keep:
            break
        index = torch.tensor(origin, device=device)
        beams = [beams[b] + [t] for b, t in zip(origin, token)]
        scores = torch.tensor(keep, device=device)
        cache = _reorder(cache, index)
        audio_rows = audio.expand(len(beams), -1, -1)
        step = torch.tensor(token, device=device)[:, None]
        out = model(encoder_outputs=audio_rows, decoder_input_ids=step, cache=cache)
        cache, last = out.cache, out.logits[:, -1]
    if not finished:  # nothing ended within max_new_tokens: rank the open beams the same way
        finished = [(s / (len(b) + 1), b) for s, b in zip(scores.tolist(), beams)]
    best = max(finished, key=lambda f: f[0])
    return best[1], best[0]


def transcribe(model: torch.nn.Module, tokenizer: SpeechTokenizer,
               waveforms: Sequence[np.ndarray], language: str | None = None,
               task: str = "transcribe", beam_size: int = 1, batch_size: int = 64,
               max_new_tokens: int = 40, temperatures: Sequence[float] = (0.0,),
               compression_ratio_threshold: float = 2.4, logprob_threshold: float = -1.0,
               seed: int = 0, sample_rate: int = SAMPLE_RATE) -> list[Transcript]:
    """Decode 16 kHz ``waveforms`` with a Whisper-style ``model`` (``sample_rate`` must say
    16 000; a ``ValueError`` otherwise).

    ``language`` None detects each utterance's language first (:func:`detect_language`).
    ``beam_size`` 1 decodes greedily. With more than one of ``temperatures`` an utterance whose
    text compresses too well (a loop: ratio above ``compression_ratio_threshold``) or whose mean
    log-probability is below ``logprob_threshold`` is decoded again by sampling at the next
    temperature, Whisper's fallback. Built in §41.1.
    """
    if language is not None:
        _check_choice("language", language, LANGUAGES)
    _check_choice("task", task, TASKS)
    if len(waveforms) == 0:
        raise ValueError("waveforms must hold at least one utterance")
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"sample_rate must be {SAMPLE_RATE} Hz, the rate the model was "
                         f"trained at; resample the audio first (got {sample_rate!r})")
    device = model_device(model)
    allowed = text_mask(tokenizer)
    generator = torch.Generator().manual_seed(seed)
    features = [log_mel(w) for w in waveforms]
    order = np.argsort([f.shape[-1] for f in features], kind="stable")  # similar lengths together
    by_index: dict[int, Transcript] = {}
    for k in range(0, len(order), batch_size):
        index = order[k: k + batch_size]
        audio = model.encoder(pad_features([features[i] for i in index]).to(device))
        if language is None:
            probs = detect_language(model, None, tokenizer, audio=audio)
            langs = [LANGUAGES[j] for j in probs.argmax(-1).tolist()]
        else:
            langs = [language] * len(index)
        prompts = torch.tensor([tokenizer.prompt(lang, task) for lang in langs], device=device)
        pending = list(range(len(index)))
        for attempt, temperature in enumerate(temperatures):
            rows = torch.tensor(pending, device=device)
            if beam_size > 1 and temperature == 0:
                decoded = [beam_search(model, audio[r: r + 1], prompts[r], allowed, tokenizer.eot,
                                       beam_size, max_new_tokens) for r in pending]
                texts = [tokens for tokens, _ in decoded]
                means = [mean for _, mean in decoded]
            else:
                texts, total = sample(model, audio[rows], prompts[rows], allowed, tokenizer.eot,
                                      max_new_tokens, temperature, generator)
                means = [float(s) / (len(t) + 1) for s, t in zip(total.tolist(), texts)]
            retry = []
            for r, tokens, mean in zip(pending, texts, means):
                text = tokenizer.decode(tokens)
                result = Transcript(text, langs[r], mean, compression_ratio(text), temperature)
                by_index[int(index[r])] = result
                bad = (result.compression_ratio > compression_ratio_threshold
                       or mean < logprob_threshold)
                if bad and attempt + 1 < len(temperatures):
                    retry.append(r)
            pending = retry
            if not pending:
                break
    return [by_index[i] for i in range(len(waveforms))]


# ---------------------------------------------------------------- the shipped recogniser


def save_whisper(path, model: torch.nn.Module, tokenizer: SpeechTokenizer, notes: dict) -> None:
    """Write a Whisper's weights in float16 to a safetensors file, with its configuration, its
    tokenizer (JSON) and ``notes`` (recipe, scores, command) in the metadata. Built in §41.1."""
    import json
    from dataclasses import asdict

    from safetensors.torch import save_file

    state = {k: v.detach().cpu().to(torch.float16).clone() for k, v in model.state_dict().items()
             if k != "encoder.embed_positions.weight"}  # the sinusoids are recomputed
    metadata = {"config": json.dumps(asdict(model.config)), "tokenizer": tokenizer.to_str(),
                "notes": json.dumps(notes)}
    save_file(state, str(path), metadata=metadata)


def load_whisper(path) -> tuple[torch.nn.Module, SpeechTokenizer, dict]:
    """The Whisper, tokenizer and notes saved by :func:`save_whisper`, in float32 and eval mode,
    on the CPU. Built in §41.1."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file

    from mmcourse.models.whisper import Whisper, WhisperConfig

    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    if "tokenizer" not in metadata:
        raise ValueError(f"{path} was not written by save_whisper (no tokenizer in its metadata)")
    model = Whisper(WhisperConfig(**json.loads(metadata["config"])))
    state = {k: v.float() for k, v in load_file(str(path)).items()}
    state["encoder.embed_positions.weight"] = model.encoder.embed_positions.weight.detach()
    model.load_state_dict(state)
    tokenizer = SpeechTokenizer.from_str(metadata["tokenizer"])
    return model.eval(), tokenizer, json.loads(metadata["notes"])


# ---------------------------------------------------------------- CTC, for contrast


class CharVocabulary:
    """Characters for a CTC model: id 0 is the blank, ``|`` stands for the space between words
    (as in wav2vec 2.0's vocabularies). Texts are :func:`normalize`\\ d first. Built in §41.1."""

    BLANK, SPACE = "<blank>", "|"

    def __init__(self, chars: Sequence[str]) -> None:
        self.symbols = [self.BLANK] + sorted(set(chars) - {" "} | {self.SPACE})
        self.index = {s: i for i, s in enumerate(self.symbols)}

    @classmethod
    def from_texts(cls, texts: Sequence[str]) -> CharVocabulary:
        return cls(sorted({c for t in texts for c in normalize(t)}))

    def __len__(self) -> int:
        return len(self.symbols)

    def encode(self, text: str) -> list[int]:
        text = normalize(text).replace(" ", self.SPACE)
        unknown = sorted({c for c in text if c not in self.index})
        if unknown:
            raise ValueError(f"text has characters outside the vocabulary: {unknown}")
        return [self.index[c] for c in text]

    def collapse(self, frame_ids: Sequence[int]) -> str:
        """CTC's reading of per-frame labels: merge repeats, drop blanks, ``|`` -> space."""
        out, previous = [], None
        for i in frame_ids:
            if i != previous and i != 0:
                out.append(self.symbols[i])
            previous = i
        return " ".join("".join(out).replace(self.SPACE, " ").split())


def standardize(waveform: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance: the input wav2vec 2.0's feature extractor gives its model."""
    w = np.asarray(waveform, dtype=np.float32)
    return (w - w.mean()) / np.sqrt(w.var() + 1e-7)


def ctc_collate(vocab: CharVocabulary, waveforms: Sequence[np.ndarray], texts: Sequence[str],
                output_length) -> tuple[torch.Tensor, ...]:
    """(values (B, S) zero-padded, frames (B,), targets (sum of lengths,), lengths (B,))."""
    values = torch.zeros(len(waveforms), max(len(w) for w in waveforms))
    for i, w in enumerate(waveforms):
        values[i, : len(w)] = torch.from_numpy(standardize(w))
    frames = torch.tensor([output_length(len(w)) for w in waveforms])
    ids = [vocab.encode(t) for t in texts]
    return (values, frames, torch.tensor([i for row in ids for i in row]),
            torch.tensor([len(row) for row in ids]))


class CTCBatches:
    """``step -> batch`` of length-bucketed utterances for :func:`ctc_loss`. Built in §41.1."""

    def __init__(self, vocab: CharVocabulary, utterances: Sequence[Utterance], output_length,
                 batch_size: int = 16, seed: int = 0) -> None:
        self.vocab, self.utterances, self.output_length = vocab, list(utterances), output_length
        self.batch_size, self.rng, self.queue = batch_size, np.random.default_rng(seed), []

    def __call__(self, step: int) -> tuple[torch.Tensor, ...]:
        if not self.queue:
            lengths = [len(u.waveform) for u in self.utterances]
            self.queue = length_buckets(lengths, self.batch_size, self.rng)
        batch = [self.utterances[i] for i in self.queue.pop()]
        return ctc_collate(self.vocab, [u.waveform for u in batch], [u.text for u in batch],
                           self.output_length)


def ctc_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """CTC loss of a :class:`mmcourse.models.CTCRecognizer` on a :class:`CTCBatches` batch,
    averaged over target characters (PyTorch's ``reduction="mean"``). Built in §41.1."""
    values, frames, targets, lengths = batch
    log_probs = model(values).transpose(0, 1)  # (T, B, vocab)
    return F.ctc_loss(log_probs, targets, frames, lengths, blank=0, zero_infinity=True)


@torch.no_grad()
def ctc_transcribe(model: torch.nn.Module, vocab: CharVocabulary,
                   waveforms: Sequence[np.ndarray], batch_size: int = 1) -> list[str]:
    """Greedy CTC decoding: the best label of every frame, collapsed. One clip at a time by
    default: the model has no padding mask (as wav2vec 2.0 base, whose first convolution's
    group norm spans the whole input), so a zero-padded clip would be read differently
    depending on the longer clips batched with it. Built in §41.1."""
    if len(waveforms) == 0:
        raise ValueError("waveforms must hold at least one utterance")
    device, out = model_device(model), [""] * len(waveforms)
    order = np.argsort([len(w) for w in waveforms], kind="stable")
    for k in range(0, len(order), batch_size):
        index = order[k: k + batch_size]
        values = torch.zeros(len(index), max(len(waveforms[i]) for i in index))
        for row, i in enumerate(index):
            values[row, : len(waveforms[i])] = torch.from_numpy(standardize(waveforms[i]))
        best = model(values.to(device)).argmax(-1).cpu()
        for row, i in enumerate(index):
            out[i] = vocab.collapse(best[row, : model.output_length(len(waveforms[i]))].tolist())
    return out


def snap_to_lexicon(text: str, lexicon: Sequence[str]) -> str:
    """Replace every word of ``text`` that is not in ``lexicon`` by the lexicon word nearest to
    it in character edits (ties: the first in sorted order): the crudest lexicon constraint on
    a CTC model's spelling. Words already in the lexicon are kept. Built in §41.1."""
    from mmcourse.metrics.asr import edit_distance

    words = sorted(set(lexicon))
    if not words:
        raise ValueError("lexicon must hold at least one word")
    known = set(words)
    out = []
    for word in text.split():
        out.append(word if word in known else
                   min(words, key=lambda w: (edit_distance(word, w), w)))
    return " ".join(out)


def error_kinds(references: Sequence[str], hypotheses: Sequence[str], lexicon: Sequence[str]
                ) -> dict[str, float]:
    """What kind of words a recogniser gets wrong, pooled over utterances: ``wer`` and ``cer``
    (as :func:`mmcourse.metrics.wer` / ``cer``), ``non_words`` (the share of the written words
    that are not in ``lexicon``: spelling errors) and ``length_ratio`` (written words / said
    words: above 1 for insertions and repetitions, below for dropped words). Built in §41.1."""
    from mmcourse.metrics import cer, wer

    if len(references) != len(hypotheses) or not references:
        raise ValueError(f"need as many hypotheses as references (at least one); got "
                         f"{len(references)} and {len(hypotheses)}")
    known = set(lexicon)
    written = [w for h in hypotheses for w in h.split()]
    said = sum(len(r.split()) for r in references)
    return {"wer": wer(list(references), list(hypotheses))[0],
            "cer": cer(list(references), list(hypotheses))[0],
            "non_words": sum(w not in known for w in written) / max(1, len(written)),
            "length_ratio": len(written) / max(1, said)}
