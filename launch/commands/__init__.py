"""Sub-commands of `rram-lsm`.

Each module exposes ``register(sub)`` which adds its parser to the sub-parsers and sets
``func`` (called with the parsed args; returns an exit code).  Keep imports of heavy
packages (torch, tonic, matplotlib) inside ``func`` so ``rram-lsm --help`` stays fast.
"""
