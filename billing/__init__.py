"""Domain rules and SQL: permissions, sessions, the ledger, idempotency. Query functions take the connection."""
