"""Speech: spoken versions of the synthetic world's sentences, synthesised in-process.

The eSpeak NG formant synthesiser ships, library and voice data, inside the ``espeakng-loader``
wheel; we call it through ``ctypes`` in synchronous mode, so a sentence becomes a waveform in a
few milliseconds with nothing downloaded and no audio device. Eight English accents and French,
each with a set of voice variants (male, female, named), give the speaker variety an ASR model
needs; a fixed train/held-out split keeps whole accents and some variants unseen in training.

eSpeak keeps hidden state between utterances (the phase of its pitch "flutter", its automatic
gain control, its random-number generator, seeded from the clock), so the same sentence spoken
twice comes out slightly different. To make every call depend on its arguments only, each call
loads a fresh copy of the engine, seeds it, and unloads it afterwards (under 1 ms).

Built in §39.2; used from §41.1 (ASR), §41.2 (speech generation) and §41.3 (speech translation).
"""
from __future__ import annotations

import _ctypes
import atexit
import ctypes
import functools
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from fractions import Fraction
from math import gcd
from pathlib import Path

import espeakng_loader
import numpy as np
from scipy.signal import firwin, resample_poly

ESPEAK_SAMPLE_RATE = 22_050  #: the rate eSpeak NG synthesises at, in Hz
RATE_RANGE = (80, 450)  #: allowed speaking rates, words per minute (eSpeak's default: 175)
PITCH_RANGE = (0, 100)  #: allowed pitch settings (default 50: the voice's own pitch)

#: English accents that eSpeak NG loads (``en-gb`` is not one of them).
ENGLISH_ACCENTS: tuple[str, ...] = (
    "en", "en-us", "en-gb-x-rp", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-gb-scotland", "en-029",
)
FRENCH_ACCENTS: tuple[str, ...] = ("fr",)
#: voice variants (files in ``espeak-ng-data/voices/!v``); "" is the accent's own voice
VARIANTS: tuple[str, ...] = (
    "", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4",
    "Andy", "Annie", "aunty", "linda", "paul", "quincy", "robert", "steph",
)
#: accents never heard in training
HELDOUT_ACCENTS: tuple[str, ...] = ("en-gb-scotland", "en-029")
#: variants never heard in training, with any accent
HELDOUT_VARIANTS: tuple[str, ...] = ("m6", "m7", "f4", "linda", "quincy")

#: every voice name ``synthesize`` accepts: accent, or accent+variant (``"en-us+f3"``)
VOICES: tuple[str, ...] = tuple(
    accent + (f"+{variant}" if variant else "") for accent in ENGLISH_ACCENTS + FRENCH_ACCENTS for variant in VARIANTS
)
HELDOUT_VOICES: tuple[str, ...] = tuple(
    v for v in VOICES if v.split("+")[0] in HELDOUT_ACCENTS or v.partition("+")[2] in HELDOUT_VARIANTS
)
TRAIN_VOICES: tuple[str, ...] = tuple(v for v in VOICES if v not in HELDOUT_VOICES)
LANGUAGES: dict[str, tuple[str, ...]] = {"en": ENGLISH_ACCENTS, "fr": FRENCH_ACCENTS}

# eSpeak NG API constants (speak_lib.h)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # return an error instead of calling exit()
_BUFFER_MS = 1000  # milliseconds of audio per callback: fewer, larger chunks
_RATE, _PITCH = 1, 3  # espeak_PARAMETER
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PHONEMES_IPA = 0x02

_LOCK = threading.Lock()
_chunks: list[bytes] = []  # filled by _collect during one espeak_Synth call, under _LOCK


@ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
def _collect(wav, numsamples, events):  # int cb(short *wav, int numsamples, espeak_EVENT *events)
    if numsamples > 0:
        _chunks.append(ctypes.string_at(wav, 2 * numsamples))
    return 0  # 0: go on synthesising


