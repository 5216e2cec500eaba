-- Scale-out: several gateways and schedulers share one database.

-- Which process ran each job last (host:pid): with `paygo serve --workers N` the jobs run in one process of their
-- own, and with several `paygo scheduler` replicas an operator sees which one is active.
ALTER TABLE job_runs ADD COLUMN last_runner text;
