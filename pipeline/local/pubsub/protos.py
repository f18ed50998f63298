"""Raw protobuf classes of ``google.pubsub.v1``, taken from google-cloud-pubsub.

The client library ships proto-plus wrappers only; ``.pb()`` exposes the
underlying protobuf classes, whose ``FromString``/``SerializeToString`` are
exactly the (de)serializers gRPC needs, so no code generation is required.
"""
from google.protobuf import empty_pb2
from google.pubsub_v1 import types

Empty = empty_pb2.Empty

Topic = types.Topic.pb()
GetTopicRequest = types.GetTopicRequest.pb()
ListTopicsRequest = types.ListTopicsRequest.pb()
ListTopicsResponse = types.ListTopicsResponse.pb()
ListTopicSubscriptionsRequest = types.ListTopicSubscriptionsRequest.pb()
ListTopicSubscriptionsResponse = types.ListTopicSubscriptionsResponse.pb()
DeleteTopicRequest = types.DeleteTopicRequest.pb()
PublishRequest = types.PublishRequest.pb()
PublishResponse = types.PublishResponse.pb()
PubsubMessage = types.PubsubMessage.pb()

Subscription = types.Subscription.pb()
GetSubscriptionRequest = types.GetSubscriptionRequest.pb()
ListSubscriptionsRequest = types.ListSubscriptionsRequest.pb()
ListSubscriptionsResponse = types.ListSubscriptionsResponse.pb()
DeleteSubscriptionRequest = types.DeleteSubscriptionRequest.pb()
PullRequest = types.PullRequest.pb()
PullResponse = types.PullResponse.pb()
ReceivedMessage = types.ReceivedMessage.pb()
StreamingPullRequest = types.StreamingPullRequest.pb()
StreamingPullResponse = types.StreamingPullResponse.pb()
AcknowledgeRequest = types.AcknowledgeRequest.pb()
ModifyAckDeadlineRequest = types.ModifyAckDeadlineRequest.pb()
