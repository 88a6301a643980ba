# SPDX-License-Identifier: Apache-2.0
"""Monte-Carlo link simulations: random frames -> transmitter -> channel -> receiver -> counts.

Each chain module (``scppm``, ``dpsk``) exposes ``add_arguments(parser)`` for the CLI and
``run(args) -> dict`` returning the report built by :func:`modem.sim.common.report`.
"""
