# SPDX-License-Identifier: Apache-2.0
"""Real-time receiver edge cases found in review: nothing received is lost silently at stop, a
decoder exception does not kill the decode thread, gap spans are right for long time-tag messages,
dropped / rejected data always put a marker in stream order, restarts are accounted exactly.
Sockets bind loopback on free ports."""
import threading
import time

import numpy as np
import pytest
import zmq

from modem.board.emulator import ArraySource, BoardEmulator, FaultPlan
from modem.board.protocol import Flags, pack_message, parse_message
from modem.board.realtime import RealtimeConfig, RealtimeReceiver, RealtimeStats, RingBuffer, SequenceTracker
from modem.errors import ConfigError

N = 16                                           # items per test message


def _msg(seq, flags=0, n=N, step=10):
    return pack_message(np.arange(n, dtype=np.int64) * step + 1000 * seq, seq=seq, flags=flags)


def _push():
    push = zmq.Context.instance().socket(zmq.PUSH)
    push.linger = 1000
    port = push.bind_to_random_port("tcp://127.0.0.1")
    return push, f"tcp://127.0.0.1:{port}"


def _wait(cond, timeout=10.0):
    t_end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > t_end:
            raise AssertionError("condition not reached")
        time.sleep(0.005)


class Recorder:
    """A decoder that records the batches it was given (optionally blocking or failing on one)."""

    def __init__(self, fail_on=None, gate=None):
        self.got, self.fail_on, self.gate = [], fail_on, gate
        self.entered = threading.Event()
        self.resets = 0

    def push(self, items):
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        a = np.array(items)
        if self.fail_on is not None and self.fail_on in a:
            raise RuntimeError(f"decoder bug on item {self.fail_on}")
        self.got.append(a)
        return []

    def flush(self):
        return []

    def reset(self):
        self.resets += 1


def test_stop_delivers_messages_held_for_reordering():
    """Messages held in the reorder window (waiting for a seq that never comes) are decoded at
    stop, behind a declared gap, instead of vanishing after being counted as received."""
    push, ep = _push()
    dec = Recorder()
    rx = RealtimeReceiver(board=ep, decoder_factory=lambda: dec,
                          config=RealtimeConfig(reorder_window=8, reorder_timeout_s=60.0, batch_items=N)).start()
    for s in (0, 2, 3):
        push.send_multipart(_msg(s))
    _wait(lambda: rx.stats.messages == 3)
    rx.stop()
    push.close()
    s = rx.stats
    assert (s.gaps, s.lost_messages) == (1, 1)
    assert s.items == s.decoded_items == 3 * N
    np.testing.assert_array_equal(np.concatenate(dec.got),
                                  np.concatenate([np.arange(N) * 10 + 1000 * q for q in (0, 2, 3)]))
    assert [e["kind"] for e in rx.events] == ["seq_gap"]


def test_stop_waits_for_the_ingest_thread_before_the_decoder_ends():
    """A message the ingest thread is still handling when stop() is called is decoded (the decode
    thread used to end as soon as the ring was empty, and the last message went nowhere)."""
    push, ep = _push()
    dec = Recorder()
    rx = RealtimeReceiver(board=ep, decoder_factory=lambda: dec, config=RealtimeConfig(batch_items=N))
    orig, entered = rx.tracker.push, threading.Event()

    def slow_push(h, items, now):                 # a slow ingest step (a large message being checked)
        entered.set()
        time.sleep(0.3)
        return orig(h, items, now)
    rx.tracker.push = slow_push
    rx.start()
    push.send_multipart(_msg(0))
    assert entered.wait(10)
    rx.stop()
    push.close()
    assert rx.stats.items == rx.stats.decoded_items == N
    assert sum(a.size for a in dec.got) == N


def test_backpressure_drop_at_the_end_still_logged():
    """Chunks dropped because the ring was full just before stop give their backpressure event."""
    push, ep = _push()
    gate = threading.Event()
    dec = Recorder(gate=gate)
    rx = RealtimeReceiver(board=ep, decoder_factory=lambda: dec,
                          config=RealtimeConfig(ring_messages=1, batch_items=N)).start()
    push.send_multipart(_msg(0))
    assert dec.entered.wait(10)                   # the decoder holds message 0
    push.send_multipart(_msg(1))
    _wait(lambda: rx.stats.items == 2 * N)        # message 1 fills the ring
    push.send_multipart(_msg(2))
    _wait(lambda: rx.stats.backpressure_chunks == 1)
    gate.set()
    rx.stop()
    push.close()
    bp = [e for e in rx.events if e["kind"] == "backpressure"]
    assert len(bp) == 1 and (bp[0]["first_seq"], bp[0]["last_seq"], bp[0]["items"]) == (2, 2, N)
    assert rx.stats.resyncs == 1


