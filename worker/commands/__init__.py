"""Command-line commands kept in their own modules (registered in ``worker.cli``)."""
