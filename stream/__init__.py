"""The wire: packets, msgpack codec, ZeroMQ transport, telemetry and energy models.

`stream` depends on neither `nodes` nor `launch`, and never imports torch.
"""
