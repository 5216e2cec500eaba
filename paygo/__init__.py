"""PayGo: wiring, settings and the command line. The layers live in gateway/, billing/, chains/ and scheduler/."""
