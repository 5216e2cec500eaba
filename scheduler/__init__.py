"""Background jobs (billing ticks, expiry, reminders, payment watcher) run with APScheduler."""
