"""Graph files, the process launcher/supervisor and the `rram-lsm` command line."""
