"""HTTP layer: routes, request parsing, authentication and error mapping. No SQL and no chain calls here."""
