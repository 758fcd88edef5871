"""Node kinds: sources, the RRAM LSM, projection, classifier and sinks."""
