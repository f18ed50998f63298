"""Errors raised by the broker, each carrying the gRPC status it maps to."""
import grpc


class EmulatorError(Exception):
    """A request the real service would reject; ``code`` is its gRPC status."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL


class NotFound(EmulatorError):
    """The named topic or subscription does not exist."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(EmulatorError):
    """A topic or subscription with that name exists already."""

    code = grpc.StatusCode.ALREADY_EXISTS


class InvalidArgument(EmulatorError):
    """A malformed name or an out-of-range value."""

    code = grpc.StatusCode.INVALID_ARGUMENT
