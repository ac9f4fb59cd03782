"""Sounds: deterministic scenes whose energy, spectrum, captions and answers agree with the events."""
import re

import numpy as np
import pytest

from mmcourse.data.sounds import (EVENTS, FREQUENCY_RANGE, NOUNS, QA_KINDS, SPLITS, SoundWorld, phrase)

WORLD = SoundWorld(seed=0)
SCENES = WORLD.scenes(120)


def _envelope(wave: np.ndarray, sr: int, hop_s: float = 0.005) -> np.ndarray:
    """RMS of consecutive 5 ms frames."""
    hop = round(hop_s * sr)
    n = len(wave) // hop
    return np.sqrt((wave[: n * hop].reshape(n, hop).astype(np.float64) ** 2).mean(1))


def test_same_seed_and_index_give_identical_scenes():
    a, b = SoundWorld(seed=5).scene(3, "val"), SoundWorld(seed=5).scene(3, "val")
    assert np.array_equal(a.waveform, b.waveform) and a.events == b.events
    assert a.captions == b.captions and a.qa == b.qa
    assert not np.array_equal(SoundWorld(seed=1).scene(0).waveform, SoundWorld(seed=2).scene(0).waveform)


def test_splits_never_share_a_scene():
    seen = {}
    for split in SPLITS:
        for i in range(100):
            key = tuple(WORLD.scene(i, split).events)
            assert seen.setdefault(key, split) == split


def test_formats_and_event_layout():
    names = set()
    for s in SCENES:
        assert s.waveform.shape == (64_000,) and s.waveform.dtype == np.float32 and s.sample_rate == 16_000
        assert np.abs(s.waveform).max() <= 1 and s.duration == 4.0
        assert 1 <= len(s.events) <= 4
        for e, nxt in zip(s.events, s.events[1:] + [None]):
            assert e.name in EVENTS and e.pitch in ("low", "high") and e.loudness in ("quiet", "loud")
            assert 0.1 <= e.onset and e.offset - e.onset >= 0.3 - 1e-9 and e.offset <= 3.9 + 1e-9
            assert FREQUENCY_RANGE[e.pitch][0] <= e.frequency <= FREQUENCY_RANGE[e.pitch][1]
            if nxt is not None:
                assert nxt.onset - e.offset >= 0.15 - 1e-9  # in time order, apart
            names.add(e.name)
    assert names == set(EVENTS) and len(EVENTS) >= 6
    short = SoundWorld(seed=0, sample_rate=8000, duration=2.0, max_events=2).scene(0)
    assert short.waveform.shape == (16_000,)


def test_event_onsets_are_visible_in_the_energy_envelope():
    for s in SCENES[:60]:
        env = _envelope(s.waveform, s.sample_rate)
        background = np.median(env[: round(s.events[0].onset / 0.005) - 2])
        prev_end = 0
        for e in s.events:
            a, b = round(e.onset / 0.005), round(e.offset / 0.005)
            level = env[a:b].max() if e.name == "clicks" else np.median(env[a:b])  # clicks are 5 ms long
            assert level > 8 * background, (s.index, e)
            loud = np.nonzero(env[prev_end:] > 10 * background)[0]
            assert abs((prev_end + loud[0]) * 0.005 - e.onset) <= 0.015, (s.index, e)  # the onset, to 15 ms
            assert env[b + 2: b + 20].mean() < 2 * background  # and silence after the offset
            prev_end = b + 2


def test_pitch_and_loudness_are_in_the_signal():
    for s in SCENES[:60]:
        for e in s.events:
            a, b = round(e.onset * s.sample_rate), round(e.offset * s.sample_rate)
            seg = s.waveform[a:b]
            power = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))[1:] ** 2
            freqs = np.fft.rfftfreq(len(seg), 1 / s.sample_rate)[1:]
            centre = np.exp((power * np.log(freqs)).sum() / power.sum())  # power-weighted, on a log scale
            assert (centre > 500) == (e.pitch == "high"), (s.index, e, centre)
            peak = np.abs(seg).max()
            assert (peak > 0.35) == (e.loudness == "loud"), (s.index, e, peak)
            if e.name in ("chirp up", "chirp down"):  # the sweep's direction: compare the halves
                half = len(seg) // 2
                f1, f2 = (np.fft.rfftfreq(half, 1 / s.sample_rate)[np.abs(np.fft.rfft(x)).argmax()]
                          for x in (seg[:half], seg[half:2 * half]))
                assert (f2 > f1) == (e.name == "chirp up")


def test_captions_agree_with_the_events():
    for s in SCENES:
        parts = [phrase(e) for e in s.events]
        first = s.captions[0]
        if len(parts) == 2:
            assert first == f"{parts[0]} followed by {parts[1]}"
        else:
            assert first.split(", then ") == parts
        assert all(f"{e.loudness} {e.pitch}" in s.captions[1] for e in s.events)
        assert s.captions[1].startswith(["one sound", "two sounds", "three sounds", "four sounds"][len(s.events) - 1])


def _answer(scene, question: str) -> str:
    """Recompute an answer from the events, reading the question afresh."""
    names = [NOUNS[e.name] for e in scene.events]
    plural = {"tones": "tone", "rising chirps": "rising chirp", "falling chirps": "falling chirp",
              "noise bursts": "noise burst", "series of clicks": "clicks", "sirens": "siren",
              "series of beeps": "beeps"}
    if question == "how many sounds are there?":
        return str(len(names))
    if m := re.fullmatch(r"how many (.+) are there\?", question):
        return str(names.count(plural[m[1]]))
    if m := re.fullmatch(r"what is the (first|last) sound\?", question):
        return names[0 if m[1] == "first" else -1]
    if m := re.fullmatch(r"what comes right after the (.+)\?", question):
        assert names.count(m[1]) == 1
        return names[names.index(m[1]) + 1]
    if m := re.fullmatch(r"which comes first, the (.+) or the (.+)\?", question):
        assert names.count(m[1]) == names.count(m[2]) == 1
        return min(m[1], m[2], key=names.index)
    if m := re.fullmatch(r"(?:is there a|are there) (.+)\?", question):
        return "yes" if m[1] in names else "no"
    if m := re.fullmatch(r"is the (.+) high or low\?", question):
        assert names.count(m[1]) == 1
        return scene.events[names.index(m[1])].pitch
    raise AssertionError(f"unparsed question {question!r}")


def test_every_answer_recomputed_from_the_events():
    kinds, answers = set(), {}
    for s in WORLD.scenes(300):
        for q in s.qa:
            assert _answer(s, q.question) == q.answer, (s.index, q)
            kinds.add(q.kind)
            answers.setdefault(q.kind, []).append(q.answer)
    assert kinds == set(QA_KINDS)
    assert 0.3 < np.mean([a == "yes" for a in answers["existence"]]) < 0.7  # balanced
    assert {"high", "low"} == set(answers["pitch"])


def test_bad_arguments_name_the_argument_and_the_allowed_values():
    cases = [
        (lambda: WORLD.scene(0, "heldout"), "split", "'train'"),
        (lambda: WORLD.scene(-2), "index", "non-negative"),
        (lambda: SoundWorld(sample_rate=4000), "sample_rate", ">= 8000"),
        (lambda: SoundWorld(max_events=6), "max_events", "between 1 and 4"),
        (lambda: SoundWorld(duration=1.0), "duration", ">= 1.85"),
        (lambda: SoundWorld(noise=0.5), "noise", "[0, 0.1]"),
    ]
    for fn, name, allowed in cases:
        with pytest.raises(ValueError) as err:
            fn()
        assert name in str(err.value) and allowed in str(err.value), str(err.value)
