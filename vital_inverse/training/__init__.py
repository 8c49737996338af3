# SPDX-License-Identifier: GPL-3.0-or-later
"""Offline training: losses, the training loop, checkpoints. The app never imports this."""
