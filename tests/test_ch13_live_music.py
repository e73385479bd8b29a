"""Chapter 13 (live music diffusion): the caches are exact, the masks match their definitions, the
forward counts match the formulas, the data and audio round-trips hold, the live loop meets its deadlines
with a simulated clock and an in-memory sink, and bad input gets clear errors."""

import numpy as np
import pytest
import torch

from diffbook.music import audio, data, live, quality
from diffbook.music.model import BlockDiffusionTransformer, FrameAR, encdec_mask, window_chunk_mask
from diffbook.music.stream import ARStreamer, DiffusionStreamer, make_streamer, sampling_times, tokens_per_bar
from diffbook.music.training import ReferenceModel, context_keep, fit, rf_loss
from diffbook.nets.attention import KVCache, MultiHeadAttention

f64 = torch.float64


def small_model(attention, seed=0, **kw):
    torch.manual_seed(seed)
    return BlockDiffusionTransformer(attention=attention, dim=32, depth=2, heads=2, **kw).double()


@pytest.fixture(scope="module")
def chorales():
    return data.load_chorales(10)


# ------------------------------------------------------------------------------------------------ attention
def test_cached_attention_with_a_mask_equals_the_uncached_pass_exactly():
    torch.manual_seed(0)
    att = MultiHeadAttention(16, 2).double()
    x = torch.randn(2, 12, 16, dtype=f64)
    ids = torch.arange(3).repeat_interleave(4)
    mask = window_chunk_mask(ids, ids, 1)
    full = att(x, mask=mask)
    first, cache = att.forward_cached(x[:, :4], None, mask=mask[:4, :4])
    rest, _ = att.forward_cached(x[:, 4:], cache, mask=mask[4:])
    assert cache.length == 4 and isinstance(cache, KVCache)
    assert (torch.cat([first, rest], 1) - full).abs().max() < 1e-13


def test_forward_cached_refuses_mask_and_block_size_together():
    att = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match="either mask or block_size"):
        att.forward_cached(torch.randn(1, 2, 8), None, block_size=1, mask=torch.ones(2, 2, dtype=torch.bool))


def test_block_causal_mask_matches_its_definition_entry_by_entry():
    b, w = 4, 2
    ids = torch.cat([torch.arange(5).repeat_interleave(b), torch.tensor([4])])
    m = window_chunk_mask(ids, ids, w)
    for i in range(len(ids)):
        for j in range(len(ids)):
            assert bool(m[i, j]) == (ids[i] - w <= ids[j] <= ids[i]), (i, j)
    # context chunks never see the target chunk or the time token (the last b + 1 tokens)
    assert not m[: 4 * b, 4 * b:].any()
    assert m[4 * b:, 2 * b:].all() and not m[4 * b:, : 2 * b].any()


def test_model_block_causal_mask_has_a_sliding_window_of_context_bars():
    m = small_model("blockcausal", context_bars=2, block=4)
    mask = m.full_mask(5 * 4)
    ids = m.chunk_ids(5)
    assert ids[-1] == ids[-2] == 5 and mask.shape == (25, 25)
    assert mask[:-5, -5:].sum() == 0          # no context query sees the noisy bar or the time token
    assert mask[-1, -5 * 4 - 5 + 3 * 4:].all() and not mask[-1, : 3 * 4].any()


def test_encdec_mask_keeps_the_context_blind_to_target_and_time_token():
    m = encdec_mask(8, 5)
    assert m[:8, :8].all() and not m[:8, 8:].any() and m[8:].all()


