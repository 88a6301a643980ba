# SPDX-License-Identifier: Apache-2.0
"""CSM codeword sync, and the whole optical receive chain: SCPPM 16-PPM r 1/2 -> SNSPD time tags
(150 ppm + drift, 50 ps jitter, dead time, dark counts, 4 channels, a 200 ms cloud) -> slot clock
recovery -> codeword sync -> SCPPMReceiver, decoded bit-exactly and CRC-checked."""
import math

import numpy as np
import pytest

from modem.channel.poisson import simulate_counts
from modem.errors import ConfigError, ShapeError
from modem.fec.scppm import SCPPMCode, SCPPMReceiver, SCPPMTransmitter
from modem.sync.codeword_sync import CodewordBlocks, CodewordSync, CodewordSyncConfig, csm_llr
from modem.sync.slot_clock import SlotClockConfig, SlotClockRecovery, SlotCounts
from modem.sync.timetags import TimeTagConfig, simulate_time_tags

CODE = SCPPMCode(M=16, rate="1/2")
PER = CODE.symbols_per_codeword
P = CODE.slots_per_symbol
SLOT_PS = 1000.0
NS, NB = 3.0, 0.02            # incident photons per pulse / per slot


@pytest.fixture(scope="module")
def blocks():
    rng = np.random.default_rng(2024)
    u = rng.integers(0, 2, (12, CODE.k), dtype=np.uint8)
    return u, SCPPMTransmitter(CODE).modulate(u)


def as_slot_counts(counts_2d, first_index=0, segment=0):
    n = counts_2d.shape[0]
    return SlotCounts(counts_2d.astype(np.uint16), first_index + np.arange(n, dtype=np.int64),
                      np.zeros(n), np.full(n, segment, np.int32), [])


def sync_all(cs, parts):
    st = cs.initial_state()
    outs = []
    for p in parts:
        o, st = cs.push(p, st)
        outs.append(o)
    return CodewordBlocks.concat(outs), st


def chunked(y, first_index, rng, n_cuts):
    """``y`` (n, P) as SlotCounts cut at ``n_cuts`` random places."""
    cuts = np.sort(rng.integers(0, y.shape[0], n_cuts))
    return [as_slot_counts(p, first_index + a) for p, a in zip(np.split(y, cuts), np.concatenate([[0], cuts]))]


def sync_flushed(cs, parts):
    out, st = sync_all(cs, parts)
    last, st = cs.flush(st)
    return CodewordBlocks.concat([out, last]), st


def assert_same_blocks(a, b):
    for f in ("counts", "sym_index", "csm_llr", "locked", "segment", "slot_offset"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))


def shifted_rows(flat, first_sym, d):
    """Rows of P slots as a slot clock placing the symbol boundary ``d`` slots late (d > 0) or
    early (d < 0), from symbol ``first_sym``: (rows, first slot)."""
    start = first_sym * P + d
    n = (flat.size - start) // P
    return flat[start:start + n * P].reshape(n, P), start


def match_rows(u_hat, u):
    """Index of the sent block each decoded block equals (-1: none)."""
    return np.array([next((j for j in range(u.shape[0]) if np.array_equal(r, u[j])), -1) for r in u_hat])


# ------------------------------------------------------------------------------------ CSM metric
def test_csm_llr_properties():
    M, L = CODE.M, CODE.L_csm
    pat = CODE.csm_symbols
    y = np.zeros((L, P), dtype=np.int64)
    y[np.arange(L), pat] = 1
    w = math.log1p(NS / NB)
    top = csm_llr(y, pat, M, w)[0]
    assert top == pytest.approx(L * (w - math.log(math.exp(w) + M - 1) + math.log(M)))
    assert top < L * math.log(M)
    assert csm_llr(np.zeros((L, P), np.int64), pat, M, w)[0] == 0.0     # erased symbols: no evidence
    y2 = y.copy()
    y2[np.arange(L), (pat + 1) % M] = 1
    y2[np.arange(L), pat] = 0
    assert csm_llr(y2, pat, M, w)[0] < -L * (w - math.log(M)) + 1e-9     # wrong slots: about -w each
    assert csm_llr(y[:L - 1], pat, M, w).size == 0


