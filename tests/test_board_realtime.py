# SPDX-License-Identifier: Apache-2.0
"""Board emulator -> loopback TCP -> real-time receiver: exact frames, injected faults accounted,
malformed messages rejected and counted, backpressure drops accounted, GNU Radio raw streams,
status stream and Prometheus metrics."""
import time

import numpy as np
import pytest
import zmq

from modem.board.emulator import ArraySource, BoardEmulator, FaultPlan, SimulatedLink, capture_source
from modem.board.protocol import Flags, pack_message
from modem.board.realtime import RealtimeConfig, RealtimeReceiver, RealtimeStats, RingBuffer, SequenceTracker
from modem.errors import BackendUnavailable, ConfigError
from modem.offline import receiver_for

LINK = SimulatedLink(n_frames=36, seed=5)
PER_MSG = 4096


@pytest.fixture(scope="module")
def link():
    tags = LINK.tags()
    msgs = [tags[i:i + PER_MSG] for i in range(0, tags.size, PER_MSG)]
    return LINK.frames(), tags, msgs


def factory():
    return receiver_for(LINK.meta)


def _reference(msgs, lost=(), split_before=()):
    """What the chain decodes from the messages that arrived: one fresh receiver per run of
    contiguous messages (a run ends at every lost message and before every restart)."""
    out, run = [], []
    for i, m in enumerate(msgs):
        if i in lost or i in split_before:
            if run:
                rx = factory()
                out += rx.push(np.concatenate(run)) + rx.flush()
            run = []
        if i not in lost:
            run.append(m)
    rx = factory()
    out += rx.push(np.concatenate(run)) + rx.flush()
    return [(f.data, f.valid) for f in out]


def _stream(tags_or_source, faults=None, cfg=None, publish=None, **kw):
    src = ArraySource(tags_or_source) if isinstance(tags_or_source, np.ndarray) else tags_or_source
    emu = BoardEmulator(src, "tcp://127.0.0.1:*", items_per_message=PER_MSG, faults=faults)
    rx = RealtimeReceiver(board=emu.data_endpoint, decoder_factory=factory, config=cfg or RealtimeConfig(batch_items=20000),
                          publish=publish, **kw)
    return emu, rx


def _run(emu, rx, timeout=60):
    rx.start()
    res = emu.run()
    assert rx.wait_eos(timeout), "end of stream not reached"
    rx.stop()
    emu.close()
    return res


def test_emulator_streams_capture_to_receiver_every_frame_exact(link, tmp_path):
    """The emulator streams a capture file (HDF5 time tags + link parameters) over loopback TCP."""
    from modem.io import write_timetags_hdf5
    frames, tags, msgs = link
    write_timetags_hdf5(tmp_path / "pass.h5", tags, np.zeros(tags.size, np.int16), LINK.meta)
    src = capture_source(tmp_path / "pass.h5")
    assert src.meta["M"] == LINK.order and src.kind == 1
    out = tmp_path / "rx"
    emu, rx = _stream(src, out_dir=out, publish="tcp://127.0.0.1:*",
                      cfg=RealtimeConfig(batch_items=20000, status_interval_s=0.05))
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(rx.publish_endpoint)
    rx.start()
    assert sub.poll(5000) and sub.recv_multipart()[0] == b"status"      # subscribed before the stream starts
    emu.run()
    assert rx.wait_eos(60)
    rx.stop()
    emu.close()
    got = [(f.data, f.valid) for f in rx.frames]
    assert got == _reference(msgs)                       # identical to the offline chain on the same tags
    sent = {f: i for i, f in enumerate(frames)}
    idx = [sent[d] for d, v in got]
    assert all(v for _, v in got)
    # the first frames go to the initial acquisition (slot clock, codeword sync, two frame-sync
    # check markers, as in test_receiver); from there every frame arrives, bit-exact, in order
    assert idx == list(range(idx[0], len(frames) - (len(frames) - 1 - idx[-1])))
    assert idx[0] <= 3 and idx[-1] >= len(frames) - 2
    st = rx.status()
    assert st["lost_messages"] == st["gaps"] == st["duplicates"] == st["resyncs"] == st["rejected_total"] == 0
    assert st["messages"] == len(msgs) + 1 and st["frames_valid"] == len(got) and st["fer"] == 0.0
    assert st["decoded_items"] == tags.size and st["packets"] > 10 and st["backend"] == "cpu"
    # files: good frames back to back; packets; every frame in the JSON lines
    assert (out / "frames.bin").read_bytes() == b"".join(d for d, _ in got)
    assert len((out / "frames.jsonl").read_text().splitlines()) == len(got)
    assert (out / "packets.bin").read_bytes() == b"".join(rx.packets)
    # the PUB stream carried every good frame and packet, in order
    pub_frames, pub_packets = [], []
    while sub.poll(200):
        m = sub.recv_multipart()
        if m[0] == b"frame":
            pub_frames.append(m[2])
        elif m[0] == b"packet":
            pub_packets.append(m[2])
    sub.close()
    assert pub_frames == [d for d, _ in got] and pub_packets == rx.packets
    # Prometheus metrics from the receiver's own registry
    from prometheus_client import generate_latest
    text = generate_latest(rx.metrics_registry()).decode()
    assert f'modem_rx_frames_total{{valid="true"}} {float(len(got))}' in text
    assert "modem_rx_lost_messages_total 0.0" in text and 'modem_rx_rejected_total{reason="bad_magic"} 0.0' in text


