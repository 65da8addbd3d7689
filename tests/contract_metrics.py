"""The metric families CONTRACT.md §7 requires, with their types (checked by the unit and the live
metrics tests)."""

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
    "tasking_routing_choices": "counter",
}
