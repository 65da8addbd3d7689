"""Satellite tasking worker: orders imagery from Airbus OneAtlas and UP42 on Kafka requests."""

__version__ = "0.1.0"