def test_injected_faults_lose_exactly_the_dropped_data(link):
    """Drops, an overflow, a restart, duplicates and reordering: the counters match the injection
    and the frames out are exactly those the chain decodes from the data that was not dropped."""
    frames, tags, msgs = link
    faults = FaultPlan(drop={14, 15, 60}, overflow={33}, restart={47}, duplicate={5, 25, 70}, reorder={9, 40, 66})
    emu, rx = _stream(tags, faults)
    _run(emu, rx)
    lost = {14, 15, 60, 33}
    log = sorted((k, n) for k, n, _ in emu.log)
    assert log == sorted([("drop", 14), ("drop", 15), ("drop", 60), ("overflow", 33), ("restart", 47),
                          ("duplicate", 5), ("duplicate", 25), ("duplicate", 70), ("reorder", 9), ("reorder", 40),
                          ("reorder", 66)])
    s = rx.stats
    assert (s.gaps, s.lost_messages) == (2, 3)           # seq gaps 14..15 and 60 (the restart renumbers)
    assert (s.overflows, s.restarts, s.duplicates, s.reordered, s.late) == (1, 1, 3, 3, 0)
    assert s.resyncs == 4 and sum(s.rejected.values()) == 0 and s.backpressure_chunks == 0
    assert s.items == sum(m.size for i, m in enumerate(msgs) if i not in lost)
    kinds = [(e["kind"], e.get("first_seq"), e.get("last_seq")) for e in rx.events]
    assert kinds == [("seq_gap", 14, 15), ("overflow", None, None), ("restart", None, None),
                     ("seq_gap", 60 - 47, 60 - 47), ("eos", None, None)]
    gap = rx.events[0]
    assert gap["before"] == int(msgs[13][-1]) and gap["after"] == int(msgs[16][0])   # logged with its span
    got = [(f.data, f.valid) for f in rx.frames]
    assert got == _reference(msgs, lost, split_before={47})
    # and the frames lost are only those near the dropped data / re-acquisitions
    sent = {f: i for i, f in enumerate(frames)}
    got_idx = {sent[d] for d, v in got if v}
    assert all(d in sent for d, v in got if v)
    cw_ps = LINK.code.slots_per_codeword * LINK.slot_ps
    bits = 32 + LINK.spec.n_bits
    zones = [(0.0, 0.0)] + [(float(msgs[i][0] - tags[0]), float(msgs[i][-1] - tags[0])) for i in sorted(lost | {47})]

    def near(i):
        t0 = i * bits / LINK.code.k * cw_ps
        t1 = (i + 1) * bits / LINK.code.k * cw_ps
        return any(t1 > a - cw_ps and t0 < b + 5 * cw_ps for a, b in zones)
    lost_frames = set(range(len(frames) - 1)) - got_idx
    assert lost_frames and all(near(i) for i in lost_frames), sorted(lost_frames)
    assert len(got_idx) >= len(frames) // 3


