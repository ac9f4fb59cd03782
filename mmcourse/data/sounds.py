"""Sounds: synthetic sound events composed into short scenes, with captions and questions.

A scene is a few seconds of audio holding one to four sound events one after another (tones,
rising and falling chirps, noise bursts, clicks, sirens, beeps), each high or low and loud or
quiet, over faint background noise. Like an AudioCaps/Clotho clip it comes with captions ("a
high tone followed by a low noise burst"), and like Clotho-AQA with questions (count, order,
existence, pitch); unlike them its ground truth is exact: every event's onset and offset is known
to the sample. Scenes are generated on demand from ``(seed, split, index)``.

Built in §39.2; used in §41.3 (audio captioning and audio question answering).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from scipy.signal import butter, sosfilt

from mmcourse.data.shapes import NUMBER_WORDS, _check_choice

EVENTS: tuple[str, ...] = ("tone", "chirp up", "chirp down", "noise burst", "clicks", "siren", "beeps")
PITCHES: tuple[str, ...] = ("low", "high")
LOUDNESS: tuple[str, ...] = ("quiet", "loud")
QA_KINDS: tuple[str, ...] = ("count", "order", "existence", "pitch")
SPLITS: tuple[str, ...] = ("train", "val", "test")
_SPLIT_IDS = {name: k for k, name in enumerate(SPLITS)}
#: centre frequencies in Hz: a chirp sweeps from half to twice its centre, a noise burst fills that band
FREQUENCY_RANGE: dict[str, tuple[float, float]] = {"low": (150.0, 300.0), "high": (800.0, 1600.0)}
#: peak amplitude of an event
AMPLITUDE_RANGE: dict[str, tuple[float, float]] = {"quiet": (0.12, 0.2), "loud": (0.5, 0.7)}
#: how an event is named in questions and answers
NOUNS: dict[str, str] = {
    "tone": "tone", "chirp up": "rising chirp", "chirp down": "falling chirp", "noise burst": "noise burst",
    "clicks": "clicks", "siren": "siren", "beeps": "beeps",
}
_PLURALS = {"tone": "tones", "chirp up": "rising chirps", "chirp down": "falling chirps",
            "noise burst": "noise bursts", "clicks": "series of clicks", "siren": "sirens", "beeps": "series of beeps"}
MIN_EVENT_S, MAX_EVENT_S, MIN_GAP_S, MARGIN_S = 0.3, 1.2, 0.15, 0.1
_FADE_S = 0.005


class SoundEvent(NamedTuple):
    """One event: its name (in ``EVENTS``), onset and offset in seconds, pitch ("low"/"high"),
    loudness ("quiet"/"loud") and centre frequency in Hz."""

    name: str
    onset: float
    offset: float
    pitch: str
    loudness: str
    frequency: float


class SoundQA(NamedTuple):
    """A question about a scene, its exact answer, and its kind (one of ``QA_KINDS``)."""

    question: str
    answer: str
    kind: str


@dataclass
class SoundScene:
    """A generated scene: ``waveform`` (N,) float32 in [-1, 1] at ``sample_rate`` Hz, the events
    in time order, captions and questions."""

    index: int
    split: str
    waveform: np.ndarray
    sample_rate: int
    events: list[SoundEvent]
    captions: list[str] = field(default_factory=list)
    qa: list[SoundQA] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return len(self.waveform) / self.sample_rate


def phrase(event: SoundEvent, loudness: bool = False) -> str:
    """How a caption names an event: "a high tone", "a series of low clicks", with ``loudness``
    "a loud high tone"."""
    adj = f"{event.loudness} {event.pitch}" if loudness else event.pitch
    if event.name in ("clicks", "beeps"):
        return f"a series of {adj} {event.name}"
    return f"{'an' if adj[0] in 'aeiou' else 'a'} {adj} {NOUNS[event.name]}"


class SoundWorld:
    """A deterministic generator of sound scenes.

    Args:
        seed: the world's seed; ``(seed, split, index)`` fixes a scene.
        sample_rate: samples per second (>= 8000; the highest sweep reaches 3.2 kHz).
        duration: length of every scene in seconds (long enough for ``max_events`` events).
        max_events: scenes hold 1..max_events events (at most 4).
        noise: standard deviation of the white background noise.

    Example:
        >>> scene = SoundWorld(seed=0).scene(0)
        >>> scene.waveform.shape, scene.captions[0], scene.events[0]
    """

    def __init__(self, seed: int = 0, sample_rate: int = 16_000, duration: float = 4.0, max_events: int = 4,
                 noise: float = 0.003) -> None:
        if not isinstance(sample_rate, int) or sample_rate < 8000:
            raise ValueError(f"sample_rate must be an int >= 8000; got {sample_rate!r}")
        if not isinstance(max_events, int) or not 1 <= max_events <= 4:
            raise ValueError(f"max_events must be an int between 1 and 4; got {max_events!r}")
        need = 2 * MARGIN_S + max_events * MIN_EVENT_S + (max_events - 1) * MIN_GAP_S
        if not duration >= need:
            raise ValueError(f"duration must be >= {need:g} s to hold {max_events} events; got {duration!r}")
        if not 0.0 <= noise <= 0.1:
            raise ValueError(f"noise must be in [0, 0.1]; got {noise!r}")
        self.seed, self.sample_rate, self.duration = seed, sample_rate, float(duration)
        self.max_events, self.noise = max_events, noise

    def scene(self, index: int, split: str = "train") -> SoundScene:
        """Generate scene ``index`` of ``split`` ("train", "val" or "test")."""
        _check_choice("split", split, SPLITS)
        if not isinstance(index, (int, np.integer)) or index < 0:
            raise ValueError(f"index must be a non-negative int; got {index!r}")
        rng = np.random.default_rng([self.seed, _SPLIT_IDS[split], int(index), 17])
        events = self._events(rng)
        sr = self.sample_rate
        wave = rng.normal(0.0, self.noise, round(self.duration * sr))  # (N,) background
        for e in events:
            a, b = round(e.onset * sr), round(e.offset * sr)
            wave[a:b] += self._synthesize(rng, e, b - a)
        wave = np.clip(wave, -1.0, 1.0).astype(np.float32)
        return SoundScene(int(index), split, wave, sr, events, _captions(events), _questions(rng, events))

    def scenes(self, n: int, split: str = "train", start: int = 0) -> list[SoundScene]:
        """Scenes ``start .. start+n-1`` of ``split``."""
        return [self.scene(i, split) for i in range(start, start + n)]

    def _events(self, rng: np.random.Generator) -> list[SoundEvent]:
        """1..max_events events in time order, with gaps of at least ``MIN_GAP_S`` between them."""
        n = int(rng.integers(1, self.max_events + 1))
        room = self.duration - 2 * MARGIN_S - (n - 1) * MIN_GAP_S
        lengths = rng.uniform(MIN_EVENT_S, min(MAX_EVENT_S, room / n), size=n)
        gaps = rng.dirichlet(np.ones(n + 1)) * (room - lengths.sum())  # spare time before, between, after
        events, t = [], MARGIN_S
        for k in range(n):
            onset = round(float(t + gaps[k]), 3)
            offset = round(onset + float(lengths[k]), 3)
            name, pitch, loud = EVENTS[rng.integers(len(EVENTS))], PITCHES[rng.integers(2)], LOUDNESS[rng.integers(2)]
            freq = round(float(np.exp(rng.uniform(*np.log(FREQUENCY_RANGE[pitch])))), 1)
            events.append(SoundEvent(name, onset, offset, pitch, loud, freq))
            t = offset + MIN_GAP_S
        return events

    def _synthesize(self, rng: np.random.Generator, e: SoundEvent, n: int) -> np.ndarray:
        """The event's samples (n,), peak amplitude set by its loudness, 5 ms fades at both ends."""
        sr, f = self.sample_rate, e.frequency
        t = np.arange(n) / sr
        if e.name == "tone":
            x = np.sin(2 * np.pi * f * t)
        elif e.name in ("chirp up", "chirp down"):  # exponential sweep between f/2 and 2f
            lo, hi = (f / 2, 2 * f) if e.name == "chirp up" else (2 * f, f / 2)
            k = np.log(hi / lo) / t[-1]
            x = np.sin(2 * np.pi * lo * (np.exp(k * t) - 1) / k)
        elif e.name == "noise burst":  # white noise band-passed to [f/2, 2f]
            sos = butter(4, [f / 2, 2 * f], btype="bandpass", fs=sr, output="sos")
            x = sosfilt(sos, rng.normal(size=n))
        elif e.name == "clicks":  # 5 ms decaying resonances, 8-14 a second, the first at the onset
            period = round(sr / rng.uniform(8, 14))
            click = np.sin(2 * np.pi * f * t[: round(0.005 * sr)]) * np.exp(-t[: round(0.005 * sr)] / 0.0015)
            x = np.zeros(n)
            for start in range(0, n - len(click), period):
                x[start:start + len(click)] += click
        elif e.name == "siren":  # a tone whose frequency swings +-25 % two or three times a second
            rate = rng.uniform(1.5, 3.0)
            x = np.sin(2 * np.pi * f * (t - 0.25 * np.cos(2 * np.pi * rate * t) / (2 * np.pi * rate)))
        else:  # beeps: 100 ms on, 80 ms off, starting on
            x = np.sin(2 * np.pi * f * t) * ((t % 0.18) < 0.1)
        x = x / (np.abs(x).max() + 1e-12) * rng.uniform(*AMPLITUDE_RANGE[e.loudness])
        if e.name == "clicks":  # each click already rises from zero; a fade would hide the first one
            return x
        fade = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (_FADE_S * sr))
        return x * fade


