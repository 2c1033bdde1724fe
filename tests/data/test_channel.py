"""jooci.data.synth.channel: rooms (pyroomacoustics), noise, microphone and telephone band of a
JOOCI-synth recording session, each checked against what it claims to do."""

import numpy as np
import pytest

pra = pytest.importorskip("pyroomacoustics")

from jooci.data.synth.channel import (  # noqa: E402
    MAX_RIR_SECONDS, Channel, ChannelError, apply_channel, coloured_noise, draw_channel, microphone, mix_at_snr,
    mu_law, room_impulse_responses, telephone,
)

SR = 16000


def _band_db(x, lo, hi):
    f = np.fft.rfftfreq(x.size, 1 / SR)
    p = np.abs(np.fft.rfft(x)) ** 2
    return 10 * np.log10(p[(f >= lo) & (f < hi)].mean())


@pytest.fixture(scope="module")
def pool():
    return room_impulse_responses(6, seed=1)


def test_room_impulse_responses_are_aligned_unit_energy_and_reverberant_as_designed(pool):
    rooms, rirs = pool
    for room, h in zip(rooms, rirs):
        assert h.dtype == np.float32 and 0 < h.size <= MAX_RIR_SECONDS * SR
        assert int(np.argmax(np.abs(h))) == 0  # the direct path at sample 0
        assert np.sum(h.astype(np.float64) ** 2) == pytest.approx(1.0, rel=1e-5)
        measured = pra.experimental.measure_rt60(h, fs=SR, decay_db=30)  # the library's own estimate
        assert 0.6 * room.rt60 <= measured <= 1.6 * room.rt60, (room, measured)
    again_rooms, again = room_impulse_responses(6, seed=1)
    assert again_rooms == rooms and all(np.array_equal(a, b) for a, b in zip(again, rirs))
    assert room_impulse_responses(1, seed=2)[0][0] != rooms[0]


@pytest.mark.parametrize("kind,slope", [("white", 0.0), ("pink", -3.0), ("brown", -6.0)])
def test_coloured_noise_has_its_spectral_slope(kind, slope):
    x = coloured_noise(2 ** 17, kind, np.random.default_rng(0))
    assert np.std(x) == pytest.approx(1.0) and abs(x.mean()) < 1e-9
    per_octave = (_band_db(x, 2000, 4000) - _band_db(x, 500, 1000)) / 2
    assert per_octave == pytest.approx(slope, abs=0.4)
    with pytest.raises(ChannelError, match="unknown noise kind"):
        coloured_noise(10, "violet", np.random.default_rng(0))


def test_mix_at_snr_gives_the_asked_ratio():
    rng = np.random.default_rng(1)
    s, n = np.sin(np.arange(SR) / 7.0), rng.standard_normal(SR) * 3
    for snr in (0.0, 7.5, 30.0):
        added = mix_at_snr(s, n, snr) - s
        assert 10 * np.log10(np.mean(s ** 2) / np.mean(added ** 2)) == pytest.approx(snr, abs=1e-9)
    assert np.array_equal(mix_at_snr(np.zeros(5), n[:5], 10), np.zeros(5))


def test_telephone_keeps_300_to_3400_hz_and_companded_levels():
    x = np.random.default_rng(2).standard_normal(4 * SR) * 0.1
    y = telephone(x)
    assert y.shape == x.shape
    f = np.fft.rfftfreq(y.size, 1 / SR)
    p = np.abs(np.fft.rfft(y)) ** 2
    inside = p[(f >= 300) & (f <= 3400)].sum()
    assert p[f > 3800].sum() < 1e-3 * inside and p[f < 150].sum() < 1e-2 * inside
    c = np.linspace(-1, 1, 10001)
    assert len(np.unique(mu_law(c))) <= 256  # 8 bits
    mid = np.linspace(0.05, 0.9, 50)
    assert np.max(np.abs(mu_law(mid) - mid) / mid) < 0.05  # mu-law keeps relative error small


def _channel(**kw):
    base = dict(rir=-1, noise="white", snr_db=30.0, highpass_hz=100.0, resonance_hz=3000.0, resonance_db=0.0,
                lowpass_hz=7000.0, telephone=False, gain_db=0.0)
    return Channel(**{**base, **kw})


