"""``tasking-worker download``: fetch delivered products to local files.

* :mod:`.source`: the STAC Items to fetch (an item file, or a request's delivery events);
* :mod:`.access`: the providers' credentials (the adapters' token sources);
* :mod:`.download`: resumable, verified transfers and the local copy of each item;
* :mod:`.progress`: a ``rich`` bar per file, or plain lines.
"""
