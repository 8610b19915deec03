"""Deterministic raw-data generator: schema ``raw`` (customers, products, orders, order_items)."""

from __future__ import annotations

from tally.datagen.generator import generate

__all__ = ["generate"]