def test_microphone_rolls_off_the_lows_and_boosts_its_resonance():
    x = np.random.default_rng(3).standard_normal(8 * SR)
    flat = microphone(x, _channel(highpass_hz=200.0))
    assert _band_db(flat, 20, 60) < _band_db(flat, 800, 1200) - 15  # 2nd order, 2 octaves below 200 Hz
    assert _band_db(flat, 7600, 8000) < _band_db(flat, 800, 1200) - 6  # low-pass at 7 kHz
    boosted = microphone(x, _channel(highpass_hz=200.0, resonance_db=6.0))
    gain = _band_db(boosted, 2900, 3100) - _band_db(flat, 2900, 3100)
    assert gain == pytest.approx(6.0, abs=0.5)
    assert abs(_band_db(boosted, 800, 1000) - _band_db(flat, 800, 1000)) < 2.0  # away from the peak


def test_apply_channel_is_deterministic_keeps_length_and_level(pool):
    _, rirs = pool
    rng = np.random.default_rng(4)
    clean = np.sin(2 * np.pi * 220 * np.arange(2 * SR) / SR) * np.hanning(2 * SR) * 0.8
    others = [rng.standard_normal(SR) * 0.2, rng.standard_normal(SR // 2)]
    for _ in range(20):
        ch = draw_channel(rng, len(rirs))
        a = apply_channel(clean, ch, rirs, np.random.default_rng(9), others)
        b = apply_channel(clean, ch, rirs, np.random.default_rng(9), others)
        assert np.array_equal(a, b) and a.shape == clean.shape and np.max(np.abs(a)) <= 0.95 + 1e-12
    dry = apply_channel(clean, _channel(snr_db=90.0, highpass_hz=40.0), rirs, np.random.default_rng(0))
    assert np.corrcoef(dry, clean)[0, 1] > 0.95  # a dry, quiet session keeps the utterance (filters shift phase)
    gap = np.concatenate([clean, np.zeros(SR // 4)])  # a quarter second of silence after it
    dry_gap = apply_channel(gap, _channel(snr_db=90.0, highpass_hz=40.0), rirs, np.random.default_rng(0))
    wet_gap = apply_channel(gap, _channel(rir=0, snr_db=90.0, highpass_hz=40.0), rirs, np.random.default_rng(0))
    tail = slice(len(clean) + SR // 20, len(clean) + SR // 10)  # 50-100 ms into the silence
    assert np.mean(wet_gap[tail] ** 2) > 10 * np.mean(dry_gap[tail] ** 2)  # reverberation carries on
    with pytest.raises(ChannelError, match="at least one other talker"):
        apply_channel(clean, _channel(noise="babble"), rirs, np.random.default_rng(0))
    with pytest.raises(ChannelError, match="not in the pool"):
        apply_channel(clean, _channel(rir=len(rirs)), rirs, np.random.default_rng(0))


def test_draw_channel_follows_its_fractions_and_ranges():
    rng = np.random.default_rng(5)
    chans = [draw_channel(rng, 10, telephone_fraction=0.25, dry_fraction=0.1) for _ in range(4000)]
    assert np.mean([c.telephone for c in chans]) == pytest.approx(0.25, abs=0.03)
    assert np.mean([c.rir < 0 for c in chans]) == pytest.approx(0.1, abs=0.02)
    assert {c.noise for c in chans} == {"white", "pink", "brown", "babble"}
    assert all(5 <= c.snr_db <= 30 and 0 <= c.rir < 10 or c.rir == -1 for c in chans)
    assert draw_channel(np.random.default_rng(0), 0).rir == -1  # no pool: dry


def test_rooms_are_buildable_for_their_rt60():
    from jooci.data.synth.channel import draw_room, sabine_absorption

    rng = np.random.default_rng(252)
    for _ in range(2000):  # large dry rooms are redrawn, never handed to pyroomacoustics
        room = draw_room(rng)
        assert sabine_absorption(room.dims, room.rt60) < 0.95
    assert sabine_absorption((10, 8, 4), 0.15) > 1  # such a room exists in the draw's range
