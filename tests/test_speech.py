"""Tests of mmcourse.data.speech: eSpeak NG synthesis, voices and their split, augmentation."""
import time

import numpy as np
import pytest
from scipy.signal import resample_poly

from mmcourse.data import speech
from mmcourse.data.speech import (HELDOUT_VOICES, TRAIN_VOICES, VOICES, augment, phonemes, random_voice,
                                  speak_many, synthesize, voice_split)

SENTENCE = "a small red circle to the left of a big blue square"


def f0(waveform: np.ndarray, sample_rate: int) -> float:
    """Median fundamental frequency (Hz) of the loud frames, from the autocorrelation peak in 60-400 Hz."""
    frame, hop = int(0.04 * sample_rate), int(0.01 * sample_rate)
    frames = np.lib.stride_tricks.sliding_window_view(waveform, frame)[::hop]  # (F, frame)
    rms = np.sqrt((frames**2).mean(axis=1))
    lo, hi = sample_rate // 400, sample_rate // 60
    estimates = []
    for x in frames[rms > 0.3 * rms.max()]:
        x = x - x.mean()
        ac = np.correlate(x, x, mode="full")[frame - 1:]  # lags 0 .. frame-1
        estimates.append(sample_rate / (lo + np.argmax(ac[lo:hi])))
    return float(np.median(estimates))


def test_same_arguments_give_the_same_waveform():
    a, _ = synthesize(SENTENCE, "en-us+f3", rate=200, pitch=60)  # f3: breath noise and echo, both stateful
    synthesize("something else entirely, spoken fast", "en-gb-x-rp+m3", rate=400)
    b, _ = synthesize(SENTENCE, "en-us+f3", rate=200, pitch=60)
    time.sleep(1.05)  # eSpeak seeds its noise from the clock (in seconds) unless we seed it
    c, _ = synthesize(SENTENCE, "en-us+f3", rate=200, pitch=60)
    assert np.array_equal(a, b) and np.array_equal(a, c)


def test_dtype_range_and_sample_rate():
    w16, sr16 = synthesize(SENTENCE)
    w22, sr22 = synthesize(SENTENCE, sample_rate=22050)
    w8, sr8 = synthesize(SENTENCE, sample_rate=8000)
    assert (sr16, sr22, sr8) == (16000, 22050, 8000)
    for w in (w16, w22, w8):
        assert w.dtype == np.float32 and w.ndim == 1
        assert np.abs(w).max() <= 1.0 and np.abs(w).max() > 0.1
    assert len(w16) == int(np.ceil(len(w22) * 320 / 441))
    assert len(w8) == int(np.ceil(len(w22) * 160 / 441))
    assert 2.0 < len(w16) / 16000 < 4.0  # a 12-word sentence at 175 words per minute


def test_resampling_matches_scipy_default_filter():
    w22, _ = synthesize(SENTENCE, "en-029+Annie", sample_rate=22050)
    w16, _ = synthesize(SENTENCE, "en-029+Annie", sample_rate=16000)
    expected = np.clip(resample_poly(w22.astype(np.float64), 320, 441), -1, 1).astype(np.float32)
    np.testing.assert_array_equal(w16, expected)


def test_duration_grows_with_text_and_falls_with_rate():
    short, _ = synthesize("a red circle")
    long, _ = synthesize(SENTENCE + " and a green star above a yellow cross")
    assert len(long) > 3 * len(short)
    slow, normal, fast = (len(synthesize(SENTENCE, rate=r)[0]) for r in (80, 175, 450))
    assert slow > 1.5 * normal and normal > 1.8 * fast


def test_pitch_changes_the_fundamental_frequency():
    low, mid, high = (f0(*synthesize(SENTENCE, pitch=p)) for p in (10, 50, 90))
    assert low < mid < high
    assert high > 1.8 * low  # measured: about 74 Hz at pitch 10, 155 Hz at 90
    assert 80 < mid < 160  # the default en-us voice is a man's


def test_voices_differ_and_women_speak_higher():
    waves = {v: synthesize(SENTENCE, v)[0] for v in ("en-us", "en-us+m3", "en-gb-x-rp", "en-us+f3")}
    names = list(waves)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            n = min(len(waves[a]), len(waves[b]))
            assert np.abs(waves[a][:n] - waves[b][:n]).mean() > 0.01, (a, b)
    assert f0(waves["en-us+f3"], 16000) > 1.4 * f0(waves["en-us+m3"], 16000)


def test_every_voice_loads_and_is_distinct():
    # eSpeak silently ignores an unknown +variant, so "loads" means: speaks, and differently from the others
    waves = {v: synthesize("a red circle", v)[0] for v in VOICES}
    assert all(np.abs(w).max() > 0.05 for w in waves.values())
    assert len({w.tobytes() for w in waves.values()}) == len(VOICES)
    assert len(VOICES) == len(set(VOICES)) == 9 * len(speech.VARIANTS)