@pytest.mark.parametrize("offset", [0, 1, 17, 1900, PER - 1])
def test_codeword_sync_finds_csm_at_any_offset(blocks, offset):
    u, x = blocks
    rng = np.random.default_rng(offset)
    y = simulate_counts(x[:4], NS, NB, rng).reshape(-1, P)[offset:]
    cs = CodewordSync(CodewordSyncConfig(CODE, NS, NB))
    out, st = sync_all(cs, [as_slot_counts(y, first_index=offset)])
    first = -offset % PER
    expect = np.arange(offset + first, 4 * PER - PER + 1, PER)
    np.testing.assert_array_equal(out.sym_index, expect)
    assert out.locked.all() and st.locks == 1 and st.lock_losses == 0
    assert out.counts.shape == (expect.size, CODE.slots_per_codeword) and out.counts.dtype == np.uint16
    r = SCPPMReceiver(CODE, NS, NB, max_iter=10).receive(out.counts)
    assert r.crc_ok.all()
    np.testing.assert_array_equal(r.u_hat, u[expect // PER])


def test_no_false_lock_on_random_ppm(blocks):
    rng = np.random.default_rng(7)
    sym = rng.integers(0, CODE.M, 3 * PER)
    y = np.zeros((sym.size, P), np.int64)
    y[np.arange(sym.size), sym] = rng.poisson(NS, sym.size)
    y += rng.poisson(NB, y.shape)
    cs = CodewordSync(CodewordSyncConfig(CODE, NS, NB))
    out, st = sync_all(cs, [as_slot_counts(y)])
    assert len(out) == 0 and st.locks == 0


def test_segment_change_resets_and_relocks(blocks):
    u, x = blocks
    rng = np.random.default_rng(3)
    y = simulate_counts(x[:6], NS, NB, rng).reshape(-1, P)
    a = as_slot_counts(y[:2 * PER + 100])
    b = as_slot_counts(y[3 * PER + 500:], first_index=3 * PER + 500, segment=1)
    cs = CodewordSync(CodewordSyncConfig(CODE, NS, NB))
    out, st = sync_all(cs, [a, b])
    np.testing.assert_array_equal(out.sym_index, [0, PER, 4 * PER, 5 * PER])
    np.testing.assert_array_equal(out.segment, [0, 0, 1, 1])
    assert st.resets == 1 and st.locks == 2
    # a hole in sym_index inside one segment resets as well
    c = as_slot_counts(y[3 * PER + 500:], first_index=3 * PER + 500, segment=0)
    out2, st2 = sync_all(cs, [a, c])
    np.testing.assert_array_equal(out2.sym_index, [0, PER, 4 * PER, 5 * PER])
    assert st2.resets == 1


def test_flywheel_then_search(blocks):
    u, x = blocks
    rng = np.random.default_rng(4)
    y = simulate_counts(x[:8], NS, NB, rng).reshape(-1, P)
    y[2 * PER:5 * PER] = 0                          # three codewords erased (fade without LOS)
    cs = CodewordSync(CodewordSyncConfig(CODE, NS, NB, flywheel=1))
    out, st = sync_all(cs, [as_slot_counts(y)])
    # codeword 2: miss -> flywheel (emitted, unlocked); codeword 3: second miss -> SEARCH; the
    # two-period search (erased codeword 4 + codeword 5) re-locks at 4, which is emitted as a miss
    np.testing.assert_array_equal(out.sym_index, [0, PER, 2 * PER, 4 * PER, 5 * PER, 6 * PER, 7 * PER])
    np.testing.assert_array_equal(out.locked, [True, True, False, False, True, True, True])
    assert st.lock_losses == 1 and st.flywheeled == 2 and st.locks == 2


def test_codeword_sync_chunking(blocks):
    u, x = blocks
    rng = np.random.default_rng(5)
    y = simulate_counts(x[:5], NS, NB, rng).reshape(-1, P)[123:]
    cs = CodewordSync(CodewordSyncConfig(CODE, NS, NB))
    ref, st_ref = sync_all(cs, [as_slot_counts(y, 123)])
    out, st = sync_all(cs, chunked(y, 123, rng, 40))
    assert_same_blocks(out, ref)
    assert st.codewords == st_ref.codewords and st.buf_index == st_ref.buf_index


@pytest.mark.parametrize("d", [1, 2, -1, -2])
def test_codeword_sync_corrects_a_symbol_boundary_slots_off(blocks, d):
    """The slot clock's symbol boundary is ``d`` slots off (the guard found in the wrong place):
    SEARCH tries slot offsets up to ``guard // 2`` and locks on the true one, every codeword
    decodes bit-exact (the last one too, completed by ``flush``), chunked == one-shot; with
    ``slot_search=0`` nothing locks."""
    u, x = blocks
    rng = np.random.default_rng(40 + d)
    flat = simulate_counts(x[:4], NS, NB, rng).reshape(-1)
    y, start = shifted_rows(flat, 300, d)
    n_rows = y.shape[0]
    cs = CodewordSync(CodewordSyncConfig(CODE, NS, NB))
    assert CodewordSyncConfig(CODE, NS, NB).slot_offsets == (0, 1, P - 1, 2, P - 2)
    ref, st = sync_flushed(cs, [as_slot_counts(y, 300)])
    o = -d % P                                             # the true boundary, from the rows
    assert st.locks == 1 and set(ref.slot_offset.tolist()) == {o} and ref.locked.all()
    r = SCPPMReceiver(CODE, NS, NB, max_iter=10).receive(ref.counts)
    assert r.crc_ok.all()
    want = np.arange(1, 4)                                 # codeword 0 starts before the rows
    np.testing.assert_array_equal(match_rows(r.u_hat, u), want)
    # each codeword's slots exactly as sent; the slots after the last row (flush) empty
    spc = CODE.slots_per_codeword
    seen = np.zeros_like(flat)
    seen[start:start + n_rows * P] = flat[start:start + n_rows * P]
    np.testing.assert_array_equal(ref.counts, seen[want[:, None] * spc + np.arange(spc)])
    assert_same_blocks(sync_flushed(cs, chunked(y, 300, rng, 30))[0], ref)
    off, st0 = sync_all(CodewordSync(CodewordSyncConfig(CODE, NS, NB, slot_search=0)), [as_slot_counts(y, 300)])
    assert len(off) == 0 and st0.locks == 0


@pytest.mark.parametrize("d", [3, -4, 10])
def test_full_search_finds_a_boundary_beyond_the_slot_search(blocks, d):
    """A boundary ``d`` slots off, beyond ``slot_search`` (2 for 16-PPM): after
    ``full_search_after`` (4) SEARCH periods without a lock, one period tries every slot offset and
    locks; every codeword from there decodes bit-exact, in any chunking. With
    ``full_search_after=0`` nothing ever locks (the slot clock would keep its wrong boundary)."""
    u, x = blocks
    rng = np.random.default_rng(60 + d)
    y, _ = shifted_rows(simulate_counts(x, NS, NB, rng).reshape(-1), 50, d)
    cs = CodewordSync(CodewordSyncConfig(CODE, NS, NB))
    assert len(cs.cfg.full_offsets) == P and sorted(cs.cfg.full_offsets) == list(range(P))
    ref, st = sync_flushed(cs, [as_slot_counts(y, 50)])
    assert st.locks == 1 and set(ref.slot_offset.tolist()) == {-d % P} and ref.locked.all()
    r = SCPPMReceiver(CODE, NS, NB, max_iter=10).receive(ref.counts)
    idx = match_rows(r.u_hat, u)
    assert r.crc_ok.all() and idx[0] >= 5 and list(idx) == list(range(idx[0], u.shape[0]))
    assert_same_blocks(sync_flushed(cs, chunked(y, 50, rng, 40))[0], ref)
    none, st0 = sync_all(CodewordSync(CodewordSyncConfig(CODE, NS, NB, full_search_after=0)), [as_slot_counts(y, 50)])
    assert len(none) == 0 and st0.locks == 0


@pytest.mark.parametrize("M", [16, 128])
def test_search_scores_equal_csm_llr_at_every_slot_offset(M):
    """The compiled slot-offset search gives csm_llr of the re-cut rows at every offset (to
    rounding), bright slots included (a window ~250 counts below its row's brightest slot takes the
    exact fallback; a plain shared shift would underflow to -inf there)."""
    code = SCPPMCode(M=M, rate="1/2")
    cs = CodewordSync(CodewordSyncConfig(code, NS, NB))
    per, L, Pm = cs.cfg.period, code.L_csm, code.slots_per_symbol
    rng = np.random.default_rng(M)
    w = rng.poisson(0.3, (per + L, Pm)).astype(np.uint16)
    w[rng.integers(0, per, 40), rng.integers(0, Pm, 40)] = rng.integers(2, 30, 40)
    w[7, 3] = 1500                                          # w * 1500 ~ 7000: far past exp's range
    w[200, Pm - 1] = 900
    got = cs._search_scores(w, cs._near[1])
    want = np.stack([csm_llr(cs._rows(w, o)[:per + L - 1], cs._pat, M, cs._w) for o in cs._near[0]])
    assert got.shape == (len(cs._near[0]), per) and np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)
    # real-valued metrics far below zero (slot LLRs, w = 1): no shift pinned at 0 underflows
    from modem.sync.codeword_sync import csm_llr_slot_offsets
    z = rng.normal(-800.0, 30.0, (per + L) * Pm)
    got = csm_llr_slot_offsets(z, Pm, M, 1.0, cs._pat, cs._near[1], per)
    want = np.stack([csm_llr(z[o:o + (per + L - 1) * Pm].reshape(-1, Pm), cs._pat, M, 1.0) for o in cs._near[0]])
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)
    # without a slot search (offset 0 only) the window needs no extra row; a short one is refused
    n0 = (per + L - 1) * Pm
    np.testing.assert_allclose(csm_llr_slot_offsets(z[:n0], Pm, M, 1.0, cs._pat, np.zeros(1, np.int64), per)[0],
                               want[0], rtol=1e-12, atol=1e-9)
    with pytest.raises(ValueError, match="shorter"):
        csm_llr_slot_offsets(z[:n0], Pm, M, 1.0, cs._pat, cs._near[1], per)


