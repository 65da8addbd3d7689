"""The ``tasking-worker`` command line.

Commands:

* ``run``: the service (configuration from ``TASKING_*`` variables);
* ``demo``: the embedded broker, both provider simulators, the worker and sample orders on this
  machine, with a live view and a summary (``worker.demo``);
* ``simulate``: only the provider simulators, as HTTP servers, with the variables that point a
  worker at them;
* ``submit``: validate request/command files (or every file of a directory) and publish the valid
  ones (binary CloudEvents);
* ``tail``: follow the status, acquisition and dead-letter topics, optionally filtered;
* ``status``: the latest status event of one request;
* ``download``: the delivered products of a request (or of one STAC Item file) to local files;
* ``check``: connect with the configured settings and check the contract topics (one line per
  check; a Helm test hook or init container; ``worker.commands.check``);
* ``schemas``: write (or ``--check``) the generated JSON Schemas, AsyncAPI document and examples;
* ``docs``: write (or ``--check``) the generated references under ``docs/reference/`` and the
  chart README (``worker.commands.docs``).

Kafka connection and topic names come from :class:`worker.config.Settings` (``TASKING_*``
variables); options override them. Every command's ``--help`` shows examples.

Exit codes (the same for every command):

====  ==========================================================================================
code  meaning
====  ==========================================================================================
0     success
1     failure: a check failed, a demo order missed its expected status, a request was not
      found, Kafka is unreachable, or a fatal error
2     bad input or configuration: invalid files, options or ``TASKING_*`` variables
3     timeout: ``demo --timeout`` (or ``status --timeout``) passed before the work was done
130   interrupted (Ctrl-C) where that is not the normal way to stop
====  ==========================================================================================
"""

from __future__ import annotations

# --------------------------------------------------------------------------- commands in their own modules
from worker.commands import check as _check_command
from worker.commands import docs as _docs_command

# isort: off
# each module registers its commands on import, in the order of `--help`
from worker.cli import local  # noqa: F401
from worker.cli import schemas  # noqa: F401
from worker.cli import submit  # noqa: F401
from worker.cli import tail  # noqa: F401
from worker.cli import service  # noqa: F401
from worker.cli import status  # noqa: F401
from worker.cli import download  # noqa: F401

# isort: on
from worker.cli.base import app

# Only what ``--help`` needs is imported here: each command imports its own modules when it
# runs (the whole service, aiokafka and the models would otherwise cost every command, even
# ``--help``, most of a second). Names below are for the type checker only.


def _register_subcommands() -> None:
    from worker.commands.stac import stac_app

    app.add_typer(stac_app, name="stac")


_register_subcommands()


def main() -> None:
    """Console-script entry point."""
    app()


_docs_command.register(app)


_check_command.register(app)
