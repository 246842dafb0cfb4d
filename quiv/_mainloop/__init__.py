"""The main loop: the bridge that runs callbacks there, and run_on_main / call_on_main."""