def test_context_outputs_do_not_depend_on_the_noisy_bar_or_the_time():
    """The claim that makes caching possible: change x_t and t, the context's cached keys stay equal."""
    for kind in ("encdec", "blockcausal"):
        m = small_model(kind)
        ctx = torch.randn(1, 64, data.CHANNELS, dtype=f64)
        keep = torch.ones(1, 64, dtype=f64)
        outs = []
        for seed in (1, 2):
            g = torch.Generator().manual_seed(seed)
            x = torch.randn(1, 16, data.CHANNELS, generator=g, dtype=f64)
            t = torch.rand(1, generator=g, dtype=f64)
            if kind == "encdec":
                cache = m.prefill(ctx, keep)
                outs.append(cache[-1].k)
                h = torch.cat([m.embed_context(ctx, keep), m.embed_target(x, t)], 1)
                pos = torch.arange(h.shape[1], dtype=torch.float32)
                _, caches = m.trunk.run_cached(h, None, pos, m.full_mask(64))
                assert (caches[-1].k[:, :, :64] - cache[-1].k).abs().max() < 1e-12
            else:
                _, caches = m.fused_step(ctx, keep, x, t, None, 0)
                outs.append(caches[-1].k)
        assert torch.equal(outs[0], outs[1]), kind


# ------------------------------------------------------------------------------------------------ streaming
@pytest.mark.parametrize("kind,cached,reference", [("encdec", "encdec", "naive"),
                                                   ("blockcausal", "blockcausal", "blockcausal_uncached")])
@pytest.mark.parametrize("sampler", ["euler", "pingpong"])
def test_cached_generation_equals_uncached_for_the_same_noise(kind, cached, reference, sampler):
    m = small_model(kind)
    prompt = torch.randn(2, 32, data.CHANNELS, dtype=f64).sign()
    a = DiffusionStreamer(m, cached, steps=3, seed=5, n=2, prompt=prompt, sampler=sampler)
    b = DiffusionStreamer(m, reference, steps=3, seed=5, n=2, prompt=prompt, sampler=sampler)
    for _ in range(7):  # past the window of 4 bars: the cache has slid and evicted
        x, y = a.next_bar(), b.next_bar()
        assert (x - y).abs().max() < 1e-12
    assert x.abs().max() > 0.1  # not a degenerate all-zero output


def test_ar_cached_generation_equals_uncached_for_the_same_noise():
    torch.manual_seed(0)
    m = FrameAR(dim=32, depth=2, heads=2, window=24).double()
    a, b = ARStreamer(m, cached=True, seed=3, n=2), ARStreamer(m, cached=False, seed=3, n=2)
    for _ in range(3):  # 48 frames, twice the window of 24
        assert torch.equal(a.next_bar(), b.next_bar())


@pytest.mark.parametrize("method", ["naive", "encdec", "blockcausal", "ar"])
@pytest.mark.parametrize("steps", [2, 8])
def test_token_forwards_per_bar_match_the_formula(method, steps):
    if method == "ar":
        torch.manual_seed(0)
        s = make_streamer(FrameAR(dim=32, depth=1, heads=2), "ar")
    else:
        m = small_model("blockcausal" if method == "blockcausal" else "encdec").float()
        s = make_streamer(m, method, steps=steps)
    for _ in range(6):
        s.next_bar()
    assert s.bar_tokens[-1] == tokens_per_bar(method, steps=steps)
    passes = {"naive": steps, "encdec": steps + 1, "blockcausal": steps, "ar": 16}[method]
    s.model.counter.reset()
    s.next_bar()
    assert s.model.counter.passes == passes


def test_token_formulas_pinned_to_the_chapter_table():
    assert [tokens_per_bar(k, steps=8) for k in ("naive", "encdec", "blockcausal", "ar")] == [648, 200, 152, 16]
    assert tokens_per_bar("naive", steps=8) / tokens_per_bar("blockcausal", steps=8) > 4


def test_sampling_times_run_from_one_to_zero_on_the_logsnr_grid():
    t = sampling_times(4)
    assert t[0] == 1 and t[-1] == 0 and (t[1:] < t[:-1]).all()
    assert abs(float(t[1]) - 1 / (1 + np.exp(-4.0))) < 1e-6  # λ_1 = -4 → t = sigmoid(4)


