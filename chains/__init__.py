"""Funding sources: one adapter per chain (or card processor) behind the protocol in chains/base.py."""
