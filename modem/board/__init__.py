# SPDX-License-Identifier: Apache-2.0
"""Capture-board interface: the ZeroMQ wire protocol (defined once in fpga/protocol.toml), the
board control channel, a board emulator, and the real-time receiver that decodes a board or GNU
Radio stream into checked transfer frames and space packets.

Modules: :mod:`~modem.board.protocol` (pack / validate messages, registers),
:mod:`~modem.board.control` (REQ/REP lazy-pirate client, endpoint security), :mod:`~modem.board.emulator`
(``modem board emulate``), :mod:`~modem.board.realtime` (``modem receive``), :mod:`~modem.board.cli`.
``zmq`` is imported only when a socket is made.
"""