@functools.lru_cache(maxsize=None)
def _private_copy() -> tuple[str, bytes]:
    """``(library path, data path)`` of a private copy of eSpeak NG, made once per process.

    The copy holds the library and only the data our voices need, with each accent's voice file
    under its lowercase name in ``voices/``, where ``espeak_SetVoiceByName`` finds it at once;
    otherwise every fresh engine reads all ~250 voice files to find it (2 ms, and 2 KB that
    eSpeak never frees). And since no other code can hold this copy of the library open,
    unloading it really resets it.
    """
    source = Path(espeakng_loader.get_data_path())
    folder = Path(tempfile.mkdtemp(prefix="mmcourse-espeak-"))
    owner = os.getpid()

    def remove() -> None:
        if os.getpid() == owner:  # a forked child must not delete its parent's copy
            shutil.rmtree(folder, ignore_errors=True)

    atexit.register(remove)
    for name in ("phontab", "phonindex", "phondata", "intonations", *(f"{lang}_dict" for lang in LANGUAGES)):
        shutil.copyfile(source / name, folder / name)
    (folder / "voices" / "!v").mkdir(parents=True)
    lang_files = {path.name.lower(): path for path in (source / "lang").rglob("*") if path.is_file()}
    for accent in ENGLISH_ACCENTS + FRENCH_ACCENTS:
        shutil.copyfile(lang_files[accent], folder / "voices" / accent)  # e.g. lang/gmw/en-US -> voices/en-us
    for variant in filter(None, VARIANTS):
        shutil.copyfile(source / "voices" / "!v" / variant, folder / "voices" / "!v" / variant)
    library = folder / Path(espeakng_loader.get_library_path()).name
    shutil.copyfile(espeakng_loader.get_library_path(), library)
    return str(library), str(folder).encode()


@contextmanager
def _engine(voice: str) -> Iterator[ctypes.CDLL]:
    """A freshly loaded, seeded eSpeak NG speaking with ``voice``; unloaded on exit. Hold _LOCK."""
    library, data = _private_copy()
    lib = ctypes.CDLL(library)
    try:
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, data, _INITIALIZE_DONT_EXIT)
        if rate != ESPEAK_SAMPLE_RATE:
            raise RuntimeError(f"espeak_Initialize returned {rate}, expected the sample rate {ESPEAK_SAMPLE_RATE}")
        lib.espeak_ng_SetRandSeed(0)  # breathy voices (f2, f3) draw noise; Initialize seeds it from the clock
        lib.espeak_SetSynthCallback(_collect)
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise RuntimeError(f"eSpeak NG could not load voice {voice!r}")
        yield lib
    finally:
        lib.espeak_Terminate()
        (getattr(_ctypes, "dlclose", None) or _ctypes.FreeLibrary)(lib._handle)  # FreeLibrary: Windows


@functools.lru_cache(maxsize=None)
def _lowpass(up: int, down: int) -> np.ndarray:
    """The anti-aliasing filter ``resample_poly(x, up, down)`` designs on every call, designed once."""
    max_rate = max(up, down)
    return firwin(2 * 10 * max_rate + 1, 1 / max_rate, window=("kaiser", 5.0))


def _check_voice(voice: str) -> None:
    if voice not in VOICES:
        raise ValueError(f"voice must be one of the {len(VOICES)} names in VOICES, e.g. 'en-us', 'en-us+f3', "
                         f"'en-gb-x-rp+m2', 'en-029+Annie', 'fr+f2' ('en-gb' does not exist); got {voice!r}")


def _check_text(text: str) -> None:
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"text must be a non-empty string that is not only whitespace; got {text!r}")


def _check_range(name: str, value: float | None, bounds: tuple[int, int]) -> None:
    if value is not None and not bounds[0] <= value <= bounds[1]:
        raise ValueError(f"{name} must be None or in [{bounds[0]}, {bounds[1]}]; got {value!r}")


