"""The provider flows of the domain core (see ``docs/provider-status-mapping.md``).

``common`` holds transitions and shared rules, ``kinds`` tells which flow a request follows,
``oneatlas``/``up42`` the steps that differ per provider, and the other modules one concern each
(placement, writes, tracking, acquisitions, commands, failures, timers).
"""