def _captions(events: list[SoundEvent]) -> list[str]:
    """Two captions: the events in order ("X followed by Y", "X, then Y, then Z"), and a counted
    listing that also says how loud each one is."""
    parts = [phrase(e) for e in events]
    order = parts[0] if len(parts) == 1 else (
        f"{parts[0]} followed by {parts[1]}" if len(parts) == 2 else ", then ".join(parts))
    loud = [phrase(e, loudness=True) for e in events]
    listing = loud[0] if len(loud) == 1 else ", ".join(loud[:-1]) + " and " + loud[-1]
    counted = f"one sound: {listing}" if len(events) == 1 else f"{NUMBER_WORDS[len(events)]} sounds: {listing}"
    return [order, counted]


def _questions(rng: np.random.Generator, events: list[SoundEvent]) -> list[SoundQA]:
    """One question of each kind in ``QA_KINDS``."""
    names = [e.name for e in events]
    unique = [k for k, e in enumerate(events) if names.count(e.name) == 1]  # events "the siren" picks out
    items = []
    # count: all events, or events of one kind (zero allowed)
    if rng.random() < 0.5:
        items.append(SoundQA("how many sounds are there?", str(len(events)), "count"))
    else:
        name = EVENTS[rng.integers(len(EVENTS))]
        items.append(SoundQA(f"how many {_PLURALS[name]} are there?", str(names.count(name)), "count"))
    # order: what comes first or last, what follows a named event, or which of two comes first
    form = rng.integers(3) if len(events) > 1 else 0
    followed = [k for k in unique if k + 1 < len(events)]
    pair = [(i, j) for i in unique for j in unique if i < j]
    if form == 1 and followed:
        k = followed[rng.integers(len(followed))]
        items.append(SoundQA(f"what comes right after the {NOUNS[names[k]]}?", NOUNS[names[k + 1]], "order"))
    elif form == 2 and pair:
        i, j = pair[rng.integers(len(pair))]
        first, second = (i, j) if rng.random() < 0.5 else (j, i)  # the earlier one is named first or second
        q = f"which comes first, the {NOUNS[names[first]]} or the {NOUNS[names[second]]}?"
        items.append(SoundQA(q, NOUNS[names[i]], "order"))
    else:
        k, word = ((0, "first"), (len(events) - 1, "last"))[rng.integers(2)]
        items.append(SoundQA(f"what is the {word} sound?", NOUNS[names[k]], "order"))
    # existence: balanced between a kind that occurs and one that does not
    absent = [n for n in EVENTS if n not in names]
    name = names[rng.integers(len(names))] if rng.random() < 0.5 or not absent else absent[rng.integers(len(absent))]
    items.append(SoundQA(f"is there a {NOUNS[name]}?" if name not in ("clicks", "beeps")
                         else f"are there {name}?", "yes" if name in names else "no", "existence"))
    # pitch of an event a noun picks out
    if unique:
        k = unique[rng.integers(len(unique))]
        items.append(SoundQA(f"is the {NOUNS[names[k]]} high or low?", events[k].pitch, "pitch"))
    return items
