"""The engine: tasks, jobs, timers, waiters, and the checks of task requests."""
