"""Stand-ins for external nodes used by the tests and by the embedded default (never in production)."""
