"""Developer tools: the tiny test model, the environment smoke run, the demo pipeline."""
