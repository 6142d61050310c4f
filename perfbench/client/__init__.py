"""The client stage: HTTP, SSE, the OpenAI wire format and clocks. Knows nothing of the store."""

from perfbench.client.http import Client
from perfbench.client.record import STATUSES, RequestRecord, RequestSpec
from perfbench.client.sse import SSEDecoder

__all__ = ["Client", "RequestRecord", "RequestSpec", "SSEDecoder", "STATUSES"]