def test_controls_enter_only_the_target_temperature_changes_bars_not_the_cache():
    m = small_model("blockcausal")
    a = DiffusionStreamer(m, "blockcausal", steps=2, seed=1)
    b = DiffusionStreamer(m, "blockcausal", steps=2, seed=1)
    a.next_bar(), b.next_bar()
    b.temperature = 0.5
    xa, xb = a.next_bar(), b.next_bar()
    assert (xa - xb).abs().max() > 1e-3
    for ca, cb in zip(a.caches, b.caches):  # the pending bar 0 entered both caches identically
        assert torch.equal(ca.k[:, :, :-16], cb.k[:, :, :-16])


# ------------------------------------------------------------------------------------------------ training
def test_context_dropout_rates_and_leading_bars():
    keep = context_keep(20000, 4, 2, generator=torch.Generator().manual_seed(0))
    bars = keep[:, ::2]
    all_dropped = (bars == 0).all(1).float().mean()
    partial = ((bars == 0).any(1) & (bars == 1).any(1)).float().mean()
    assert abs(all_dropped - 0.2) < 0.015 and abs(partial - 0.3) < 0.015
    # dropped bars are always the leading (oldest) ones: keep is non-decreasing along time
    assert (bars[:, 1:] >= bars[:, :-1]).all()


def test_rectified_flow_loss_is_zero_for_the_exact_velocity():
    m = small_model("encdec")
    batch = torch.randn(3, 80, data.CHANNELS, dtype=f64)

    g = torch.Generator().manual_seed(0)
    loss = rf_loss(m, batch, g)
    assert loss.shape == (3,) and (loss > 0).all()
    # monkeypatch the model to return eps - x0 computed from the same generator draws
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    context_keep(3, 4, 16, generator=g2)
    torch.rand(3, generator=g2)
    eps = torch.randn(3, 16, data.CHANNELS, generator=g2, dtype=f64)
    target = eps - batch[:, 64:]
    m.forward = lambda x_t, tt, c, k: target
    assert rf_loss(m, batch, g1).abs().max() < 1e-12


def test_short_training_lowers_the_diffusion_loss(chorales):
    train_names, _ = data.split_names(list(chorales))
    torch.manual_seed(0)
    m = BlockDiffusionTransformer(attention="blockcausal", dim=32, depth=1, heads=2)
    res = fit(m, [chorales[k] for k in train_names], steps=60, batch=16)
    assert res.losses[-10:].mean() < 0.8 * res.losses[:5].mean()


# ------------------------------------------------------------------------------------------------ data
def test_chorale_roll_has_four_voices_and_cache_round_trips(chorales):
    name = sorted(chorales)[0]
    roll = chorales[name]
    assert roll.dtype == bool and roll.shape[1:] == (49, 2)
    assert 3.0 < roll[..., 1].sum(1).mean() < 4.6  # SATB: about four sounding notes
    assert (roll[..., 1] | ~roll[..., 0]).all()  # every onset sounds
    again = data.load_chorales(10)
    assert np.array_equal(again[name], roll)


def test_split_is_fixed_and_disjoint():
    names = [f"bwv{i}" for i in range(20)]
    tr, te = data.split_names(names)
    assert len(te) == 4 and not set(tr) & set(te) and data.split_names(list(reversed(names))) == (tr, te)


def test_transposition_shifts_pitch_and_drops_out_of_range():
    roll = np.zeros((2, 49, 2), dtype=bool)
    roll[0, 47, 1] = roll[1, 3, 0] = True
    up = data.transpose_roll(roll, 2)
    assert up[1, 5, 0] and up.sum() == 1
    assert data.transpose_roll(roll, -3)[0, 44, 1] and data.transpose_roll(roll, -4).sum() == 1


def test_features_round_trip_to_roll(chorales):
    roll = chorales[sorted(chorales)[1]][:32]
    assert np.array_equal(data.features_to_roll(data.roll_to_features(roll)).numpy(), roll)


# ------------------------------------------------------------------------------------------------ quality
def test_quality_metrics_on_known_rolls():
    roll = torch.zeros(16, 49, 2, dtype=torch.bool)
    for p in (60, 64, 67):  # C major triad, MIDI
        roll[:, p - 36, 1] = True
    assert abs(quality.polyphony(roll) - 3) < 1e-9 and quality.in_key_ratio(roll) == 1.0
    roll[:, 61 - 36, 1] = True  # add C#: one of four pitches out of every major scale containing C, E, G
    assert abs(quality.in_key_ratio(roll) - 0.75) < 1e-6
    p, q = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert abs(quality.js_divergence(p, q) - 1.0) < 1e-9 and quality.js_divergence(p, p) == 0