def synthesize(text: str, voice: str = "en-us", rate: int | None = None, pitch: int | None = None,
               sample_rate: int = 16_000) -> tuple[np.ndarray, int]:
    """Speak ``text`` with an eSpeak NG voice: ``(waveform, sample_rate)``.

    ``waveform`` is a mono float32 array of shape ``(num_samples,)`` in [-1, 1] at ``sample_rate``
    Hz (eSpeak's 22 050 Hz output, resampled with ``scipy.signal.resample_poly``). ``voice`` is a
    name from ``VOICES``; ``rate`` is in words per minute (80-450, None: the voice's 175); ``pitch``
    is 0-100 (None: 50, the voice's own; 0 gives about 2/3 of its f0, 100 about 5/3). The same
    arguments always give the same waveform. Silence that eSpeak adds around the speech is kept.
    French voices are for French text: given English words they switch to eSpeak's English
    rules, which leaks ~180 kB per call inside eSpeak.

    Built in §39.2; used from §41.1.
    """
    _check_text(text)
    _check_voice(voice)
    _check_range("rate", rate, RATE_RANGE)
    _check_range("pitch", pitch, PITCH_RANGE)
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer number of Hz, e.g. 16000; got {sample_rate!r}")
    data = text.encode("utf-8") + b"\0"
    with _LOCK:
        with _engine(voice) as lib:
            if rate is not None:
                lib.espeak_SetParameter(_RATE, int(round(rate)), 0)
            if pitch is not None:
                lib.espeak_SetParameter(_PITCH, int(round(pitch)), 0)
            _chunks.clear()
            status = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            lib.espeak_Synchronize()
        if status != 0:
            raise RuntimeError(f"espeak_Synth failed with status {status}")
        pcm = np.frombuffer(b"".join(_chunks), dtype=np.int16)  # (N,) at 22 050 Hz
        _chunks.clear()
    waveform = pcm / 32768.0
    g = gcd(int(sample_rate), ESPEAK_SAMPLE_RATE)
    up, down = int(sample_rate) // g, ESPEAK_SAMPLE_RATE // g
    if (up, down) != (1, 1):
        waveform = resample_poly(waveform, up, down, window=_lowpass(up, down))  # (N,) -> (ceil(N * up / down),)
    return np.clip(waveform, -1.0, 1.0).astype(np.float32), int(sample_rate)


def phonemes(text: str, voice: str = "en-us", separator: str = "") -> str:
    """The IPA phonemes eSpeak NG speaks for ``text``, e.g. ``"ɐ smˈɔːl ɹˈɛd sˈɜːkəl"``.

    Words are separated by spaces and clauses joined by a space; stress marks (ˈ ˌ) precede the
    stressed vowel. With a one-character ``separator`` (e.g. ``"_"``) the phones inside each word
    are separated by it: ``"ɐ s_m_ˈɔː_l"``, so ``word.split("_")`` lists a word's phones.

    Built in §39.2 (phones vs HuBERT-style units); used from §41.2.
    """
    _check_text(text)
    _check_voice(voice)
    if not isinstance(separator, str) or len(separator) > 1 or separator.isspace():
        raise ValueError(f"separator must be '' or a single non-space character such as '_'; got {separator!r}")
    mode = _PHONEMES_IPA | (ord(separator) << 8 if separator else 0)
    source = ctypes.create_string_buffer(text.encode("utf-8"))
    with _LOCK, _engine(voice) as lib:
        pointer = ctypes.c_char_p(ctypes.addressof(source))
        clauses = []
        while pointer.value:  # eSpeak converts one clause per call, advances the pointer, sets it NULL at the end
            clauses.append(lib.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_UTF8, mode).decode("utf-8"))
    return " ".join(c for c in clauses if c)


def voice_split(name: str) -> str:
    """``"train"`` or ``"heldout"``: which fixed split the voice ``name`` belongs to.

    Held out: every voice of the accents in ``HELDOUT_ACCENTS`` and every voice using a variant
    in ``HELDOUT_VARIANTS``. Built in §39.2; used from §41.1.
    """
    _check_voice(name)
    return "heldout" if name in HELDOUT_VOICES else "train"


def random_voice(rng: np.random.Generator, split: str = "train", language: str = "en") -> str:
    """A voice name drawn uniformly from one split (``"train"``/``"heldout"``) of one language.

    Built in §39.2; used from §41.1.
    """
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout'; got {split!r}")
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(map(repr, LANGUAGES))}; got {language!r}")
    pool = [v for v in (TRAIN_VOICES if split == "train" else HELDOUT_VOICES) if v.split("+")[0] in LANGUAGES[language]]
    return pool[int(rng.integers(len(pool)))]


