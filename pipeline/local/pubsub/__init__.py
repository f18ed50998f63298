"""In-process Google Cloud Pub/Sub emulator (``google.pubsub.v1`` over gRPC).

Import :class:`PubSubEmulator` from :mod:`pipeline.local.pubsub_emulator`; the
modules here are its parts: the broker state, the gRPC services and the server.
"""