def test_reference_model_learns_real_chorales_far_better_than_chance(chorales):
    train_names, test_names = data.split_names(list(chorales))
    torch.manual_seed(0)
    untrained = ReferenceModel(hidden=64)
    torch.manual_seed(0)
    ref = fit(ReferenceModel(hidden=64), [chorales[k] for k in train_names], steps=80, batch=16, lr=3e-3).model
    real = data.roll_to_features(chorales[test_names[0]][:64])[None]
    with torch.no_grad():
        assert ref(real).mean() < 0.5 * untrained(real).mean()  # held-out piece, never trained on


# ------------------------------------------------------------------------------------------------ audio, MIDI
def test_notes_midi_and_synth_round_trip(tmp_path):
    roll = torch.zeros(8, 49, 2, dtype=torch.bool)
    roll[0:4, 60 - 36, 1] = roll[0, 60 - 36, 0] = True
    roll[4:8, 60 - 36, 1] = roll[4, 60 - 36, 0] = True  # a repeated note: two notes
    notes = audio.roll_to_notes(roll)
    assert [(n.pitch, n.start, n.stop) for n in notes] == [(60, 0, 4), (60, 4, 8)]
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(str(audio.write_midi(notes, tmp_path / "x.mid", bpm=120)))
    starts = [round(n.start, 4) for n in pm.instruments[0].notes]
    assert starts == [0.0, 0.5]  # 4 sixteenths at 120 bpm = half a second
    wave = audio.synthesize(notes, bpm=120, sample_rate=8000)
    assert abs(len(wave) - 8000) <= 2 and np.abs(wave).max() <= 0.81
    spectrum = np.abs(np.fft.rfft(wave[:4000]))
    assert abs(np.argmax(spectrum) * 2 - 261.6) < 3  # the fundamental of middle C


# ------------------------------------------------------------------------------------------------ live
def test_live_loop_delivers_every_bar_before_its_deadline_and_closes():
    m = small_model("blockcausal").float()
    sink = live.MemorySink()
    stats = live.run_live(DiffusionStreamer(m, "blockcausal", steps=4), sink, bars=12,
                          controls=live.Controls(bpm=120), clock=live.SimulatedClock())
    assert sink.closed and len(sink.bars) == 12
    for arrival, index, deadline, _ in sink.bars:
        assert arrival <= deadline + 1e-9, index
    deadlines = [d for _, _, d, _ in sink.bars]
    assert np.allclose(np.diff(deadlines), 2.0)  # a 16-frame bar at 120 bpm lasts 2 s
    assert stats.late == 0 and max(stats.compute) < 1.0  # p95 within half a bar with margin
    assert "late bars 0" in stats.summary()


def test_live_loop_reports_late_bars_when_compute_is_too_slow():
    class Slow:
        def next_bar(self):
            clock.sleep_until(clock.now() + 3.0)  # 3 s of "compute" for a 2 s bar
            return torch.zeros(1, 16, data.CHANNELS)

    clock = live.SimulatedClock()
    sink = live.MemorySink()
    stats = live.run_live(Slow(), sink, bars=4, clock=clock)
    assert stats.late == 3 and sink.closed


def test_live_loop_closes_the_sink_on_error():
    class Broken:
        def next_bar(self):
            raise KeyboardInterrupt

    sink = live.MemorySink()
    with pytest.raises(KeyboardInterrupt):
        live.run_live(Broken(), sink, bars=3, clock=live.SimulatedClock())
    assert sink.closed