def test_flush_completes_a_last_codeword_short_of_a_few_symbols(blocks):
    """A record ends ``k`` symbols before its last codeword does (the slot clock emits nothing after
    the last photon): ``flush`` completes it with empty symbols (erasures) for k <= L (the CSM
    length) and it decodes; for k > L nothing more is emitted. Empty symbols carry no evidence:
    the emitted counts are the received ones, then zeros."""
    u, x = blocks
    y = simulate_counts(x[:3], NS, NB, np.random.default_rng(8)).reshape(-1, P)
    L = CODE.L_csm
    for k in (1, 5, L, L + 1):
        cs = CodewordSync(CodewordSyncConfig(CODE, NS, NB))
        out, st = sync_all(cs, [as_slot_counts(y[:-k])])
        assert len(out) == 2 and st.mode == 1              # codewords 0, 1; LOCK on codeword 2
        last, st = cs.flush(st)
        if k > L:
            assert len(last) == 0
            continue
        assert len(last) == 1 and last.sym_index[0] == 2 * PER and last.locked[0]
        want = np.zeros(CODE.slots_per_codeword, np.uint16)
        want[:(PER - k) * P] = y[2 * PER:3 * PER - k].reshape(-1)
        np.testing.assert_array_equal(last.counts[0], want)
        r = SCPPMReceiver(CODE, NS, NB, max_iter=10).receive(last.counts)
        assert r.crc_ok[0] and np.array_equal(r.u_hat[0], u[2])
        assert len(cs.flush(st)[0]) == 0                   # flushing twice emits nothing more


