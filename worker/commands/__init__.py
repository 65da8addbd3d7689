"""Commands of the ``tasking-worker`` command line that live in their own modules; each module has a
``register(app)`` called from :mod:`worker.cli`."""
