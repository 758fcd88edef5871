"""Event sources: dataset replay, emulators (saccade DVS, handwriting neural), synthetic and live.

Modules are imported on demand so that importing one source never pulls in another's
dependencies (tonic, and through it torch, is only imported by the N-MNIST reader).
"""