def test_codeword_sync_errors():
    cs = CodewordSync(CodewordSyncConfig(CODE, NS, NB))
    st = cs.initial_state()
    with pytest.raises(ShapeError, match=r"\(n, 20\)"):
        cs.push(as_slot_counts(np.zeros((4, 16), np.int64)), st)
    bad = as_slot_counts(np.zeros((4, P), np.int64))
    bad.counts = bad.counts.astype(np.float64)
    with pytest.raises(ShapeError, match="integers"):
        cs.push(bad, st)
    with pytest.raises(ShapeError, match="SlotCounts"):
        cs.push(np.zeros((4, P), np.int64), st)
    for kw in ({"nb": 0.0}, {"ns": float("nan")}, {"flywheel": -1}, {"search_threshold": 1e3},
               {"slot_search": P // 2}, {"slot_search": -1}, {"slot_search": 1.0}, {"full_search_after": -1},
               {"full_search_after": True}):
        args = dict(code=CODE, ns=NS, nb=NB)
        args.update(kw)
        with pytest.raises(ConfigError):
            CodewordSyncConfig(**args)
    with pytest.raises(ConfigError, match="CSM"):
        CodewordSyncConfig(SCPPMCode(M=16, rate="1/2", csm=False), NS, NB)
    with pytest.raises(ConfigError, match="repeat_unit"):
        CodewordSyncConfig(SCPPMCode(M=16, rate="1/2", repetition=2, repeat_unit="codeword"), NS, NB)


# ------------------------------------------------------------------------------------ end to end
LINK = dict(slot_width_ps=SLOT_PS, clock_offset_ppm=150.0, drift_ppm_per_s=50.0, jitter_rms_ps=50.0,
            dark_count_rate_hz=1e4, dead_time_ps=20000.0, n_channels=4, t0_ps=98765.0)


def receive_chain(tags_chunks, ns_det, nb_det):
    rec = SlotClockRecovery(SlotClockConfig.from_code(CODE, SLOT_PS))
    cs = CodewordSync(CodewordSyncConfig(CODE, ns_det, nb_det))
    s_rec, s_cs = rec.initial_state(), cs.initial_state()
    slots, cws = [], []
    for ch in list(tags_chunks) + [None]:
        o, s_rec = rec.push(ch, s_rec) if ch is not None else rec.flush(s_rec)
        slots.append(o)
        b, s_cs = cs.push(o, s_cs)
        cws.append(b)
    return SlotCounts.concat(slots, P), CodewordBlocks.concat(cws), s_rec, s_cs


def detected_means():
    # means per slot as the receiver sees them, summed over channels (dead time ignored)
    return NS, NB + LINK["dark_count_rate_hz"] * LINK["n_channels"] * SLOT_PS * 1e-12


def test_end_to_end_time_tags_to_decoded_blocks(blocks):
    u, x = blocks
    F = 8
    cfg = TimeTagConfig(**LINK)
    tags = simulate_time_tags(x[:F], NS, NB, np.random.default_rng(11), cfg)
    ns_d, nb_d = detected_means()
    slots, cw, s_rec, s_cs = receive_chain([tags.t_ps], ns_d, nb_d)
    assert [e.kind for e in slots.events] == ["acquired"]
    assert abs(slots.events[0].info["offset_ppm"] - 150.0) < 1.0
    assert s_rec.slips == 0 and s_rec.losses == 0
    assert len(cw) == F and cw.locked.all()               # codeword 0 too: tracking starts before it
    r = SCPPMReceiver(CODE, ns_d, nb_d, max_iter=20).receive(cw.counts)
    assert r.crc_ok.all()
    np.testing.assert_array_equal(r.u_hat, u[:F])
    # chunked tag delivery gives the same codewords
    rng = np.random.default_rng(12)
    cuts = np.sort(rng.integers(0, len(tags), 50))
    _, cw2, _, _ = receive_chain(np.split(tags.t_ps, cuts), ns_d, nb_d)
    for f in ("counts", "sym_index", "csm_llr", "locked", "segment"):
        np.testing.assert_array_equal(getattr(cw2, f), getattr(cw, f))


def test_end_to_end_200ms_cloud(blocks):
    """Five codewords, a 200 ms cloud (no signal or background; dark counts continue; the transmitter
    keeps sending, 2635 codewords are lost), then the rest: loss reported only during the cloud,
    re-lock on the first codeword after it, every codeword received outside the cloud decoded."""
    u, x = blocks
    spc = CODE.slots_per_codeword
    cw_ps = spc * SLOT_PS
    gap_ps = 200e9
    n_lost = math.ceil(gap_ps / cw_ps)
    first_after = 5 + n_lost                                   # tx codeword index of u[5]
    cfg = TimeTagConfig(**LINK)
    segs = [(0, x[:5]), (first_after * spc, x[5:])]
    tags = simulate_time_tags(segs, NS, NB, np.random.default_rng(21), cfg)
    ns_d, nb_d = detected_means()
    slots, cw, s_rec, s_cs = receive_chain([tags.t_ps], ns_d, nb_d)
    kinds = [e.kind for e in slots.events]
    assert kinds == ["acquired", "loss_of_signal", "acquired"], kinds
    los = slots.events[1]
    t_end_sig = cfg.rx_time(5 * spc * SLOT_PS)                 # the cloud as the receiver sees it
    t_back = cfg.rx_time(first_after * spc * SLOT_PS)
    blk = 256 * P * SLOT_PS
    assert t_end_sig - blk / 16 <= los.t_start_ps <= t_end_sig + blk / 16
    assert t_back - 1e3 <= los.t_end_ps <= t_back + 20480e3 / 32
    assert s_rec.losses == 1 and s_rec.acquisitions == 2 and s_rec.slips == 0
    r = SCPPMReceiver(CODE, ns_d, nb_d, max_iter=20).receive(cw.counts)
    sent = match_rows(r.u_hat, u)
    ok = r.crc_ok
    # every codeword sent outside the cloud is decoded: the first of the record and the first
    # after the cloud too (tracking starts a few symbols before the signal's first photons)
    np.testing.assert_array_equal(sent[ok], np.arange(12))
    assert np.all(sent[~ok] == -1)                             # flywheel codewords in the cloud fail CRC
    assert not cw.locked[~ok].any()
    assert s_cs.resets == 1
    # chunked delivery (chunks ending inside the cloud too) gives the same codewords and events
    cuts = np.sort(np.random.default_rng(22).integers(0, len(tags), 200))
    slots2, cw2, _, _ = receive_chain(np.split(tags.t_ps, cuts), ns_d, nb_d)
    assert slots2.events == slots.events
    for f in ("counts", "sym_index", "csm_llr", "locked", "segment"):
        np.testing.assert_array_equal(getattr(cw2, f), getattr(cw, f))


@pytest.mark.parametrize("M", [4, 16, 64, 128])
def test_lock_scores_equal_csm_llr(M):
    """In LOCK the synchroniser scores every buffered codeword's CSM at once on its L symbols only:
    exactly the values csm_llr gives at those starts over the whole buffer."""
    from modem.sync.codeword_sync import _csm_llr_at
    code = SCPPMCode(M=M, rate="1/2")
    pat = code.csm_symbols
    rng = np.random.default_rng(M)
    y = rng.poisson(0.05, (3000, code.slots_per_symbol))
    y[np.arange(3000), rng.integers(0, M, 3000)] += rng.poisson(2.0, 3000)
    y = y.astype(np.uint16)
    w = math.log1p(NS / NB)
    full = csm_llr(y, pat, M, w)
    starts = np.array([0, 1, 17, 999, 2000, 3000 - pat.size])
    np.testing.assert_array_equal(_csm_llr_at(y, starts, pat, M, w), full[starts])


def test_two_period_lock_with_no_flywheel_terminates(blocks):
    """flywheel=0 and a first CSM erased: the two-period search locks on it, its own CSM misses;
    it is emitted (unlocked) instead of returning to SEARCH at the same place for ever."""
    u, x = blocks
    y = simulate_counts(x[:6], NS, NB, np.random.default_rng(4)).reshape(-1, P)
    y[:PER] = 0
    cs = CodewordSync(CodewordSyncConfig(CODE, NS, NB, flywheel=0))
    out, st = sync_all(cs, [as_slot_counts(y)])
    np.testing.assert_array_equal(out.sym_index, np.arange(6) * PER)
    np.testing.assert_array_equal(out.locked, [False, True, True, True, True, True])
    assert st.locks == 1 and st.lock_losses == 0 and st.flywheeled == 1


@pytest.mark.parametrize("flywheel", [0, 1, 2])
def test_search_flywheel_and_resets_chunked(blocks, flywheel):
    """Erased codewords (flywheel, two-period search), noise, a segment change: any chunking
    (symbols joined only once the state machine can move) gives the one-shot output."""
    u, x = blocks
    y = simulate_counts(x, NS, NB, np.random.default_rng(4)).reshape(-1, P)
    y[2 * PER:5 * PER] = 0
    y[8 * PER + 100:9 * PER] = np.random.default_rng(1).poisson(0.3, (PER - 100, P))
    seg = (np.arange(y.shape[0]) >= 10 * PER).astype(np.int32)
    cs = CodewordSync(CodewordSyncConfig(CODE, NS, NB, flywheel=flywheel))

    def parts(cuts):
        b = np.concatenate([[0], cuts, [y.shape[0]]])
        return [SlotCounts(y[a:c].astype(np.uint16), np.arange(a, c, dtype=np.int64), np.zeros(c - a), seg[a:c], [])
                for a, c in zip(b[:-1], b[1:])]

    ref, st_ref = sync_all(cs, parts(np.array([], np.int64)))
    assert st_ref.resets == 1 and st_ref.lock_losses >= 1 and len(ref) >= 9
    for n_cuts in (5, 60, 700):
        cuts = np.sort(np.random.default_rng(n_cuts).integers(0, y.shape[0], n_cuts))
        out, st = sync_all(cs, parts(cuts))
        for f in ("counts", "sym_index", "csm_llr", "locked", "segment"):
            np.testing.assert_array_equal(getattr(out, f), getattr(ref, f))
        assert (st.codewords, st.flywheeled, st.locks, st.lock_losses, st.buf_index) == \
            (st_ref.codewords, st_ref.flywheeled, st_ref.locks, st_ref.lock_losses, st_ref.buf_index)


def test_csm_llr_refuses_pattern_symbols_out_of_range():
    """R13: a symbol of -1 silently read slot M-1 (the same Lambda as a pattern of M-1); M gave a
    bare IndexError. Both now name the symbol and its position."""
    c = np.random.default_rng(0).poisson(0.3, (6, 16))
    with pytest.raises(ConfigError, match=r"pattern symbols must be in 0\.\.15, got -1 at position 0"):
        csm_llr(c, [-1, -1], 16, 0.5)
    with pytest.raises(ConfigError, match=r"got 16 at position 1"):
        csm_llr(c, [3, 16], 16, 0.5)
    assert csm_llr(c, [15, 15], 16, 0.5).shape == (5,)
