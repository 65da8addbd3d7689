"""The metric families CONTRACT.md §7 requires, with their types (checked by the unit and the live
metrics tests). This is the one list: a family added to the contract is appended here."""

CONTRACT_FAMILIES = {
    "tasking_messages_consumed": "counter",
    "tasking_order_transitions": "counter",
    "tasking_orders": "gauge",
    "tasking_provider_requests": "counter",
    "tasking_provider_request_duration_seconds": "histogram",
    "tasking_dead_letters": "counter",
    "tasking_events_published": "counter",
    "tasking_consumer_lag_messages": "gauge",
    "tasking_build_info": "gauge",
    "tasking_deliveries": "counter",
    "tasking_routing_choices": "counter",
}

#: Contract families whose label values are learnt at run time, so a fresh worker exports them
#: without a series: the partitions an instance is assigned, the operations a provider calls.
#: Every other contract family has zero-valued series from the start (CONTRACT §7).
LABELS_LEARNT_AT_RUN_TIME = frozenset(
    {
        "tasking_consumer_lag_messages",
        "tasking_provider_requests",
        "tasking_provider_request_duration_seconds",
    }
)
