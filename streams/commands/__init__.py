"""The `allocator` commands' work, one job per module; streams/cli.py parses the
command line and calls them.

    errors.py     any failure -> one or two lines naming what is at fault and the fix
    output.py     a rich table on a terminal, JSON with --json
    store.py      the database as a command opens it: URL checked, closed whatever happens
    loading.py    clients|resources|leads load FILE
    listing.py    clients list, resources list
    dlq.py        dlq show: the dead letters, grouped by error code
    topics.py     topics create
    worker.py     the worker's own help, in front of faust's worker
"""
