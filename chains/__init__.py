"""Funding sources: one adapter per chain (or card processor) behind the protocol in kernel/funding.py."""