def test_voice_split():
    assert not set(TRAIN_VOICES) & set(HELDOUT_VOICES)
    assert set(TRAIN_VOICES) | set(HELDOUT_VOICES) == set(VOICES)
    accent = lambda v: v.split("+")[0]  # noqa: E731
    assert {"en-gb-scotland", "en-029"} <= {accent(v) for v in HELDOUT_VOICES}
    assert not {"en-gb-scotland", "en-029"} & {accent(v) for v in TRAIN_VOICES}
    assert {"en-us+m7", "en-gb-x-rp+f4", "fr+linda"} <= set(HELDOUT_VOICES)  # unseen variants of seen accents
    assert {"en-us", "en-us+f3", "fr+f2"} <= set(TRAIN_VOICES)
    assert [voice_split(v) for v in ("en-us+m1", "en-us+m7", "en-029+m1")] == ["train", "heldout", "heldout"]
    rng = np.random.default_rng(0)
    drawn = [random_voice(rng, "heldout") for _ in range(200)]
    assert set(drawn) <= set(HELDOUT_VOICES) and all(v.startswith("en") for v in drawn) and len(set(drawn)) > 20
    assert all(random_voice(rng, "train", "fr").startswith("fr") for _ in range(20))


def test_phonemes():
    assert phonemes("a small red circle") == "ɐ smˈɔːl ɹˈɛd sˈɜːkəl"
    assert phonemes("Hello, world.") == "həlˈoʊ wˈɜːld"  # clauses joined by a space
    assert phonemes("a small red circle", separator="_").split()[2].split("_") == ["ɹ", "ˈɛ", "d"]
    assert phonemes("a small red circle", "en-gb-scotland") != phonemes("a small red circle")
    assert "ʁ" in phonemes("un petit cercle rouge", "fr")


def test_augment():
    clean, sr = synthesize(SENTENCE)
    clean = 0.5 * clean  # keep the noisy signal inside [-1, 1], so clipping does not change the SNR
    for snr in (0.0, 10.0, 20.0):
        noise = augment(clean, sr, np.random.default_rng(1), noise_snr_db=snr) - clean.astype(np.float64)
        measured = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise**2))
        assert abs(measured - snr) < 0.5, (snr, measured)
    a = augment(clean, sr, np.random.default_rng(2), noise_snr_db=5.0)
    b = augment(clean, sr, np.random.default_rng(2), noise_snr_db=5.0)
    assert np.array_equal(a, b) and a.dtype == np.float32
    np.testing.assert_allclose(augment(clean, sr, None, gain_db=-6.0), clean * 10 ** (-6 / 20), atol=1e-6)
    assert np.abs(augment(clean, sr, None, gain_db=40.0)).max() == 1.0  # clipped, not wrapped
    fast = augment(clean, sr, None, speed=1.25)
    assert abs(len(fast) - len(clean) / 1.25) <= 2
    assert f0(fast, sr) > 1.15 * f0(clean, sr)  # resampling raises the pitch too


def test_speak_many():
    texts = ["a red circle", "a blue square above a green star", "two triangles"]
    waves, voices = speak_many(texts, rng=np.random.default_rng(3), rate=(120, 250), pitch=(30, 70))
    again, voices_again = speak_many(texts, rng=np.random.default_rng(3), rate=(120, 250), pitch=(30, 70))
    assert voices == voices_again and all(np.array_equal(a, b) for a, b in zip(waves, again))
    assert len(waves) == 3 and set(voices) <= set(TRAIN_VOICES)
    fixed, used = speak_many(texts, voices="en-029+f1")
    assert used == ["en-029+f1"] * 3
    assert np.array_equal(fixed[0], synthesize("a red circle", "en-029+f1")[0])
    with pytest.raises(ValueError, match="voices"):
        speak_many(texts, voices=["en-us", "en"])


@pytest.mark.parametrize("call, argument", [
    (lambda: synthesize("a red circle", voice="en-gb"), "voice"),
    (lambda: synthesize("a red circle", voice="en-us+nonexistent"), "voice"),
    (lambda: synthesize(""), "text"),
    (lambda: synthesize(" \n\t "), "text"),
    (lambda: synthesize("a red circle", rate=79), "rate"),
    (lambda: synthesize("a red circle", rate=451), "rate"),
    (lambda: synthesize("a red circle", pitch=-1), "pitch"),
    (lambda: synthesize("a red circle", pitch=101), "pitch"),
    (lambda: synthesize("a red circle", sample_rate=0), "sample_rate"),
    (lambda: synthesize("a red circle", sample_rate=-16000), "sample_rate"),
    (lambda: phonemes("   "), "text"),
    (lambda: phonemes("a red circle", voice="de"), "voice"),
    (lambda: phonemes("a red circle", separator="--"), "separator"),
    (lambda: voice_split("en-gb"), "voice"),
    (lambda: random_voice(np.random.default_rng(0), split="test"), "split"),
    (lambda: random_voice(np.random.default_rng(0), language="de"), "language"),
    (lambda: augment(np.zeros(100, np.float32), 16000, None, speed=3.0), "speed"),
    (lambda: augment(np.zeros(100, np.float32), 0, None), "sample_rate"),
    (lambda: augment(np.zeros((2, 100), np.float32), 16000, None), "waveform"),
    (lambda: augment(np.zeros(100, np.float32), 16000, np.random.default_rng(0), noise_snr_db=10), "noise_snr_db"),
    (lambda: speak_many(["a red circle"], rate=(60, 200)), "rate"),
])
def test_bad_arguments_raise_value_error_naming_them(call, argument):
    with pytest.raises(ValueError, match=rf"^{argument} ") as info:
        call()
    if argument == "voice":
        assert "'en-us'" in str(info.value) and "'en-us+f3'" in str(info.value)
    if argument in ("rate", "pitch"):
        assert {"rate": "[80, 450]", "pitch": "[0, 100]"}[argument] in str(info.value)
