"""Top of the stack: configs, the demo and (later) training. Nothing imports the engine."""