def test_decoder_exception_is_counted_and_the_stream_goes_on():
    """A decoder that raises on one batch loses that batch (counted, logged as an event) and is
    reset; the decode thread keeps decoding the rest of the stream up to the end of stream."""
    push, ep = _push()
    dec = Recorder(fail_on=1000 * 2 + 30)         # an item of message 2
    rx = RealtimeReceiver(board=ep, decoder_factory=lambda: dec, config=RealtimeConfig(batch_items=N)).start()
    for s in range(5):
        push.send_multipart(_msg(s))
    push.send_multipart(pack_message(np.zeros(0, np.int64), seq=5, flags=Flags.END_OF_STREAM))
    assert rx.wait_eos(10), "decode thread died on the decoder exception"
    rx.stop()
    push.close()
    s = rx.stats
    assert s.decode_errors == 1 and s.decode_error_items == N
    assert [int(a[0]) for a in dec.got] == [0, 1000, 3000, 4000]
    err = [e for e in rx.events if e["kind"] == "decode_error"]
    assert len(err) == 1 and "decoder bug on item 2030" in err[0]["error"] and err[0]["first_seq"] == 2
    assert rx.status()["decode_errors"] == 1


def _track(msgs, window=4):
    st = RealtimeStats()
    tr = SequenceTracker(window, 1.0, st)
    out = []
    for parts in msgs:
        out += tr.push(*parse_message(parts), 0.0)
    return out + tr.drain(), st


def test_gap_span_uses_the_last_tag_when_the_span_field_saturates():
    """span is u32 (saturating): a message of tags longer than 2**32 ticks (4.3 ms in ps, e.g.
    4096 tags at 100 kcounts/s) must not put the gap's 'before' at first + 2**32 - 1."""
    step = 10_000_000                             # 10 us between tags: 1000 tags span 10 ms = 1e10 ticks
    msgs = [pack_message(np.arange(1000, dtype=np.int64) * step + s * 1000 * step, seq=s) for s in (0, 2)]
    assert parse_message(msgs[0])[0].span == 0xFFFFFFFF            # saturated on the wire
    out, st = _track(msgs)
    gap = [e[1] for e in out if e[0] == "gap"]
    assert len(gap) == 1 and gap[0]["before"] == 999 * step and gap[0]["after"] == 2000 * step


def test_restart_with_its_first_message_lost_counts_the_loss():
    """A RESTART carried by seq 3 means seqs 0..2 of the new run never arrived: a gap, counted."""
    out, st = _track([_msg(0), _msg(1), _msg(2), _msg(3, Flags.RESTART), _msg(4)])
    kinds = [(e[0], e[1].get("first_seq"), e[1].get("last_seq")) if e[0] != "data" else ("data", e[1].seq)
             for e in out]
    assert kinds == [("data", 0), ("data", 1), ("data", 2), ("restart", None, None), ("gap", 0, 2),
                     ("data", 3), ("data", 4)]
    assert (st.restarts, st.gaps, st.lost_messages) == (1, 1, 3)


def test_emulator_drop_at_a_restart_is_accounted():
    data = np.arange(8 * 64, dtype=np.int64) * 10
    emu = BoardEmulator(ArraySource(data), "tcp://127.0.0.1:*", items_per_message=64,
                        faults=FaultPlan(restart={4}, drop={4}))
    rx = RealtimeReceiver(board=emu.data_endpoint, decoder_factory=Recorder,
                          config=RealtimeConfig(batch_items=64)).start()
    emu.run()
    assert rx.wait_eos(10)
    rx.stop()
    emu.close()
    assert [k for k, _, _ in emu.log] == ["restart", "drop"]
    s = rx.stats
    assert (s.restarts, s.gaps, s.lost_messages) == (1, 1, 1)
    assert s.items + 64 == data.size


def test_backpressure_marker_names_where_the_stream_resumes():
    rb = RingBuffer(max_messages=1, max_bytes=10**6)
    hs = [parse_message(_msg(i)) for i in range(3)]
    assert rb.put_data(*hs[0]) and not rb.put_data(*hs[1])
    rb.mark_dropped(hs[1][0], hs[1][0].first)
    assert rb.get(100, 0.1)[0] == "batch" and rb.put_data(*hs[2])
    e = rb.get(100, 0.1)
    assert e[0] == "backpressure" and (e[1]["before"], e[1]["after"]) == (1000, 2000)