def test_missing_port_lists_the_available_ports(monkeypatch):
    monkeypatch.setattr(live, "midi_output_names", lambda: ["Synth A", "Synth B"])
    with pytest.raises(ValueError, match=r"'nope' is not a MIDI output port; available ports: \['Synth A', 'Synth B'\]"):
        live.open_midi_port("nope")
    monkeypatch.setattr(live, "midi_output_names", lambda: [])
    with pytest.raises(ValueError, match="no MIDI output port exists"):
        live.open_midi_port(None)


def test_live_command_exits_with_a_clear_message_without_a_port(monkeypatch, capsys):
    monkeypatch.setattr(live, "midi_output_names", lambda: [])
    assert live.main(["--bars", "2"]) == 2
    assert "no MIDI output port exists" in capsys.readouterr().err
    assert live.main(["--bpm", "-5"]) == 2
    assert "bpm" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ bad input
BAD = [
    (lambda: data.parse_chorale("bwv9999.9"), ValueError, "not a Bach chorale"),
    (lambda: data.parse_chorale(3), TypeError, "name must be a str"),
    (lambda: audio.seconds_per_frame(0), ValueError, "bpm"),
    (lambda: audio.seconds_per_frame(-1.0), ValueError, "bpm"),
    (lambda: BlockDiffusionTransformer(block=5), ValueError, "block must divide the bar"),
    (lambda: BlockDiffusionTransformer(attention="full"), ValueError, "attention must be one of"),
    (lambda: BlockDiffusionTransformer(dim=30, heads=4), ValueError, "heads must divide"),
    (lambda: DiffusionStreamer(small_model("encdec"), "encdec",
                               prompt=torch.zeros(1, 80, data.CHANNELS, dtype=f64)), ValueError, "longer than the model's context window"),
    (lambda: DiffusionStreamer(small_model("encdec"), "encdec",
                               prompt=torch.zeros(1, 20, data.CHANNELS, dtype=f64)), ValueError, "whole number of 16-frame bars"),
    (lambda: small_model("encdec")(torch.zeros(1, 16, 98, dtype=f64), torch.zeros(1, dtype=f64),
                                   torch.zeros(1, 80, 98, dtype=f64)), ValueError, "longer than the model's window"),
    (lambda: DiffusionStreamer(small_model("encdec"), "blockcausal"), ValueError, "needs a model trained"),
    (lambda: DiffusionStreamer(small_model("encdec"), "fast"), ValueError, "method must be one of"),
    (lambda: DiffusionStreamer(small_model("encdec"), "encdec", temperature=0.0), ValueError, "temperature"),
    (lambda: DiffusionStreamer("model"), TypeError, "model must be a BlockDiffusionTransformer"),
    (lambda: tokens_per_bar("magic", steps=4), ValueError, "method must be one of"),
    (lambda: sampling_times(0), ValueError, "steps"),
    (lambda: context_keep(4, 4, 16, p_all=0.8, p_lead=0.5), ValueError, "p_all \\+ p_lead"),
    (lambda: window_chunk_mask(torch.zeros(3), torch.zeros(3, dtype=torch.long), 1), TypeError, "q_chunks"),
    (lambda: fit(torch.nn.Linear(2, 2), [], steps=1), TypeError, "model must be"),
    (lambda: live.run_live(None, live.MemorySink(), bars=0), ValueError, "bars"),
    (lambda: data.sample_windows([np.zeros((10, 49, 2), bool)], 2, 80, generator=torch.Generator()), ValueError, "length=80"),
]


@pytest.mark.parametrize("fn,err,message", BAD)
def test_bad_input_gets_a_clear_error(fn, err, message):
    with pytest.raises(err, match=message):
        fn()


def test_misconception_streaming_diffusion_must_rerun_the_whole_window():
    """Naive outpainting re-runs the 4 context bars at every step; the cached block-causal stream gives the
    same bars as its uncached reference while processing 4x fewer tokens per bar."""
    m = small_model("blockcausal").float()
    naive = make_streamer(small_model("encdec").float(), "naive", steps=8)
    cached = make_streamer(m, "blockcausal", steps=8)
    for _ in range(5):
        naive.next_bar(), cached.next_bar()
    assert naive.bar_tokens[-1] / cached.bar_tokens[-1] > 4.0