def test_malformed_messages_rejected_and_counted_without_stopping(link):
    frames, tags, msgs = link
    ctx = zmq.Context.instance()
    push = ctx.socket(zmq.PUSH)
    ep = push.bind_to_random_port("tcp://127.0.0.1")
    rx = RealtimeReceiver(board=f"tcp://127.0.0.1:{ep}", decoder_factory=factory,
                          config=RealtimeConfig(batch_items=20000, max_payload_len=64 << 10)).start()
    rng = np.random.default_rng(3)
    good = [pack_message(m, seq=i) for i, m in enumerate(msgs)]
    bad_magic = [b"XXXX" + good[0][0][4:], good[0][1]]
    ver = bytearray(good[0][0])
    ver[4] = 9
    big = pack_message(np.zeros(10000, np.int64), seq=3)               # 80 kB > the 64 kB limit
    bad = {"short_header": [good[1][0][:20], good[1][1]], "bad_magic": bad_magic, "bad_version": [bytes(ver), good[0][1]],
           "oversize": big, "parts": [rng.bytes(300)], "crc": [good[2][0], rng.bytes(len(good[2][1]))]}
    n = 0
    for i, g in enumerate(good):
        if i % 7 == 3:                                 # a burst of every kind of junk between good messages
            for parts in bad.values():
                push.send_multipart(parts)
                n += 1
            push.send_multipart([rng.bytes(64), rng.bytes(128)])        # garbage of the right part count
        push.send_multipart(g)
    push.send_multipart(pack_message(np.zeros(0, np.int64), seq=len(good), flags=Flags.END_OF_STREAM))
    assert rx.wait_eos(60)
    rx.stop()
    push.close()
    s = rx.stats
    k = sum(1 for i in range(len(good)) if i % 7 == 3)
    for reason in bad:
        assert s.rejected[reason] == (2 * k if reason == "bad_magic" else k), (reason, s.rejected)
    assert sum(s.rejected.values()) == 7 * k                      # random 64-octet headers: bad magic
    assert s.gaps == s.resyncs == s.duplicates == 0
    assert [(f.data, f.valid) for f in rx.frames] == _reference(msgs)


class SlowRecorder:
    """A decoder that is slower than the stream (records what it was given, decodes nothing)."""

    def __init__(self):
        self.got = []

    def push(self, items):
        time.sleep(0.01)
        self.got.append(np.array(items))
        return []

    def flush(self):
        return []


def test_backpressure_drops_whole_chunks_with_accounting():
    data = np.arange(120 * 512, dtype=np.int64) * 10
    msgs = [data[i:i + 512] for i in range(0, data.size, 512)]
    emu = BoardEmulator(ArraySource(data), "tcp://127.0.0.1:*", items_per_message=512)
    dec = SlowRecorder()
    rx = RealtimeReceiver(board=emu.data_endpoint, decoder_factory=lambda: dec,
                          config=RealtimeConfig(ring_messages=4, batch_items=512))
    _run(emu, rx)
    s = rx.stats
    assert s.backpressure_chunks > 0 and s.backlog_max_messages == 4
    assert s.items + s.backpressure_items == data.size and s.decoded_items == s.items
    dropped = set()
    for e in rx.events:
        if e["kind"] == "backpressure":
            dropped |= set(range(e["first_seq"], e["last_seq"] + 1))
    assert len(dropped) == s.backpressure_chunks
    assert s.resyncs == sum(e["kind"] == "backpressure" for e in rx.events)
    np.testing.assert_array_equal(np.concatenate(dec.got), np.concatenate([m for i, m in enumerate(msgs) if i not in dropped]))
    assert rx.status()["dropped_messages"] == s.backpressure_chunks


def test_gnuradio_raw_float32_push_stream(tmp_path):
    """A plain PUSH socket sending raw float32 (what GNU Radio's ZMQ PUSH sink sends) feeds the
    receiver; without a decoder it records the stream exactly."""
    ctx = zmq.Context.instance()
    push = ctx.socket(zmq.PUSH)
    port = push.bind_to_random_port("tcp://127.0.0.1")
    rx = RealtimeReceiver(gnuradio=f"tcp://127.0.0.1:{port}", out_dir=tmp_path, gnuradio_rate=1e6).start()
    rng = np.random.default_rng(7)
    parts = [rng.normal(size=int(rng.integers(1, 5000))).astype(np.float32) for _ in range(60)]
    for p in parts:
        push.send(p.tobytes())
    push.send(b"\0\0\0")                                             # not whole float32 items: rejected
    total = sum(p.size for p in parts)
    t_end = time.monotonic() + 20
    while rx.stats.decoded_items < total and time.monotonic() < t_end:
        time.sleep(0.01)
    rx.stop()
    push.close()
    assert rx.stats.rejected["length_mismatch"] == 1 and rx.stats.messages == 60
    rec = np.fromfile(tmp_path / "stream.f32", dtype=np.float32)
    np.testing.assert_array_equal(rec, np.concatenate(parts))
    assert rx.status()["kind"] == "samples" and abs(rx.stats.stream_time_s - total / 1e6) < 1e-9


