"""The ``robnp`` command line (installed as the ``robnp_cli`` package)."""
