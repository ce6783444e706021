"""anyir.data: recipes -> sources -> shard sets, and reading them back.

Import from the submodules; this package file stays import-light on purpose. In pipeline order:
``recipe`` (schema), ``sources`` (dataset readers), ``build`` (scan, write, audit, swap in),
``shard_writer`` (one tar), ``manifest`` (the index), ``shardset`` (a manifest + where its tars
are), ``reader`` (the one shard reader: fetch, verify, parse), ``samples`` (decode), ``balance``
and ``mixture`` (what to draw), ``stream`` (the exact-mixture stream), ``loader`` (its DataLoader).
"""