def test_gnuradio_rejected_message_resyncs_the_decoder():
    """A raw (GNU Radio) message that is rejected leaves a hole in the sample stream: the decoder
    is reset there and the event logged, as for a sequence gap."""
    push, ep = _push()
    dec = Recorder()
    rx = RealtimeReceiver(gnuradio=ep, decoder_factory=lambda: dec, config=RealtimeConfig(batch_items=100)).start()
    a, b = np.arange(100, dtype=np.float32), np.arange(100, 200, dtype=np.float32)
    push.send(a.tobytes())
    _wait(lambda: rx.stats.decoded_items == 100)
    push.send(b"\0\0\0")                          # not whole float32 items: rejected
    push.send(b.tobytes())
    _wait(lambda: rx.stats.decoded_items == 200)
    rx.stop()
    push.close()
    assert rx.stats.rejected["length_mismatch"] == 1 and rx.stats.resyncs == 1
    ev = [e for e in rx.events if e["kind"] == "rejected"]
    assert len(ev) == 1 and ev[0]["reason"] == "length_mismatch" and ev[0]["before"] == 100


def test_ring_smaller_than_a_valid_message_refused():
    with pytest.raises(ConfigError, match="ring_bytes 1000 < max_payload_len 4096"):
        RealtimeConfig(ring_bytes=1000, max_payload_len=4096)
    RealtimeConfig(ring_bytes=4096, max_payload_len=4096)           # exactly one message fits


def test_duplicated_restart_message_is_a_duplicate_not_a_second_restart():
    """A duplicate of the RESTART message (seq 0 again, same header) must not restart the run a
    second time and deliver its data twice."""
    out, st = _track([_msg(0), _msg(1), _msg(2), _msg(0, Flags.RESTART), _msg(0, Flags.RESTART), _msg(1)])
    assert [e[1].seq for e in out if e[0] == "data"] == [0, 1, 2, 0, 1]
    assert (st.restarts, st.duplicates, st.gaps) == (1, 1, 0)


def test_tags_going_back_across_messages_resync_instead_of_losing_the_batch():
    """Tags must be non-decreasing across messages too; a message starting before the end of the
    previous one (time base reset without RESTART) is a marked discontinuity: the decoder is reset
    there (a ``time_jump`` event) rather than fed a decreasing batch (the slot clock raises on it)."""
    from modem.board.emulator import SimulatedLink
    from modem.offline import receiver_for
    meta = SimulatedLink(n_frames=2).meta
    push, ep = _push()
    rx = RealtimeReceiver(board=ep, decoder_factory=lambda: receiver_for(meta),
                          config=RealtimeConfig(batch_items=4 * N)).start()
    base = [0, 1, 2, 0, 1]                       # the time base goes back at message 3
    for s, b in enumerate(base):
        push.send_multipart(pack_message(np.arange(N, dtype=np.int64) * 1000 + b * N * 1000 + 10**6, seq=s))
    push.send_multipart(pack_message(np.zeros(0, np.int64), seq=len(base), flags=Flags.END_OF_STREAM))
    assert rx.wait_eos(20)
    rx.stop()
    push.close()
    s = rx.stats
    assert s.decode_errors == 0 and s.decoded_items == len(base) * N and s.time_jumps == 1
    ev = [e for e in rx.events if e["kind"] == "time_jump"]
    assert len(ev) == 1 and ev[0]["seq"] == 3 and ev[0]["before"] == 10**6 + 3 * N * 1000 - 1000
    assert ev[0]["after"] == 10**6


def _emulate(faults, n_msgs=8, per=64, dtype=np.int64, **kw):
    data = (np.arange(n_msgs * per) * 10).astype(dtype)
    emu = BoardEmulator(ArraySource(data), "tcp://127.0.0.1:*", items_per_message=per, faults=faults, **kw)
    rx = RealtimeReceiver(board=emu.data_endpoint, decoder_factory=Recorder,
                          config=RealtimeConfig(batch_items=per)).start()
    emu.run()
    assert rx.wait_eos(10)
    rx.stop()
    emu.close()
    return emu, rx


