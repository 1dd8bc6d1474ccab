"""(pure) The Redis namespace dramatiq's broker keeps its queues under, shared with what enqueues without dramatiq."""

NAMESPACE = "draftsmith"