def _draw(name: str, value: int | tuple[int, int] | None, bounds: tuple[int, int],
          rng: np.random.Generator) -> int | None:
    """``value`` itself, or an integer drawn uniformly from the inclusive range ``value = (low, high)``."""
    if value is None or np.isscalar(value):
        return value
    low, high = value
    _check_range(name, low, bounds)
    _check_range(name, high, bounds)
    return int(rng.integers(low, high + 1))


def speak_many(texts: Sequence[str], voices: str | Sequence[str] | None = None,
               rng: np.random.Generator | None = None, split: str = "train", language: str = "en",
               rate: int | tuple[int, int] | None = None, pitch: int | tuple[int, int] | None = None,
               sample_rate: int = 16_000) -> tuple[list[np.ndarray], list[str]]:
    """Speak many sentences: ``(waveforms, voices)``, one float32 ``(num_samples_i,)`` array per text.

    ``voices`` is one name for all texts, one name per text, or None: a ``random_voice`` of
    ``split`` and ``language`` per text. ``rate`` and ``pitch`` are fixed values or inclusive
    ``(low, high)`` ranges drawn per utterance. ``rng`` (default ``np.random.default_rng(0)``)
    makes the draws reproducible. About 6 ms per short sentence on one CPU core.

    Built in §39.2; used from §41.1.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    if isinstance(voices, str):
        voices = [voices] * len(texts)
    elif voices is not None and len(voices) != len(texts):
        raise ValueError(f"voices must be None, one name, or one name per text ({len(texts)}); got {len(voices)}")
    waveforms, used = [], []
    for k, text in enumerate(texts):
        voice = random_voice(rng, split, language) if voices is None else voices[k]
        waveform, _ = synthesize(text, voice, _draw("rate", rate, RATE_RANGE, rng),
                                 _draw("pitch", pitch, PITCH_RANGE, rng), sample_rate)
        waveforms.append(waveform)
        used.append(voice)
    return waveforms, used


def augment(waveform: np.ndarray, sample_rate: int, rng: np.random.Generator | None, noise_snr_db: float | None = None,
            gain_db: float | None = None, speed: float | None = None) -> np.ndarray:
    """A perturbed copy of a mono ``waveform`` of shape ``(N,)``, still at ``sample_rate`` Hz.

    In order: ``speed`` (0.5-2) plays the recording faster or slower by resampling, so duration
    becomes ``N / speed`` samples and pitch rises or falls with it, as with a tape; ``gain_db``
    scales it; ``noise_snr_db`` adds white Gaussian noise drawn from ``rng`` (needed only for
    this), scaled so that its power is exactly the signal's mean power over the whole waveform
    divided by ``10 ** (noise_snr_db / 10)``. Returns float32 clipped to [-1, 1].

    Built in §39.2; used from §41.1.
    """
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer number of Hz, e.g. 16000; got {sample_rate!r}")
    x = np.asarray(waveform, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"waveform must be a non-empty 1-D array (num_samples,); got shape {x.shape}")
    if speed is not None:
        if not 0.5 <= speed <= 2.0:
            raise ValueError(f"speed must be None or in [0.5, 2.0]; got {speed!r}")
        ratio = Fraction(speed).limit_denominator(100)
        x = resample_poly(x, ratio.denominator, ratio.numerator)  # (N,) -> (about N / speed,)
    if gain_db is not None:
        x = x * 10.0 ** (gain_db / 20.0)
    if noise_snr_db is not None:
        signal_power = np.mean(x**2)
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng must be a numpy Generator when noise_snr_db is set; got {rng!r}")
        if signal_power == 0:
            raise ValueError("noise_snr_db needs a waveform that is not all zeros (its SNR would be undefined)")
        noise = rng.standard_normal(x.size)
        x = x + noise * np.sqrt(signal_power / 10.0 ** (noise_snr_db / 10.0) / np.mean(noise**2))
    return np.clip(x, -1.0, 1.0).astype(np.float32)
