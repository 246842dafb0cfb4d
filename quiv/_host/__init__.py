"""Host mode: the processes of one host share one database, and one of them runs the schedules."""
