"""The ``safehold`` command line: one module per command (``cmd_*``), talking to operations only.

:mod:`.main` holds the command list and is the one place where exceptions become exit codes;
:mod:`.app` what every command shares (global options, passphrase lookup, opening the repository,
output as text or ``--json``); :mod:`.globalopts` the global options that may stand anywhere;
:mod:`.progress` the terminal progress bars; :mod:`.backend_options`, :mod:`.thaw_options` and
:mod:`.repo_setup` option groups and helpers that several commands use.
"""