def test_emulator_logs_only_reorders_it_made():
    """A reorder asked for on the last message cannot happen (no next message to swap with): the
    message goes out in order, and the log must not claim a reorder the receiver never saw."""
    emu, rx = _emulate(FaultPlan(reorder={3, 7}))
    assert [(k, n) for k, n, _ in emu.log] == [("reorder", 3)]
    assert rx.stats.reordered == 1 and rx.stats.lost_messages == 0


def _through_a_full_queue(n_msgs: int, faults, name: str):
    """An emulator sending ``n_msgs`` messages of 64 tags with a send queue of 1 to a reader that
    lets it fill (rate_factor > 0: a full queue loses messages); returns the (seq, first tag)
    of each message received, in order, and the emulator's log."""
    ctx = zmq.Context()
    per = 64
    data = np.arange(n_msgs * per, dtype=np.int64) * 10
    emu = BoardEmulator(ArraySource(data), f"inproc://{name}", items_per_message=per, rate_factor=1e6,
                        sndhwm=1, faults=faults, context=ctx)
    pull = ctx.socket(zmq.PULL)
    pull.rcvhwm = 1
    pull.connect(f"inproc://{name}")
    t = threading.Thread(target=emu.run, daemon=True)
    t.start()
    time.sleep(0.5)                               # the emulator fills the queue, then blocks on its end of stream
    got = []
    while True:
        h, items = parse_message(pull.recv_multipart())
        if h.flags & Flags.END_OF_STREAM:
            break
        got.append((h.seq, int(items[0]) // (per * 10)))
    t.join(10)
    pull.close()
    emu.close()
    ctx.term()
    return got, emu.log


def test_emulator_held_message_lost_to_a_full_queue_is_logged():
    """rate_factor > 0: a full send queue loses messages (logged as overflows). A message held for
    a reorder that then cannot be sent either must be logged as lost too, not as reordered."""
    got, log = _through_a_full_queue(8, FaultPlan(reorder={2}), "review-held")
    got = [m for _, m in got]
    lost = sorted(n for k, n, _ in log if k in ("drop", "overflow"))
    assert sorted(got + lost) == list(range(8)) and not set(got) & set(lost), (got, log)
    reordered = {n for k, n, _ in log if k == "reorder"}
    assert all(any(g > n for g in got[:got.index(n)]) for n in reordered), (got, log)


def test_status_reports_the_running_decoders_counters():
    """status()["decoder"] during a pass without gaps: the decoder's counters so far (they used to
    appear only after a resync, i.e. never during a clean pass), and no double count after one."""
    from modem.receiver import ReceiverStats

    class Counting(Recorder):
        def __init__(self):
            super().__init__()
            self.stats = ReceiverStats()

        def push(self, items):
            self.stats.tags += len(items)
            return super().push(items)

        def reset(self):
            self.stats = ReceiverStats()

    push, ep = _push()
    rx = RealtimeReceiver(board=ep, decoder_factory=Counting, config=RealtimeConfig(batch_items=N)).start()
    for s in range(3):
        push.send_multipart(_msg(s))
    _wait(lambda: rx.stats.decoded_items == 3 * N)
    assert rx.status()["decoder"]["tags"] == 3 * N
    push.send_multipart(_msg(5))                                    # a gap: resync, counters carried over
    push.send_multipart(pack_message(np.zeros(0, np.int64), seq=6, flags=Flags.END_OF_STREAM))
    assert rx.wait_eos(10)
    assert rx.status()["decoder"]["tags"] == 4 * N
    rx.stop()
    push.close()
    assert rx.status()["decoder"]["tags"] == 4 * N


def test_gap_still_logged_when_the_decoder_flush_raises():
    class BadFlush(Recorder):
        def flush(self):
            raise ValueError("flush failed")

    push, ep = _push()
    rx = RealtimeReceiver(board=ep, decoder_factory=BadFlush,
                          config=RealtimeConfig(batch_items=N, reorder_window=0)).start()
    for s in (0, 2):
        push.send_multipart(_msg(s))
    push.send_multipart(pack_message(np.zeros(0, np.int64), seq=3, flags=Flags.END_OF_STREAM))
    assert rx.wait_eos(10)
    rx.stop()
    push.close()
    kinds = [e["kind"] for e in rx.events]
    assert kinds[:2] == ["seq_gap", "decode_error"] and rx.stats.resyncs == 1 and rx.stats.gaps == 1
    assert rx.stats.decode_errors == 3              # the flushes at the gap, at the end of stream, at stop


def _spy_receivers(monkeypatch) -> list:
    """Every RealtimeReceiver the CLI makes from now on, in a list (the class is patched)."""
    import modem.board.realtime as realtime
    made = []

    class Spy(realtime.RealtimeReceiver):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            made.append(self)
    monkeypatch.setattr(realtime, "RealtimeReceiver", Spy)
    return made


def test_cli_receiver_does_not_keep_every_frame_in_memory(tmp_path, monkeypatch, capsys):
    """``modem receive`` runs for whole passes (or days with --loop): frames and packets go to the
    files and the PUB socket, not into ever-growing lists in memory."""
    from modem.cli import main
    made = _spy_receivers(monkeypatch)
    data, ctl = f"ipc://{tmp_path}/data", f"ipc://{tmp_path}/ctl"
    th = threading.Thread(target=main, args=(["board", "emulate", "--source", "sim", "--frames", "6", "--rate", "0",
                                              "--endpoint", data, "--control", ctl, "--wait-start"],))
    th.start()
    out = tmp_path / "rx"
    assert main(["receive", "--board", data, "--control", ctl, "--out", str(out), "--until-eos", "--publish", "none",
                 "--quiet"]) == 0
    th.join(60)
    rx, = made
    assert rx.stats.frames_valid >= 2 and (out / "frames.bin").stat().st_size == rx.stats.frames_valid * 1115
    assert rx.frames == [] and rx.packets == [] and rx.stats.packets > 0


def test_no_space_packet_spliced_across_a_stream_gap():
    """At a stream gap the depacketizer must lose sync: the frames after it may continue the VC
    frame count modulo 256 (256 frames lost) and carry a matching FHP, and the packet in progress
    would be completed with another packet's tail and passed on as good."""
    from types import SimpleNamespace

    from modem.framing.packets import TMPacketizer, build_space_packet
    from modem.framing.tm import TMFrameSpec
    spec = TMFrameSpec(frame_len=1115, scid=0x42, vcid=1)
    D = spec.data_len
    pz = TMPacketizer(spec)
    frames, st = pz.push([build_space_packet(0x100, bytes([k % 256]) * (2 * D - 6), seq_count=k) for k in range(130)],
                         pz.initial_state())                    # packet k fills frames 2k and 2k+1

    class FrameSource(Recorder):                                # "decodes" item i into frame i
        def push(self, items):
            super().push(items)
            return [SimpleNamespace(data=frames[int(i)], valid=True) for i in items]

    push, ep = _push()
    rx = RealtimeReceiver(board=ep, decoder_factory=FrameSource, spec=spec,
                          config=RealtimeConfig(batch_items=N, reorder_window=0)).start()
    push.send_multipart(pack_message(np.array([0], np.int64), seq=0))       # first half of packet 0
    push.send_multipart(pack_message(np.array([257], np.int64), seq=2))     # (gap) second half of packet 128
    push.send_multipart(pack_message(np.zeros(0, np.int64), seq=3, flags=Flags.END_OF_STREAM))
    assert rx.wait_eos(10)
    rx.stop()
    push.close()
    assert rx.stats.gaps == 1 and rx.stats.frames_valid == 2
    assert rx.packets == [] and rx.stats.packets == 0
    dp = rx.status()["depacketizer"]                            # the half packet dropped, and reported
    assert dp["dropped_octets"] >= D and dp["packets"] == 0 and dp["frames"] == 2


def test_second_emulator_run_is_a_restart_not_duplicates(tmp_path):
    """A board (emulator) started again begins at seq 0: the protocol's firmware rule puts RESTART
    on the first message after a start, so a receiver that stays up decodes the second run instead
    of discarding all of it as duplicates of the first."""
    data = np.arange(6 * 64, dtype=np.int64) * 10
    ep = f"ipc://{tmp_path}/board"
    emu = BoardEmulator(ArraySource(data), ep, items_per_message=64)
    rx = RealtimeReceiver(board=ep, decoder_factory=Recorder, config=RealtimeConfig(batch_items=64)).start()
    emu.run()
    assert rx.wait_eos(10)
    emu.close()
    emu = BoardEmulator(ArraySource(data + data[-1] + 10), ep, items_per_message=64)
    emu.run()
    _wait(lambda: rx.stats.eos == 2)
    rx.stop()
    emu.close()
    s = rx.stats
    assert s.decoded_items == 2 * data.size and s.duplicates == 0 and s.late == 0
    assert s.restarts == 1 and s.gaps == 0
    assert [e["kind"] for e in rx.events] == ["eos", "restart", "eos"]


@pytest.mark.parametrize("req,match", [
    (b'{"cmd": "read", "names": [["items_per_message"]]}', "names"),
    (b'{"cmd": "read", "names": [{"a": 1}]}', "names"),
    (b"[" * 100000 + b"]" * 100000, "not JSON"),
])
def test_control_request_that_used_to_raise_gets_an_error_reply(req, match):
    """handle_request never raises (a REQ client without its reply is stuck and the emulator's
    serving loop would die): unhashable register names and absurdly nested JSON get error replies."""
    from modem.board.control import RegisterFile, handle_request
    rep = handle_request(RegisterFile(), req)
    assert rep["ok"] is False and match in rep["error"], rep


@pytest.mark.parametrize("rate", [0.0, -1e12, float("nan"), float("inf")])
def test_header_sample_rate_must_be_positive_and_finite(rate):
    """sample_rate is divided by for stream time and rates: a header with 0 (a firmware that leaves
    the field unset), a negative, NaN or infinite rate is malformed, rejected with its reason."""
    from modem.board.protocol import MessageError
    parts = pack_message(np.arange(4, dtype=np.int64), seq=0, sample_rate=rate)
    with pytest.raises(MessageError, match=f"sample_rate {rate}") as e:
        parse_message(parts)
    assert e.value.reason == "bad_rate"


def test_zero_rate_header_rejected_not_a_decode_error_per_batch():
    push, ep = _push()
    rx = RealtimeReceiver(board=ep, decoder_factory=Recorder, config=RealtimeConfig(batch_items=N)).start()
    push.send_multipart(pack_message(np.arange(N, dtype=np.int64), seq=0, sample_rate=0.0))
    push.send_multipart(_msg(1))
    _wait(lambda: rx.stats.decoded_items == N)
    rx.stop()
    push.close()
    assert rx.stats.rejected["bad_rate"] == 1 and rx.stats.decode_errors == 0


def test_time_tags_in_other_tick_units_reach_the_decoder_in_ps():
    """The header's sample_rate is the tick rate of the tags (1e12 = ps); the decoders take ps. A
    board with 10 ps ticks (1e11) must be decoded like the same tags in ps, not as 10x too fast."""
    from modem.board.emulator import SimulatedLink
    from modem.offline import receiver_for
    link = SimulatedLink(n_frames=8, seed=3)
    ticks = link.tags() // 10
    ref = receiver_for(link.meta)
    want = [(f.data, f.valid) for f in ref.push(ticks * 10) + ref.flush()]
    assert sum(v for _, v in want) >= 4
    push, ep = _push()
    rx = RealtimeReceiver(board=ep, decoder_factory=lambda: receiver_for(link.meta),
                          config=RealtimeConfig(batch_items=ticks.size)).start()
    push.send_multipart(pack_message(ticks, seq=0, sample_rate=1e11))
    push.send_multipart(pack_message(np.zeros(0, np.int64), seq=1, sample_rate=1e11, flags=Flags.END_OF_STREAM))
    assert rx.wait_eos(30)
    rx.stop()
    push.close()
    assert [(f.data, f.valid) for f in rx.frames] == want
    assert abs(rx.stats.stream_time_s - (int(ticks[-1]) - int(ticks[0])) / 1e11) < 1e-12


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("window", [0, 1, 3, 8])
def test_sequence_tracker_accounts_every_message_under_random_faults(seed, window):
    """Random drops, duplicates, local reordering and timeouts: each seq of the run is delivered
    once in increasing order or inside exactly one declared gap; every arrival not delivered is
    a duplicate or late."""
    rng = np.random.default_rng(seed)
    n = 300
    seqs = [s for s in range(n) if rng.random() > 0.1]                   # drops
    seqs = [x for s in seqs for x in ([s, s] if rng.random() < 0.1 else [s])]   # duplicates
    for i in range(len(seqs) - 1):                                       # local swaps
        if rng.random() < 0.15:
            seqs[i], seqs[i + 1] = seqs[i + 1], seqs[i]
    st = RealtimeStats()
    tr = SequenceTracker(window, 0.05, st)
    out, now = [], 0.0
    for s in seqs:
        h, items = parse_message(_msg(s))
        now += rng.exponential(0.01)
        out += tr.push(h, items, now)
        out += tr.expire(now)
    out += tr.drain()
    data = [e[1].seq for e in out if e[0] == "data"]
    assert data == sorted(set(data))
    covered = sorted(data + [q for e in out if e[0] == "gap" for q in range(e[1]["first_seq"], e[1]["last_seq"] + 1)])
    assert covered == list(range(seqs[0], max(seqs) + 1))
    assert len(data) + st.duplicates + st.late == len(seqs)
    assert st.lost_messages == len(covered) - len(data) and st.gaps == sum(e[0] == "gap" for e in out)


@pytest.mark.parametrize("seed,dtype", [(1, np.int64), (2, np.int64), (3, np.float32), (4, np.float32)])
def test_random_emulator_faults_accounted_exactly(seed, dtype):
    """Random drop / duplicate / reorder rates (tags and samples): the receiver's counters equal
    the emulator's log and every item that was not dropped reaches the decoder."""
    per = 16
    emu, rx = _emulate(FaultPlan(drop_rate=0.05, duplicate_rate=0.05, reorder_rate=0.05, overflow={50}, restart={120},
                                 seed=seed), n_msgs=200, per=per, dtype=dtype)
    kinds = [k for k, _, _ in emu.log]
    s = rx.stats
    assert (s.lost_messages, s.duplicates, s.reordered, s.late) == \
        (kinds.count("drop"), kinds.count("duplicate"), kinds.count("reorder"), 0), emu.log
    assert s.rejected == {k: 0 for k in s.rejected} and s.restarts == 1 and s.overflows == 1
    assert s.time_jumps == s.index_jumps == 0
    dropped = {n for k, n, _ in emu.log if k in ("drop", "overflow")}
    assert s.items == s.decoded_items == (200 - len(dropped)) * per


def test_sample_index_discontinuity_without_flag_is_marked():
    """Samples: ``first`` counts samples since the start, so a message whose first sample is not
    the one after the previous message's last (no seq gap, no OVERFLOW) means samples were lost
    or repeated in the board: a marked discontinuity (``index_jump``), not a silent splice. After a
    declared gap / overflow the jump is expected and not counted twice."""
    def m(seq, first, flags=0):
        return pack_message(np.ones(10, np.float32), seq=seq, first=first, sample_rate=1e6, flags=flags)
    out, st = _track([m(0, 0), m(1, 10), m(2, 25), m(3, 35), m(5, 60), m(6, 80, Flags.OVERFLOW), m(7, 90), m(8, 85)])
    kinds = [e[0] if e[0] == "data" else (e[0], e[1].get("before"), e[1].get("after")) for e in out]
    assert kinds == ["data", "data", ("index_jump", 20, 25), "data", "data", ("gap", 45, 60), "data",
                     ("overflow", 70, 80), "data", "data", ("index_jump", 100, 85), "data"]
    assert st.index_jumps == 2 and st.time_jumps == 0


def test_cli_duration_run_decodes_its_tail(tmp_path, monkeypatch, capsys):
    """``modem receive --duration`` is a planned end (the pass is over): what was received is still
    decoded and written (stop with drain), as with --until-eos; only an interrupt skips the backlog."""
    import modem.board.realtime as realtime
    from modem.cli import main
    drains = []

    class Spy(realtime.RealtimeReceiver):
        def stop(self, drain=True):
            drains.append(drain)
            return super().stop(drain)
    monkeypatch.setattr(realtime, "RealtimeReceiver", Spy)
    assert main(["receive", "--board", f"ipc://{tmp_path}/none", "--out", str(tmp_path / "rx"), "--duration", "0.2",
                 "--status-interval", "0.05", "--publish", "none", "--quiet"]) == 0
    assert drains == [True]


def test_stop_without_drain_still_logs_the_gaps_it_discards():
    """stop(drain=False) discards the backlog (counted), but the gap markers in it are still logged:
    events.jsonl must agree with the gap counters."""
    push, ep = _push()
    gate = threading.Event()
    dec = Recorder(gate=gate)
    rx = RealtimeReceiver(board=ep, decoder_factory=lambda: dec, out_dir=None,
                          config=RealtimeConfig(batch_items=N, reorder_window=0)).start()
    push.send_multipart(_msg(0))
    assert dec.entered.wait(10)                   # the decoder is busy with message 0
    push.send_multipart(_msg(2))                  # gap (seq 1) + message 2 wait in the ring
    _wait(lambda: rx.stats.items == 2 * N)
    th = threading.Thread(target=rx.stop, kwargs={"drain": False})
    th.start()
    _wait(lambda: rx._discard.is_set())
    gate.set()
    th.join(10)
    push.close()
    s = rx.stats
    assert s.gaps == 1 and s.discarded_at_stop == N and s.decoded_items == N
    assert [e["kind"] for e in rx.events] == ["seq_gap"]


def test_emulator_duplicate_lost_to_a_full_queue_is_not_logged():
    """rate_factor > 0 and a full send queue: a duplicate that could not be sent was logged as
    injected, so the receiver's duplicate count could never match the log."""
    got, log = _through_a_full_queue(6, FaultPlan(duplicate={1}), "review-dup")
    seqs = [q for q, _ in got]
    assert len(seqs) - len(set(seqs)) == sum(k == "duplicate" for k, _, _ in log), (got, log)


def test_seq_going_back_without_restart_flag_is_an_implicit_restart():
    """A board that restarts without the RESTART flag (or a 32-bit seq counter that wraps) sends
    seq 0, 1, ... again. Those are new data, not duplicates (a duplicate repeats the header) and
    not late (far behind any reorder window): the receiver restarts its sequence there (counted as
    seq_resets, a seq_reset event, decoder reset) instead of discarding the rest of the stream."""
    def m(seq, base):
        return pack_message(np.arange(N, dtype=np.int64) * 10 + base, seq=seq)
    first = [m(s, 1000 * s) for s in range(5)]
    again = [m(s, 10**6 + 1000 * s) for s in range(3)]             # new data, seq from 0 again
    out, st = _track(first + [first[3]] + again)                     # one true duplicate, then the reset
    kinds = [e[0] if e[0] != "data" else ("data", e[1].seq) for e in out]
    assert kinds == [("data", s) for s in range(5)] + ["seq_reset"] + [("data", s) for s in range(3)]
    assert (st.duplicates, st.late, st.seq_resets, st.restarts, st.gaps) == (1, 0, 1, 0, 0)
    # a wrap-around far behind the recent window (seq 2**32 - 3 .. then 0)
    out, st = _track([m(2**32 - 3 + i, 1000 * i) for i in range(3)] + [m(0, 10**6), m(1, 10**6 + 1000)])
    assert [e[1].seq for e in out if e[0] == "data"] == [2**32 - 3, 2**32 - 2, 2**32 - 1, 0, 1]
    assert (st.seq_resets, st.late, st.duplicates) == (1, 0, 0)
    # a truly late message (its gap already declared) is still late
    out, st = _track([m(0, 0), m(2, 2000), m(3, 3000), m(4, 4000), m(5, 5000), m(6, 6000), m(1, 1000)])
    assert (st.seq_resets, st.late) == (0, 1)


def test_cli_receive_stops_its_receiver_when_the_board_refuses_start(tmp_path, monkeypatch, capsys):
    """``modem receive --control``: the receiver is started before the board; if the board then
    refuses 'start' (or times out) the receiver must still be stopped (threads, sockets, stats.json)."""
    import json as _json

    from modem.cli import main
    made = _spy_receivers(monkeypatch)
    ctx = zmq.Context.instance()
    rep = ctx.socket(zmq.REP)
    rep.linger = 0
    ctl = f"tcp://127.0.0.1:{rep.bind_to_random_port('tcp://127.0.0.1')}"

    def board():
        for _ in range(2):
            req = _json.loads(rep.recv())
            rep.send(_json.dumps({"ok": True, "registers": {}, "meta": {}} if req["cmd"] == "status"
                                 else {"ok": False, "error": "start refused by test board"}).encode())
    th = threading.Thread(target=board, daemon=True)
    th.start()
    out = tmp_path / "rx"
    assert main(["receive", "--board", f"ipc://{tmp_path}/data", "--control", ctl, "--out", str(out),
                 "--publish", "none", "--quiet"]) == 2
    assert "start refused by test board" in capsys.readouterr().err
    th.join(5)
    rep.close()
    rx, = made
    assert rx._threads == [] and (out / "stats.json").exists()


@pytest.mark.parametrize("faults", [FaultPlan(reorder={0}), FaultPlan(restart={3}, reorder={3})])
def test_emulator_never_swaps_the_restart_message(faults):
    """The RESTART message starts the run's sequence: swapping it with the next message would put
    a seq of the new run before its start (the receiver sees a restart late, not a reorder)."""
    emu, rx = _emulate(faults)
    kinds = [k for k, _, _ in emu.log]
    s = rx.stats
    assert "reorder" not in kinds and s.reordered == 0 and s.restarts == kinds.count("restart")
    assert s.items == s.decoded_items == 8 * 64 and s.lost_messages == s.duplicates == s.late == 0