def test_gnuradio_flowgraph_feeds_receiver(tmp_path):
    gr = pytest.importorskip("gnuradio.gr", reason="GNU Radio not installed")
    from gnuradio import blocks, zeromq
    data = np.random.default_rng(2).normal(size=20000).astype(np.float32)
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.PULL)
    port = s.bind_to_random_port("tcp://127.0.0.1")
    s.close()
    tb = gr.top_block()
    src = blocks.vector_source_f(data.tolist(), False)
    sink = zeromq.push_sink(gr.sizeof_float, 1, f"tcp://127.0.0.1:{port}", 100, False, -1)
    tb.connect(src, sink)
    rx = RealtimeReceiver(gnuradio=f"tcp://127.0.0.1:{port}", out_dir=tmp_path).start()
    tb.start()
    t_end = time.monotonic() + 20
    while rx.stats.decoded_items < data.size and time.monotonic() < t_end:
        time.sleep(0.01)
    tb.stop()
    tb.wait()
    rx.stop()
    np.testing.assert_array_equal(np.fromfile(tmp_path / "stream.f32", dtype=np.float32), data)


# ------------------------------------------------------------------------------------------------
def _h(seq, flags=0, n=4):
    return pack_message(np.arange(n, dtype=np.int64) + 100 * seq, seq=seq, flags=flags)


def _track(seqs, window=4):
    from modem.board.protocol import parse_message
    st = RealtimeStats()
    tr = SequenceTracker(window, 1.0, st)
    out = []
    for s in seqs:
        flags = 0
        if isinstance(s, tuple):
            s, flags = s
        h, items = parse_message(_h(s, flags))
        out += tr.push(h, items, 0.0)
    out += tr.drain()
    return [(e[0], e[1].seq) if e[0] == "data" else (e[0], e[1].get("first_seq"), e[1].get("last_seq"))
            for e in out], st


def test_sequence_tracker_orders_dedups_and_counts():
    out, st = _track([0, 1, 3, 2, 2, 4, 1, 7, 8, 6, 12, 13, 14, 15, 16, 17])
    data = [e[1] for e in out if e[0] == "data"]
    assert data == [0, 1, 2, 3, 4, 6, 7, 8, 12, 13, 14, 15, 16, 17]
    gaps = [e[1:] for e in out if e[0] == "gap"]
    assert gaps == [(5, 5), (9, 11)]
    # 2 arrived after 3, 6 after 7 and 8 (but before gap 5 was declared): both put back in order
    assert (st.gaps, st.lost_messages, st.duplicates, st.reordered) == (2, 4, 2, 2)
    out, st = _track([0, 2, 3, 4, 5, 6, 1])                        # 1 arrives after the window gave up
    assert [e for e in out if e[0] == "gap"] == [("gap", 1, 1)] and st.late == 1
    out, st = _track([0, 1, 2, (0, Flags.RESTART), 1, 2])
    assert [e[0] for e in out] == ["data"] * 3 + ["restart"] + ["data"] * 3 and st.restarts == 1
    out, st = _track([5, 6, (8, Flags.OVERFLOW), 7])
    assert [e[0] for e in out] == ["data", "data", "data", "overflow", "data"] and st.overflows == 1
    assert st.gaps == 0


def test_ring_buffer_bounds_and_batches():
    from modem.board.protocol import parse_message
    rb = RingBuffer(max_messages=3, max_bytes=10**6)
    hs = [parse_message(_h(i, n=10)) for i in range(5)]
    assert all(rb.put_data(*hs[i]) for i in range(3)) and not rb.put_data(*hs[3])
    rb.mark_dropped(hs[3][0], 0)
    e = rb.get(25, 0.1)
    assert e[0] == "batch" and [h.seq for h, _ in e[1]] == [0, 1]         # up to 25 items: 2 messages
    assert rb.put_data(*hs[4])
    assert [h.seq for h, _ in rb.get(100, 0.1)[1]] == [2]
    e = rb.get(100, 0.1)
    assert e[0] == "backpressure" and (e[1]["first_seq"], e[1]["n"], e[1]["items"]) == (3, 1, 10)
    assert [h.seq for h, _ in rb.get(100, 0.1)[1]] == [4] and rb.get(100, 0.01) is None


