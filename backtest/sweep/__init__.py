"""Sweeps: many design (and model) parameter sets x crash windows, on one process, a pool, or Ray.

The design-independent replay work is done once per (event, model parameters) and worker
(``tasks.Plan``); a design is then evaluated by feeding it the recorded claims (exact while it pays in
full) and the engine resumes only where a design fails. Results go to a resumable DuckDB table
(``store``); ``frontier`` turns them into the minimum capital that avoids ADL in every event.
"""
