"""The gRPC services ``google.pubsub.v1.Publisher`` and ``Subscriber``.

Handlers are registered generically by method name, with the protobuf classes
from google-cloud-pubsub as (de)serializers; methods not listed here (schemas,
snapshots, seek, updates) get UNIMPLEMENTED from gRPC itself.
"""
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc

from pipeline.local.pubsub import protos
from pipeline.local.pubsub.broker import MAX_ACK_DEADLINE_S, Broker
from pipeline.local.pubsub.errors import EmulatorError, InvalidArgument, NotFound
from pipeline.local.pubsub.streaming import StreamingPullSession

_T = TypeVar("_T")


def _unary(
    method: Callable[[Any, grpc.ServicerContext], Any], request_cls: type, response_cls: type
) -> grpc.RpcMethodHandler:
    """A unary handler for ``method`` that turns broker errors into statuses."""

    def handle(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(request, context)
        except EmulatorError as error:
            context.abort(error.code, str(error))

    return grpc.unary_unary_rpc_method_handler(
        handle,
        request_deserializer=request_cls.FromString,
        response_serializer=response_cls.SerializeToString,
    )


def _paginate(items: list[_T], page_size: int, page_token: str) -> tuple[list[_T], str]:
    """One page of ``items`` and the token of the next ('' on the last page)."""
    try:
        start = int(page_token or 0)
    except ValueError:
        raise InvalidArgument(f"Invalid page token: {page_token!r}") from None
    end = start + page_size if page_size > 0 else len(items)
    return items[start:end], str(end) if end < len(items) else ""


class PublisherService:
    """Topic administration and publishing."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    def handler(self) -> grpc.GenericRpcHandler:
        """The generic handler serving ``google.pubsub.v1.Publisher``."""
        return grpc.method_handlers_generic_handler(
            "google.pubsub.v1.Publisher",
            {
                "CreateTopic": _unary(self.create_topic, protos.Topic, protos.Topic),
                "GetTopic": _unary(self.get_topic, protos.GetTopicRequest, protos.Topic),
                "ListTopics": _unary(
                    self.list_topics, protos.ListTopicsRequest, protos.ListTopicsResponse
                ),
                "ListTopicSubscriptions": _unary(
                    self.list_topic_subscriptions,
                    protos.ListTopicSubscriptionsRequest,
                    protos.ListTopicSubscriptionsResponse,
                ),
                "DeleteTopic": _unary(self.delete_topic, protos.DeleteTopicRequest, protos.Empty),
                "Publish": _unary(self.publish, protos.PublishRequest, protos.PublishResponse),
            },
        )

    def create_topic(self, request: protos.Topic, _: grpc.ServicerContext) -> protos.Topic:
        return self._broker.create_topic(request)

    def get_topic(self, request: protos.GetTopicRequest, _: grpc.ServicerContext) -> protos.Topic:
        return self._broker.get_topic(request.topic)

    def list_topics(
        self, request: protos.ListTopicsRequest, _: grpc.ServicerContext
    ) -> protos.ListTopicsResponse:
        topics, token = _paginate(
            self._broker.list_topics(request.project), request.page_size, request.page_token
        )
        return protos.ListTopicsResponse(topics=topics, next_page_token=token)

    def list_topic_subscriptions(
        self, request: protos.ListTopicSubscriptionsRequest, _: grpc.ServicerContext
    ) -> protos.ListTopicSubscriptionsResponse:
        names, token = _paginate(
            self._broker.list_topic_subscriptions(request.topic),
            request.page_size,
            request.page_token,
        )
        return protos.ListTopicSubscriptionsResponse(subscriptions=names, next_page_token=token)

    def delete_topic(
        self, request: protos.DeleteTopicRequest, _: grpc.ServicerContext
    ) -> protos.Empty:
        self._broker.delete_topic(request.topic)
        return protos.Empty()

    def publish(
        self, request: protos.PublishRequest, _: grpc.ServicerContext
    ) -> protos.PublishResponse:
        return protos.PublishResponse(
            message_ids=self._broker.publish(request.topic, request.messages)
        )


class SubscriberService:
    """Subscription administration, pulling and acknowledging."""

    def __init__(self, broker: Broker, empty_pull_wait_s: float) -> None:
        self._broker = broker
        self._empty_pull_wait_s = empty_pull_wait_s

    def handler(self) -> grpc.GenericRpcHandler:
        """The generic handler serving ``google.pubsub.v1.Subscriber``."""
        return grpc.method_handlers_generic_handler(
            "google.pubsub.v1.Subscriber",
            {
                "CreateSubscription": _unary(
                    self.create_subscription, protos.Subscription, protos.Subscription
                ),
                "GetSubscription": _unary(
                    self.get_subscription, protos.GetSubscriptionRequest, protos.Subscription
                ),
                "ListSubscriptions": _unary(
                    self.list_subscriptions,
                    protos.ListSubscriptionsRequest,
                    protos.ListSubscriptionsResponse,
                ),
                "DeleteSubscription": _unary(
                    self.delete_subscription, protos.DeleteSubscriptionRequest, protos.Empty
                ),
                "Pull": _unary(self.pull, protos.PullRequest, protos.PullResponse),
                "Acknowledge": _unary(self.acknowledge, protos.AcknowledgeRequest, protos.Empty),
                "ModifyAckDeadline": _unary(
                    self.modify_ack_deadline, protos.ModifyAckDeadlineRequest, protos.Empty
                ),
                "StreamingPull": grpc.stream_stream_rpc_method_handler(
                    self.streaming_pull,
                    request_deserializer=protos.StreamingPullRequest.FromString,
                    response_serializer=protos.StreamingPullResponse.SerializeToString,
                ),
            },
        )

    def create_subscription(
        self, request: protos.Subscription, _: grpc.ServicerContext
    ) -> protos.Subscription:
        return self._broker.create_subscription(request)

    def get_subscription(
        self, request: protos.GetSubscriptionRequest, _: grpc.ServicerContext
    ) -> protos.Subscription:
        return self._broker.get_subscription(request.subscription)

    def list_subscriptions(
        self, request: protos.ListSubscriptionsRequest, _: grpc.ServicerContext
    ) -> protos.ListSubscriptionsResponse:
        subscriptions, token = _paginate(
            self._broker.list_subscriptions(request.project), request.page_size, request.page_token
        )
        return protos.ListSubscriptionsResponse(subscriptions=subscriptions, next_page_token=token)

    def delete_subscription(
        self, request: protos.DeleteSubscriptionRequest, _: grpc.ServicerContext
    ) -> protos.Empty:
        self._broker.delete_subscription(request.subscription)
        return protos.Empty()

    def pull(
        self, request: protos.PullRequest, context: grpc.ServicerContext
    ) -> protos.PullResponse:
        """Lease up to ``max_messages``; unless ``return_immediately``, wait
        briefly for a message so that polling clients do not spin."""
        if request.max_messages <= 0:
            raise InvalidArgument("max_messages must be positive")
        queue = self._broker.queue(request.subscription)
        wait_s = 0.0 if request.return_immediately else self._empty_pull_wait_s
        # Answer (empty) before the caller's deadline rather than let it expire.
        time_remaining = context.time_remaining()
        if time_remaining is not None:
            wait_s = max(0.0, min(wait_s, time_remaining - 0.1))
        received = queue.lease(request.max_messages, queue.ack_deadline_s, wait_s)
        return protos.PullResponse(received_messages=received)

    def acknowledge(
        self, request: protos.AcknowledgeRequest, _: grpc.ServicerContext
    ) -> protos.Empty:
        self._broker.queue(request.subscription).acknowledge(request.ack_ids)
        return protos.Empty()

    def modify_ack_deadline(
        self, request: protos.ModifyAckDeadlineRequest, _: grpc.ServicerContext
    ) -> protos.Empty:
        """Extend the leases, or with 0 seconds nack them for redelivery."""
        if not 0 <= request.ack_deadline_seconds <= MAX_ACK_DEADLINE_S:
            raise InvalidArgument(f"ack_deadline_seconds must be 0..{MAX_ACK_DEADLINE_S}")
        queue = self._broker.queue(request.subscription)
        queue.modify_deadline(request.ack_ids, request.ack_deadline_seconds)
        return protos.Empty()

    def streaming_pull(
        self, requests: Iterator[protos.StreamingPullRequest], context: grpc.ServicerContext
    ) -> Iterator[protos.StreamingPullResponse]:
        """Serve one stream; see :class:`StreamingPullSession`."""
        initial = next(requests, None)
        if initial is None:
            return
        try:
            queue = self._broker.queue(initial.subscription)
            self._broker.check_ack_deadline(initial.stream_ack_deadline_seconds)
        except EmulatorError as error:
            context.abort(error.code, str(error))
        session = StreamingPullSession(queue, initial.stream_ack_deadline_seconds)
        session.apply(initial)
        # Fires when the RPC ends for any reason: client cancel, server stop.
        context.add_callback(session.close)
        threading.Thread(
            target=session.consume, args=(requests,), name="pubsub-streaming-pull", daemon=True
        ).start()
        yield from session.responses()
        if queue.closed:
            context.abort(NotFound.code, f"Subscription deleted: {initial.subscription}")