def test_receiver_arguments_checked(monkeypatch):
    monkeypatch.setenv("MODEM_BACKEND", "gpu")         # a decoder on the CPU is not run silently
    with pytest.raises(BackendUnavailable, match="decoder runs on the CPU"):
        RealtimeReceiver(board="tcp://127.0.0.1:5", decoder_factory=factory)
    monkeypatch.delenv("MODEM_BACKEND")
    with pytest.raises(ConfigError, match="exactly one"):
        RealtimeReceiver()
    with pytest.raises(ConfigError, match="ring_messages must be an int >= 1, got 0"):
        RealtimeConfig(ring_messages=0)
    with pytest.raises(ConfigError, match="refusing to bind tcp://0.0.0.0:7"):
        RealtimeReceiver(board="tcp://127.0.0.1:5", publish="tcp://0.0.0.0:7")
    with pytest.raises(ConfigError, match="restart must be at message >= 1"):
        FaultPlan(restart={0})


def test_gnuradio_apd_samples_decoded_to_frames():
    """Raw float32 APD samples (as a GNU Radio flowgraph's ZMQ PUSH sink would send them) feed the
    sample receiver built from the link parameters: every frame is decoded, equal to offline."""
    sr = pytest.importorskip("modem.sample_receiver")
    link = sr.SCPPMAPDLink(ns=8.0)
    frames = sr.random_tm_frames(link.spec, 6, seed=1)
    y = sr.scppm_apd_transmit(frames, link, np.random.default_rng(2), lead_slots=200).astype(np.float32)
    meta = link.to_dict()
    push = zmq.Context.instance().socket(zmq.PUSH)
    port = push.bind_to_random_port("tcp://127.0.0.1")
    rx = RealtimeReceiver(gnuradio=f"tcp://127.0.0.1:{port}", decoder_factory=lambda: receiver_for(meta),
                          gnuradio_rate=link.sample_rate_hz, config=RealtimeConfig(batch_items=1 << 16)).start()
    for i in range(0, y.size, 8192):
        push.send(y[i:i + 8192].tobytes())
    t_end = time.monotonic() + 60
    while rx.stats.decoded_items < y.size and time.monotonic() < t_end:
        time.sleep(0.01)
    rx.stop()                                          # flushes the decoder
    push.close()
    assert [f.data for f in rx.frames] == frames and all(f.valid for f in rx.frames)
    assert rx.stats.frames_valid == 6 and rx.stats.frames_bad == 0 and rx.status()["kind"] == "samples"


def test_out_dir_of_an_earlier_run_is_refused_unless_appending(tmp_path):
    """A second run into the same --out would mix two runs' frames, packets and events under one
    stats.json: it is refused naming the files, and --append adds the run to them explicitly."""
    ctx = zmq.Context.instance()
    push = ctx.socket(zmq.PUSH)
    port = push.bind_to_random_port("tcp://127.0.0.1")

    def run(data, **kw):
        rx = RealtimeReceiver(gnuradio=f"tcp://127.0.0.1:{port}", out_dir=tmp_path, **kw).start()
        push.send(data.tobytes())
        t_end = time.monotonic() + 20
        while rx.stats.decoded_items < data.size and time.monotonic() < t_end:
            time.sleep(0.01)
        rx.stop()

    a, b = np.arange(100, dtype=np.float32), -np.arange(50, dtype=np.float32)
    run(a)
    with pytest.raises(ConfigError, match=r"already holds a run's output \(stats.json, stream.f32\).*--append"):
        RealtimeReceiver(gnuradio=f"tcp://127.0.0.1:{port}", out_dir=tmp_path)
    np.testing.assert_array_equal(np.fromfile(tmp_path / "stream.f32", np.float32), a)   # untouched
    run(b, append=True)
    push.close()
    np.testing.assert_array_equal(np.fromfile(tmp_path / "stream.f32", np.float32), np.concatenate([a, b]))
